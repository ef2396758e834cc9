"""``canary-console api``: serve the HTTP API (the ``api`` package, FastAPI) in the foreground.

    canary-console api --listen 127.0.0.1:3000 --store URL --tokens tokens.toml [--tenant acme]
                       [--tls-cert FILE --tls-key FILE | --insecure]

The token file is TOML, one ``[[token]]`` per person and role (``TOKEN_FILE_HELP``, docs/api.md),
each bound to the tenants it may act on (``tenants``; default: the file's ``tenant``); a file
other users can read or write is refused. Tokens are never printed or logged: the start-up line
names the users, roles and tenants that hold one. A non-loopback address needs TLS (``--tls-cert``
and ``--tls-key``) or an explicit ``--insecure``, which the start-up line repeats. Ctrl-C or
SIGTERM stops the server cleanly.

FastAPI and uvicorn load only when the command runs, not when the CLI builds its parser.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import signal
import stat
import sys
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.domain.identifiers import IdentifierError, check_slug
from engine.domain.plan import ROLES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_LISTEN = "127.0.0.1:3000"  # the runbook's curl lines use port 3000
MIN_TOKEN = 16  # characters


# --- the token file ---------------------------------------------------------------------------


class TokenFileError(ValueError):
    """The token file cannot be used; the message says why and how to fix it (never a token)."""


@dataclass(frozen=True)
class TokenFile:
    # token → (user, role), bound to the default tenant, or (user, role, tenants) with "*" for all
    tokens: dict[str, tuple[Any, ...]]
    tenant: str | None
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """Who holds a token, for a log line: users, roles and tenants, never a token."""
        def one(entry: tuple[Any, ...]) -> str:
            where = f" for {','.join(entry[2])}" if len(entry) == 3 else ""
            return f"{entry[0]} ({entry[1]}{where})"
        return ", ".join(sorted({one(e) for e in self.tokens.values()}))


TOKEN_FILE_HELP = """\
tenant = "acme"            # optional: the default tenant of every request

