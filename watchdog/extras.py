"""What happens around a decision, off the critical path.

- ``after_decision``: runs once the delivery is handled (the watchdog's own metric);
- ``related``: runs after the traffic update, before the report (the blast radius).

Both are best effort: the handler logs their failures and carries on.
"""

from __future__ import annotations

from collections.abc import Callable

from watchdog.cloudrun import CloudRun
from watchdog.config import Config


def after_decision(config: Config) -> Callable | None:
    return None


def related(config: Config, cloud_run: CloudRun) -> Callable | None:
    return None
