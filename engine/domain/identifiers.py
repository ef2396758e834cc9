"""SQL identifiers: validated against a conservative grammar, then quoted.

Nothing from a plan or a key press reaches SQL unquoted (docs/product.md#the-plan-input). Validation here is the first
gate; the target's catalogue checks (the table and columns exist) are the second.
"""

from __future__ import annotations

import re

# Letters, digits, ``_`` and ``$``; not all digits; at most 64 characters (MySQL's limit).
_IDENTIFIER = re.compile(r"^(?![0-9]+$)[A-Za-z0-9_$]{1,64}$")
# Tenant and connection ids in the store and on the API: a slug.
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")

RULE = "letters, digits, '_' or '$', 1-64 characters, not only digits"
SLUG_RULE = "lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, at most 63"


class IdentifierError(ValueError):
    """An identifier that we refuse to put into SQL."""


def check_identifier(value: object, what: str = "identifier") -> str:
    if not isinstance(value, str):
        raise IdentifierError(f"{what} must be a string, got {type(value).__name__}")
    if not _IDENTIFIER.fullmatch(value):
        raise IdentifierError(f"{what} {value!r} is not allowed: use {RULE}")
    return value


def quote(value: str, what: str = "identifier") -> str:
    """Backtick-quote a validated identifier (doubling backticks, though validation forbids them)."""
    check_identifier(value, what)
    return "`" + value.replace("`", "``") + "`"


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema, 'schema')}.{quote(table, 'table')}"


def check_slug(value: object, what: str) -> str:
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise IdentifierError(f"{what} {value!r} is not allowed: use {SLUG_RULE}")
    return value
