"""The command palette's step actions (ctrl+p): every key the current screen's footer shows, with
the key and whether it can act now — or, when it cannot, why and who can (the screen's
``why_not``, the same line the key says when pressed). Chosen, an entry runs as its key does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class StepAction:
    key: str  # as the footer shows it
    description: str
    action: str
    namespace: Any
    why_not: str | None  # None: it can act now

    @property
    def help(self) -> str:
        return f"key {self.key} · " + ("can act now" if self.why_not is None else f"not now: {self.why_not}")


def step_actions(screen: Any) -> Iterator[StepAction]:
    """What the footer of ``screen`` shows, in its order (a key that can never act there is not
    shown, so not listed)."""
    app = screen.app
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.show:
            continue
        why = app.why_not_for(binding.action, active.node) if hasattr(app, "why_not_for") else None
        yield StepAction(app.get_key_display(binding), binding.description, binding.action, active.node, why)


class StepActions(Provider):
    """The current screen's actions (Posting's pattern: built from the state at the moment the
    palette opens)."""

    def _hits(self) -> list[StepAction]:
        return list(step_actions(self.screen))

    def _run(self, entry: StepAction) -> partial[Any]:
        return partial(self.app.run_action, entry.action, entry.namespace)

    async def discover(self) -> Hits:
        for entry in self._hits():
            yield DiscoveryHit(f"{entry.description} ({entry.key})", self._run(entry), help=entry.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._hits():
            text = f"{entry.description} ({entry.key})"
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), self._run(entry), text=text, help=entry.help)
