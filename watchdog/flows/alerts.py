"""The alert flow: an open incident is decided and acted on, a closed one looked back on. A thin shell.

All judgement lives in :mod:`watchdog.core.decision`; this shell reads the service
and its revisions (one concurrent round trip, more pages only when the decision
asks), and hands the decision to the step it names:

- nothing, with its reason: acknowledged;
- in progress (another delivery is between its rollback and its report): redelivered;
- resend the report of a rollback already made (flows/rollback.py);
- report only, once per incident (remembered in the ledger where it may be written); a service
  outside ``WATCHDOG_SERVICES``/``WATCHDOG_PROJECTS`` is reported before anything is read;
- roll back → confirm → report (flows/rollback.py).

A lost etag race decides again on a fresh read, up to ``MAX_CONCURRENT_RETRIES``
times and while another attempt fits in the deadline; then the service "kept
changing" is reported (flows/acknowledged.py). Errors: a permanent one is
acknowledged and reported (flows/acknowledged.py), a transient one raises
:class:`TransientError` and Pub/Sub redelivers; the next delivery reads the ledger
and finishes what is missing, never rolling back twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from watchdog.config import Config
from watchdog.core import decision as rules
from watchdog.core import guards, ledger, report, verification
from watchdog.core.intake import Alert
from watchdog.edges import logs
from watchdog.edges.cloudrun import CloudRun, ConcurrentChange
from watchdog.flows import acknowledged
from watchdog.flows.outcomes import PERMANENT, RETRY, InProgress, Outcome, TransientError
from watchdog.flows.reporting import Reporter, Told, remember
from watchdog.flows.rollback import Rollback
from watchdog.flows.turns import Turns

MAX_CONCURRENT_RETRIES = 3
REPORT_SECONDS = 2.0  # kept for the report when deciding whether another attempt fits in the deadline


class Alerts:
    def __init__(
        self,
        config: Config,
        cloud_run: CloudRun,
        reporter: Reporter,
        told: Told,
        turns: Turns,
        clock: Callable[[], float],
        after_decision: Callable[[Alert, Outcome, float], None],
        related: Callable[[Alert, rules.Decision, float], list[str]],
    ) -> None:
        self.config = config
        self.cloud_run = cloud_run
        self._reporter = reporter
        self._told = told  # reports the ledger cannot remember
        self._turns = turns
        self._clock = clock
        self._after_decision = after_decision  # metrics: after acting, best effort
        self._related = related  # blast radius: other services with the same change, best effort
        self._rollback = Rollback(config, cloud_run, reporter, clock, related)

    def handle(self, alert: Alert, deadline: float, started: float, delivery_id: str = "") -> Outcome:
        """One alert, in its service's turn; raises :class:`TransientError` when Pub/Sub should redeliver."""
        outside = guards.outside_scope(alert, self.config)
        if outside:  # first, before any Cloud Run read: the grants for a service not watched would refuse it
            outcome = self._outside_scope(alert, outside, deadline, started)
            self._after_decision(alert, outcome, deadline)
            return outcome
        try:
            with self._turns.turn(alert.service, deadline):
                if alert.state == "closed":
                    outcome = self._closed(alert, deadline)
                else:
                    outcome = self.open(alert, deadline, started)
        except PERMANENT as error:
            outcome = acknowledged.permanent(alert, error, deadline, self._reporter, self.cloud_run.identity)
        except (*RETRY, TransientError) as error:
            logs.warning(
                f"transient error, Pub/Sub will redeliver: {type(error).__name__}: {error}",
                decision="retry",
                incident_id=alert.incident_id,
                service=str(alert.service),
                delivery_id=delivery_id,
                elapsed_ms=_ms(started),
            )
            self._after_decision(
                alert, Outcome("retry", type(error).__name__, alert.incident_id, str(alert.service)), deadline
            )
            raise TransientError(str(error)) from error
        self._after_decision(alert, outcome, deadline)
        return outcome

    def open(self, alert: Alert, deadline: float, started: float) -> Outcome:
        """Decide and act, deciding again on a fresh read when the service changed under the update.

        Also the deploy-time hold's way in (flows/deploy_events.py), already in the service's turn.
        """
        conflicts = 0
        for _ in range(MAX_CONCURRENT_RETRIES):
            attempt_started = time.monotonic()
            service, history = self.cloud_run.read(alert.service, deadline)
            decided = self._decide(alert, service, history)
            _log_decision(alert, decided, self.config.dry_run, started, revisions_read=len(history.loaded))
            if decided.action == rules.NOTHING:
                return Outcome("nothing", decided.reason, alert.incident_id, str(alert.service), decided)
            if decided.action == rules.IN_PROGRESS:
                raise InProgress(decided.detail)
            if decided.action == rules.RESEND_REPORT:
                return self._rollback.resend(alert, decided, service, deadline, history.loaded)
            if decided.action == rules.REPORT:
                return self._report_once(alert, decided, service, deadline)
            try:
                return self._rollback.roll_back(alert, decided, service, deadline, started, history.loaded)
            except PERMANENT as error:  # refused after the decision: the message names the rollback to make by hand
                return acknowledged.permanent(alert, error, deadline, self._reporter, self.cloud_run.identity, decided)
            except ConcurrentChange as error:
                conflicts += 1
                logs.warning(
                    f"service changed while deciding; deciding again: {error}",
                    incident_id=alert.incident_id,
                    service=str(alert.service),
                )
                took = time.monotonic() - attempt_started
                if deadline - time.monotonic() < took + REPORT_SECONDS:
                    break  # another attempt would run into the deadline (500, then the same again): report now
        return acknowledged.kept_changing(alert, decided.target, conflicts, deadline, self._reporter)  # the last target

    def _decide(self, alert: Alert, service: dict, history: Any) -> rules.Decision:
        """Decide on the revisions read so far, reading another page while the decision needs more history."""
        memo: dict = {}  # revision pairs compared so far, kept across pages
        while True:
            decided = rules.decide(
                alert, service, history.loaded, self.config, self._clock(), history_complete=history.complete, memo=memo
            )
            if decided.action != rules.NEED_MORE:
                return decided
            history.read_more()

    def _report_once(self, alert: Alert, decided: rules.Decision, service: dict, deadline: float) -> Outcome:
        """Post a report-only decision, and remember it so that later deliveries of the incident stay quiet.

        The memory is the ledger's ``noticed`` list (an annotation-only update) on services the
        watchdog may change; elsewhere this instance remembers it: out of scope, an unreadable
        ledger, and a dry run or a pause, which promise to write nothing at all.
        """
        writable = _ledger_may_remember(alert, decided, service, self.config)
        if not writable and not self._told.first(f"report:{alert.service}:{alert.incident_id}"):
            return Outcome("nothing", "already_reported", alert.incident_id, str(alert.service), decided)
        related = self._related(alert, decided, deadline) if decided.would_roll_back else []
        message = report.render(alert, decided, report.Action(), self.config.dry_run, related)
        posted = self._reporter.post(message, deadline)
        if writable and posted.ok:
            self._remember(alert, service, ledger.with_noticed, deadline)
        return Outcome("reported", decided.reason, alert.incident_id, str(alert.service), decided, posted.ok)

    def _outside_scope(self, alert: Alert, held: tuple[str, str], deadline: float, started: float) -> Outcome:
        """A service the watchdog may not change: one quiet report per incident, from the alert alone."""
        reason, sentence = held
        tell = alert.state == "open" and self._told.first(f"report:{alert.service}:{alert.incident_id}")
        decided = rules.Decision(
            rules.REPORT if tell else rules.NOTHING,
            reason,
            f"{sentence}; nothing of it was read or changed",
            failing=alert.revision,
        )
        _log_decision(alert, decided, self.config.dry_run, started, revisions_read=0)
        if not tell:  # closed (the watchdog never acted on it), or already told
            return Outcome("nothing", reason, alert.incident_id, str(alert.service), decided)
        posted = self._reporter.post(report.render(alert, decided, report.Action(), self.config.dry_run), deadline)
        return Outcome("reported", reason, alert.incident_id, str(alert.service), decided, posted.ok)

    def _closed(self, alert: Alert, deadline: float) -> Outcome:
        """A closed incident: never taken as recovery; remembered, so a late open does nothing.

        The incident that caused a rollback closes because the failing revision lost its traffic:
        that says nothing about the restored revision, so verification (flows/ticks.py) goes on and
        gives the verdict; the close only adds ``closed_at`` to the record (best effort). Nothing is
        posted here, so a Slack outage at the close loses nothing.
        """
        service = self.cloud_run.get_service(alert.service, deadline)
        record = ledger.find(service.get("annotations"), alert.incident_id)
        if record is None:
            logs.info(
                "incident closed; the watchdog did not act on it",
                decision="closed_ignored",
                incident_id=alert.incident_id,
                service=str(alert.service),
            )
            if alert.service in self.config.services:
                # an open that arrives after its close must change nothing
                self._remember(alert, service, ledger.with_closed, deadline)
            return Outcome("nothing", "closed_not_acted_on", alert.incident_id, str(alert.service))
        now = self._clock()
        reason, closed = verification.on_close(record, alert.ended_at or now, now)
        if closed is not None:
            closed_at = closed.closed_at

            def remembered(annotations: dict | None) -> dict | None:
                found = ledger.find(annotations, alert.incident_id)
                if found is None or found.closed_at is not None:
                    return None
                return ledger.updated(annotations, alert.incident_id, closed_at=closed_at)

            remember(self.cloud_run, alert.service, service, remembered, deadline, f"the close of {alert.incident_id}")
        logs.info(
            f"incident closed: not evidence about the restored revision {record.restored} ({reason})",
            decision="closed",
            reason=reason,
            incident_id=alert.incident_id,
            service=str(alert.service),
            verdict=record.state or None,
        )
        return Outcome("nothing", reason, alert.incident_id, str(alert.service))

    def _remember(self, alert: Alert, service: dict, change: Callable, deadline: float) -> None:
        def remembered(annotations: dict | None) -> dict | None:
            return change(annotations, alert.incident_id)

        remember(self.cloud_run, alert.service, service, remembered, deadline, f"incident {alert.incident_id}")


def _ledger_may_remember(alert: Alert, decided: rules.Decision, service: dict, config: Config) -> bool:
    """Whether a report may be remembered in the service's ledger: only where the watchdog may change the service.

    Not out of scope, not with an unreadable ledger, and not during a dry run (a dry-run drill
    included) or a pause, which promise to write nothing at all.
    """
    return (
        alert.service in config.services
        and (not config.projects or alert.service.project in config.projects)
        and decided.reason != "ledger_unreadable"
        and not config.dry_run
        and not (alert.drill and not alert.drill_live)
        and not config.paused
        and not ledger.paused(service.get("annotations"))
    )


def _log_decision(alert: Alert, decided: rules.Decision, dry_run: bool, started: float, **extra: Any) -> None:
    logs.info(
        f"decision for {alert.service.service}: {decided.reason}: {decided.detail}",
        decision=decided.action,
        reason=decided.reason,
        incident_id=alert.incident_id,
        service=str(alert.service),
        failing_revision=decided.failing,
        target_revision=decided.target,
        breaking_revision=decided.breaking,
        changes=[str(c) for c in decided.trigger_changes],
        drill=alert.drill,
        dry_run=dry_run,
        elapsed_ms=_ms(started),
        **extra,
    )


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
