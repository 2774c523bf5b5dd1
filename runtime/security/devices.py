"""Devices (onesait "digital clients") and their tokens, kept in the config DB.

A device has a unique name, MQTT topic filters it may publish and subscribe to (`{device}` stands for its
name), ontology rights and any number of tokens. A token reads `<tokenid>.<secret>`; it is shown once and
stored as `sha256$<salt>$<sha256(salt + secret)>` with a 16-byte random salt per token, compared in constant
time. sha256 rather than argon2 on purpose: the secret is 256 random bits from `secrets`, so a stolen hash
cannot be brute-forced whatever the hash speed, while argon2's ~50 ms per check would cap MQTT CONNECTs (and
bearer-authenticated HTTP requests) at a few dozen per second per core. Lookup is by token id, so one row is
read per check.

Tenants apart: the topics of devices of different owners never overlap. A device whose filters (with
`{device}` expanded to its name) share a topic with a filter of a device of another owner (devices without an
owner are the administrators') is refused at create and change, naming the clash (`TopicClashError`, 400).
Two filters overlap iff some topic matches both (`mqtt_topics.overlaps`, exact). So one owner's devices cannot
read or write another's: not `#`, not `+/telemetry`. First come, first served: a developer's `#` device keeps
others out until it changes. Flows get the same rule from the broker (see runtime/mqtt/broker.py).

Revoking a token, disabling, changing or deleting a device calls the `on_revoke` listeners with
`(device_name, token_id)`; token_id None means every token of the device (the broker drops those sessions).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from sofiaflow.runtime.data.config_db import metadata
from sofiaflow.runtime.errors import AuthError, Conflict, NotFound, SofiaflowError, ValidationError
from sofiaflow.runtime.mqtt import topics as mt

log = logging.getLogger("sofiaflow.devices")

RIGHTS = ("ALL", "QUERY", "INSERT")
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_TOPICS = 100
LAST_SEEN_RESOLUTION = timedelta(seconds=60)  # last_seen is written at most this often per device

devices_table = Table(
    "devices",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("topics", JSON, nullable=False),
    Column("ontologies", JSON, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True)),
)

device_tokens_table = Table(
    "device_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("device", String(64), ForeignKey("devices.name", ondelete="CASCADE"), nullable=False, index=True),
    Column("hash", String(200), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)


device_instances_table = Table(
    "device_instances",
    metadata,
    Column("device", String(64), ForeignKey("devices.name", ondelete="CASCADE"), primary_key=True),
    Column("instance", String(200), primary_key=True),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)
"""The device instances (onesait's clientPlatformInstance) that joined as each device."""

device_owners_table = Table(
    "device_owners",
    metadata,
    Column("device", String(64), ForeignKey("devices.name", ondelete="CASCADE"), primary_key=True),
    Column("owner", String(200), nullable=False),
)
"""The user owning each device (onesait: a digital client's owner, whose ontology rights also apply)."""


class DeviceError(SofiaflowError):
    """Base of the device registry's errors."""


class DeviceValidationError(DeviceError, ValidationError):
    """A device property is invalid; `field` names it (e.g. `topics[1]`)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class TopicClashError(DeviceValidationError):
    """A device's topic filter overlaps a filter of a device of another owner."""


class DeviceNotFoundError(DeviceError, NotFound):
    """No device of that name."""


class DeviceExistsError(DeviceError, Conflict):
    """A device of that name exists already."""


class TokenNotFoundError(DeviceError, NotFound):
    """The device has no token with that id."""


@dataclass(frozen=True)
class TokenInfo:
    id: str
    created: datetime
    active: bool
    revoked_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": _iso(self.created),
            "active": self.active,
            "revoked_at": _iso(self.revoked_at),
        }


@dataclass
class Device:
    """A device; `tokens` is None when not loaded (authentication results skip it)."""

    name: str
    enabled: bool
    topics: list[str]
    ontologies: dict[str, str]
    created: datetime
    last_seen: datetime | None = None
    tokens: list[TokenInfo] | None = None
    owner: str | None = None
    filters: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.filters = tuple(mt.levels(t.replace("{device}", self.name)) for t in self.topics)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "enabled": self.enabled,
            "topics": list(self.topics),
            "ontologies": dict(self.ontologies),
            "created": _iso(self.created),
            "last_seen": _iso(self.last_seen),
            "owner": self.owner,
        }
        if self.tokens is not None:
            out["tokens"] = [t.as_dict() for t in self.tokens]
        return out


