"""Ontologies (onesait's data models), kept in the config DB.

An ontology is a name, a description, a JSON Schema, an owner and settings: how many days instances stay in
the real-time DB (`realtime_window_days`, None = never expire), whether expired data goes to historical
storage (`history`), which dotted field paths are indexed (`indexes`) and which are unique (`unique`).

The schema is validated against the meta-schema of the draft its `$schema` names (draft-04 for onesait's
ontologies, whose top level has one property named after the model with `"$ref": "#/datos"`), 2020-12 when
none is named. `$ref`s are resolved inside the document only; nothing is fetched. `format: date-time` is
checked (RFC 3339, with an offset or `Z`), so onesait's `{"$date": "..."}` values validate where the schema
describes them. A compiled validator is cached per ontology; `invalidate()` drops it (the registry does so
itself on update/delete; another worker's change needs a call from whoever hears of it).

Data lives elsewhere (the real-time DB), so the registry takes optional callables from it:
`sample_existing(name, limit) -> list[dict]` (stored instances, checked against a new schema before an update
is accepted), `count_existing(name) -> int` (a delete is refused while data exists, unless purging) and
`purge_existing(name) -> int` (removes the data on a purging delete). A stored document may carry
`contextData` (and `_id`) beside the body; they are left out before validation unless the schema's top level
declares them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from referencing.exceptions import Unresolvable
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from sofiaflow.runtime.data.config_db import metadata
from sofiaflow.runtime.data.schema import (
    OntologyError,
    OntologyExistsError,
    OntologyIncompatibleError,
    OntologyInUseError,
    OntologyNotFoundError,
    OntologyValidationError,
    body_of,
    compile_schema,
    draft_name,
    schema_validator_class,
    validation_errors,
)

log = logging.getLogger("sofiaflow.ontologies")

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
PATH_SEGMENT_RE = re.compile(r"[A-Za-z0-9_$@-]{1,100}")
MAX_DESCRIPTION = 2000
MAX_FIELDS = 64  # per indexes / unique
MAX_WINDOW_DAYS = 365  # onesait: one day to one year, or never
SOURCES = ("mqtt", "http", "flow")
COMPAT_SAMPLE = 1000  # stored instances checked before a schema update
COMPAT_REPORT = 5  # failures listed in the refusal
SETTINGS = ("realtime_window_days", "history", "indexes", "unique")
FIELDS = ("name", "description", "schema", "owner", *SETTINGS)

ontologies_table = Table(
    "ontologies",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False),
    Column("schema", JSON, nullable=False),
    Column("owner", String(200)),
    Column("realtime_window_days", Integer),
    Column("history", Boolean, nullable=False),
    Column("indexes", JSON, nullable=False),
    Column("unique_fields", JSON, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
)


# ----- the model ----------------------------------------------------------------------------------


@dataclass
class Ontology:
    name: str
    description: str
    schema: dict[str, Any]
    owner: str | None = None
    realtime_window_days: int | None = None  # None: never expire
    history: bool = False
    indexes: list[str] = field(default_factory=list)  # dotted paths, e.g. "ParkingSpot.spotId"
    unique: list[str] = field(default_factory=list)
    created: datetime | None = None
    updated: datetime | None = None

    @property
    def draft(self) -> str:
        """The JSON Schema draft its validator follows, e.g. "draft4", "draft2020-12"."""
        return draft_name(schema_validator_class(self.schema))

    @property
    def root(self) -> str | None:
        """The onesait root property (the single required top-level property that `$ref`s `#/datos`), if any."""
        props = self.schema.get("properties")
        if not isinstance(props, dict):
            return None
        roots = [k for k, v in props.items() if isinstance(v, dict) and v.get("$ref") == "#/datos"]
        return roots[0] if len(roots) == 1 else None

    def definition(self) -> dict[str, Any]:
        """What an `ontologies/*.json` file holds: everything but the timestamps."""
        return {
            "name": self.name,
            "description": self.description,
            "schema": self.schema,
            "owner": self.owner,
            "realtime_window_days": self.realtime_window_days,
            "history": self.history,
            "indexes": list(self.indexes),
            "unique": list(self.unique),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.definition(),
            "draft": self.draft,
            "root": self.root,
            "created": _iso(self.created),
            "updated": _iso(self.updated),
        }


# ----- schema handling ----------------------------------------------------------------------------

# ----- validation of the other properties ---------------------------------------------------------


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise OntologyValidationError(
            "name", f"{name!r} is not an ontology name: use 1-64 of A-Z a-z 0-9 _, not starting with a digit"
        )
    return name


def check_description(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise OntologyValidationError("description", f"must be a string, got {type(description).__name__}")
    if len(description) > MAX_DESCRIPTION:
        raise OntologyValidationError(
            "description", f"at most {MAX_DESCRIPTION} characters, got {len(description)}"
        )
    return description


def check_owner(owner: object) -> str | None:
    if owner is not None and (not isinstance(owner, str) or not owner or len(owner) > 200):
        raise OntologyValidationError(
            "owner", f"must be a user name (1-200 characters) or null, got {owner!r}"
        )
    return owner


def check_window(days: object) -> int | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_WINDOW_DAYS:
        raise OntologyValidationError(
            "realtime_window_days",
            f"must be a whole number of days from 1 to {MAX_WINDOW_DAYS}, or null for never, got {days!r}",
        )
    return days


def check_history(history: object) -> bool:
    if not isinstance(history, bool):
        raise OntologyValidationError("history", f"must be true or false, got {history!r}")
    return history


def check_paths(field_name: str, paths: object) -> list[str]:
    if not isinstance(paths, list):
        raise OntologyValidationError(
            field_name, f"must be a list of dotted field paths, got {type(paths).__name__}"
        )
    if len(paths) > MAX_FIELDS:
        raise OntologyValidationError(field_name, f"at most {MAX_FIELDS} paths, got {len(paths)}")
    out: list[str] = []
    for index, path in enumerate(paths):
        if not isinstance(path, str) or not all(PATH_SEGMENT_RE.fullmatch(s) for s in path.split(".")):
            raise OntologyValidationError(
                f"{field_name}[{index}]", f"{path!r} is not a dotted field path (e.g. 'ParkingSpot.spotId')"
            )
        if path not in out:
            out.append(path)
    return out


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "description": check_description,
    "owner": check_owner,
    "realtime_window_days": check_window,
    "history": check_history,
    "indexes": lambda v: check_paths("indexes", v),
    "unique": lambda v: check_paths("unique", v),
}


def _check_settings(values: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise OntologyValidationError(
            unknown[0], f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}"
        )
    return {key: _CHECKS[key](value) for key, value in values.items() if key in _CHECKS}


# ----- contextData --------------------------------------------------------------------------------


def context_data(
    user: str | None = None,
    device: str | None = None,
    source: str = "flow",
    timezone: str = "UTC",
    now: datetime | None = None,
    *,
    device_template: str | None = None,
    client_connection: str | None = None,
    client_session: str | None = None,
) -> dict[str, Any]:
    """onesait's `contextData` for an instance stored now (or at `now`; a naive `now` is taken as UTC):
    who, which device, from where (`source`: mqtt, http or flow), the client's time zone, and the UTC time
    as ISO 8601 (milliseconds) and epoch milliseconds."""
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not one of {', '.join(SOURCES)}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"timezone {timezone!r} is not an IANA time zone (e.g. 'Europe/Madrid')") from None
    when = datetime.now(UTC) if now is None else (now.replace(tzinfo=UTC) if now.tzinfo is None else now)
    when = when.astimezone(UTC)
    millis = int(when.timestamp() * 1000)
    return {
        "user": user,
        "deviceTemplate": device_template,
        "device": device,
        "clientConnection": client_connection,
        "clientSession": client_session,
        "source": source,
        "timezoneId": timezone,
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "timestampMillis": millis,
    }


# ----- the registry -------------------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


@dataclass
class LoadReport:
    """What `load_directory` did, by ontology name; `errors` holds {"file", "message"}."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": self.errors,
        }


