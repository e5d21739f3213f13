"""The delivery shell: one Pub/Sub delivery in, one :class:`Outcome` out, or :class:`TransientError` to redeliver.

It parses (core/intake decides what a delivery is, and which reading wins), gives
the delivery its deadline, and hands it to the flow for its kind:

- ignored input → flows/acknowledged.py (acknowledged; on-call told what to fix, if anything);
- deploy event → flows/deploy_events.py (a warning; never a traffic change of its own);
- verification tick → flows/ticks.py (never a rollback);
- alert → flows/alerts.py (decide → roll back → confirm → report; or the recovery).

Deliveries for one service take turns (flows/turns.py); every flow tells on-call
through one reporter (flows/reporting.py). A rollback, an unverified one and an
alert on a revision a rollback restored are followed by verification. The deploy
and tick flows are built on first use: neither is on an alert's cold-start path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from watchdog.config import Config
from watchdog.core import decision as rules
from watchdog.core.deploys import DeployEvent
from watchdog.core.intake import Alert, Ignored, Tick, parse
from watchdog.edges import logs
from watchdog.edges.cloudrun import CloudRun
from watchdog.flows import acknowledged
from watchdog.flows.alerts import Alerts
from watchdog.flows.extras import best_effort_after_decision, best_effort_related
from watchdog.flows.outcomes import Outcome
from watchdog.flows.reporting import Reporter, Told
from watchdog.flows.turns import Turns

DEADLINE_MARGIN = 3.0  # seconds kept back so the response reaches Pub/Sub in time


class Watchdog:
    def __init__(
        self,
        config: Config,
        cloud_run: CloudRun,
        notifier_factory: Callable[[float], Any],
        clock: Callable[[], float] = time.time,
        after_decision: Callable[[Alert, Outcome, float], None] | None = None,
        related: Callable[[Alert, rules.Decision, float], list[str]] | None = None,
    ) -> None:
        self.config = config
        self.cloud_run = cloud_run
        self._clock = clock
        self._reporter = Reporter(
            notifier_factory,  # deadline → Notifier; built lazily, after the update
            bot=config.slack.mode == "bot",
            buttons=config.slack.mode == "bot" and bool(config.slack_team),
        )
        self._told = Told()  # reports the ledger cannot remember, shared by the flows that make them
        self._turns = Turns()
        self._alerts = Alerts(
            config,
            cloud_run,
            self._reporter,
            self._told,
            self._turns,
            clock,
            after_decision=best_effort_after_decision(after_decision),  # metrics, after acting
            related=best_effort_related(related),  # blast radius, after the update
        )
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
            return acknowledged.ignored(parsed, delivery_id, deadline, self._reporter, self._told)
        if isinstance(parsed, DeployEvent):
            return self._deploys().handle(parsed, deadline, delivery_id)
        if isinstance(parsed, Tick):
            return self._ticks().handle(parsed, deadline)
        outcome = self._alerts.handle(parsed, deadline, started, delivery_id)
        if outcome.result in ("rolled_back", "unverified") or outcome.reason in (
            "rollback_did_not_fix",
            "closed_verification_continues",  # the close is not a verdict: this instance's ticks watch it too
        ):
            self._verify_after(parsed, outcome, deadline)
        return outcome

    def _verify_after(self, alert: Alert, outcome: Outcome, deadline: float) -> None:
        """Verification follows the rollback; an alert on a restored revision is recorded on its rollback."""
        try:
            self._ticks().after_alert(alert, outcome, deadline)
        except Exception as error:  # noqa: BLE001 - the alert was handled; verification is a follow-up
            logs.warning(f"could not record the alert for verification: {error}", incident_id=alert.incident_id)

    def _deploys(self) -> Any:
        """The deploy-event flow; its hold goes through the alert path, in the deploy's turn."""
        from watchdog.flows.deploy_events import DeployWatch

        with self._guard:
            if self._deploy_watch is None:
                self._deploy_watch = DeployWatch(
                    self.config,
                    self.cloud_run,
                    self._reporter,
                    self._turns,
                    hold=lambda alert, until: self._alerts.open(alert, until, time.monotonic()),
                )
            return self._deploy_watch

    def _ticks(self) -> Any:
        """The tick flow, built on first use (a cold start reads the scope once)."""
        from watchdog.flows.ticks import Ticks

        with self._guard:
            if self._tick_shell is None:
                self._tick_shell = Ticks(self.config, self.cloud_run, self._reporter, self._turns, self._clock)
            return self._tick_shell
