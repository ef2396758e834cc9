"""The door: a pure ASGI middleware that identifies the token before any body is read, and reads a
body only up to its limit.

- No token, or an unknown one, on anything but the public paths: 401, audited (api/auth.py).
- ``Content-Length`` over ``MAX_BODY``: 413 before a byte of the body is read; a body without one
  (chunked) is counted as it arrives from ``receive`` and refused with 413 as soon as it passes the
  limit — never read whole.
- A JSON body is checked before the routes see it: nesting deeper than ``MAX_DEPTH`` is 400 (a
  linear scan, before the parser could recurse), a key given twice in one object is 400 naming
  it, text that is not JSON is 400 saying where.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from api.problems import problem
from api.switch_reads import READ_PATH, fast_read

MAX_BODY = 64 * 1024
MAX_DEPTH = 32
PUBLIC = frozenset({"/health", "/openapi.json"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BadJson(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def nesting_depth(raw: bytes, limit: int) -> int:
    """The deepest nesting of ``[``/``{`` outside strings, stopping once it passes ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadJson(f'the key "{key[:60]}" is given twice in one object: give each field once', key[:60])
        out[key] = value
    return out


def check_json(raw: bytes) -> Any:
    """The parsed body, or ``BadJson`` saying what is wrong with it.

    Lenient where leniency costs nothing and a kill switch must not fail (docs/api.md): bytes that
    are not UTF-8 become U+FFFD and raw control characters inside strings are taken — every text
    that is kept is cleaned later anyway. Strict where it matters: depth, duplicate keys, syntax.
    """
    if nesting_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise BadJson(f"the body nests deeper than {MAX_DEPTH} levels")
    text = raw.decode("utf-8", "replace").removeprefix("\ufeff")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, strict=False)
    except BadJson:
        raise
    except json.JSONDecodeError as exc:
        raise BadJson(f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise BadJson(f"the body is not JSON: {exc.__class__.__name__}") from None


class TooLarge(Exception):
    pass


class Guard:
    def __init__(self, app: Any, max_body: int = MAX_BODY):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        principal = None
        if path not in PUBLIC:
            auth = scope["app"].state.authenticator if "app" in scope else self._authenticator(scope)
            principal = auth.identify(headers.get("authorization", ""))
            if principal is None:
                client = str((scope.get("client") or ("unknown", 0))[0])
                skipped = auth.admit(client)  # in the loop: a flood over the limit costs no thread
                if skipped is not None:
                    await anyio.to_thread.run_sync(auth.write_failure, client, method, path,
                                                   "authorization" in headers, skipped)
                await problem(401, "missing or unknown bearer token: send 'Authorization: Bearer <token>'",
                              path, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        if method in ("GET", "HEAD", "OPTIONS") and "content-length" not in headers \
                and "transfer-encoding" not in headers:
            if principal is not None and method == "GET" and path == READ_PATH \
                    and await fast_read(scope, receive, send, principal):
                return  # the executors' poll in its ordinary form (api/switch_reads.py)
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared and (not declared.isdigit() or int(declared) > self.max_body):
            await self._too_large(scope, receive, send)
            return
        try:
            body, more = await self._read(receive)
        except TooLarge:
            await self._too_large(scope, receive, send)
            return
        if body.strip():
            try:
                parsed = check_json(body)
            except BadJson as exc:
                await problem(400, str(exc), path, field=exc.field)(scope, receive, send)
                return
            # The routes read it again: give them the same value as strict, ASCII-escaped JSON.
            body = json.dumps(parsed, ensure_ascii=True).encode("ascii")
        await self.app(scope, self._replay(body, more, receive), send)

    def _authenticator(self, scope: Scope) -> Any:
        return self.app.state.authenticator  # pragma: no cover - Starlette always sets scope["app"]

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True

    def _replay(self, body: bytes, connected: bool, receive: Receive) -> Receive:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            if not connected:
                return {"type": "http.disconnect"}
            return await receive()
        return replay

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, f"the body is larger than {self.max_body} bytes: send at most that",
                           scope.get("path", ""), headers={"Connection": "close"})
        await response(scope, receive, send)
