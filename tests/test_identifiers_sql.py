"""Identifiers are validated and backtick-quoted; the statement builders quote every identifier and
produce exactly the SQL a DBA expects to see in the processlist (docs/product.md#the-plan-input)."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.adapters import sql
from engine.domain.identifiers import (
    IdentifierError,
    check_identifier,
    check_slug,
    qualified,
    quote,
)

RUN = "0f8e2a1c-5b7d-4c3e-9a10-2b3c4d5e6f70"

GOOD = ["orders", "idx_orders_customer", "a", "_", "$x", "a$b", "Order2024", "1abc", "123a", "x" * 64,
        "ORDERS", "_123"]
HOSTILE = [
    "a`b", "`", "orders`; DROP TABLE x; --", "o'rders", 'o"rders', "orders; DROP TABLE x",
    "order s", " orders", "orders ", "orders\n", "\norders", "orders\t", "orders\x00", "",
    "x" * 65, "123", "0", "9" * 64, "a.b", "a-b", "a/*b*/", "a--", "é", "ｏrders", "a\\b", "a%s",
]
NOT_STR = [None, 1, 1.5, b"orders", ["orders"], {"orders": 1}, True]


@pytest.mark.parametrize("name", GOOD)
def test_good_identifiers_pass_and_are_quoted(name):
    assert check_identifier(name) == name
    assert quote(name) == f"`{name}`"


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_identifiers_are_refused(name):
    with pytest.raises(IdentifierError) as caught:
        check_identifier(name, "change.table")
    assert str(caught.value).startswith("change.table ")
    assert "letters, digits" in str(caught.value)  # says what is allowed
    with pytest.raises(IdentifierError):
        quote(name)


@pytest.mark.parametrize("value", NOT_STR)
def test_non_strings_are_refused(value):
    with pytest.raises(IdentifierError, match="must be a string"):
        check_identifier(value, "column")
    with pytest.raises(IdentifierError):
        quote(value)  # type: ignore[arg-type]


def test_identifier_error_is_a_value_error():
    assert issubclass(IdentifierError, ValueError)


def test_qualified():
    assert qualified("shop", "orders") == "`shop`.`orders`"
    with pytest.raises(IdentifierError, match="^schema "):
        qualified("sh`op", "orders")
    with pytest.raises(IdentifierError, match="^table "):
        qualified("shop", "orders; x")


@pytest.mark.parametrize("slug", ["acme", "acme-prod", "a.b_c-d", "0team", "a" * 63])
def test_good_slugs(slug):
    assert check_slug(slug, "tenant") == slug


@pytest.mark.parametrize("slug", ["Acme", "acme prod", "-acme", ".acme", "", "a" * 64, "acme\n", "acme;x",
                                  "a`b", None, 5])
def test_bad_slugs(slug):
    with pytest.raises(IdentifierError, match="^tenant "):
        check_slug(slug, "tenant")


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_quote_of_any_text_is_refused_or_safe(text):
    try:
        quoted = quote(text)
    except IdentifierError:
        return
    assert quoted.startswith("`") and quoted.endswith("`") and len(quoted) >= 3
    assert "`" not in quoted[1:-1]
    inner = quoted[1:-1]
    assert inner == text and re.fullmatch(r"[A-Za-z0-9_$]{1,64}", inner) and not inner.isdigit()


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab_$09`'\"; \n-"), max_size=70))
def test_quote_of_identifier_like_text_is_refused_or_safe(text):
    """Text made mostly of the characters that matter, so hostile and good names both come up often."""
    try:
        quoted = quote(text)
    except IdentifierError:
        assert any(c not in "ab_$09" for c in text) or not text or len(text) > 64 or text.isdigit()
        return
    assert quoted == f"`{text}`"
    assert not any(c in text for c in "`'\"; \n-")


# --- the statement builders -----------------------------------------------------------------


def test_add_index_is_exactly_the_statement():
    stmt = sql.add_index("shop", "orders", "idx_c", [("customer_id", None), ("note", 16)], RUN)
    assert stmt == (
        f"ALTER /* canary-console:alter run={RUN} */ TABLE `shop`.`orders` "
        "ADD INDEX `idx_c` (`customer_id`, `note`(16)), ALGORITHM=INPLACE, LOCK=NONE"
    )
    assert sql.alter_tag(RUN) == f"/* canary-console:alter run={RUN} */"
    assert sql.alter_tag(RUN) in stmt


def test_add_index_with_one_column_and_a_fresh_uuid():
    run = str(uuid.uuid4())
    assert sql.add_index("s", "t", "i", [("c", None)], run) == (
        f"ALTER /* canary-console:alter run={run} */ TABLE `s`.`t` ADD INDEX `i` (`c`), "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )


@pytest.mark.parametrize("schema, table, index, columns", [
    ("shop`", "orders", "idx_c", [("customer_id", None)]),
    ("shop", "orders; DROP TABLE x", "idx_c", [("customer_id", None)]),
    ("shop", "orders", "a`b", [("customer_id", None)]),
    ("shop", "orders", "idx_c", [("customer_id", None), ("note`) , DROP PRIMARY KEY, ADD INDEX x(`y", None)]),
    ("shop", "orders", "idx_c", [("note\n", 16)]),
    ("", "orders", "idx_c", [("customer_id", None)]),
])
def test_add_index_refuses_hostile_identifiers(schema, table, index, columns):
    with pytest.raises(IdentifierError):
        sql.add_index(schema, table, index, columns, RUN)


@pytest.mark.parametrize("prefix", [0, -1, True, "16", 1.5])
def test_add_index_refuses_bad_prefixes(prefix):
    with pytest.raises(ValueError, match="prefix"):
        sql.add_index("shop", "orders", "idx_c", [("note", prefix)], RUN)


def test_add_index_needs_a_column():
    with pytest.raises(ValueError, match="at least one column"):
        sql.add_index("shop", "orders", "idx_c", [], RUN)


@pytest.mark.parametrize("run_id", [
    "", "x", "0F8E2A1C-5B7D-4C3E-9A10-2B3C4D5E6F70", RUN + "0", f"{RUN} */ DROP TABLE x; /*",
    "*/", "0f8e 2a1c", "0f8e\n", None,
])
def test_add_index_refuses_a_bad_run_id(run_id):
    with pytest.raises(ValueError, match="not a run id"):
        sql.add_index("shop", "orders", "idx_c", [("customer_id", None)], run_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a run id"):
        sql.alter_tag(run_id)  # type: ignore[arg-type]


def test_drop_index():
    assert sql.drop_index("shop", "orders", "idx_c") == (
        "ALTER /* canary-console:rollback */ TABLE `shop`.`orders` DROP INDEX `idx_c`, "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )


@pytest.mark.parametrize("flavour, undo, word", [
    ("mariadb", False, "IGNORED"),
    ("mariadb", True, "NOT IGNORED"),
    ("mysql", False, "INVISIBLE"),
    ("mysql", True, "VISIBLE"),
])
def test_ignore_index_for_both_servers(flavour, undo, word):
    assert sql.ignore_index("shop", "orders", "idx_c", flavour, undo=undo) == (
        f"ALTER /* canary-console:rollback */ TABLE `shop`.`orders` ALTER INDEX `idx_c` {word}"
    )


def test_count_all_and_show_create_table():
    assert sql.count_all("shop", "orders") == (
        "SELECT /* canary-console:size-gate */ COUNT(*) AS n FROM `shop`.`orders`"
    )
    assert sql.show_create_table("shop", "orders") == (
        "SHOW /* canary-console:rollback-point */ CREATE TABLE `shop`.`orders`"
    )


def test_pk_range_statements():
    assert sql.pk_range("shop", "orders", "id").strip() == (
        "SELECT /* canary-console:size-gate */ MIN(`id`) AS lo, MAX(`id`) AS hi FROM `shop`.`orders`"
    )
    assert sql.count_pk_range("shop", "orders", "id") == (
        "SELECT /* canary-console:size-gate */ COUNT(*) AS n FROM `shop`.`orders` "
        "WHERE `id` >= %s AND `id` < %s"
    )


def test_show_index_query():
    assert sql.show_index_query("shop", "orders", "idx_c") == (
        "SHOW INDEX FROM `shop`.`orders` WHERE Key_name = 'idx_c'"
    )


HOSTILE_BUILDER_ARGS = ["a`b", "x; DROP TABLE y", "o'r", "", "x" * 65, "123", "a b", "t\n"]


@pytest.mark.parametrize("bad", HOSTILE_BUILDER_ARGS)
@pytest.mark.parametrize("build", [
    lambda b: sql.drop_index(b, "orders", "idx_c"),
    lambda b: sql.drop_index("shop", b, "idx_c"),
    lambda b: sql.drop_index("shop", "orders", b),
    lambda b: sql.ignore_index(b, "orders", "idx_c", "mariadb"),
    lambda b: sql.ignore_index("shop", b, "idx_c", "mysql"),
    lambda b: sql.ignore_index("shop", "orders", b, "mariadb"),
    lambda b: sql.ignore_index("shop", "orders", b, "mysql", undo=True),
    lambda b: sql.count_all(b, "orders"),
    lambda b: sql.count_all("shop", b),
    lambda b: sql.show_create_table(b, "orders"),
    lambda b: sql.show_create_table("shop", b),
    lambda b: sql.pk_range("shop", "orders", b),
    lambda b: sql.count_pk_range("shop", "orders", b),
    lambda b: sql.show_index_query("shop", "orders", b),
    lambda b: sql.add_index("shop", "orders", "idx_c", [(b, None)], RUN),
])
def test_every_builder_refuses_hostile_identifiers(build, bad):
    with pytest.raises(IdentifierError):
        build(bad)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=10), min_size=5, max_size=5),
       st.lists(st.none() | st.integers(1, 3072), min_size=1, max_size=1))
def test_add_index_is_refused_or_every_identifier_is_quoted(names, prefixes):
    schema, table, index, col, _ = names
    try:
        stmt = sql.add_index(schema, table, index, [(col, prefixes[0])], RUN)
    except IdentifierError:
        return
    assert f"`{schema}`.`{table}`" in stmt and f"ADD INDEX `{index}` (`{col}`" in stmt
    # Outside the quoted parts nothing but the template is left.
    parts = stmt.split("`")
    assert len(parts) == 9  # four quoted identifiers
    assert parts[0] == f"ALTER /* canary-console:alter run={RUN} */ TABLE "
