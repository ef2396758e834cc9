"""The Prometheus source against a real Prometheus scraping a real node exporter and a real
application (tests/promstack.py). A Prometheus that cannot start fails the test with the reason."""

from __future__ import annotations

import time

import pytest
from promstack import PromStack

from engine.adapters.collector_loop import CollectorLoop
from engine.adapters.prometheus import PrometheusSource


@pytest.fixture(scope="module")
def prom():
    try:
        stack = PromStack().start()
    except RuntimeError as exc:
        pytest.fail(f"cannot start the test Prometheus: {exc}")
    stack.wait_for('sum(rate(http_requests_total[5m]))')
    stack.wait_for('100 - (avg(irate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)')
    yield stack
    stack.stop()


def by_metric(samples):
    return {s.metric: s for s in samples}


def test_host_and_application_metrics(prom):
    source = PrometheusSource(prom.url)
    got = by_metric(source.collect())
    for metric in ("cpu", "memory", "disk_read", "disk_write", "throughput", "request_latency_p50",
                   "request_latency_p99", "error_rate"):
        assert got[metric].value is not None, (metric, got[metric].error)
    assert 0 <= got["cpu"].value <= 100 and 0 < got["memory"].value < 100
    # rate() over [5m] divides by five minutes even when the series is seconds old: ask for [15s]
    # here to see the app's real rate (~100 requests/s) in a test that has just started it.
    quick = by_metric(PrometheusSource(prom.url, {"throughput": "sum(rate(http_requests_total[15s]))"}).collect())
    assert quick["throughput"].value > 5
    assert 10 <= got["request_latency_p50"].value <= 50 and got["request_latency_p99"].value >= got["request_latency_p50"].value
    assert got["error_rate"].value == 0
    # Nothing here exports blackbox probes or a mysql latency histogram: stale, named, never zero.
    for metric in ("network_latency", "query_latency_p50_prom"):
        assert got[metric].value is None and "no data for" in got[metric].error
    assert source.round_trips == len(source.queries)
    source.close()


def test_an_error_burst_and_a_latency_regression_show_up(prom):
    source = PrometheusSource(prom.url, {"error_rate": '100 * sum(rate(http_requests_total{status=~"5.."}[15s])) '
                                                       '/ sum(rate(http_requests_total[15s]))',
                                         "request_latency_p50": "1000 * histogram_quantile(0.5, "
                                         "sum(rate(http_request_duration_seconds_bucket[15s])) by (le))"})
    prom.app.error_share, prom.app.latency_s = 0.05, 0.2
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = by_metric(source.collect())
            if (got["error_rate"].value or 0) >= 1.0 and (got["request_latency_p50"].value or 0) >= 100:
                break
            time.sleep(1)
        assert got["error_rate"].value >= 1.0, got["error_rate"]
        assert got["request_latency_p50"].value >= 100, got["request_latency_p50"]
    finally:
        prom.app.error_share, prom.app.latency_s = 0.0, 0.02
        source.close()


def test_prometheus_down_is_stale_with_the_error_and_retried(prom):
    source = PrometheusSource("http://127.0.0.1:9")  # nothing listens there
    loop = CollectorLoop([source], max_backoff=1.0)
    got = by_metric(loop.tick())
    assert got["cpu"].value is None and "Prometheus unreachable" in got["cpu"].error
    assert by_metric(loop.tick())["cpu"].error.startswith("retrying")
    bad = PrometheusSource(prom.url, {"cpu": "rate(("})
    with pytest.raises(Exception, match="refused the query"):
        bad.collect()
    source.close()
    bad.close()


def test_the_plan_wires_prometheus_and_its_queries(prom, tmp_path):
    from engine.adapters.killswitch import EmbeddedKillSwitch
    from engine.adapters.store import Store
    from engine.domain.plan import plan_from_dict
    from engine.flows.monitor import sources_for

    plan = plan_from_dict({
        "tenant": "acme", "connection": {"database": "shop"},
        "change": {"table": "orders", "index": "idx_x", "columns": ["a"]},
        "integrations": {"prometheus_url": prom.url},
        "prometheus_queries": {"cpu": '100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[15s])))'},
    })
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    sources = sources_for(plan, EmbeddedKillSwitch(store))
    [promsource] = [s for s in sources if s.name == "prometheus"]
    assert "[15s]" in promsource.queries["cpu"] and "memory" in promsource.queries
    loop = CollectorLoop([promsource], store=store, tenant_id="acme", run_id="r1")
    loop.tick()
    rows = {r.metric: r for r in store.samples("acme", "r1")}
    assert rows["cpu"].source == "prometheus" and rows["cpu"].value is not None
    assert "[15s]" in rows["cpu"].meta["how"]
    promsource.close()


def test_a_range_query_reads_the_real_prometheus_history(prom):
    source = PrometheusSource(prom.url)
    now = time.time()
    promql = "1000 * histogram_quantile(0.5, sum(rate(http_request_duration_seconds_bucket[15s])) by (le))"
    deadline = time.monotonic() + 30
    points: list[tuple[float, float]] = []
    while time.monotonic() < deadline and len(points) < 3:
        points = source.query_range(promql, now - 120, time.time(), 5)
        time.sleep(1)
    assert len(points) >= 3 and all(v > 0 for _, v in points)
    assert [t for t, _ in points] == sorted(t for t, _ in points)
    with pytest.raises(Exception, match="refused the range query"):
        source.query_range("rate((", now - 60, now, 5)
    source.close()
