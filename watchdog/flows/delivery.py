"""The delivery shell: one Pub/Sub delivery in, one :class:`Outcome` out, or :class:`TransientError` to redeliver.

It parses (core/intake decides what a delivery is, and which reading wins), gives
the delivery its deadline, and hands it to the flow for its kind:

- ignored input → flows/acknowledged.py (acknowledged; on-call told what to fix, if anything);
- deploy event → flows/deploy_events.py (a warning; never a traffic change of its own);
- verification tick → flows/ticks.py (never a rollback);
- alert → flows/alerts.py (decide → roll back → confirm → report; or the recovery).

Every flow is built from one bundle (flows/deps.py, made by flows/app.build). Deliveries for
one service take turns (flows/turns.py); every flow tells on-call through one reporter
(flows/reporting.py). The alert door (flows/alerts.py) writes the decision metric and
registers what verification follows, for an alert and a deploy-time hold alike. The deploy
and tick flows are built on first use: neither is on an alert's cold-start path.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from watchdog.core.deploys import DeployEvent
from watchdog.core.intake import Ignored, Tick, parse
from watchdog.flows import acknowledged
from watchdog.flows.alerts import Alerts
from watchdog.flows.deps import Deps
from watchdog.flows.outcomes import Outcome

DEADLINE_MARGIN = 3.0  # seconds kept back so the response reaches Pub/Sub in time


class Watchdog:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.config = deps.config
        self._alerts = Alerts(deps)
        self._guard = threading.Lock()
        self._deploy_watch: Any = None
        self._tick_shell: Any = None

    def handle(
        self, body: Any, attributes: Any = None, delivery_id: str = "", published_at: float | None = None
    ) -> Outcome:
        started = time.monotonic()
        deadline = started + self.config.deadline_seconds - DEADLINE_MARGIN
        parsed = parse(body, attributes, published_at)
        if isinstance(parsed, Ignored):
            return acknowledged.ignored(parsed, delivery_id, deadline, self.deps.reporter, self.deps.told)
        if isinstance(parsed, DeployEvent):
            return self._deploys().handle(parsed, deadline, delivery_id)
        if isinstance(parsed, Tick):
            return self._ticks().handle(parsed, deadline)
        return self._alerts.handle(parsed, deadline, started, delivery_id)

    def _deploys(self) -> Any:
        """The deploy-event flow, built on first use; its hold goes through the alert door (flows/alerts.py)."""
        from watchdog.flows.deploy_events import DeployWatch

        with self._guard:
            if self._deploy_watch is None:
                self._deploy_watch = DeployWatch(self.deps, hold=self._alerts.hold)
            return self._deploy_watch

    def _ticks(self) -> Any:
        """The tick flow, built on first use."""
        from watchdog.flows.ticks import Ticks

        with self._guard:
            if self._tick_shell is None:
                self._tick_shell = Ticks(self.deps)
            return self._tick_shell
