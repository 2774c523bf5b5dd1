"""The `sofiaflow` command: run the server, and validate, import or export flow files."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sofiaflow.runtime.errors import FlowFormatError, FlowValidationError, Problem
from sofiaflow.runtime.settings import Settings


def _version() -> str:
    try:
        return version("sofiaflow")
    except PackageNotFoundError:
        return "0.0.0"


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "data_dir", None):
        settings.data_dir = Path(args.data_dir).expanduser()
    if getattr(args, "host", None):
        settings.host = args.host
    if getattr(args, "port", None) is not None:
        settings.port = args.port
    if getattr(args, "mqtt_port", None) is not None:
        settings.mqtt_port = args.mqtt_port
    return settings


def _read_flows(path: str) -> list:
    """The flow list in `path`; FileNotFoundError when missing, FlowFormatError when not a flow set."""
    from sofiaflow.runtime.flows.model import parse_json

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(path)
    return parse_json(file.read_bytes(), path)


async def _offline_deploy(
    flows: list, settings: Settings | None, user: str | None = None
) -> tuple[str, list[Problem]]:
    """Run the deployer's checks (and, with settings, store the flows) without starting any node.

    A Deployer whose state is "stop" validates and plans a deploy, saves the revision and the
    credentials, but builds and starts nothing, so importing has no side effects.
    """
    from cryptography.fernet import Fernet

    from sofiaflow.runtime.core.context import ContextManager, MemoryStore
    from sofiaflow.runtime.core.engine import Engine
    from sofiaflow.runtime.data.config_db import connect
    from sofiaflow.runtime.flows.deploy import Deployer
    from sofiaflow.runtime.flows.registry import default_registry
    from sofiaflow.runtime.flows.store import FlowStore
    from sofiaflow.runtime.runtime import Runtime
    from sofiaflow.runtime.security.credentials import CredentialStore

    db = store = None
    if settings is not None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = connect(settings.database_url)
        store = FlowStore(db)
        key = Runtime(settings).credential_key()  # the same key the server will use
    else:
        key = Fernet.generate_key()
    try:
        credentials = CredentialStore(db, key)
        credentials.load()
        engine = Engine(ContextManager({"memory": MemoryStore()}))
        deployer = Deployer(engine, default_registry(), credentials, store)
        deployer.offline = True  # the flows run elsewhere: a ${VAR} not set here is set at deploy
        if store is not None and (current := store.current()) is not None:
            deployer.flows, deployer.rev = current
        result = await deployer.deploy(flows, "full", user=user, save=settings is not None)
        return result.rev, result.problems
    finally:
        if db is not None:
            db.dispose()


def _load_or_report(path: str) -> tuple[list | None, int]:
    try:
        return _read_flows(path), 0
    except FileNotFoundError:
        print(f"error: {path}: no such file", file=sys.stderr)
        return None, 2
    except (FlowFormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 1


def _check(flows: list, settings: Settings | None, user: str | None = None) -> tuple[str | None, int]:
    """Deploy offline; print not-runnable nodes and warnings, or every error. (rev, exit code)."""
    try:
        rev, notes = asyncio.run(_offline_deploy(flows, settings, user))
    except FlowValidationError as exc:
        for problem in exc.problems:
            print(f"error: {problem}")
        notes = _notes(flows)
        _print_notes(notes)
        cannot = sum(1 for note in notes if note.severity == "not-runnable")
        also = f"; {cannot} node(s) cannot run here" if cannot else ""
        print(f"{len(exc.problems)} problem(s): the flows cannot be deployed{also}", file=sys.stderr)
        return None, 1
    except FlowFormatError as exc:
        print(f"error: {exc}")
        return None, 1
    _print_notes(notes)
    return rev, 0


def _notes(flows: list) -> list[Problem]:
    """The nodes of `flows` that cannot run here (uninstalled types) and the warnings, whatever else is wrong:
    a refused deploy reports only its errors."""
    from sofiaflow.runtime.flows import model
    from sofiaflow.runtime.flows.registry import default_registry

    registry = default_registry()
    try:
        problems = model.validate(model.load(flows, registry), registry)
    except FlowFormatError:
        return []
    return [p for p in problems if p.severity != "error"]


def _print_notes(notes: list[Problem]) -> None:
    for note in notes:
        label = "cannot run here" if note.severity == "not-runnable" else note.severity
        print(f"{label}: {note}")


def cmd_validate(args: argparse.Namespace) -> int:
    flows, code = _load_or_report(args.file)
    if flows is None:
        return code
    _rev, code = _check(flows, None)
    if code == 0:
        print(f"ok: {args.file} can be deployed ({len(flows)} objects)")
    return code


def cmd_import(args: argparse.Namespace) -> int:
    flows, code = _load_or_report(args.file)
    if flows is None:
        return code
    settings = _settings(args)
    if getattr(args, "report", False):
        from sofiaflow.runtime.flows.import_report import format_report, import_report
        from sofiaflow.runtime.flows.registry import default_registry

        print(format_report(import_report(flows, default_registry())))
    from sofiaflow.runtime.security.ownership import CLI_USER

    rev, code = _check(flows, settings, user=CLI_USER)
    if code == 0:
        print(f"imported {args.file} into {settings.data_dir}: rev {rev}")
    return code


def cmd_export(args: argparse.Namespace) -> int:
    from sofiaflow.runtime.data.config_db import connect
    from sofiaflow.runtime.flows.store import FlowStore

    settings = _settings(args)
    if not Path(
        settings.database_url.removeprefix("sqlite:///")
    ).exists() and settings.database_url.startswith("sqlite"):
        print(f"error: no sofiaflow data in {settings.data_dir}", file=sys.stderr)
        return 2
    db = connect(settings.database_url)
    try:
        current = FlowStore(db).current()
    finally:
        db.dispose()
    text = json.dumps(current[0] if current else [], indent=4, ensure_ascii=False) + "\n"
    if args.file in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text, encoding="utf-8")
        print(f"exported {len(current[0]) if current else 0} objects to {args.file}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sofiaflow.runtime.lazy_imports import install as load_late

    load_late()  # before the server's imports: what only first use needs stays out of its memory until then
    from sofiaflow.runtime.errors import ServiceUnavailable
    from sofiaflow.runtime.security.file_modes import private_dir, private_files
    from sofiaflow.runtime.server import StartupError, serve

    private_files()  # everything the server creates is for this user only
    settings = _settings(args)
    private_dir(settings.data_dir)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    for chatty in ("transitions", "amqtt"):  # the embedded broker's state machine logs every step
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        asyncio.run(serve(settings, args.flows))
    except (StartupError, ServiceUnavailable) as exc:  # a bad flow file, a port in use...
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sofiaflow", description="Node-RED-compatible low-code flow runtime"
    )
    parser.add_argument("--version", action="version", version=f"sofiaflow {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    data_dir: dict[str, Any] = {
        "metavar": "DIR",
        "help": "data directory (default: $SOFIAFLOW_DATA_DIR or ~/.sofiaflow)",
    }

    run = sub.add_parser("run", help="run the flows and the admin API")
    run.add_argument("--flows", metavar="FILE", help="deploy this flow file at start")
    run.add_argument("--data-dir", **data_dir)
    run.add_argument("--port", type=int, help="port (default: $SOFIAFLOW_PORT or 1880)")
    run.add_argument("--host", help="address to bind (default: $SOFIAFLOW_HOST or 127.0.0.1)")
    run.add_argument(
        "--mqtt-port",
        type=int,
        help="port of the embedded MQTT broker, 0 for none (default: $SOFIAFLOW_MQTT_PORT or 1883)",
    )
    run.set_defaults(func=cmd_run)

    flows = sub.add_parser("flows", help="validate, import or export flow files").add_subparsers(
        dest="flows_command", required=True
    )
    validate = flows.add_parser(
        "validate",
        help="check that a flow file can be deployed",
        description="Check that a flow file can be deployed, as a deploy checks it. A property that is a whole "
        "${VAR} is filled first, from the flows' env and this command's environment: a value that does not fit "
        "the property is an error; a variable not set here is a warning (set at deploy), for the environment "
        "the flows are deployed in. 'flows import' does the same.",
    )
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)
    imp = flows.add_parser("import", help="store a flow file as the current flows")
    imp.add_argument("file")
    imp.add_argument("--data-dir", **data_dir)
    imp.add_argument(
        "--report",
        action="store_true",
        help="first list each node as runs, runs with a caveat, or cannot run (and why)",
    )
    imp.set_defaults(func=cmd_import)
    exp = flows.add_parser("export", help="write the current flows as JSON")
    exp.add_argument("file", nargs="?", help="output file (default: stdout)")
    exp.add_argument("--data-dir", **data_dir)
    exp.set_defaults(func=cmd_export)
    from sofiaflow.runtime.data.history.cli import add_commands as add_history_commands

    add_history_commands(sub, data_dir, _settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("flows", "history"):
        logging.basicConfig(level=logging.ERROR, format="sofiaflow: %(levelname)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
