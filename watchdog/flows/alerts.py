"""The imperative shell: intake → read → decide → act → verify → report.

All judgement lives in :mod:`watchdog.core.decision`; this module does the I/O in
the order that keeps Pub/Sub's at-least-once delivery safe:

1. read the service and its revisions (one concurrent round trip);
2. pin traffic *and* write the ledger record in one etag-guarded update, so
   the rollback and its record cannot come apart;
3. wait for the operation and confirm the target serves 100%;
4. post to Slack, then mark the record reported.

A crash or transient error at any point raises, Pub/Sub redelivers, and the
next attempt reads the ledger: it finishes what is missing (usually the
report) and never rolls back twice. Permanent problems are acknowledged
(return normally), logged at ERROR and reported.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from google.api_core import exceptions as api_exceptions

from watchdog.config import Config, ServiceRef
from watchdog.core import decision as rules
from watchdog.core import ledger, permissions, report, traffic
from watchdog.core.deploys import DeployEvent
from watchdog.core.intake import Alert, Ignored, Tick, parse
from watchdog.edges import logs
from watchdog.edges.cloudrun import TRANSIENT, CloudRun, ConcurrentChange, UpdateFailed, confirmed, rest_status

MAX_CONCURRENT_RETRIES = 3
REPORT_SECONDS = 2.0  # kept for the report when deciding whether another attempt fits in the deadline
DEADLINE_MARGIN = 3.0  # seconds kept back so the response reaches Pub/Sub in time

# REST answers map to the HTTP-named exceptions (Forbidden), gRPC ones to the status-named (PermissionDenied).
PERMANENT = (
    api_exceptions.NotFound,
    api_exceptions.PermissionDenied,
    api_exceptions.Forbidden,
    api_exceptions.Unauthenticated,
    api_exceptions.Unauthorized,
    api_exceptions.BadRequest,
    api_exceptions.MethodNotAllowed,
    # 409 / 412 that are not an etag conflict (cloudrun.is_etag_conflict): retrying cannot help
    api_exceptions.Conflict,
    api_exceptions.PreconditionFailed,
)


class TransientError(Exception):
    """Retry later: raised so that the function answers 500 and Pub/Sub redelivers."""


class InProgress(Exception):
    """Another delivery of this incident is between its rollback and its report."""


@dataclass(frozen=True)
class Outcome:
    """What one delivery came to; logged and returned (tests and the CLI read it)."""

    result: str  # ignored, nothing, reported, rolled_back, failed, unverified, recovered, error, retry
    reason: str
    incident_id: str = ""
    service: str = ""
    decision: rules.Decision | None = None
    posted: bool = False


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
        self._notifier_factory = notifier_factory  # deadline → Notifier; built lazily, after the update
        self._clock = clock
        self._after_decision = after_decision  # metrics: after acting, best effort
        self._related = related  # blast radius: other services with the same change, after the update
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # Reports that cannot be remembered on the service (out of scope, unreadable ledger, no service):
        # remembered here, so one instance posts each once.
        self._told: OrderedDict[str, None] = OrderedDict()
        self._deploy_watch = None  # built on the first deploy event

    def _ignored(self, ignored: Ignored, delivery_id: str, deadline: float) -> Outcome:
        """Acknowledge; a Cloud Run incident that cannot be located also tells on-call what to fix."""
        fields = {"decision": "ignored", "reason": ignored.reason, "incident_id": ignored.incident_id}
        if not ignored.tell:
            logs.info(f"ignored: {ignored.detail}", delivery_id=delivery_id, **fields)
            return Outcome("ignored", ignored.reason, ignored.incident_id)
        logs.warning(
            f"cannot act on incident {ignored.incident_id}: {ignored.detail}",
            delivery_id=delivery_id,
            service=ignored.service,
            policy=ignored.policy,
            **fields,
        )
        posted = False
        if self._first_telling(f"ignored:{ignored.incident_id}:{ignored.reason}"):
            posted = self._post(report.render_unlocated(ignored), deadline).ok
        return Outcome("ignored", ignored.reason, ignored.incident_id, ignored.service, posted=posted)

    def _deploy(self, event: DeployEvent, deadline: float, delivery_id: str) -> Outcome:
        """A deploy event goes to its own flow (watchdog/flows/deploy_events.py); it never changes traffic."""
        from watchdog.flows.deploy_events import DeployWatch, HoldPending

        if self._deploy_watch is None:
            self._deploy_watch = DeployWatch(
                self.config,
                self.cloud_run,
                self._notifier_factory,
                hold=lambda alert, until: self._open(alert, until, time.monotonic()),
            )
        try:
            with self._turn(event.service, deadline):  # copies of one deploy read what the first remembered
                result, reason, posted = self._deploy_watch.handle(event, deadline, delivery_id)
        except PERMANENT as error:
            logs.error(
                f"deploy event for {event.service} acknowledged: {type(error).__name__}: {error}",
                decision="error",
                service=str(event.service),
            )
            return Outcome("error", type(error).__name__, event.incident_id, str(event.service))
        except (*TRANSIENT, api_exceptions.RetryError, ConcurrentChange, InProgress, HoldPending) as error:
            logs.warning(f"deploy event: Pub/Sub will redeliver: {error}", service=str(event.service))
            raise TransientError(str(error)) from error
        return Outcome(result, reason, event.incident_id, str(event.service), posted=posted)

    @property
    def _buttons(self) -> bool:
        """The card's buttons need a bot token (chat.update) and the slack_actions endpoint's workspace."""
        return self.config.slack.mode == "bot" and bool(self.config.slack_team)

    def _first_telling(self, key: str) -> bool:
        with self._locks_guard:
            if key in self._told:
                return False
            self._told[key] = None
            while len(self._told) > 1000:
                self._told.popitem(last=False)
            return True

    def handle(
        self, body: Any, attributes: Any = None, delivery_id: str = "", published_at: float | None = None
    ) -> Outcome:
        started = time.monotonic()
        deadline = started + self.config.deadline_seconds - DEADLINE_MARGIN
        parsed = parse(body, attributes, published_at)
        if isinstance(parsed, Ignored):
            return self._ignored(parsed, delivery_id, deadline)
        if isinstance(parsed, DeployEvent):
            return self._deploy(parsed, deadline, delivery_id)
        if isinstance(parsed, Tick):  # verification (watchdog/flows/ticks.py): never a rollback
            from watchdog.flows.ticks import ticks

            return ticks(self).handle(parsed, deadline)
        alert = parsed
        try:
            with self._turn(alert.service, deadline):
                if alert.state == "closed":
                    outcome = self._closed(alert, deadline)
                else:
                    outcome = self._open(alert, deadline, started)
        except PERMANENT as error:
            outcome = self._permanent(alert, error, deadline)
        except (*TRANSIENT, api_exceptions.RetryError, ConcurrentChange, InProgress, TransientError) as error:
            logs.warning(
                f"transient error, Pub/Sub will redeliver: {type(error).__name__}: {error}",
                decision="retry",
                incident_id=alert.incident_id,
                service=str(alert.service),
                delivery_id=delivery_id,
                elapsed_ms=_ms(started),
            )
            self._extras(alert, Outcome("retry", type(error).__name__, alert.incident_id, str(alert.service)), deadline)
            raise TransientError(str(error)) from error
        self._extras(alert, outcome, deadline)
        if outcome.result in ("rolled_back", "unverified") or outcome.reason == "rollback_did_not_fix":
            from watchdog.flows.ticks import after_alert  # verification follows the rollback (watchdog/flows/ticks.py)

            after_alert(self, alert, outcome, deadline)
        return outcome

    def _extras(self, alert: Alert, outcome: Outcome, deadline: float) -> None:
        if self._after_decision is None:
            return
        try:
            self._after_decision(alert, outcome, deadline)
        except Exception as error:  # noqa: BLE001 - extras never undo or block a rollback
            logs.warning(f"after-decision hook failed: {error}", incident_id=alert.incident_id)

    # --- open incidents ----------------------------------------------------

    @contextlib.contextmanager
    def _turn(self, ref: ServiceRef, deadline: float) -> Iterator[None]:
        """Deliveries for one service take turns inside an instance.

        Duplicates then read the ledger after the first one wrote it instead of
        racing it; across instances the etag still guards the update.
        """
        lock = self._service_lock(ref)
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic() - 1)):
            raise InProgress(f"another delivery for {ref} is still being handled")
        try:
            yield
        finally:
            lock.release()

    def _service_lock(self, ref: ServiceRef) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(str(ref), threading.Lock())

    def _open(self, alert: Alert, deadline: float, started: float) -> Outcome:
        conflicts = 0
        for _ in range(MAX_CONCURRENT_RETRIES):
            attempt_started = time.monotonic()
            service, history = self.cloud_run.read(alert.service, deadline)
            memo: dict = {}  # revision pairs compared so far, kept across pages
            decided = rules.decide(
                alert, service, history.loaded, self.config, self._clock(), history_complete=history.complete, memo=memo
            )
            while decided.action == rules.NEED_MORE:
                history.read_more()
                decided = rules.decide(
                    alert,
                    service,
                    history.loaded,
                    self.config,
                    self._clock(),
                    history_complete=history.complete,
                    memo=memo,
                )
            self._log_decision(alert, decided, started, revisions_read=len(history.loaded))
            if decided.action == rules.NOTHING:
                return Outcome("nothing", decided.reason, alert.incident_id, str(alert.service), decided)
            if decided.action == rules.IN_PROGRESS:
                raise InProgress(decided.detail)
            if decided.action == rules.RESEND_REPORT:
                return self._resend(alert, decided, service, deadline, history.loaded)
            if decided.action == rules.REPORT:
                return self._report_once(alert, decided, service, deadline)
            try:
                return self._roll_back(alert, decided, service, deadline, started)
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
        return self._kept_changing(alert, decided.target, conflicts, deadline)  # the last decision's target

    def _report_once(self, alert: Alert, decided: rules.Decision, service: dict, deadline: float) -> Outcome:
        """Post a report-only decision, and remember it so that later deliveries of the incident stay quiet.

        The memory is the ledger's ``noticed`` list (an annotation-only update) on services the
        watchdog may change; elsewhere this instance remembers it: out of scope, an unreadable
        ledger, and a dry run or a pause, which promise to write nothing at all.
        """
        writable = (
            alert.service in self.config.services
            and (not self.config.projects or alert.service.project in self.config.projects)
            and decided.reason != "ledger_unreadable"
            and not self.config.dry_run
            and not (alert.drill and not alert.drill_live)
            and not self.config.paused
            and not ledger.paused(service.get("annotations"))
        )
        if not writable and not self._first_telling(f"report:{alert.service}:{alert.incident_id}"):
            return Outcome("nothing", "already_reported", alert.incident_id, str(alert.service), decided)
        related = self._related_lines(alert, decided, deadline) if decided.would_roll_back else []
        posted = self._post(report.render(alert, decided, report.Action(), self.config.dry_run, related), deadline)
        if writable and posted.ok:
            self._remember(alert, service, ledger.with_noticed, deadline)
        return Outcome("reported", decided.reason, alert.incident_id, str(alert.service), decided, posted.ok)

    def _remember(self, alert: Alert, service: dict, change: Callable, deadline: float) -> None:
        """Best effort: an annotation-only update of the ledger's memory; never in the way of the answer."""
        try:
            self.cloud_run.reannotate(alert.service, service, lambda a: change(a, alert.incident_id), deadline)
        except Exception as error:  # noqa: BLE001 - the report went out; the memory is a courtesy
            logs.warning(f"could not remember incident {alert.incident_id} in the ledger: {error}")

    def _roll_back(
        self, alert: Alert, decided: rules.Decision, service: dict, deadline: float, started: float
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
            metric=alert.metric_type,
        )
        annotations = ledger.with_record(service.get("annotations"), record, away=decided.moved_from)
        decided = replace(decided, record=record)  # the card's undo command reads the traffic before
        operation = self.cloud_run.start_pin(
            alert.service, list(decided.traffic), service.get("etag", ""), annotations, deadline
        )
        # Traffic is moving: on-call hears it now, not after the operation (bot mode: one card, updated in place).
        early = None
        if self.config.slack.mode == "bot":
            rolling = report.Action(report.ROLLING_BACK, seconds=time.monotonic() - started)
            early = self._post(report.render(alert, decided, rolling, buttons=self._buttons), deadline)
        try:
            result = self.cloud_run.await_pin(alert.service, operation, deadline)
        except UpdateFailed as error:
            if early is not None and early.ok:
                failed = report.Action(report.FAILED, error=str(error)[:500])
                self._notifier_factory(deadline).update(report.render(alert, decided, failed), early.thread)
            return self._failed(alert, decided, error, deadline)
        serving = {k: v for k, v in traffic.traffic_split(result).items() if v}
        elapsed = time.monotonic() - started
        if confirmed(result, decided.split):  # settled, and trafficStatuses show the split the rollback set
            action = report.Action(report.ROLLED_BACK, seconds=elapsed)
        else:
            action = report.Action(report.UNVERIFIED, error=f"traffic reported as {serving}", seconds=elapsed)
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
        card = report.render(
            alert, decided, action, related=self._related_lines(alert, decided, deadline), buttons=self._buttons
        )
        posted = self._card(card, early.thread if early is not None and early.ok else "", record.at, deadline)
        if not posted.ok and early is not None and early.ok:
            logs.warning(f"could not update the card: {posted.error}", incident_id=alert.incident_id)
            posted = early  # the card is out; its first state stands
        self._settle_report(alert, result, posted, deadline)
        return Outcome(action.kind, decided.reason, alert.incident_id, str(alert.service), decided, posted.ok)

    def _resend(
        self, alert: Alert, decided: rules.Decision, service: dict, deadline: float, revisions: list[dict]
    ) -> Outcome:
        """A rollback happened but its report was not recorded: report it now, as completely as the first time.

        The ledger record says from, to, the split and the breaking revision; the
        revisions just read give the diff and the fix again.
        """
        serving = traffic.traffic_split(service)
        record = decided.record
        expected = dict(record.after) if record and record.after else decided.target
        kind = report.ROLLED_BACK if confirmed(service, expected) else report.UNVERIFIED
        action = report.Action(kind, error="" if kind == report.ROLLED_BACK else f"traffic now {serving}")
        decided = rules.rebuilt(record, revisions, self.config, serving) if record else decided
        decided = replace(
            decided,
            detail=f"rolled back {decided.failing} → {decided.target} "
            f"for incident {alert.incident_id} (report sent on redelivery)",
        )
        card = report.render(alert, decided, action, buttons=self._buttons)
        posted = self._card(card, "", record.at if record else time.time(), deadline)
        self._settle_report(alert, service, posted, deadline)
        return Outcome(kind, "report_resent", alert.incident_id, str(alert.service), decided, posted.ok)

    def _card(self, card: report.Message, posted: str, since: float, deadline: float):
        """Show ``card``: update it where it was posted, or where a lost post of it is found, else post it.

        One card per incident, whatever Slack's timeouts or a crash did: a post whose answer never came
        is found again by its metadata before a second one is made.
        """
        notifier = self._notifier_factory(deadline)
        where = posted or notifier.find(card.card, since - 60)
        result = notifier.update(card, where) if where else notifier.post(card)
        if not result.ok:
            logs.warning(f"slack post failed: {result.error}", decision="slack_failed")
        return result

    def _failed(self, alert: Alert, decided: rules.Decision, error: Exception, deadline: float) -> Outcome:
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
        now = ", ".join(f"{revision} {percent}%" for revision, percent in serving.items()) or "unknown"
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
        outcome = "the target serves 100% all the same" if moved else "traffic was not moved"
        detail = f"{error}. Serving now (trafficStatuses): {now}; {outcome}"
        posted = self._post(report.render(alert, decided, report.Action(report.FAILED, error=detail)), deadline)
        try:  # drop the record so the ledger does not claim a rollback that did not happen
            if service is not None and not moved:
                self._drop_record(alert, service, deadline)
        except Exception as cleanup_error:  # noqa: BLE001 - already reported loudly
            logs.warning(
                f"could not clear the ledger after the failed rollback: {cleanup_error}", incident_id=alert.incident_id
            )
        return Outcome("failed", "rollback_failed", alert.incident_id, str(alert.service), decided, posted.ok)

    def _drop_record(self, alert: Alert, service: dict, deadline: float) -> None:
        """Remove this incident's ledger record (annotations only); once more on a fresh read if the etag moved."""
        for attempt in range(2):
            kept = ledger.without(service.get("annotations"), alert.incident_id)
            if kept is None:
                return
            try:
                self.cloud_run.annotate(alert.service, kept, service.get("etag", ""), deadline)
                return
            except ConcurrentChange:
                if attempt:
                    raise
                service = self.cloud_run.get_service(alert.service, deadline)

    def _settle_report(self, alert: Alert, service: dict, posted: Any, deadline: float) -> None:
        """Record a sent report; if it could not be sent but may be later, have Pub/Sub redeliver.

        A permanent Slack failure (bad token, unknown channel) is not retried:
        the ERROR log line carries the report instead.
        """
        if posted.ok:
            self._mark_reported(alert, service, posted.thread, deadline)
            return
        if posted.retryable:
            raise TransientError(f"rollback done, report not sent yet: {posted.error}")
        logs.error(
            f"rollback done but Slack refused the report for good: {posted.error}",
            decision="report_lost",
            incident_id=alert.incident_id,
            service=str(alert.service),
        )
        self._mark_reported(alert, service, "", deadline)

    def _mark_reported(self, alert: Alert, service: dict, thread: str, deadline: float) -> None:
        annotations = ledger.updated(service.get("annotations"), alert.incident_id, reported=True, thread=thread)
        if annotations is None:
            return
        try:
            self.cloud_run.annotate(alert.service, annotations, service.get("etag", ""), deadline)
        except ConcurrentChange:
            fresh = self.cloud_run.get_service(alert.service, deadline)
            annotations = ledger.updated(fresh.get("annotations"), alert.incident_id, reported=True, thread=thread)
            if annotations is not None:
                self.cloud_run.annotate(alert.service, annotations, fresh.get("etag", ""), deadline)

    # --- closed incidents --------------------------------------------------

    def _closed(self, alert: Alert, deadline: float) -> Outcome:
        service = self.cloud_run.get_service(alert.service, deadline)
        recovered = rules.recovery(alert, service, self._clock())
        if recovered is None:
            logs.info(
                "incident closed; the watchdog did not act on it",
                decision="closed_ignored",
                incident_id=alert.incident_id,
                service=str(alert.service),
            )
            if (
                ledger.find(service.get("annotations"), alert.incident_id) is None
                and alert.service in self.config.services
            ):
                # an open that arrives after its close must change nothing
                self._remember(alert, service, ledger.with_closed, deadline)
            return Outcome("nothing", "closed_not_acted_on", alert.incident_id, str(alert.service))
        posted = self._post(report.render_recovery(alert, recovered), deadline, thread=recovered.record.thread)
        annotations = ledger.updated(
            service.get("annotations"), alert.incident_id, recovered_at=alert.ended_at or self._clock()
        )
        if annotations is not None:
            self.cloud_run.annotate(alert.service, annotations, service.get("etag", ""), deadline)
        logs.info(
            f"{alert.service.service} recovered",
            decision="recovered",
            incident_id=alert.incident_id,
            service=str(alert.service),
            alert_to_rollback_s=recovered.alert_to_rollback,
            rollback_to_recovery_s=recovered.rollback_to_recovery,
        )
        return Outcome("recovered", "incident_closed", alert.incident_id, str(alert.service), posted=posted.ok)

    # --- edges -------------------------------------------------------------

    def _permanent(self, alert: Alert, error: Exception, deadline: float) -> Outcome:
        loud = False
        if isinstance(error, api_exceptions.NotFound):
            hint = "check the service name and region in the alert policy"
        elif isinstance(error, (api_exceptions.PermissionDenied, api_exceptions.Forbidden)):
            # The watchdog cannot act on this service at all: as loud as a failed rollback.
            missing = permissions.missing_permission(str(error), alert.service, self.cloud_run.identity())
            hint = f"grant the watchdog {missing.permission} on {missing.resource}: {missing.command}"
            loud = True
        elif isinstance(error, (api_exceptions.Unauthenticated, api_exceptions.Unauthorized)):
            hint = "check the function's service account and its credentials"
        elif isinstance(error, (api_exceptions.Conflict, api_exceptions.PreconditionFailed)) or (
            isinstance(error, api_exceptions.BadRequest) and rest_status(error) == "FAILED_PRECONDITION"
        ):
            # not an etag conflict (those are re-read and decided again): retrying cannot help
            hint = f"Cloud Run refused the update; roll back by hand if needed: {_manual(alert)}"
            loud = True
        else:
            hint = "check the alert policy and the watchdog's configuration"
        logs.error(
            f"permanent error, acknowledged: {type(error).__name__}: {error}",
            decision="error",
            incident_id=alert.incident_id,
            service=str(alert.service),
            hint=hint,
        )
        text = (
            f"Rollback watchdog could not handle incident {alert.incident_id} for "
            f"{alert.service}: {type(error).__name__}: {str(error)[:300]}. What to do: {hint}."
        )
        message = report.Message(report.escape(text), [report._section(report.escape(text))], loud=loud)
        posted = self._post(message, deadline)
        return Outcome("error", type(error).__name__, alert.incident_id, str(alert.service), posted=posted.ok)

    def _kept_changing(self, alert: Alert, target: str, conflicts: int, deadline: float) -> Outcome:
        """Every attempt of this delivery lost the etag race: report it and acknowledge.

        "Every attempt" is ``MAX_CONCURRENT_RETRIES``, or fewer when another one
        would not fit in the deadline: a conflict that lasts the whole deadline
        ends here too, not in a 500 that Pub/Sub would redeliver the same way.

        Someone is changing the service right now (a deploy, a person moving
        traffic). Answering 500 would have Pub/Sub redeliver until the dead
        letter with nobody told; fighting them is not the watchdog's job. So the
        last attempt reports, loudly, with the command to roll back by hand, and
        the delivery is acknowledged.
        """
        logs.error(
            f"{alert.service.service} kept changing ({conflicts} etag conflicts); no rollback",
            decision="error",
            reason="kept_changing",
            incident_id=alert.incident_id,
            service=str(alert.service),
        )
        text = (
            f"Rollback watchdog did not roll back {alert.service} for incident {alert.incident_id}: the service "
            f"changed under it {conflicts} time(s) in a row (etag conflicts; someone is deploying or moving "
            f"traffic), so it stopped trying for this incident. Traffic was left as it is. If it still fails, "
            f"roll back by hand: {_manual(alert, target)}"
        )
        message = report.Message(report.escape(text), [report._section(report.escape(text))], loud=True)
        posted = self._post(message, deadline)
        return Outcome("error", "kept_changing", alert.incident_id, str(alert.service), posted=posted.ok)

    def _post(self, message: report.Message, deadline: float, thread: str = ""):
        posted = self._notifier_factory(deadline).post(message, thread=thread)
        if not posted.ok:
            logs.warning(f"slack post failed: {posted.error}", decision="slack_failed")
        return posted

    def _related_lines(self, alert: Alert, decided: rules.Decision, deadline: float) -> list[str]:
        """Other services that made the same change: best effort, never in the way of the report."""
        if self._related is None or deadline - time.monotonic() < 5:
            return []
        try:
            return self._related(alert, decided, deadline)
        except Exception as error:  # noqa: BLE001 - extras never block the report
            logs.warning(f"blast-radius lookup failed: {error}", incident_id=alert.incident_id)
            return []

    def _log_decision(self, alert: Alert, decided: rules.Decision, started: float, **extra: Any) -> None:
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
            dry_run=self.config.dry_run,
            elapsed_ms=_ms(started),
            **extra,
        )


def _manual(alert: Alert, target: str = "") -> str:
    return report.rollback_command(alert, target or "REVISION")


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