class OntologyRegistry:
    """Ontologies in the config DB (see the module docstring)."""

    def __init__(
        self,
        db_engine: Engine,
        *,
        sample_existing: Callable[[str, int], list[dict[str, Any]]] | None = None,
        count_existing: Callable[[str], int] | None = None,
        purge_existing: Callable[[str], int] | None = None,
    ) -> None:
        self._db = db_engine
        metadata.create_all(db_engine, tables=[ontologies_table])
        self.sample_existing = sample_existing
        self.count_existing = count_existing
        self.purge_existing = purge_existing
        self._validators: dict[str, Any] = {}
        self._listeners: list[Callable[[str, Ontology | None], None]] = []

    # ----- listeners ------------------------------------------------------------------------------
    def on_change(self, callback: Callable[[str, Ontology | None], None]) -> Callable[[], None]:
        """Call `callback(name, ontology)` after a create or update, `callback(name, None)` after a delete;
        returns an unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self, name: str, ontology: Ontology | None) -> None:
        for callback in list(self._listeners):
            try:
                callback(name, ontology)
            except Exception:  # a listener's failure must not undo the change
                log.exception("on_change listener failed for ontology %r", name)

    # ----- CRUD -----------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        schema: dict[str, Any] | str,
        description: str = "",
        owner: str | None = None,
        **settings: Any,
    ) -> Ontology:
        """Create an ontology; `settings`: realtime_window_days, history, indexes, unique."""
        name = check_name(name)
        checked = _check_settings({"description": description, "owner": owner, **settings})
        validator = compile_schema(schema)
        now = datetime.now(UTC)
        ontology = Ontology(
            name=name,
            description=checked["description"],
            schema=validator.schema,
            owner=checked["owner"],
            realtime_window_days=checked.get("realtime_window_days"),
            history=checked.get("history", False),
            indexes=checked.get("indexes", []),
            unique=checked.get("unique", []),
            created=now,
            updated=now,
        )
        try:
            with self._db.begin() as conn:
                conn.execute(insert(ontologies_table).values(**self._row(ontology)))
        except IntegrityError:
            raise OntologyExistsError(f"an ontology named {name!r} exists already") from None
        self._validators[name] = validator
        self._notify(name, ontology)
        return ontology

    def get(self, name: str) -> Ontology:
        with self._db.connect() as conn:
            row = conn.execute(select(ontologies_table).where(ontologies_table.c.name == name)).first()
        if row is None:
            raise OntologyNotFoundError(f"no ontology named {name!r}")
        return self._ontology(row)

    def exists(self, name: str) -> bool:
        with self._db.connect() as conn:
            return (
                conn.execute(select(ontologies_table.c.name).where(ontologies_table.c.name == name)).first()
                is not None
            )

    def list(self) -> list[Ontology]:
        with self._db.connect() as conn:
            rows = conn.execute(select(ontologies_table).order_by(ontologies_table.c.name)).all()
        return [self._ontology(row) for row in rows]

    def update(self, name: str, /, **changes: Any) -> Ontology:
        """Change any of description, schema, owner, realtime_window_days, history, indexes, unique (absent ones
        keep their value). A new schema must accept the stored instances `sample_existing` hands back, else
        OntologyIncompatibleError listing the first failures."""
        if "name" in changes:
            if changes.pop("name") != name:
                raise OntologyValidationError("name", "an ontology cannot be renamed; create a new one")
        checked = _check_settings({k: v for k, v in changes.items() if k != "schema"})
        current = self.get(name)
        validator = None
        if "schema" in changes:
            validator = compile_schema(changes["schema"])
            if validator.schema != current.schema:
                self._check_compatible(name, validator)
            checked["schema"] = validator.schema
        if "unique" in checked:
            checked["unique_fields"] = checked.pop("unique")
        if not checked:
            return current
        checked["updated"] = datetime.now(UTC)
        with self._db.begin() as conn:
            done = conn.execute(
                sql_update(ontologies_table).where(ontologies_table.c.name == name).values(**checked)
            )
        if done.rowcount == 0:
            raise OntologyNotFoundError(f"no ontology named {name!r}")
        if validator is not None:
            self._validators[name] = validator
        ontology = self.get(name)
        self._notify(name, ontology)
        return ontology

    def delete(self, name: str, purge: bool = False) -> int:
        """Delete an ontology. While `count_existing` reports data, refused (OntologyInUseError) unless `purge`,
        which removes the data through `purge_existing` first; returns how many instances were purged."""
        self.get(name)
        count = self.count_existing(name) if self.count_existing is not None else 0
        purged = 0
        if count:
            if not purge:
                raise OntologyInUseError(
                    f"ontology {name!r} still holds {count} instance(s); delete with "
                    "purge=true to remove them with it",
                    count,
                )
            if self.purge_existing is None:
                raise OntologyInUseError(
                    f"ontology {name!r} holds {count} instance(s) and no data store is "
                    "attached to purge them",
                    count,
                )
            purged = self.purge_existing(name)
        with self._db.begin() as conn:
            done = conn.execute(delete(ontologies_table).where(ontologies_table.c.name == name))
        if done.rowcount == 0:
            raise OntologyNotFoundError(f"no ontology named {name!r}")
        self.invalidate(name)
        self._notify(name, None)
        return purged

    # ----- validation -----------------------------------------------------------------------------
    def validator(self, name: str) -> Any:
        """The compiled (cached) validator of ontology `name`."""
        validator = self._validators.get(name)
        if validator is None:
            validator = self._validators[name] = compile_schema(self.get(name).schema)
        return validator

    def invalidate(self, name: str | None = None) -> None:
        """Forget the cached validator of `name` (every one when None)."""
        if name is None:
            self._validators.clear()
        else:
            self._validators.pop(name, None)

    def validate(self, name: str, instance: Any) -> list[dict[str, Any]]:
        """The errors of `instance` against ontology `name` (see `validation_errors`); [] when valid."""
        return validation_errors(self.validator(name), instance)

    def is_valid(self, name: str, instance: Any) -> bool:
        try:
            return self.validator(name).is_valid(instance)
        except Unresolvable:  # a $ref relative to a nested $id that leads nowhere
            return False

    def _check_compatible(self, name: str, validator: Any) -> None:
        if self.sample_existing is None:
            return
        failures: list[dict[str, Any]] = []
        checked = 0
        for index, stored in enumerate(self.sample_existing(name, COMPAT_SAMPLE)):
            checked += 1
            errors = validation_errors(validator, body_of(stored, validator.schema))
            if errors and len(failures) < COMPAT_REPORT:
                failures.append({"index": index, "errors": errors[:COMPAT_REPORT]})
            elif errors:
                failures.append({"index": index})
        if failures:
            first = failures[0]["errors"][0]
            raise OntologyIncompatibleError(
                f"the new schema of {name!r} rejects {len(failures)} of {checked} stored instance(s) checked; "
                f"first: instance {failures[0]['index']} at {first['path'] or '/'}: {first['message']}",
                [f for f in failures if "errors" in f],
            )

    # ----- files ----------------------------------------------------------------------------------
    def load_directory(self, path: str | Path, owner: str | None = None) -> LoadReport:
        """Create or update (when changed) an ontology from each `*.json` in `path` ({"name", "description",
        "schema", ...settings}); a bad file is reported in `errors` (and logged) without stopping the others.
        `owner` applies to files that name none."""
        report = LoadReport()
        seen: dict[str, str] = {}
        directory = Path(path)
        if not directory.is_dir():
            report.errors.append({"file": str(directory), "message": "not a directory"})
            return report
        for file in sorted(directory.glob("*.json")):
            try:
                name, outcome = self._load_file(file, seen, owner)
            except (OntologyError, OSError, ValueError) as exc:
                log.error("ontology file %s not loaded: %s", file, exc)
                report.errors.append({"file": file.name, "message": str(exc)})
                continue
            seen[name] = file.name
            getattr(report, outcome).append(name)
        return report

    def _load_file(self, file: Path, seen: dict[str, str], owner: str | None) -> tuple[str, str]:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise OntologyValidationError("file", f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise OntologyValidationError("file", f"must hold a JSON object, got {type(data).__name__}")
        for key in ("name", "schema"):
            if key not in data:
                raise OntologyValidationError(key, "required")
        name = check_name(data["name"])
        if name in seen:
            raise OntologyValidationError("name", f"{name!r} is defined in {seen[name]} already")
        definition = {k: v for k, v in data.items() if k != "name"}
        definition.setdefault("owner", owner)
        if not self.exists(name):
            self.create(name, **definition)
            return name, "created"
        current = self.get(name).definition()
        changed = {k: v for k, v in definition.items() if current.get(k) != v}
        if not changed:
            return name, "unchanged"
        self.update(name, **changed)
        return name, "updated"

    # ----- rows -----------------------------------------------------------------------------------
    @staticmethod
    def _row(o: Ontology) -> dict[str, Any]:
        return {
            "name": o.name,
            "description": o.description,
            "schema": o.schema,
            "owner": o.owner,
            "realtime_window_days": o.realtime_window_days,
            "history": o.history,
            "indexes": o.indexes,
            "unique_fields": o.unique,
            "created": o.created,
            "updated": o.updated,
        }

    @staticmethod
    def _ontology(row: Any) -> Ontology:
        return Ontology(
            name=row.name,
            description=row.description,
            schema=row.schema,
            owner=row.owner,
            realtime_window_days=row.realtime_window_days,
            history=bool(row.history),
            indexes=list(row.indexes),
            unique=list(row.unique_fields),
            created=_aware(row.created),
            updated=_aware(row.updated),
        )
