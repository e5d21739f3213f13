"""Roll back → confirm → report: the one step that moves traffic, in the order that keeps redelivery safe.

1. pin traffic *and* write the ledger record in one etag-guarded update, so the
   rollback and its record cannot come apart;
2. in bot mode, post the card at once ("rolling back"): on-call hears it now, not
   after the operation;
3. wait for the operation and confirm the target serves the split (``trafficStatuses``);
4. show the card (updated in place, or found again after a lost post), then mark the
   record reported;
5. when the decision's remedy is a field revert: revert only the field on a new revision
   with the failing revision's code, and move the pinned share to it once it is Ready
   (flows/field_revert.py); the card follows each step.

A crash or transient error at any point raises and Pub/Sub redelivers; the next
delivery reads the record and only sends the report again (:meth:`Rollback.resend`),
never a second rollback. An operation that ends in error is reported as failed
(:meth:`Rollback.failed`).
"""

from __future__ import annotations

import time
from dataclasses import replace

from google.api_core import exceptions as api_exceptions

from watchdog.core import card, field_revert, ledger, report, traffic, verification
from watchdog.core import decision as rules
from watchdog.core.intake import Alert
from watchdog.core.vocabulary import State
from watchdog.edges import logs
from watchdog.edges.cloudrun import UpdateFailed, confirmed
from watchdog.edges.slack import Posted
from watchdog.flows.deps import Deps
from watchdog.flows.field_revert import FAILED, NOT_MADE, PENDING, SERVING, FieldRevert
from watchdog.flows.outcomes import Outcome
from watchdog.flows.reporting import settle_report