[[token]]                  # one per person and role; chmod 600 this file
user = "somchai"
role = "canary_lead"       # canary_lead | dba | sre | developer
tenants = ["acme"]         # optional: the tenants it may act on, ["*"] for all (default: tenant above)
token = "…at least 16 random characters, e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
"""


def load_tokens(path: str | os.PathLike[str]) -> TokenFile:
    """Read a TOML token file: ``[[token]]`` entries of ``user``, ``role`` and ``token``.

    Refused: a file other users can read or write (the tokens are passwords), a duplicate token,
    a token shorter than 16 characters, an unknown role. A file its group can read is a warning.
    No message ever contains a token.
    """
    p = Path(path)
    try:
        st = p.stat()
        text = p.read_bytes()
    except FileNotFoundError:
        raise TokenFileError(f"token file {p} not found. Write one like this:\n{TOKEN_FILE_HELP}") from None
    except OSError as exc:
        raise TokenFileError(f"cannot read the token file {p}: {exc.strerror or exc}") from None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o007:
        raise TokenFileError(f"token file {p} is {'readable' if mode & 0o004 else 'usable'} by every user on this "
                             f"host (mode {mode:04o}): its tokens are passwords. Run: chmod 600 {p}")
    warnings: list[str] = []
    if mode & 0o020:
        raise TokenFileError(f"token file {p} is writable by its group (mode {mode:04o}): anyone in it could "
                             f"add a token. Run: chmod 600 {p}")
    if mode & 0o040:
        warnings.append(f"token file {p} is readable by its group (mode {mode:04o}); chmod 600 {p} keeps it yours")
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # tomllib's message names a line and column, never the text of a value.
        raise TokenFileError(f"token file {p} is not valid TOML ({exc}). Expected:\n{TOKEN_FILE_HELP}") from None
    problems: list[str] = []
    tenant = data.get("tenant")
    if tenant is not None:
        try:
            check_slug(tenant, "tenant")
        except IdentifierError as exc:
            problems.append(str(exc))
    unknown = sorted(set(data) - {"tenant", "token"})
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)}: the file has 'tenant' and [[token]] entries")
    entries = data.get("token")
    if not isinstance(entries, list) or not entries:
        problems.append("no [[token]] entries: add one per person and role")
        entries = []
    tokens: dict[str, tuple[str, str]] = {}
    where_seen: dict[str, int] = {}
    for n, entry in enumerate(entries, start=1):
        where = f"[[token]] #{n}"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a table of user, role and token")
            continue
        user, role, token = entry.get("user"), entry.get("role"), entry.get("token")
        extra = sorted(set(entry) - {"user", "role", "token", "tenants"})
        if extra:
            problems.append(f"{where}: unknown key(s) {', '.join(extra)} (user, role, token, tenants)")
        if not isinstance(user, str) or not re.fullmatch(r"[A-Za-z0-9_.@-]{1,100}", user):
            problems.append(f"{where}: 'user' must be a name of letters, digits, '.', '_', '@' or '-'")
            continue
        where = f"{where} ({user})"
        if role not in ROLES:
            problems.append(f"{where}: 'role' must be one of {', '.join(ROLES)}")
        if not isinstance(token, str) or len(token.strip()) < MIN_TOKEN or token != token.strip() \
                or any(c.isspace() for c in token):
            problems.append(f"{where}: 'token' must be at least {MIN_TOKEN} characters without spaces")
            continue
        if token in where_seen:
            problems.append(f"{where}: the same token as [[token]] #{where_seen[token]}: give each its own")
            continue
        where_seen[token] = n
        bound = entry.get("tenants")
        if bound is not None:
            if isinstance(bound, str):
                bound = [bound]
            if not isinstance(bound, list) or not bound or not all(isinstance(t, str) for t in bound):
                problems.append(f"{where}: 'tenants' must be a list of tenant names, or [\"*\"] for every tenant")
                continue
            bad = [t for t in bound if t != "*" and not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", t)]
            if bad:
                problems.append(f"{where}: 'tenants' has {bad[0][:40]!r}, not a tenant name (or \"*\")")
                continue
        if role in ROLES:
            tokens[token] = (user, role) if bound is None else (user, role, tuple(sorted(set(bound))))
    if problems:
        raise TokenFileError(f"token file {p}:\n  - " + "\n  - ".join(problems))
    return TokenFile(tokens, tenant, tuple(warnings))


# --- the command --------------------------------------------------------------------------------


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
        description="Serve the docs/api.md HTTP API over the store: kill switch, executions, rollback "
                    "approvals and the audit trail, described at /openapi.json.")
    p.add_argument("--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN,
                   help=f"address to listen on (default {DEFAULT_LISTEN}; port 0 picks a free one)")
    p.add_argument("--store", metavar="URL", help="store URL (default: the SQLite file under the state directory)")
    p.add_argument("--tokens", metavar="FILE", required=True,
                   help="TOML file of [[token]] user/role/token entries, readable by you only (chmod 600)")
    p.add_argument("--tenant", help="default tenant of every request (else the token file's 'tenant')")
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain HTTP on a non-loopback address (tokens cross the network in clear text)")
    p.set_defaults(func=cmd_api)
    return p


def cmd_api(args: argparse.Namespace) -> int:
    from api import create_app, serve_in_thread
    from engine.adapters.store import Store, StoreError, redact_url

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
    if bool(args.tls_cert) != bool(args.tls_key):
        print("error: give both --tls-cert and --tls-key (HTTPS needs the certificate and its key)", file=sys.stderr)
        return EXIT_USAGE
    for path in (args.tls_cert, args.tls_key):
        if path and not Path(path).is_file():
            print(f"error: {path} not found (--tls-cert/--tls-key)", file=sys.stderr)
            return EXIT_USAGE
    tls = bool(args.tls_cert)
    insecure = not tls and not _loopback(host)
    if insecure and not args.insecure:
        print(f"error: listening on {host} without TLS would send bearer tokens across the network in clear "
              "text: give --tls-cert FILE --tls-key FILE, listen on 127.0.0.1, or say --insecure", file=sys.stderr)
        return EXIT_USAGE
    for warning in tokens.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        store = Store(args.store)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    # The interpreter hands its lock to a waiting thread after this long: the kill switch's write
    # thread waits at most ~1 ms, not 5, each time it gives the lock up for a store call while the
    # event loop is busy with polls (bench/api_load.py, docs/api.md). This process serves the API only.
    sys.setswitchinterval(0.001)
    try:
        server = serve_in_thread(create_app(store, tenant, tokens.tokens), host, port,
                                 tls_cert=args.tls_cert, tls_key=args.tls_key)
    except (RuntimeError, ValueError, OSError) as exc:
        store.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    if insecure:
        print(f"warning: INSECURE: plain HTTP on {host}: bearer tokens cross the network in clear text "
              "(--insecure)", file=sys.stderr, flush=True)
    print(f"canary API on {server.url}{' INSECURE (no TLS)' if insecure else ''} (tenant {tenant}, "
          f"store {redact_url(store.url)}); "
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
