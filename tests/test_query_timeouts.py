"""The single query timeout (issue 16 item 9; runbook 5.2 #4 "investigate, continue if isolated";
docs/metrics.md#query-timeouts): a statement on the table that ends with a query timeout is counted
from performance_schema (the same history rows as the percentiles, by its error number) and is a
warning — never an alert, never a stop; timeouts that go on through the extended observation
escalate like any warning zone."""

from __future__ import annotations

import pymysql
import pytest

from engine.adapters.collectors import MySQLSource
from engine.domain.decision import WindowState, step
from engine.domain.thresholds import Profile, evaluate_band

pytestmark = pytest.mark.mariadb


def test_a_statement_that_timed_out_on_the_table_is_counted(lab):
    db = lab.database("qto")
    lab.load_orders(db, 30_000)
    source = MySQLSource(lab.sandbox.primary.profile(db), db, "orders", percentile_every=0, percentile_budget=0)
    with lab.admin(db) as c, c.cursor() as cur:
        cur.execute("SELECT id FROM orders WHERE id = 1")
        source.collect()  # the digests and where the history starts
        source.collect()
        cur.execute("SELECT id FROM orders WHERE id = 2")
        calm = {s.metric: s for s in source.collect()}
        assert calm["query_timeouts"].value == 0 and calm["query_timeouts"].n >= 1
        # The application's session limit, as a server or a pool sets it; a join far slower than
        # 1 ms: MariaDB's ER_STATEMENT_TIMEOUT (1969).
        cur.execute("SET SESSION max_statement_time = 0.001")
        with pytest.raises(pymysql.err.OperationalError) as caught:
            cur.execute("SELECT COUNT(*) FROM orders a JOIN orders b ON b.total > a.total WHERE a.id < 500")
        assert caught.value.args[0] == 1969, caught.value
        cur.execute("SET SESSION max_statement_time = 0")
        seen = {s.metric: s for s in source.collect()}
    source.close()
    assert seen["query_timeouts"].value == 1, seen["query_timeouts"]
    assert "1969" in seen["query_timeouts"].how


def test_one_timeout_is_a_warning_to_investigate_and_never_an_alert():
    profile = Profile()
    rule = profile.rule("query_timeouts")
    assert evaluate_band(rule, 0).level == "ok"
    assert evaluate_band(rule, 1).level == "warning" and evaluate_band(rule, 1000).level == "warning"
    assert rule.describe_threshold("critical") == "none (a warning only)"
    state = step(profile, WindowState(), 60.0, {"query_timeouts": evaluate_band(rule, 1)})
    assert [e.kind for e in state.events] == ["warning"] and state.stop_reason is None
    # Isolated: the next interval has none; the warning zone closes.
    state = step(profile, state, 90.0, {"query_timeouts": evaluate_band(rule, 0)})
    assert "query_timeouts" not in state.episodes and not state.alerts
    # Not isolated: still timing out when the 2× extended observation ends → escalated (FAIL).
    state = step(profile, WindowState(), 0.0, {"query_timeouts": evaluate_band(rule, 2)})
    end = profile.warning_observation_minutes * 60 * profile.extension_factor
    state = step(profile, state, end, {"query_timeouts": evaluate_band(rule, 3)})
    assert [e.kind for e in state.events] == ["warning", "escalated"] and not state.alerts
