"""``canary-console audit verify``: the audit trail's hash chain."""

from __future__ import annotations

import argparse
import json
import os

from console.commands import EXIT_FAILED, EXIT_OK, CliError, _plan, _store_url
from engine.domain.text import for_terminal


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the audit trail's hash chain: 0 intact, 1 tampered, 2 when it cannot be checked."""
    import re

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from engine.adapters.store import Store, StoreError, default_store_url, redact_url
    from engine.domain.audit_chain import render

    expect = (args.expect_head or "").strip().lower() or None
    if expect is not None and not re.fullmatch(r"[0-9a-f]{64}", expect):
        raise CliError(f"--expect-head takes the 64-hex-digit head hash a verify printed, not {args.expect_head!r}")
    url = _store_url(args, _plan(args.plan)) or default_store_url()
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - the store's own message below says what a URL looks like
        parsed = None
    sqlite_file = parsed.database if parsed is not None and parsed.get_backend_name() == "sqlite" else None
    if sqlite_file and sqlite_file != ":memory:" and not os.path.exists(sqlite_file):  # opening would create it
        raise CliError(f"no store at {redact_url(url)}: nothing to verify. Give --store URL (or --plan PLAN.toml).")
    _looks_like_a_store(url, sqlite_file)  # opening anything else would write a store into it
    try:
        store = Store(url)
        try:
            verdict = store.verify_audit_chain(expect)
        finally:
            store.close()
    except StoreError as exc:
        raise CliError(f"cannot verify the audit trail: {exc}") from None
    except SQLAlchemyError as exc:
        raise CliError(f"cannot read the audit trail at {redact_url(url)}: {exc.__class__.__name__}: "
                       f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}") from None
    if args.json:
        print(json.dumps({"store": redact_url(url), "intact": verdict.intact, "rows": verdict.rows,
                          "first_seq": verdict.first_seq, "last_seq": verdict.last_seq,
                          "head": verdict.head_hash, "expect_head_seq": verdict.expect_head_seq,
                          "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message}
                                       for p in verdict.problems]}, indent=2))
    else:
        print("\n".join(render(verdict, redact_url(url))))
    return EXIT_OK if verdict.intact else EXIT_FAILED


def _looks_like_a_store(url: str, sqlite_file: str | None) -> None:
    """A CliError unless ``url`` holds a canary store's audit trail — looked at read-only: an
    empty or foreign file (or database) is said to be one and left exactly as it was."""
    import sqlite3
    from pathlib import Path

    from engine.adapters.store import redact_url

    where = for_terminal(redact_url(url))
    if sqlite_file and sqlite_file != ":memory:":
        path = Path(sqlite_file)
        if path.is_dir():
            raise CliError(f"{where} is a directory, not a canary store: nothing verified.")
        if path.stat().st_size == 0:
            raise CliError(f"{where} is an empty file, not a canary store: nothing verified (and nothing written). "
                           "Give the store's URL: --store URL or --plan PLAN.toml.")
        try:
            con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                found = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_logs'").fetchone()
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise CliError(f"{where} is not a canary store ({for_terminal(exc)}): nothing verified, nothing written.") from None
        if not found:
            raise CliError(f"{where} is a SQLite database without an audit trail (no audit_logs table): not a canary "
                           "store; nothing verified, nothing written.")
        return
    if sqlite_file == ":memory:":
        return
    try:
        from sqlalchemy import inspect

        from engine.adapters.store.store import make_engine

        engine = make_engine(url)
        try:
            found = inspect(engine).has_table("audit_logs")
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - the store's own open below says what is wrong
        return
    if not found:
        raise CliError(f"{where} has no audit trail (no audit_logs table): not a canary store; nothing verified, "
                       "nothing written.")
