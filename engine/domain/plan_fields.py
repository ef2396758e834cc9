"""How one value of a plan is checked (docs/product.md#the-plan-input): a table, a slug, an
identifier, an environment variable's name, a URL, the store's URL, a file path, a MySQL option
file, a bounded number — and no secret anywhere in the file. Each check appends one clear message
per problem (which key, what is wrong, what is allowed) and returns a usable value or None; the
sections (engine/domain/plan_sections.py) and ``plan_from_dict`` (engine/domain/plan.py) use them.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from engine.domain.identifiers import IdentifierError, check_identifier, check_slug
from engine.domain.plan_model import _has_control

_SECRET_KEYS = {"password", "passwd", "pass", "secret", "token"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def _reject_secrets(node: Any, path: str, problems: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key).lower() in _SECRET_KEYS:
                problems.append(
                    f"'{where}': a password or secret never goes in the plan file; name an environment "
                    "variable with password_env, or use option_file (e.g. ~/.my.cnf)"
                )
            else:
                _reject_secrets(value, where, problems)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _reject_secrets(item, f"{path}[{i}]", problems)


def _without_secrets(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_secrets(v) for k, v in node.items() if str(k).lower() not in _SECRET_KEYS}
    if isinstance(node, list):
        return [_without_secrets(item) for item in node]
    return node


def _table(value: Any, where: str, problems: list[str]) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    problems.append(f"'{where}' must be a table ([{where}]), got {type(value).__name__}")
    return {}


def _checked(value: Any, where: str, problems: list[str], check: Callable[[Any, str], str],
             required: bool = True) -> str | None:
    """``value`` through an identifier check (engine/domain/identifiers.py); a missing or refused
    value is one problem (a missing optional one none) and None."""
    if value is None:
        if required:
            problems.append(f"'{where}' is missing")
        return None
    try:
        return check(value, f"'{where}'")
    except IdentifierError as exc:
        problems.append(str(exc))
        return None


def _slug(data: dict[str, Any], key: str, where: str, problems: list[str], required: bool) -> str | None:
    return _checked(data.get(key), where, problems, check_slug, required)


def _ident(value: Any, where: str, problems: list[str]) -> str | None:
    return _checked(value, where, problems, check_identifier)


def _env_name(tbl: dict[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = tbl.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        problems.append(f"'{where}.{key}' must name an environment variable: A-Z, a-z, digits and '_', "
                        "not starting with a digit, at most 128 characters (e.g. CANARY_DB_PASSWORD)")
        return None
    return value


def _url(tbl: dict[str, Any], key: str, problems: list[str]) -> str | None:
    value = tbl.get(key)
    if value is None:
        return None
    where = f"'integrations.{key}'"
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        problems.append(f"{where} must be an http:// or https:// URL")
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number from 0 to 65535
        password = parts.password
    except ValueError:
        problems.append(f"{where} must be an http:// or https:// URL with a host and, if any, a port number, "
                        "e.g. http://prometheus:9090")
        return None
    if _has_control(value) or " " in value or not parts.hostname:
        problems.append(f"{where} must be an http:// or https:// URL with a host and no spaces or control "
                        "characters, e.g. http://prometheus:9090")
        return None
    if password is not None:
        problems.append(f"{where} has a password in it: a password never goes in the plan file; use a URL "
                        "that needs none (e.g. through a local proxy)")
        return None
    return value.rstrip("/")


def _store_url(value: Any, problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or _has_control(value):
        problems.append("store_url must be a string such as 'sqlite:////path/store.db' or 'postgresql://…'")
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None  # not a URL we can read: the store says what is wrong with it when it opens
    if password is not None:
        problems.append("store_url has a password in it: a password never goes in the plan file; use ~/.pgpass "
                        "or PGPASSWORD for PostgreSQL, or '?read_default_file=~/.my.cnf' for MySQL")
        return None
    return value


def _path(tbl: dict[str, Any], key: str, where: str, problems: list[str], example: str,
          limit: int = 255) -> str | None:
    """A file path from the plan: a string with no control characters (NUL included)."""
    value = tbl.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or _has_control(value) or len(value) > limit:
        problems.append(f"'{where}.{key}' must be a file path of at most {limit} characters, without "
                        f"control characters, e.g. {example}")
        return None
    return value


def _option_file_problem(path: str, group: str) -> str | None:
    """What pymysql would trip over in the option file, said without quoting the file (it holds
    the password): not an option file, or without the group the plan names."""
    parser = configparser.RawConfigParser(allow_no_value=True)
    parser.optionxform = lambda key: key.lower().replace("_", "-")  # type: ignore[method-assign] # as pymysql reads it
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except OSError:
        # Not readable by this user: a console that joins a run never connects, so that is no
        # problem here; the one that connects is told at its connect (engine.adapters.target).
        return None
    except UnicodeDecodeError:
        return "is not UTF-8 text: write it as a MySQL option file ([client] then key = value lines)"
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None) or next(iter(getattr(exc, "errors", [])), (None,))[0]
        at = f" (line {line})" if line else ""
        return (f"is not a MySQL option file{at}: it needs a [client] group header and then key = value lines, "
                "each key once")
    if not parser.has_section(group):
        return f"has no [{group}] group: add one with the password, or name the group with option_group"
    return None


def _int(tbl: dict[str, Any], key: str, where: str, default: int, lo: int, hi: int, problems: list[str]) -> int:
    value = tbl.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.append(f"'{where}.{key}' must be a whole number from {lo} to {hi}, got {value!r}")
        return default
    return value


def _num(tbl: dict[str, Any], key: str, where: str, default: float, lo: float, hi: float, problems: list[str]) -> float:
    value = tbl.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        problems.append(f"'{where}.{key}' must be a number from {lo:g} to {hi:g}, got {value!r}")
        return default
    return float(value)
