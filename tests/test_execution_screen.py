"""The Execution screen follows the run it is given: a new run (after a failed or rolled-back one)
starts from nothing — the last run's steps, ALTER progress and log do not stay on screen."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.app import App
from textual.widgets import DataTable, Log, Static

from engine.adapters.store import AuditLog, ExecutionRun
from engine.domain.plan import plan_from_dict
from engine.flows.runbook import RunView
from screens.execution import AlterProgress, ExecutionScreen

PLAN = plan_from_dict({
    "tenant": "acme",
    "connection": {"id": "c1", "host": "127.0.0.1", "port": 9, "user": "u", "database": "shop"},
    "change": {"table": "orders", "index": "idx_a", "columns": ["customer_id"]},
})
AT = datetime(2026, 1, 1, 3, tzinfo=UTC)


def run(run_id: str, status: str, **fields: object) -> ExecutionRun:
    return ExecutionRun(id=run_id, tenant_id="acme", connection_profile_id="c1", schema_name="shop",
                        table_name="orders", index_name="idx_a", status=status, **fields)


def entry(run_id: str, action: str) -> AuditLog:
    return AuditLog(tenant_id="acme", execution_run_id=run_id, actor="lead", action=action, created_at=AT,
                    prev_hash="0" * 64)


class Host(App):
    def on_mount(self) -> None:
        self.push_screen(ExecutionScreen(PLAN))


async def test_a_new_run_starts_from_nothing_on_the_execution_screen():
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ExecutionScreen)
        old = run("run-a", "failed", alter_started_at=AT, alter_finished_at=AT, index_created_by_run=True)
        screen.show_view(RunView(run=old), AT)
        screen.show_entries([entry("run-a", a) for a in ("claimed", "target_checked", "baseline_sampling",
                                                          "baseline_captured", "alter_started", "index_added")])
        screen.show_progress(AlterProgress("alter table (merge sort)", 1.0, 42.0))
        await pilot.pause()
        marks = [str(screen.query_one("#steps", DataTable).get_row_at(i)[1]) for i in range(6)]
        assert marks[1:5] == ["✓", "✓", "✓", "✓"], marks

        screen.show_view(RunView(run=run("run-b", "scheduled")), AT)
        screen.show_entries([])
        await pilot.pause()
        marks = [str(screen.query_one("#steps", DataTable).get_row_at(i)[1]) for i in range(6)]
        assert marks[1:] == ["○", "○", "…", "○", "○"], marks
        assert str(screen.query_one("#alter", Static).render()) == "not started"
        assert screen.query_one("#log", Log).line_count == 0
