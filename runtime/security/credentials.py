"""Node credentials: kept apart from flow JSON, encrypted at rest (Fernet), keyed by node id.

On deploy a node object may carry `"credentials": {...}`; they are moved here and stripped from
the flows before the revision is computed. `"__PWRD__"` keeps the stored value, `""` deletes it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert, select

from sofiaflow.runtime.data.config_db import credentials as credentials_table
from sofiaflow.runtime.errors import SofiaflowError
from sofiaflow.runtime.types import FlowJSON

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

UNCHANGED = "__PWRD__"


class CredentialError(SofiaflowError):
    """The stored credentials cannot be decrypted with the configured secret."""


def _check_key(secret: bytes) -> None:
    """Fernet's own check of a key (32 url-safe base64-encoded bytes), without loading cryptography."""
    try:
        raw = base64.urlsafe_b64decode(secret)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise ValueError("Fernet key must be 32 url-safe base64-encoded bytes.") from exc
    if len(raw) != 32:
        raise ValueError("Fernet key must be 32 url-safe base64-encoded bytes.")


class CredentialStore:
    """The credentials of every node, encrypted as one blob in the config DB.

    cryptography is loaded when there is something to decrypt or encrypt: a server whose flows never held
    credentials does without it (it stores nothing, which loads as no credentials), and a deploy that leaves
    the credentials as they were stored does not write them again."""

    def __init__(self, engine: Engine | None, secret: bytes) -> None:
        _check_key(secret)
        self._engine = engine
        self._secret = secret
        self._cipher: Fernet | None = None
        self._data: dict[str, dict[str, Any]] = {}
        self._stored: str | None = None  # the JSON of what the DB holds, when known

    @property
    def _fernet(self) -> Fernet:
        if self._cipher is None:
            from cryptography.fernet import Fernet

            self._cipher = Fernet(self._secret)
        return self._cipher

    def load(self) -> None:
        if self._engine is None:
            return
        with self._engine.connect() as conn:
            row = conn.execute(
                select(credentials_table.c.blob).order_by(credentials_table.c.id.desc())
            ).first()
        if row is None:
            self._stored = json.dumps({})
            return
        from cryptography.fernet import InvalidToken

        try:
            text = self._fernet.decrypt(row[0])
        except InvalidToken:
            raise CredentialError(
                "stored credentials cannot be decrypted: the credential secret changed"
            ) from None
        self._data = json.loads(text)
        self._stored = json.dumps(self._data)

    def save(self) -> None:
        if self._engine is None:
            return
        text = json.dumps(self._data)
        if text == self._stored:
            return
        blob = self._fernet.encrypt(text.encode())
        with self._engine.begin() as conn:
            conn.execute(delete(credentials_table))
            conn.execute(insert(credentials_table).values(blob=blob))
        self._stored = text

    def get(self, node_id: str) -> dict[str, Any]:
        return dict(self._data.get(node_id, {}))

    def extract(
        self, flows: FlowJSON, extra: dict[str, dict] | None = None
    ) -> tuple[FlowJSON, dict[str, dict]]:
        """Flows without `credentials` keys, and the credential updates they (or `extra`) carried."""
        updates: dict[str, dict] = {}
        clean: FlowJSON = []
        for obj in flows:
            if isinstance(obj, dict) and "credentials" in obj:
                obj = dict(obj)
                creds = obj.pop("credentials")
                if isinstance(creds, dict) and isinstance(obj.get("id"), str):
                    updates.setdefault(obj["id"], {}).update(creds)
            clean.append(obj)
        for node_id, creds in (extra or {}).items():
            if isinstance(creds, dict):
                updates.setdefault(node_id, {}).update(creds)
        return clean, updates

    def apply(self, updates: dict[str, dict], keep_ids: set[str]) -> None:
        """Merge `updates` and forget credentials of nodes not in `keep_ids`."""
        for node_id, creds in updates.items():
            current = self._data.setdefault(node_id, {})
            for key, value in creds.items():
                if value == UNCHANGED:
                    continue
                if value == "" or value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
        self._data = {k: v for k, v in self._data.items() if k in keep_ids and v}

    def public_view(self, node_id: str, spec: dict[str, str]) -> dict[str, Any]:
        """What the editor may see: text fields as they are, passwords as `has_<name>`."""
        data = self._data.get(node_id, {})
        out: dict[str, Any] = {}
        for name, kind in spec.items():
            if kind == "password":
                out[f"has_{name}"] = bool(data.get(name))
            elif name in data:
                out[name] = data[name]
        return out