class Rollback:
    def __init__(self, deps: Deps) -> None:
        self.config = deps.config
        self.cloud_run = deps.cloud_run
        self._reporter = deps.reporter
        self._clock = deps.clock
        self._related = deps.related  # blast radius, best effort: after the update, before the report

    def roll_back(
        self,
        alert: Alert,
        decided: rules.Decision,
        service: dict,
        deadline: float,
        started: float,
        revisions: list[dict] | None = None,
    ) -> Outcome:
        record = ledger.Record(
            incident=alert.incident_id,
            from_revision=decided.failing,
            to_revision=decided.target,
            at=round(self._clock(), 3),
            alert_at=alert.started_at,
            drill=alert.drill,
            before=traffic.traffic_before(service),
            after=tuple((r, p) for r, p in decided.split.items() if p),
            latest=traffic.short_name(service.get("latestCreatedRevision", "")),
            breaking=decided.breaking,
            **verification.recorded_signal(alert, self.config.signal_metrics),  # what verification reads
            policy=alert.policy_name[: ledger.POLICY_CHARS],
        )
        annotations = ledger.with_record(service.get("annotations"), record, away=decided.moved_from)
        promise = verification.follow_up(record, self.config.verify_minutes)  # the card's footer: what comes next
        decided = replace(decided, record=record)  # the card's undo command reads the traffic before
        operation = self.cloud_run.start_pin(
            alert.service, list(decided.traffic), service.get("etag", ""), annotations, deadline
        )
        # Traffic is moving: on-call hears it now, not after the operation (bot mode: one card, updated in place).
        early = None
        if self._reporter.bot:
            rolling = report.Action(report.ROLLING_BACK, seconds=time.monotonic() - started, follow_up=promise)
            early = self._reporter.post(
                report.render(alert, decided, rolling, buttons=self._reporter.buttons), deadline
            )
        lost = ""  # why the accepted update's operation could not be followed to its end
        try:
            result = self.cloud_run.await_pin(alert.service, operation, deadline)
        except UpdateFailed as error:
            return self.failed(alert, decided, error, deadline, early.thread if early is not None and early.ok else "")
        except (api_exceptions.GoogleAPICallError, api_exceptions.RetryError, TimeoutError) as error:
            # Cloud Run accepted the update (traffic and the ledger record together); only following it failed
            # (the operation answered 404 or 403, or time ran out). Say what serves, as made but unverified.
            lost = f"the update was accepted, but its operation could not be followed ({type(error).__name__})"
            result = self._read_back(alert, deadline)
        serving = {k: v for k, v in traffic.traffic_split(result).items() if v}
        elapsed = time.monotonic() - started
        read = serving if result else None  # None: the service could not be read back
        if not lost and confirmed(result, decided.split):  # settled; trafficStatuses show the split the rollback set
            action = report.Action(report.ROLLED_BACK, seconds=elapsed, serving=read, follow_up=promise)
        else:
            why = lost or "Cloud Run has not confirmed the new split yet"
            action = report.Action(report.UNVERIFIED, error=why, seconds=elapsed, serving=read, follow_up=promise)
        logs.log(
            "NOTICE" if action.kind == report.ROLLED_BACK else "ERROR",
            f"rolled back {alert.service.service} from {decided.failing} to {decided.target}",
            decision="rolled_back",
            verified=action.kind == report.ROLLED_BACK,
            incident_id=alert.incident_id,
            service=str(alert.service),
            from_revision=decided.failing,
            to_revision=decided.target,
            elapsed_ms=round(elapsed * 1000, 1),
        )
        related = self._related(alert, decided, deadline)
        message = report.render(alert, decided, action, related=related, buttons=self._reporter.buttons)
        posted = self._reporter.card(
            message, early.thread if early is not None and early.ok else "", record.at, deadline
        )
        if not posted.ok and early is not None and early.ok:
            logs.warning(f"could not update the card: {posted.error}", incident_id=alert.incident_id)
            posted = early  # the card is out; its first state stands
        settle_report(self.cloud_run, alert, result or self.cloud_run.get_service(alert.service, deadline), posted,
                      deadline)  # fmt: skip
        if decided.remedy == field_revert.FIELD_REVERT and action.kind == report.ROLLED_BACK and revisions:
            self._field_revert(alert, decided, revisions, posted.thread if posted.ok else "", deadline)
        return Outcome(State(action.kind), decided.reason, alert.incident_id, str(alert.service), decided, posted.ok)

    def _promise(self, record: ledger.Record | None, progress) -> str:
        """What verification does next, about the revision that serves once the field revert does."""
        if record is None or progress.state not in (SERVING, PENDING):
            return ""
        state = ledger.REVERT_SERVING if progress.state == SERVING else ledger.REVERT_PENDING
        return verification.follow_up(replace(record, revert=progress.revision, revert_state=state),
                                      self.config.verify_minutes)  # fmt: skip

    def _read_back(self, alert: Alert, deadline: float) -> dict:
        """The service as it is now, after an update whose operation was lost; {} when it cannot be read either."""
        try:
            return self.cloud_run.get_service(alert.service, deadline)
        except Exception as error:  # noqa: BLE001 - the rollback is reported whatever this read answers
            logs.warning(f"could not read the service back after the rollback: {error}", incident_id=alert.incident_id)
            return {}

    def _field_revert(
        self, alert: Alert, decided: rules.Decision, revisions: list[dict], thread: str, deadline: float
    ) -> None:
        """Step 5: revert only the field; the card says where it stands. The pin is safe whatever happens here."""
        by_name = {traffic.short_name(r.get("name", "")): r for r in revisions}
        failing, target = by_name.get(decided.failing), by_name.get(decided.target)
        if failing is None or target is None:
            return
        try:
            progress = FieldRevert(self.cloud_run, self._clock).start(
                alert.service, alert.incident_id, failing, target, deadline
            )
        except Exception as error:  # noqa: BLE001 - the rollback is made and reported; the pin is safe
            logs.error(f"field revert of {alert.service.service} not started: {type(error).__name__}: {error}",
                       incident_id=alert.incident_id, service=str(alert.service))  # fmt: skip
            return
        self.tell_revert(alert, decided, progress, thread, deadline)

    def tell_revert(self, alert: Alert, decided: rules.Decision, progress, thread: str, deadline: float) -> None:
        """The card moves to the field revert's state, as read back; a failure also pages in the thread (an edit of
        the card notifies nobody)."""
        service = self._read_back(alert, deadline)
        kinds = {SERVING: report.FIELD_REVERTED, PENDING: report.REVERTING_FIELD, FAILED: report.REVERT_FAILED}
        kind = kinds.get(progress.state, report.ROLLED_BACK)
        serving = {k: v for k, v in traffic.traffic_split(service).items() if v} if service else None
        action = report.Action(
            kind,
            error=progress.detail if kind == report.REVERT_FAILED else "",
            revert=progress.revision,
            kept=progress.images,
            note=progress.detail if progress.state == NOT_MADE else "",
            released=progress.released,
            serving=serving,
            follow_up=self._promise(decided.record, progress),
        )
        message = report.render(alert, decided, action, buttons=self._reporter.buttons)
        if thread:
            self._reporter.update(message, thread, deadline)
        if kind == report.REVERT_FAILED or not thread:
            self._reporter.post(message if not thread else report.render_revert_failed(alert, decided, progress.detail),
                                deadline, thread=thread)  # fmt: skip

    def resend(
        self, alert: Alert, decided: rules.Decision, service: dict, deadline: float, revisions: list[dict]
    ) -> Outcome:
        """A rollback happened but its report was not recorded: report it now, as completely as the first time.

        The ledger record says from, to, the split and the breaking revision; the
        revisions just read give the diff and the fix again.
        """
        serving = traffic.traffic_split(service)
        record = decided.record
        expected = dict(record.after) if record and record.after else decided.target
        kind: str = report.ROLLED_BACK if confirmed(service, expected) else report.UNVERIFIED
        shown = {k: v for k, v in serving.items() if v}
        action: report.Action | card.CardState = report.Action(kind, serving=shown)
        if record is not None:  # the card as the record and the service say it is now (a field revert, a click)
            action = card.state_of(record, service)
            kind = action.kind
        decided = rules.rebuilt(record, revisions, self.config, serving) if record else decided
        decided = replace(
            decided,
            detail=f"rolled back {decided.failing} → {decided.target} "
            f"for incident {alert.incident_id} (report sent on redelivery)",
        )
        message = report.render(alert, decided, action, buttons=self._reporter.buttons)
        posted = self._reporter.card(message, "", record.at if record else time.time(), deadline)
        settle_report(self.cloud_run, alert, service, posted, deadline)
        return Outcome(State(kind), "report_resent", alert.incident_id, str(alert.service), decided, posted.ok)

    def failed(
        self, alert: Alert, decided: rules.Decision, error: Exception, deadline: float, thread: str = ""
    ) -> Outcome:
        """The update was accepted but its operation ended in error: say what serves, and clean up.

        Cloud Run keeps the requested traffic and annotations in the spec (so the
        ledger record is there too) while ``trafficStatuses`` keep showing what
        serves. The report says what serves now, from ``trafficStatuses``, and
        the command to run. The record is removed (an annotations-only update,
        the spec's traffic left as Cloud Run keeps it) unless the target does
        serve 100%: the ledger never claims a rollback that did not happen. The
        delivery is acknowledged, so it does not loop; a later notification of
        the same incident may try once more, and reports again if it fails.
        """
        service: dict | None = None
        try:
            service = self.cloud_run.get_service(alert.service, deadline)
        except Exception as read_error:  # noqa: BLE001 - the report goes out regardless
            logs.warning(f"could not read the service after the failed rollback: {read_error}")
        serving = traffic.traffic_split(service) if service is not None else {}
        logs.error(
            f"ROLLBACK FAILED for {alert.service.service}: {error}",
            decision="rollback_failed",
            incident_id=alert.incident_id,
            service=str(alert.service),
            from_revision=decided.failing,
            to_revision=decided.target,
            serving=serving,
            manual_command=report.rollback_command(alert, decided.target),
        )
        moved = serving.get(decided.target) == 100
        read = {k: v for k, v in serving.items() if v} if service is not None else None
        if moved:  # the operation failed, and yet Cloud Run reports the target serving: not confirmed, not failed
            action = report.Action(report.UNVERIFIED, error=f"the update's operation ended in error ({error})",
                                   serving=read)  # fmt: skip
        else:
            action = report.Action(report.FAILED, error=str(error)[:500], serving=read)
        message = report.render(alert, decided, action, buttons=self._reporter.buttons)
        if thread:  # the card posted when Cloud Run accepted the update moves to its new state …
            self._reporter.update(message, thread, deadline)
        # … and a new post pages: an edit notifies nobody (a failure is loud; an unconfirmed move is not)
        posted = self._reporter.post(message, deadline, thread=thread) if (not thread or not moved) else Posted(True)
        try:  # drop the record so the ledger does not claim a rollback that did not happen
            if service is not None and not moved:
                self.cloud_run.reannotate(
                    alert.service, service, lambda annotations: ledger.without(annotations, alert.incident_id), deadline
                )
        except Exception as cleanup_error:  # noqa: BLE001 - already reported loudly
            logs.warning(
                f"could not clear the ledger after the failed rollback: {cleanup_error}", incident_id=alert.incident_id
            )
        return Outcome(State.FAILED, "rollback_failed", alert.incident_id, str(alert.service), decided, posted.ok)