def may_publish(device: Device, topic: str) -> bool:
    """Whether `device` may publish to topic name `topic` (one of its filters matches it)."""
    if not device.enabled or not topic or "+" in topic or "#" in topic:
        return False
    wanted = mt.levels(topic)
    return any(mt.match_levels(f, wanted) for f in device.filters)


def may_subscribe(device: Device, topic_filter: str) -> bool:
    """Whether `device` may subscribe to `topic_filter` (one of its filters covers every topic it matches)."""
    if not device.enabled:
        return False
    try:
        mt.validate_filter(topic_filter)
    except mt.TopicError:
        return False
    wanted = mt.levels(topic_filter)
    return any(mt.cover_levels(f, wanted) for f in device.filters)


# ----- validation ---------------------------------------------------------------------------------


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or set(name) == {"."}:
        raise DeviceValidationError(
            "name", f"{name!r} is not a device name: use 1-64 of A-Z a-z 0-9 _ . - (not only dots)"
        )
    return name


def check_topics(topics: object) -> list[str]:
    if not isinstance(topics, list):
        raise DeviceValidationError(
            "topics", f"must be a list of MQTT topic filters, got {type(topics).__name__}"
        )
    if len(topics) > MAX_TOPICS:
        raise DeviceValidationError("topics", f"at most {MAX_TOPICS} filters, got {len(topics)}")
    out: list[str] = []
    for index, topic in enumerate(topics):
        where = f"topics[{index}]"
        if not isinstance(topic, str):
            raise DeviceValidationError(where, f"must be a string, got {type(topic).__name__}")
        expanded = topic.replace("{device}", "d")
        if "{" in expanded or "}" in expanded:
            raise DeviceValidationError(where, f"{topic!r}: the only placeholder is {{device}}")
        try:
            mt.validate_filter(expanded, "MQTT topic filter")
        except mt.TopicError as exc:
            raise DeviceValidationError(
                where, f"{topic!r} is not a valid MQTT topic filter ({exc})"
            ) from None
        if topic not in out:
            out.append(topic)
    return out


def expanded_filters(name: str, topics: list[str]) -> list[str]:
    """A device's filters with `{device}` replaced by its name."""
    return [t.replace("{device}", name) for t in topics]


def topic_clash(
    name: str, topics: list[str], owner: str | None, others: list[tuple[str, list[str], str | None]]
) -> TopicClashError | None:
    """The first overlap between device `name`'s filters and those of `others` (name, topics, owner) of another
    owner, as an error naming the refused filter only; None when there is none."""
    mine = expanded_filters(name, topics)
    for other, other_topics, other_owner in others:
        if other == name or other_owner == owner:
            continue
        for theirs in expanded_filters(other, other_topics):
            for index, filt in enumerate(mine):
                if mt.overlaps(filt, theirs):
                    # neither the other device, its filter nor a topic both match is named: a refusal must not
                    # map other tenants' devices for someone probing with broad filters
                    return TopicClashError(
                        f"topics[{index}]",
                        f"{topics[index]!r} overlaps the topics of a device of "
                        "another owner; devices of different owners must not share topics",
                    )
    return None


def check_owner(owner: object) -> str | None:
    if owner is not None and (not isinstance(owner, str) or not owner or len(owner) > 200):
        raise DeviceValidationError("owner", f"must be a user name (1-200 characters) or null, got {owner!r}")
    return owner


def check_ontologies(ontologies: object) -> dict[str, str]:
    if not isinstance(ontologies, dict):
        raise DeviceValidationError(
            "ontologies", f"must be an object {{ontology: ALL|QUERY|INSERT}}, got {type(ontologies).__name__}"
        )
    out: dict[str, str] = {}
    for name, right in ontologies.items():
        if not isinstance(name, str) or not name or len(name) > 200:
            raise DeviceValidationError("ontologies", f"{name!r} is not an ontology name")
        if not isinstance(right, str) or right.upper() not in RIGHTS:
            raise DeviceValidationError(
                f"ontologies.{name}", f"right {right!r} is not one of {'|'.join(RIGHTS)}"
            )
        out[name] = right.upper()
    return out


# ----- tokens -------------------------------------------------------------------------------------


def _hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    return f"sha256${salt.hex()}${hashlib.sha256(salt + secret.encode('utf-8')).hexdigest()}"


