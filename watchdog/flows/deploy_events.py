"""The deploy-event flow: read → judge (watchdog/core/sentinel.py) → post → remember. A thin shell.

One read round trip (the service ∥ the first page of revisions), then at most
one Slack post: the requested template is compared with the revision serving
now, so the new revision need not exist yet. Sinks deliver at least once, so a
warned deploy is remembered: in the service's ledger (``warned``, an
annotation-only update) for services the watchdog may change, in this
instance's memory for the others. A failed post is retried by Pub/Sub (500);
nothing here ever changes traffic, except through the alert path when
``WATCHDOG_SENTINEL=hold`` pins a risky deploy back.

A service not in ``WATCHDOG_SERVICES`` is never read: the function may
``run.services.get`` only the watched services (terraform/iam.tf), and the sink
exports every Cloud Run write in the project, so a read would answer 403 on
every deploy of every other service. Its deploy is judged from the request
alone (the warning says the serving revision was not read); a deploy of it
whose entry carries no request cannot be judged and is acknowledged quietly.

Copies of one deploy take the service's turn (flows/turns.py), so each reads
what the first remembered. Errors: a permanent one is logged and acknowledged;
a transient one, or a hold still waiting for the revision to serve, raises
:class:`TransientError` and Pub/Sub redelivers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from watchdog.config import Config
from watchdog.core import deploys, ledger, sentinel
from watchdog.core.deploys import DeployEvent
from watchdog.core.intake import Alert, rfc3339
from watchdog.edges import logs
from watchdog.edges.cloudrun import CloudRun
from watchdog.flows.outcomes import PERMANENT, RETRY, Outcome, TransientError
from watchdog.flows.reporting import Reporter, Told, remember
from watchdog.flows.turns import Turns


class HoldPending(Exception):
    """WATCHDOG_SENTINEL=hold: the risky deploy's revision does not serve yet; Pub/Sub redelivers to look again."""


