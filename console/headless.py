"""What the headless drill prints: one readable line per step and event for people, or JSON Lines
for machines (``--json``; the record shape is in the README, "Headless output").

Also the decision a rehearsal takes before it starts: the console needs a terminal to read keys
from (stdin) and to draw on (Textual draws on stderr), so ``scripts/rehearse | tee log`` keeps the
console; without one it walks the runbook headless and says why on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from engine.drill.rehearsal import StepProgress

BAR_CELLS = 20


def console_possible(stdin: Any = None, stderr: Any = None) -> str | None:
    """None when the console can run here; else why not, in words (for the stderr note)."""
    stdin = sys.stdin if stdin is None else stdin
    stderr = sys.stderr if stderr is None else stderr
    missing = [name for name, stream in (("stdin", stdin), ("stderr", stderr)) if not _isatty(stream)]
    if not missing:
        return None
    return (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not a terminal (the console reads "
            "keys from stdin and draws on stderr)")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a file
        return False


def bar(fraction: float, cells: int = BAR_CELLS) -> str:
    """``[########------------]  40%`` — plain characters: the line may go to a log file."""
    fraction = max(0.0, min(1.0, fraction))
    full = int(round(fraction * cells))
    return f"[{'#' * full}{'-' * (cells - full)}] {fraction * 100:3.0f}%"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _minutes(seconds: Any) -> str:
    return f"{round(float(seconds) / 60, 1):g} min"


def _yes(value: Any) -> str:
    return "yes" if value else "no"


# One readable line per executor event (engine/flows/executor.py ``_event``); an event not listed here
# still gets a line of its own, its fields as ``key value`` pairs.
EVENT_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "lease_wait": lambda d: f"waiting for {d.get('holder')}'s lease to run out ({_num(d.get('left_s'))} s left)",
    "claimed": lambda d: f"run claimed by this drill (lease {_num(d.get('lease_s'))} s)",
    "running": lambda d: "run started: the baseline comes first",
    "baseline": lambda d: f"baseline: {_minutes(d.get('seconds', 0))} of samples before the ALTER",
    "baseline_extended": lambda d: (f"baseline extended (up to {_minutes(d.get('cap_s', 0))} more): too short for "
                                    f"its own noise — {'; '.join(d.get('reasons') or [])}"),
    "baseline_ready": lambda d: f"baseline ready after {_minutes(d.get('extended_s', 0))} more",
    "baseline_extension_capped": lambda d: (f"baseline still short after {_minutes(d.get('extended_s', 0))} more "
                                            f"({d.get('stopped') or 'the cap'}): {'; '.join(d.get('reasons') or [])}; "
                                            "the verdict may be INCONCLUSIVE"),
    "alter_started": lambda d: f"ALTER started on server thread {d.get('thread_id')}: {d.get('sql')}",
    "index_added": lambda d: "index added: the ALTER finished",
    "cancelled": lambda d: f"run cancelled by the kill switch ({d.get('where')} the ALTER)",
    "cooldown": lambda d: f"cool-down: {_minutes(d.get('seconds', 0))} before the monitoring window",
    "monitoring": lambda d: f"monitoring window opens: {_num(d.get('window_minutes'))} minutes, cannot be shortened",
    "recovery": lambda d: (f"took the run over and inspected the server: ALTER still running "
                           f"{_yes(d.get('alter_in_processlist'))}, index exists {_yes(d.get('index_exists'))}"),
    "lease_renewal_delayed": lambda d: f"lease renewal delayed: {d.get('error')}",
    "lease_lost": lambda d: f"lease lost to {d.get('holder')}: this drill stops driving the run",
    "failed": lambda d: f"run failed ({d.get('fail_reason')}): {d.get('message')}",
    "observing": lambda d: (f"{d.get('verdict')}: post-success observation, {_num(d.get('minutes'))} minutes before "
                            "the run is declared complete (runbook 5.4)"),
    "completed": lambda d: f"run completed: {d.get('verdict')}",
    "webhook_posted": lambda d: (f"posted {d.get('kind')} to {d.get('to')}"
                                 + (f" ({d.get('attempts')} attempts)" if d.get("attempts") != 1 else "")),
    "webhook_failed": lambda d: (f"WEBHOOK: {d.get('kind')} not posted after {d.get('attempts')} attempt(s): "
                                 f"{d.get('message')} (the runbook goes on)"),
}


def event_line(name: str, data: dict[str, Any]) -> str:
    """The readable line of one executor event (never raw JSON)."""
    render = EVENT_LINES.get(name)
    if render is not None:
        try:
            return render(data)
        except (TypeError, ValueError):
            pass  # a field of an unexpected type: the generic line below
    fields = ", ".join(f"{k.replace('_', ' ')} {_num(v)}" for k, v in data.items())
    return name.replace("_", " ") + (f": {fields}" if fields else "")


class Output:
    """The headless drill's voice. ``json_lines``: one JSON object a line (see the README)."""

    def __init__(self, json_lines: bool = False, stream: TextIO | None = None, prefix: str = "[rehearse] "):
        self.json_lines = json_lines
        self.stream = stream
        self.prefix = prefix
        self._last_step: dict[str, tuple[str, str, int]] = {}

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def _record(self, kind: str, text: str, **fields: Any) -> None:
        if self.json_lines:
            record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "kind": kind, "text": text,
                      **fields}
            print(json.dumps(record, default=str, ensure_ascii=False), file=self._out(), flush=True)
        else:
            print(f"{self.prefix}{text}", file=self._out(), flush=True)

    def say(self, text: str) -> None:
        """A message: what the drill does or found."""
        self._record("message", text)

    def step(self, progress: StepProgress) -> None:
        """A preparation step moved on: one line when its text or state changes (a bar a line)."""
        seen = (progress.text, progress.state, int(progress.fraction * 100))
        if self._last_step.get(progress.key) == seen:
            return
        self._last_step[progress.key] = seen
        mark = {"done": "done", "skipped": "skipped", "failed": "FAILED"}.get(progress.state)
        text = f"{progress.title:<26} {bar(1.0 if mark else progress.fraction)}  {mark + ': ' if mark else ''}{progress.text}"
        self._record("step", text, step=progress.key, state=progress.state, done=progress.done,
                     total=progress.total, detail=progress.text)

    def event(self, name: str, data: dict[str, Any]) -> None:
        """An executor event, as a readable line."""
        self._record("event", event_line(name, data), event=name, data=data)

    def tick(self, text: str, **fields: Any) -> None:
        """The monitoring window's progress (a line every few minutes of the drill's clock)."""
        self._record("monitor", text, **fields)

    def criterion(self, text: str, criterion: dict[str, Any]) -> None:
        self._record("criterion", text, criterion=criterion)

    def outcome(self, text: str, **fields: Any) -> None:
        self._record("outcome", text, **fields)