def _verify_secret(stored: str, secret: str) -> bool:
    try:
        scheme, salt_hex, _digest = stored.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    return scheme == "sha256" and hmac.compare_digest(_hash_secret(secret, salt), stored)


def split_token(token: object) -> tuple[str, str]:
    """`<tokenid>.<secret>` -> (tokenid, secret); AuthError when it has not that shape."""
    if not isinstance(token, str) or "." not in token:
        raise AuthError("malformed device token: expected '<tokenid>.<secret>'")
    token_id, secret = token.split(".", 1)
    if not token_id or not secret or len(token_id) > 32:
        raise AuthError("malformed device token: expected '<tokenid>.<secret>'")
    return token_id, secret


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class DeviceRegistry:
    """Devices and tokens in the config DB (see the module docstring)."""

    def __init__(self, db_engine: Engine) -> None:
        self._db = db_engine
        metadata.create_all(
            db_engine,
            tables=[devices_table, device_tokens_table, device_instances_table, device_owners_table],
        )
        self._listeners: list[Callable[[str, str | None], None]] = []
        self.generation = 0
        """Counts changes to devices (created, changed, deleted, tokens revoked): caches of topics compare it."""
        self.relay: Callable[[str, str | None], None] | None = None
        """Cluster mode: also tells the other workers of each revocation, which `notify_revoked` their listeners
        (runtime/cluster/shared_devices.py); None in a single process."""

    # ----- listeners ------------------------------------------------------------------------------
    def on_revoke(self, callback: Callable[[str, str | None], None]) -> Callable[[], None]:
        """Call `callback(device_name, token_id)` after a revocation (token_id None: all tokens); returns an
        unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self, name: str, token_id: str | None) -> None:
        self.notify_revoked(name, token_id)
        if self.relay is not None:
            self.relay(name, token_id)

    def notify_revoked(self, name: str, token_id: str | None) -> None:
        """Call this process's `on_revoke` listeners (what a revocation here does, without the relay)."""
        self.generation += 1
        for callback in list(self._listeners):
            try:
                callback(name, token_id)
            except Exception:  # a listener's failure must not undo the revocation
                log.exception("on_revoke listener failed for device %r", name)

    # ----- devices --------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        ontologies: dict[str, str] | None = None,
        topics: list[str] | None = None,
        enabled: bool = True,
        owner: str | None = None,
    ) -> tuple[Device, str]:
        """Create a device with one token; returns (device, token). The token is not retrievable later."""
        name = check_name(name)
        owner = check_owner(owner)
        topics = check_topics(topics if topics is not None else [])
        ontologies = check_ontologies(ontologies if ontologies is not None else {})
        self._refuse_clash(name, topics, owner)
        now = datetime.now(UTC)
        token_id, token, row = self._new_token(name, now)
        try:
            with self._db.begin() as conn:
                conn.execute(
                    insert(devices_table).values(
                        name=name,
                        enabled=bool(enabled),
                        topics=topics,
                        ontologies=ontologies,
                        created=now,
                        last_seen=None,
                    )
                )
                conn.execute(insert(device_tokens_table).values(**row))
                if owner is not None:
                    conn.execute(insert(device_owners_table).values(device=name, owner=owner))
        except IntegrityError:
            raise DeviceExistsError(f"a device named {name!r} exists already") from None
        self.generation += 1
        device = Device(
            name, bool(enabled), topics, ontologies, now, None, [TokenInfo(token_id, now, True)], owner
        )
        return device, token

    def get(self, name: str) -> Device:
        with self._db.connect() as conn:
            row = conn.execute(select(devices_table).where(devices_table.c.name == name)).first()
            if row is None:
                raise DeviceNotFoundError(f"no device named {name!r}")
            toks = conn.execute(
                select(device_tokens_table)
                .where(device_tokens_table.c.device == name)
                .order_by(device_tokens_table.c.created)
            ).all()
            owner = conn.execute(
                select(device_owners_table.c.owner).where(device_owners_table.c.device == name)
            ).scalar()
        return self._device(row, toks, owner)

    def list(self) -> list[Device]:
        with self._db.connect() as conn:
            rows = conn.execute(select(devices_table).order_by(devices_table.c.name)).all()
            toks = conn.execute(select(device_tokens_table).order_by(device_tokens_table.c.created)).all()
            owners = dict(
                conn.execute(select(device_owners_table.c.device, device_owners_table.c.owner)).all()
            )
        by_device: dict[str, list[Any]] = {}
        for tok in toks:
            by_device.setdefault(tok.device, []).append(tok)
        return [self._device(row, by_device.get(row.name, []), owners.get(row.name)) for row in rows]

    def update(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        topics: list[str] | None = None,
        ontologies: dict[str, str] | None = None,
        owner: str | None | object = ...,
    ) -> Device:
        """Change a device (`owner` None removes it); its open sessions are dropped so they reconnect with the
        new rights."""
        values: dict[str, Any] = {}
        if owner is not ... or topics is not None:
            current = self.get(name)
            self._refuse_clash(
                name,
                check_topics(topics) if topics is not None else current.topics,
                check_owner(owner) if owner is not ... else current.owner,
            )
        if owner is not ...:
            owner = check_owner(owner)
            with self._db.begin() as conn:
                conn.execute(delete(device_owners_table).where(device_owners_table.c.device == name))
                if owner is not None:
                    conn.execute(insert(device_owners_table).values(device=name, owner=owner))
            if not values and enabled is None and topics is None and ontologies is None:
                self._notify(name, None)
        if enabled is not None:
            if not isinstance(enabled, bool):
                raise DeviceValidationError("enabled", f"must be true or false, got {enabled!r}")
            values["enabled"] = enabled
        if topics is not None:
            values["topics"] = check_topics(topics)
        if ontologies is not None:
            values["ontologies"] = check_ontologies(ontologies)
        if values:
            with self._db.begin() as conn:
                done = conn.execute(
                    update(devices_table).where(devices_table.c.name == name).values(**values)
                )
            if done.rowcount == 0:
                raise DeviceNotFoundError(f"no device named {name!r}")
            self._notify(name, None)
        return self.get(name)

    def delete(self, name: str) -> None:
        with self._db.begin() as conn:
            conn.execute(delete(device_instances_table).where(device_instances_table.c.device == name))
            conn.execute(delete(device_owners_table).where(device_owners_table.c.device == name))
            conn.execute(delete(device_tokens_table).where(device_tokens_table.c.device == name))
            done = conn.execute(delete(devices_table).where(devices_table.c.name == name))
        if done.rowcount == 0:
            raise DeviceNotFoundError(f"no device named {name!r}")
        self._notify(name, None)

    def topic_owners(self) -> list[tuple[str, list[str], str | None]]:
        """Every device's (name, topics, owner)."""
        d, o = devices_table, device_owners_table
        with self._db.connect() as conn:
            rows = conn.execute(
                select(d.c.name, d.c.topics, o.c.owner).select_from(d.outerjoin(o, o.c.device == d.c.name))
            ).all()
        return [(r.name, list(r.topics), r.owner) for r in rows]

    def owner_of(self, name: str) -> str | None:
        """The owner of device `name` (None: the administrators', or no such device)."""
        with self._db.connect() as conn:
            return conn.execute(
                select(device_owners_table.c.owner).where(device_owners_table.c.device == name)
            ).scalar()

    def _refuse_clash(self, name: str, topics: list[str], owner: str | None) -> None:
        clash = topic_clash(name, topics, owner, self.topic_owners())
        if clash is not None:
            raise clash

    # ----- tokens ---------------------------------------------------------------------------------
    def _new_token(self, name: str, now: datetime) -> tuple[str, str, dict[str, Any]]:
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        row = {
            "id": token_id,
            "device": name,
            "hash": _hash_secret(secret),
            "created": now,
            "revoked_at": None,
        }
        return token_id, f"{token_id}.{secret}", row

    def add_token(self, name: str) -> tuple[str, str]:
        """A new token for device `name`: (token_id, token)."""
        token_id, token, row = self._new_token(name, datetime.now(UTC))
        with self._db.begin() as conn:
            if conn.execute(select(devices_table.c.name).where(devices_table.c.name == name)).first() is None:
                raise DeviceNotFoundError(f"no device named {name!r}")
            conn.execute(insert(device_tokens_table).values(**row))
        return token_id, token

    def revoke(self, name: str, token_id: str) -> None:
        """Revoke one token (already revoked: no-op). TokenNotFoundError when the device has no such token."""
        table = device_tokens_table
        with self._db.begin() as conn:
            row = conn.execute(
                select(table.c.revoked_at).where(table.c.id == token_id, table.c.device == name)
            ).first()
            if row is not None and row.revoked_at is None:
                conn.execute(update(table).where(table.c.id == token_id).values(revoked_at=datetime.now(UTC)))
        if row is None:
            self.get(name)  # DeviceNotFoundError first, when it is the device that is missing
            raise TokenNotFoundError(f"device {name!r} has no token {token_id!r}")
        if row.revoked_at is None:
            self._notify(name, token_id)

    def revoke_all(self, name: str, keep: str | None = None) -> list[str]:
        """Revoke every active token of `name` except `keep`; returns the revoked ids."""
        table = device_tokens_table
        self.get(name)
        with self._db.begin() as conn:
            ids = [
                r.id
                for r in conn.execute(
                    select(table.c.id).where(
                        table.c.device == name, table.c.revoked_at.is_(None), table.c.id != (keep or "")
                    )
                )
            ]
            if ids:
                conn.execute(update(table).where(table.c.id.in_(ids)).values(revoked_at=datetime.now(UTC)))
        for token_id in ids:
            self._notify(name, token_id)
        return ids

    # ----- device instances (onesait clientPlatformInstance) -----------------------------------------
    def record_instance(self, name: str, instance: str) -> None:
        """Note that `instance` of device `name` was seen now (at most every LAST_SEEN_RESOLUTION)."""
        instance = str(instance)[:200]
        t = device_instances_table
        now = datetime.now(UTC)
        with self._db.begin() as conn:
            row = conn.execute(
                select(t.c.last_seen).where(t.c.device == name, t.c.instance == instance)
            ).first()
            if row is None:
                conn.execute(insert(t).values(device=name, instance=instance, first_seen=now, last_seen=now))
            elif now - _aware(row.last_seen) >= LAST_SEEN_RESOLUTION:
                conn.execute(
                    update(t).where(t.c.device == name, t.c.instance == instance).values(last_seen=now)
                )

    def instances(self, name: str) -> list[dict[str, Any]]:
        """The instances seen of device `name`: [{instance, first_seen, last_seen}], most recent first."""
        self.get(name)
        t = device_instances_table
        with self._db.connect() as conn:
            rows = conn.execute(select(t).where(t.c.device == name).order_by(t.c.last_seen.desc())).all()
        return [
            {
                "instance": r.instance,
                "first_seen": _iso(_aware(r.first_seen)),
                "last_seen": _iso(_aware(r.last_seen)),
            }
            for r in rows
        ]

    # ----- authentication -------------------------------------------------------------------------
    def authenticate(self, name: str | None, token: str) -> Device:
        """The device owning `token` (and named `name`, unless None); AuthError when refused."""
        token_id, secret = split_token(token)
        t, d = device_tokens_table, devices_table
        now = datetime.now(UTC)
        with self._db.begin() as conn:
            row = conn.execute(
                select(t.c.hash, t.c.revoked_at, d).join(d, d.c.name == t.c.device).where(t.c.id == token_id)
            ).first()
            if row is None or not _verify_secret(row.hash, secret) or (name is not None and row.name != name):
                raise AuthError("invalid device name or token")
            if row.revoked_at is not None:
                raise AuthError(f"token {token_id!r} of device {row.name!r} is revoked")
            if not row.enabled:
                raise AuthError(f"device {row.name!r} is disabled")
            last_seen = _aware(row.last_seen)
            if last_seen is None or now - last_seen >= LAST_SEEN_RESOLUTION:
                conn.execute(update(d).where(d.c.name == row.name).values(last_seen=now))
                last_seen = now
            owner = conn.execute(
                select(device_owners_table.c.owner).where(device_owners_table.c.device == row.name)
            ).scalar()
        return Device(
            row.name,
            True,
            list(row.topics),
            dict(row.ontologies),
            _aware(row.created),
            last_seen,
            owner=owner,
        )

    def authenticate_token(self, token: str) -> Device:
        """The device owning `token` (for `Authorization: Bearer <token>`); AuthError when refused."""
        return self.authenticate(None, token)

    may_publish = staticmethod(may_publish)
    may_subscribe = staticmethod(may_subscribe)

    @staticmethod
    def _device(row: Any, toks: list[Any], owner: str | None = None) -> Device:
        tokens = [
            TokenInfo(t.id, _aware(t.created), t.revoked_at is None, _aware(t.revoked_at)) for t in toks
        ]
        return Device(
            row.name,
            bool(row.enabled),
            list(row.topics),
            dict(row.ontologies),
            _aware(row.created),
            _aware(row.last_seen),
            tokens,
            owner,
        )
