"""``canary-console api``: serve the engine's HTTP API (engine.api) in the foreground.

    canary-console api --listen 127.0.0.1:3000 --store URL --tokens tokens.toml [--tenant acme]

The token file is TOML, one ``[[token]]`` per person and role (see ``engine.api.TOKEN_FILE_HELP``);
a file other users can read is refused. Tokens are never printed or logged: the start-up line names
the users and roles that hold one. Ctrl-C or SIGTERM stops the server cleanly.

Starlette and uvicorn load only when the command runs, not when the CLI builds its parser.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_LISTEN = "127.0.0.1:3000"  # the runbook's curl lines use port 3000


class ListenError(ValueError):
    pass


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port); port 0 lets the OS pick one."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ListenError(f"--listen {value!r}: give HOST:PORT, e.g. {DEFAULT_LISTEN} or [::1]:3000")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_api_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``api`` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "api", help="serve the HTTP API (kill switch, executions, rollback, audit) with token auth",
        description="Serve the seed-000 HTTP API over the store: kill switch, executions, rollback "
                    "approvals and the audit trail, described at /openapi.json.")
    p.add_argument("--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN,
                   help=f"address to listen on (default {DEFAULT_LISTEN}; port 0 picks a free one)")
    p.add_argument("--store", metavar="URL", help="store URL (default: the SQLite file under the state directory)")
    p.add_argument("--tokens", metavar="FILE", required=True,
                   help="TOML file of [[token]] user/role/token entries, readable by you only (chmod 600)")
    p.add_argument("--tenant", help="default tenant of every request (else the token file's 'tenant')")
    p.set_defaults(func=cmd_api)
    return p


def cmd_api(args: argparse.Namespace) -> int:
    from engine.api import TokenFileError, create_app, load_tokens, serve_in_thread
    from engine.identifiers import IdentifierError, check_slug
    from engine.store import Store, StoreError, redact_url

    try:
        host, port = parse_listen(args.listen)
        tokens = load_tokens(args.tokens)
        tenant = check_slug(args.tenant or tokens.tenant or "", "tenant")
    except (ListenError, TokenFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except IdentifierError:
        print("error: which tenant? give --tenant NAME or 'tenant = \"NAME\"' in the token file", file=sys.stderr)
        return EXIT_USAGE
    for warning in tokens.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not _loopback(host):
        print(f"warning: listening on {host}: bearer tokens cross the network in clear text; put the API "
              "behind TLS (a reverse proxy) or listen on 127.0.0.1", file=sys.stderr)
    try:
        store = Store(args.store)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        server = serve_in_thread(create_app(store, tenant, tokens.tokens), host, port)
    except RuntimeError as exc:
        store.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    print(f"canary API on {server.url} (tenant {tenant}, store {redact_url(store.url)}); "
          f"tokens for {tokens.describe()}; described at {server.url}/openapi.json. Ctrl-C stops it.",
          flush=True)
    try:
        while not stop.is_set() and server.thread.is_alive():
            stop.wait(0.5)
    except KeyboardInterrupt:
        stop.set()
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        store.close()
    if not stop.is_set():
        print("error: the API server stopped on its own", file=sys.stderr)
        return EXIT_FAILED
    print("canary API stopped", flush=True)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m console.api_cmd …``: the command on its own (as the CLI runs it)."""
    parser = argparse.ArgumentParser(prog="canary-console")
    sub = parser.add_subparsers(dest="command", required=True)
    add_api_parser(sub)
    args = parser.parse_args(["api", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
