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
from watchdog.core.vocabulary import Reason, Result
from watchdog.edges import logs
from watchdog.edges.cloudrun import ConcurrentChange
from watchdog.flows import acknowledged
from watchdog.flows.deps import Deps
from watchdog.flows.outcomes import PERMANENT, RETRY, InProgress, Outcome, TransientError
from watchdog.flows.reporting import remember
from watchdog.flows.rollback import Rollback

MAX_CONCURRENT_RETRIES = 3
REPORT_SECONDS = 2.0  # kept for the report when deciding whether another attempt fits in the deadline


class Alerts:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.config = deps.config
        self.cloud_run = deps.cloud_run
        self._reporter = deps.reporter
        self._told = deps.told  # reports the ledger cannot remember
        self._clock = deps.clock
        self._related = deps.related  # blast radius: other services with the same change, best effort
        self._rollback = Rollback(deps)

    def handle(self, alert: Alert, deadline: float, started: float, delivery_id: str = "") -> Outcome:
        """One alert, in its service's turn; raises :class:`TransientError` when Pub/Sub should redeliver."""
        outside = guards.outside_scope(alert, self.config)
        if outside:  # first, before any Cloud Run read: the grants for a service not watched would refuse it
            return self._done(alert, self._outside_scope(alert, outside, deadline, started), deadline)
        try:
            with self.deps.turns.turn(alert.service, deadline):
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
            self.deps.metric(
                alert, Outcome(Result.RETRY, type(error).__name__, alert.incident_id, str(alert.service)), deadline
            )
            raise TransientError(str(error)) from error
        return self._done(alert, outcome, deadline)

    def hold(self, alert: Alert, deadline: float) -> Outcome:
        """The deploy-time hold's way in (flows/deploy_events.py), already in the deploy's turn: the same decision,
        update, ledger and card as an alert's, then the same metric and verification."""
        return self._done(alert, self.open(alert, deadline, time.monotonic()), deadline)

    def _done(self, alert: Alert, outcome: Outcome, deadline: float) -> Outcome:
        """What follows every decision, whichever door it came in by: the decision metric, then verification."""
        self.deps.metric(alert, outcome, deadline)
        if verification.follows(outcome.result, outcome.reason):
            self._verify_after(alert, outcome, deadline)
        return outcome

    def _verify_after(self, alert: Alert, outcome: Outcome, deadline: float) -> None:
        """Verification follows the rollback (the ticks read the service); an alert on a restored revision is
        recorded on its rollback."""
        try:
            self.deps.watched.add(alert.service)
            if outcome.reason == Reason.ROLLBACK_DID_NOT_FIX and outcome.decision is not None:
                from watchdog.flows.verdicts import Verdicts  # not on an alert's cold-start path

                Verdicts(self.deps).alert_fired_again(alert, outcome.decision.failing, deadline)
        except Exception as error:  # noqa: BLE001 - the alert was handled; verification is a follow-up
            logs.warning(f"could not record the alert for verification: {error}", incident_id=alert.incident_id)

    def open(self, alert: Alert, deadline: float, started: float) -> Outcome:
        """Decide and act, deciding again on a fresh read when the service changed under the update.

        The deploy-time hold comes in here too, through :meth:`hold`.
        """
        conflicts = 0
        for _ in range(MAX_CONCURRENT_RETRIES):
            attempt_started = time.monotonic()
            service, history = self.cloud_run.read(alert.service, deadline)
            decided = self._decide(alert, service, history)
            _log_decision(alert, decided, self.config.dry_run, started, revisions_read=len(history.loaded))
            if decided.action == rules.NOTHING:
                return Outcome(Result.NOTHING, decided.reason, alert.incident_id, str(alert.service), decided)
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
            return Outcome(Result.NOTHING, "already_reported", alert.incident_id, str(alert.service), decided)
        related = self._related(alert, decided, deadline) if decided.would_roll_back else []
        message = report.render(alert, decided, report.Action(), self.config.dry_run, related)
        posted = self._reporter.post(message, deadline)
        if writable and posted.ok:
            self._remember(alert, service, ledger.with_noticed, deadline)
        return Outcome(Result.REPORTED, decided.reason, alert.incident_id, str(alert.service), decided, posted.ok)

    def _outside_scope(self, alert: Alert, held: tuple[rules.Reason, str], deadline: float, started: float) -> Outcome:
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
            return Outcome(Result.NOTHING, reason, alert.incident_id, str(alert.service), decided)
        posted = self._reporter.post(report.render(alert, decided, report.Action(), self.config.dry_run), deadline)
        return Outcome(Result.REPORTED, reason, alert.incident_id, str(alert.service), decided, posted.ok)

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
            return Outcome(Result.NOTHING, "closed_not_acted_on", alert.incident_id, str(alert.service))
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
        return Outcome(Result.NOTHING, reason, alert.incident_id, str(alert.service))

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
        and decided.reason != rules.Reason.LEDGER_UNREADABLE
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