class DeployWatch:
    def __init__(
        self,
        config: Config,
        cloud_run: CloudRun,
        reporter: Reporter,
        turns: Turns,
        hold: Callable[[Alert, float], Any] | None = None,
    ) -> None:
        self.config = config
        self.cloud_run = cloud_run
        self._reporter = reporter
        self._turns = turns
        self._hold = hold  # the alert path: the same decision, update, ledger and card as an alert-driven rollback
        self._warned = Told()  # deploys warned about, in this instance

    def handle(self, event: DeployEvent, deadline: float, delivery_id: str = "") -> Outcome:
        """One deploy event, in its service's turn; raises :class:`TransientError` when Pub/Sub should redeliver."""
        try:
            with self._turns.turn(event.service, deadline):  # copies of one deploy read what the first remembered
                result, reason, posted = self._judge(event, deadline, delivery_id)
        except PERMANENT as error:
            logs.error(
                f"deploy event for {event.service} acknowledged: {type(error).__name__}: {error}",
                decision="error",
                service=str(event.service),
            )
            return Outcome("error", type(error).__name__, event.incident_id, str(event.service))
        except (*RETRY, HoldPending) as error:
            logs.warning(f"deploy event: Pub/Sub will redeliver: {error}", service=str(event.service))
            raise TransientError(str(error)) from error
        return Outcome(result, reason, event.incident_id, str(event.service), posted=posted)

    def _judge(self, event: DeployEvent, deadline: float, delivery_id: str) -> tuple[str, str, bool]:
        """(result, reason, posted) for one deploy event."""
        started = time.monotonic()
        if self.config.sentinel == "off":
            return "ignored", "sentinel_off", False
        if event.key in self._warned and self.config.sentinel != "hold":
            return "nothing", "already_warned", False
        if event.service not in self.config.services:
            return self._unwatched(event, deadline, delivery_id, started)
        service, history = self.cloud_run.read(event.service, deadline)
        revisions = deploys.newest_first(history.loaded)
        if event.from_service:
            read = deploys.with_service_template(event, service)
            if read is None:
                logs.info(
                    f"deploy of {event.service.service}: no request and no template to judge", reason="no_template"
                )
                return "nothing", "no_template", False
            event = read
        verdict = sentinel.judge(event, service, revisions, self.config)
        self._log(event, verdict, delivery_id, started)
        if verdict.action == sentinel.NOTHING:
            return "nothing", verdict.reason, False
        posted_ok = False
        if not verdict.repeat and event.key not in self._warned:
            posted_ok = self._warn(event, verdict, service, deadline)
        if verdict.hold:
            return self._held(event, service, revisions, deadline, posted_ok, verdict.baseline)
        return ("warned" if verdict.action == sentinel.WARN else "noted"), verdict.reason, posted_ok

    def _unwatched(self, event: DeployEvent, deadline: float, delivery_id: str, started: float):
        """A service the watchdog may not read: judged from the request alone, never read, never written."""
        if event.from_service:
            logs.info(
                f"deploy of {event.service.service} not judged: its entry carries no request, and the service is "
                "not in WATCHDOG_SERVICES, so the watchdog does not read it",
                decision="deploy_nothing",
                reason="unwatched_no_request",
                service=str(event.service),
                delivery_id=delivery_id,
            )
            return "nothing", "unwatched_no_request", False
        verdict = replace(sentinel.judge(event, {}, [], self.config), unread=True)
        self._log(event, verdict, delivery_id, started)
        if verdict.action == sentinel.NOTHING:
            return "nothing", verdict.reason, False
        return "warned", verdict.reason, self._warn(event, verdict, {}, deadline)

    def _log(self, event: DeployEvent, verdict, delivery_id: str, started: float) -> None:
        logs.info(
            f"deploy of {event.service.service}: {verdict.reason}: {verdict.detail}",
            decision=f"deploy_{verdict.action}",
            reason=verdict.reason,
            service=str(event.service),
            method=event.method,
            principal=event.principal,
            user_agent=event.user_agent,
            baseline_revision=verdict.baseline,
            rules=[f.rule for f in verdict.findings if f.severity == "fail"],
            delivery_id=delivery_id,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _held(
        self, event: DeployEvent, service: dict, revisions: list[dict], deadline: float, posted: bool, baseline: str
    ):
        """Pin traffic back as soon as the deploy's revision serves: through the alert path, under its own incident."""
        from watchdog.core import traffic as rules

        revision = sentinel.new_revision(event, service, revisions)
        if revision and rules.traffic_split(service).get(revision, 0) > 0 and self._hold is not None:
            alert = Alert(
                incident_id=f"hold-{event.key}",
                state="open",
                service=event.service,
                revision=revision,
                policy_name="deploy-time hold (WATCHDOG_SENTINEL=hold)",
                condition_kind="sentinel",
                started_at=rfc3339(event.at),
                found_by="the deploy's audit log entry",
            )
            outcome = self._hold(replace(alert, served_before=baseline), deadline)
            return "held", getattr(outcome, "reason", "held"), posted
        deployed = rfc3339(event.at)
        if deployed is not None and time.time() - deployed > sentinel.HOLD_WAIT:
            logs.info(f"hold of {event.service}: the deploy never took traffic; nothing to hold", reason="hold_expired")
            return "nothing", "hold_expired", posted
        raise HoldPending(f"{event.service}: the deploy's revision does not serve yet ({revision or 'pending'})")

    def _warn(self, event: DeployEvent, verdict, service: dict, deadline: float) -> bool:
        thread = verdict.pinned.thread if verdict.action == sentinel.NOTE and verdict.pinned else ""
        posted = self._reporter.post(sentinel.render(event, verdict), deadline, thread=thread, quiet=True)
        if not posted.ok:
            if posted.retryable:
                raise ConnectionError(f"deploy warning not posted yet: {posted.error}")
            logs.error(f"Slack refused the deploy warning for good: {posted.error}", service=str(event.service))
        self._remember(event, service, deadline, verdict.baseline)
        return posted.ok

    def _remember(self, event: DeployEvent, service: dict, deadline: float, baseline: str) -> None:
        self._warned.add(event.key)
        if event.service not in self.config.services:
            return  # the watchdog may not write to services out of scope

        def warned(annotations: dict | None) -> dict | None:
            return ledger.with_warned(annotations, event.key, baseline)

        remember(
            self.cloud_run,
            event.service,
            service,
            warned,
            deadline,
            "the deploy warning",
            {"service": str(event.service)},
        )
