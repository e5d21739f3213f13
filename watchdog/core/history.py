"""A service's revision history as the decision walks it: the revisions read so far, newest first.

Pure code. Two revisions "have the same value" when :func:`watchdog.core.changes.template_changes`
finds no change between them of the kinds ``WATCHDOG_ROLLBACK_ON`` names; comparisons are
memoized in a dict the caller keeps across pages of the same decision.
"""

from __future__ import annotations

from watchdog.core.changes import Change, template_changes
from watchdog.core.intake import rfc3339
from watchdog.core.traffic import is_ready, short_name


class History:
    """The revisions read so far (newest first), with the comparisons the rules need, memoized."""

    def __init__(
        self, revisions: list[dict], kinds: set[str], memo: dict, complete: bool, show_env: frozenset[str] = frozenset()
    ) -> None:
        self.revisions = revisions
        self.names = [short_name(r.get("name", "")) for r in revisions]
        self.index = {name: i for i, name in reversed(list(enumerate(self.names)))}
        self.kinds = kinds
        self.memo = memo
        self.complete = complete
        self.show_env = show_env  # which env values the changes may show (WATCHDOG_SHOW_ENV)

    def get(self, name: str) -> dict | None:
        i = self.index.get(name)
        return None if i is None else self.revisions[i]

    def changes(self, older: dict, newer: dict) -> list[Change]:
        key = (older.get("name"), newer.get("name"))
        if key not in self.memo:
            self.memo[key] = template_changes(older, newer, self.show_env)
        return self.memo[key]

    def same(self, a: dict, b: dict) -> bool:
        """Same trigger value: no change of the configured kinds between them."""
        return not any(c.kind in self.kinds for c in self.changes(a, b))

    def created(self, i: int) -> float | None:
        """The revision's createTime in epoch seconds; None when it has none."""
        return rfc3339(self.revisions[i].get("createTime"))

    def ready_after(self, start: int) -> list[int]:
        """Indexes of Ready revisions older than ``start``."""
        return [k for k in range(start + 1, len(self.revisions)) if is_ready(self.revisions[k])]
