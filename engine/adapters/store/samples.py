"""The metric samples in the store (docs/metrics.md): one tick's samples, or a range query's
points, each in one transaction; read back oldest first for a run (and since a time, a
dashboard's next poll). Not audited: samples are measurements, not state changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import SQLModel, select

from engine.adapters.store.backend import StoreBase
from engine.adapters.store.models import MetricSample


class Samples(StoreBase):
    """Writing and reading metric samples (mixed into ``Store``)."""

    def add_samples(self, tenant_id: str, run_id: str, at: datetime, samples: Sequence[Any]) -> None:
        """One tick's samples, in one transaction."""
        rows = [
            MetricSample(tenant_id=tenant_id, execution_run_id=run_id, sampled_at=at, source=x.source,
                         metric=x.metric, value=x.value, stale=x.value is None, error=x.error,
                         meta={"n": x.n, "how": x.how, **(x.meta or {})} if (x.n is not None or x.how or x.meta) else None)
            for x in samples
        ]
        with self.session() as s:
            s.add_all(rows)
            s.commit()

    def add_points(self, tenant_id: str, run_id: str, source: str,
                   points: Sequence[tuple[datetime, str, float]], meta: dict[str, Any] | None = None) -> None:
        """Points taken at their own times (a range query's answer), in one transaction."""
        rows = [MetricSample(tenant_id=tenant_id, execution_run_id=run_id, sampled_at=at, source=source,
                             metric=metric, value=value, meta=meta) for at, metric, value in points]
        with self.session() as s:
            s.add_all(rows)
            s.commit()

    def samples(self, tenant_id: str, run_id: str, metric: str | None = None,
                since: datetime | None = None) -> list[MetricSample]:
        """Oldest first. ``since``: only samples taken after it (a dashboard's next poll; the
        (tenant, run, sampled_at) index serves it)."""
        with self.session() as s:
            q = select(MetricSample).where(MetricSample.tenant_id == tenant_id,
                                           MetricSample.execution_run_id == run_id)
            if metric is not None:
                q = q.where(MetricSample.metric == metric)
            if since is not None:
                q = q.where(MetricSample.sampled_at > since)  # type: ignore[operator]
            return list(s.exec(q.order_by(MetricSample.sampled_at, MetricSample.id)).all())

    def count_rows(self, model: type[SQLModel], tenant_id: str) -> int:
        with self.session() as s:
            return s.exec(select(func.count()).select_from(model).where(model.tenant_id == tenant_id)).one()  # type: ignore[attr-defined]
