"""Node credentials: kept apart from flow JSON, encrypted at rest (Fernet), keyed by node id.

On deploy a node object may carry `"credentials": {...}`; they are moved here and stripped from
the flows before the revision is computed. `"__PWRD__"` keeps the stored value, `""` deletes it.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, delete, insert, select

from sofiaflow.runtime.data.config_db import credentials as credentials_table
from sofiaflow.runtime.errors import SofiaflowError
from sofiaflow.runtime.types import FlowJSON

UNCHANGED = "__PWRD__"


class CredentialError(SofiaflowError):
    """The stored credentials cannot be decrypted with the configured secret."""


class CredentialStore:
    def __init__(self, engine: Engine | None, secret: bytes) -> None:
        self._engine = engine
        self._fernet = Fernet(secret)
        self._data: dict[str, dict[str, Any]] = {}

    def load(self) -> None:
        if self._engine is None:
            return
        with self._engine.connect() as conn:
            row = conn.execute(
                select(credentials_table.c.blob).order_by(credentials_table.c.id.desc())
            ).first()
        if row is None:
            return
        try:
            self._data = json.loads(self._fernet.decrypt(row[0]))
        except InvalidToken:
            raise CredentialError(
                "stored credentials cannot be decrypted: the credential secret changed"
            ) from None

    def save(self) -> None:
        if self._engine is None:
            return
        blob = self._fernet.encrypt(json.dumps(self._data).encode())
        with self._engine.begin() as conn:
            conn.execute(delete(credentials_table))
            conn.execute(insert(credentials_table).values(blob=blob))

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
