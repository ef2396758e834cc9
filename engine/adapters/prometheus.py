"""Prometheus over httpx (docs/metrics.md; runbook appendix B): host and application metrics.

One instant query per metric, each with the PromQL of the runbook's appendix B or the plan's own.
A query that fails makes the source raise (the collector loop marks it stale and retries); a query
that returns no series gives a stale sample naming the query, never a zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx

from engine.adapters.collectors import Sample

DEFAULT_QUERIES: dict[str, str] = {
    # Runbook appendix B
    "cpu": '100 - (avg(irate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)',
    "error_rate": '100 * sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))',
    "query_latency_p50_prom": "1000 * histogram_quantile(0.5, sum(rate(mysql_query_duration_seconds_bucket[5m])) by (le))",
    "query_latency_p99_prom": "1000 * histogram_quantile(0.99, sum(rate(mysql_query_duration_seconds_bucket[5m])) by (le))",
    # and the rest of docs/metrics.md
    "memory": "100 * (1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes))",
    "disk_read": "sum(rate(node_disk_read_bytes_total[1m])) / 1048576",
    "disk_write": "sum(rate(node_disk_written_bytes_total[1m])) / 1048576",
    "network_latency": "1000 * avg(probe_duration_seconds)",
    "request_latency_p50": "1000 * histogram_quantile(0.5, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))",
    "request_latency_p99": "1000 * histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))",
    "throughput": "sum(rate(http_requests_total[5m]))",
}


class PrometheusError(RuntimeError):
    pass


class PrometheusSource:
    name = "prometheus"

    def __init__(self, base_url: str, queries: Mapping[str, str] | None = None, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None, history_days: int = 0):
        self.history_days = history_days  # the same hours of this many previous days (engine/flows/history.py)
        self.queries = dict(DEFAULT_QUERIES)
        self.queries.update(queries or {})
        self.metrics = tuple(self.queries)
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        self.round_trips = 0

    def _get(self, path: str, params: dict[str, str], what: str) -> dict[str, Any]:
        """One API call: its ``data``, or PrometheusError saying why (unreachable, not JSON, refused)."""
        self.round_trips += 1
        try:
            resp = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus unreachable: {exc.__class__.__name__}: {exc}") from None
        try:
            body = resp.json()
        except ValueError:
            raise PrometheusError(f"Prometheus answered HTTP {resp.status_code} without JSON") from None
        if resp.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"Prometheus refused the {what} ({resp.status_code}): {body.get('error', '?')}")
        return body.get("data") or {}

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self._get("/api/v1/query", {"query": promql}, "query")
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data.get("result") or [])

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[tuple[float, float]]:
        """``/api/v1/query_range`` from ``start`` to ``end`` (Unix seconds) every ``step_s``: the
        (time, value) points, the mean over the series where several answer; non-numbers dropped."""
        data = self._get("/api/v1/query_range", {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step_s:g}s"}, "range query")
        sums: dict[float, list[float]] = {}
        for series in data.get("result") or []:
            for point in series.get("values") or []:
                try:
                    at, value = float(point[0]), float(point[1])
                except (IndexError, TypeError, ValueError):
                    continue
                if math.isfinite(at) and math.isfinite(value):
                    sums.setdefault(at, []).append(value)
        return [(at, sum(vs) / len(vs)) for at, vs in sorted(sums.items())]

    def collect(self) -> list[Sample]:
        out = []
        for metric, promql in self.queries.items():
            result = self.query(promql)
            values = []
            for series in result:
                try:
                    values.append(float(series["value"][1]))
                except (KeyError, IndexError, TypeError, ValueError):
                    continue
            values = [v for v in values if math.isfinite(v)]
            if not values:
                out.append(Sample(metric, None, self.name, f"no data for {promql}", n=0, how=promql))
            else:
                out.append(Sample(metric, values[0] if len(values) == 1 else sum(values) / len(values), self.name,
                                  n=len(values), how=promql))
        return out

    def close(self) -> None:
        self.client.close()
