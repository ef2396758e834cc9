"""Pure engine rules: identifiers and the SQL built from them, the run state machine, and seed
001's verification rules at their boundaries (inclusive)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import sql
from engine.identifiers import IdentifierError, check_identifier, quote
from engine.runstate import TRANSITIONS, TransitionError, check_transition
from engine.verification import DigestStats, verify, window

RUN = "0f8e6a52-1f0e-4c39-9a55-6d2f3c1b7e10"


@pytest.mark.parametrize("name", ["orders", "idx_orders_customer_created", "Orders2", "a$b", "_x", "1abc", "x" * 64])
def test_good_identifiers(name):
    assert check_identifier(name) == name and quote(name) == f"`{name}`"


@pytest.mark.parametrize("name", ["", "a`b", "a'b", 'a"b', "a b", "a;b", "orders; DROP TABLE x", "x" * 65,
                                  "123", "a.b", "a-b", "é", None, 5])
def test_hostile_identifiers(name):
    with pytest.raises(IdentifierError):
        check_identifier(name)


@given(st.text(max_size=80))
def test_quote_is_safe_for_any_text(text):
    try:
        quoted = quote(text)
    except IdentifierError:
        return
    assert quoted.startswith("`") and quoted.endswith("`") and "`" not in quoted[1:-1]


def test_statements_quote_every_identifier():
    assert sql.add_index("shop", "orders", "idx_c", [("customer_id", None), ("note", 16)], RUN) == (
        f"ALTER /* canary-console:alter run={RUN} */ TABLE `shop`.`orders` ADD INDEX `idx_c` "
        "(`customer_id`, `note`(16)), ALGORITHM=INPLACE, LOCK=NONE")
    assert sql.drop_index("shop", "orders", "idx_c") == (
        "ALTER /* canary-console:rollback */ TABLE `shop`.`orders` DROP INDEX `idx_c`, ALGORITHM=INPLACE, LOCK=NONE")
    assert sql.ignore_index("shop", "orders", "idx_c", "mariadb").endswith("ALTER INDEX `idx_c` IGNORED")
    assert sql.ignore_index("shop", "orders", "idx_c", "mariadb", undo=True).endswith("`idx_c` NOT IGNORED")
    assert sql.ignore_index("shop", "orders", "idx_c", "mysql").endswith("ALTER INDEX `idx_c` INVISIBLE")
    assert sql.count_all("shop", "orders").endswith("FROM `shop`.`orders`")
    with pytest.raises(IdentifierError):
        sql.add_index("shop", "orders", "i", [("a) , DROP INDEX x, ADD INDEX y (b", None)], RUN)
    with pytest.raises(ValueError):
        sql.add_index("shop", "orders", "i", [("a", None)], "*/ DROP TABLE x; /*")
    with pytest.raises(ValueError):
        sql.add_index("shop", "orders", "i", [("a", 0)], RUN)


def test_every_transition_of_the_state_machine():
    statuses = list(TRANSITIONS)
    for old in statuses:
        for new in statuses:
            reason = "execution_error" if new == "failed" else None
            if new in TRANSITIONS[old]:
                check_transition(old, new, reason)
            else:
                with pytest.raises(TransitionError, match=f"cannot become {new}"):
                    check_transition(old, new, reason)
    with pytest.raises(TransitionError, match="needs a fail_reason"):
        check_transition("running", "failed")
    with pytest.raises(TransitionError, match="unknown fail_reason"):
        check_transition("running", "failed", "bad_luck")
    assert TRANSITIONS["rolled_back"] == frozenset()


def d(count, mean_ms, rows_per, no_index=0, digest="a"):
    return DigestStats(digest, "SELECT …", count, int(count * mean_ms * 1e9), int(count * rows_per), no_index)


BASE = [d(100, 2.0, 50)]


@pytest.mark.parametrize("after, status, rule", [
    ([d(100, 2.2, 50)], "failed", "latency_degraded"),  # exactly +10 %: inclusive
    ([d(100, 2.1998, 50)], "success", "all_within_limits"),  # +9.99 %
    ([d(100, 2.0, 60)], "failed", "rows_examined_rose"),  # exactly +20 %
    ([d(100, 2.0, 59.9)], "success", "all_within_limits"),
    ([d(100, 1.0, 1, no_index=1)], "failed", "no_index_used_rose"),
    ([d(9, 1.0, 1)], "inconclusive", "min_samples"),
    ([d(10, 1.0, 1)], "success", "all_within_limits"),
    ([], "inconclusive", "min_samples"),
])
def test_verification_boundaries(after, status, rule):
    result = verify(BASE, after)
    assert (result.status, result.rule) == (status, rule), result.message


def test_verification_needs_a_baseline():
    assert verify([d(5, 1, 1)], [d(50, 1, 1)]).rule == "min_baseline_samples"


def test_windows_are_deltas_and_survive_a_counter_reset():
    before = [d(100, 2, 10, digest="a"), d(50, 1, 1, digest="b")]
    after = [d(130, 2, 10, digest="a"), d(20, 1, 1, digest="b"), d(5, 1, 1, digest="c")]
    w = {x.digest: x.count for x in window(before, after)}
    assert w == {"a": 30, "b": 20, "c": 5}
