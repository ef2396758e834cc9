"""Text from people and from the store, made safe to keep and to show.

``clean_text`` makes any input storable and printable: it never raises, whatever it is given
(lone surrogates, control characters, terminal escapes, bidi overrides, huge text, non-strings),
and says what it changed so the change can be noted. ``for_terminal`` is the last step before a
terminal: whatever the store holds, no escape sequence written by one user reaches another's
screen.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

REASON_LIMIT = 2000  # characters kept of a free-text reason


@dataclass(frozen=True)
class Cleaned:
    text: str
    changes: tuple[str, ...] = ()  # e.g. ("2 control characters removed", "cut to 2000 characters")

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _is_control(c: str) -> bool:
    # Cc (C0/C1 controls, ESC), Cf (format: bidi overrides, zero-width), Cs (surrogates),
    # Co (private use), Cn (unassigned).
    return unicodedata.category(c)[0] == "C"


def clean_text(value: object, limit: int = REASON_LIMIT) -> Cleaned:
    """``value`` as one line of plain, valid UTF-8 text of at most ``limit`` characters.

    Never raises. Line breaks and tabs become spaces; other control and format characters and
    lone surrogates are dropped; the result is stripped and cut to ``limit`` characters.
    """
    changes: list[str] = []
    if value is None:
        return Cleaned("")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
        changes.append("bytes decoded as UTF-8")
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:  # noqa: BLE001 - whatever it is, a kill must not fail on it
            value = f"<{type(value).__name__}>"
        changes.append("not text: converted")
    try:
        text = str(value)
    except Exception:  # noqa: BLE001
        text = ""
    surrogates = sum(1 for c in text if 0xD800 <= ord(c) <= 0xDFFF)
    spaced = 0
    dropped = 0
    out: list[str] = []
    for c in text:
        if c in "\r\n\t\v\f\x85\u2028\u2029":
            out.append(" ")
            spaced += 1
        elif _is_control(c):
            dropped += 1
        else:
            out.append(c)
    result = "".join(out).strip()
    if surrogates:
        changes.append(f"{surrogates} invalid character{'s' * (surrogates != 1)} (lone surrogates) removed")
    if dropped - surrogates:
        n = dropped - surrogates
        changes.append(f"{n} control or format character{'s' * (n != 1)} removed")
    if spaced:
        changes.append("line breaks and tabs made spaces")
    if len(result) > limit:
        changes.append(f"cut from {len(result)} to {limit} characters")
        result = result[:limit].rstrip() + "…"
    return Cleaned(result, tuple(changes))


def for_terminal(value: object) -> str:
    """``value`` safe to put on a terminal: control and format characters shown as visible
    escapes (``\\x1b``), never interpreted. For text that came from the store or another user."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if not any(_is_control(c) for c in text):
        return text
    return "".join(c if not _is_control(c) else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)
