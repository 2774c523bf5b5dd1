"""`sofiaflow history move|query`: run the move to history once, or read the history, from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from sofiaflow.runtime.settings import Settings


def add_commands(
    sub: Any, data_dir: dict[str, Any], settings_of: Callable[[argparse.Namespace], Settings]
) -> None:
    """Add the `history` command group to the `sofiaflow` parser's subcommands."""
    history = sub.add_parser(
        "history", help="move expired ontology data to history, or query it"
    ).add_subparsers(dest="history_command", required=True)
    move = history.add_parser(
        "move", help="move the instances older than their ontology's real-time window now"
    )
    move.add_argument("--data-dir", **data_dir)
    move.add_argument("--ontology", action="append", metavar="NAME", help="only this ontology (repeatable)")
    move.add_argument("--batch-size", type=int, default=5000, help="instances per batch (default 5000)")
    move.set_defaults(func=lambda args: cmd_move(args, settings_of(args)))
    query = history.add_parser(
        "query", help="print the historical instances matching a filter, one JSON per line"
    )
    query.add_argument("ontology")
    query.add_argument("--filter", default="{}", help="MongoDB filter as JSON (default: {})")
    query.add_argument("--limit", type=int, default=0, help="at most this many (default: all)")
    query.add_argument("--data-dir", **data_dir)
    query.set_defaults(func=lambda args: cmd_query(args, settings_of(args)))


def cmd_move(args: argparse.Namespace, settings: Settings) -> int:
    from sofiaflow.runtime.data.config_db import connect
    from sofiaflow.runtime.data.history.mover import HistoryMover
    from sofiaflow.runtime.data.history.parquet_store import HistoryStore
    from sofiaflow.runtime.data.ontologies import OntologyRegistry
    from sofiaflow.runtime.data.rtdb import open_store

    if args.batch_size < 1:
        print(f"sofiaflow: --batch-size must be at least 1, got {args.batch_size}", file=sys.stderr)
        return 2
    db = connect(settings.database_url)
    store = open_store(settings.realtime_database_url)
    try:
        registry = OntologyRegistry(db)
        unknown = [name for name in args.ontology or () if not registry.exists(name)]
        if unknown:
            print(f"sofiaflow: no ontology named {', '.join(map(repr, unknown))}", file=sys.stderr)
            return 1
        mover = HistoryMover(registry, store, HistoryStore(settings.history_path), batch_size=args.batch_size)
        report = mover.run(args.ontology)
    finally:
        store.close()
        db.dispose()
    print(json.dumps(report.as_dict()))
    if report.busy:
        print("sofiaflow: another move is running on this history folder", file=sys.stderr)
        return 1
    return 1 if report.errors else 0


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    from sofiaflow.runtime.data.history.parquet_store import HistoryStore
    from sofiaflow.runtime.data.rtdb import RtdbError

    try:
        flt = json.loads(args.filter)
    except ValueError as exc:
        print(f"sofiaflow: --filter is not JSON: {exc}", file=sys.stderr)
        return 2
    try:
        docs = HistoryStore(settings.history_path).find(args.ontology, flt, limit=max(args.limit, 0))
    except (RtdbError, ValueError) as exc:
        print(f"sofiaflow: {exc}", file=sys.stderr)
        return 2
    for doc in docs:
        print(json.dumps(doc))
    return 0
