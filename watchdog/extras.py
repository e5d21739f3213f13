"""What happens after a decision, off the critical path: nothing yet beyond the log line."""

from __future__ import annotations

from collections.abc import Callable

from watchdog.config import Config


def after_decision(config: Config) -> Callable | None:
    return None
