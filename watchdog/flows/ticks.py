"""The verification tick: read → verify (watchdog/core/verification.py) → record → post → record. A thin shell.

Cloud Scheduler publishes a tick to the watchdog's topic every minute (terraform/verify.tf). A tick
looks only at services with a rollback under verification, and knows them without listing: an
in-process registry of the services this instance rolled back, plus, on a cold start, the fully
qualified ``PROJECT/REGION/SERVICE`` entries of ``WATCHDOG_SERVICES`` (read once, then dropped when
they hold nothing to verify). ``SERVICE``, ``REGION/SERVICE`` and ``*`` entries cannot be located
without a ListServices call per project and region, which a tick every minute should not cost:
such services are verified by the instance that rolled them back, or by any instance once an alert
for them has been seen (terraform writes fully qualified entries). With nothing registered a tick
makes no Cloud Run and no Monitoring call.

A verdict is posted once, although ticks arrive at least once and overlap, in this order:

1. **record** the verdict in the ledger record (an etag-guarded annotation update). Of two
   overlapping ticks only one update succeeds; the other reads again, finds the verdict, and stops;
2. **post** it in the rollback report's thread (bot mode) or as a new message (webhook);
3. **record** that it was posted (``told_at``).

A crash after 1 cannot lose the verdict: a later tick finds it recorded but not told, and posts it
once the writer's whole deadline has passed (it might still have been posting). A crash between 2
and 3 posts it twice at most, as with the rollback report. Posting first would let two overlapping
ticks both post. Transient Cloud Run or Monitoring errors never fail the tick (the next one, a
minute later, tries again): the tick is acknowledged, and nothing is called recovered without
evidence.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from google.api_core import exceptions as api_exceptions

from watchdog.config import ServiceRef
from watchdog.core import ledger
from watchdog.core import verification as verify
from watchdog.edges import logs
from watchdog.edges.cloudrun import ConcurrentChange

MONITORING_TIMEOUT = 5.0  # seconds per list_time_series; a slow Monitoring waits for the next tick

_guard = threading.Lock()


def ticks(watchdog: Any) -> Ticks:
    """The watchdog instance's tick shell, built on first use (a cold start reads the scope once)."""
    with _guard:
        shell = getattr(watchdog, "_tick_shell", None)
        if shell is None:
            shell = Ticks(watchdog)
            watchdog._tick_shell = shell
        return shell


def after_alert(watchdog: Any, alert: Any, outcome: Any, deadline: float) -> None:
    """After an alert: register a rollback for verification; record an alert on a restored revision."""
    try:
        shell = ticks(watchdog)
        shell.watch(alert.service)
        if outcome.reason == "rollback_did_not_fix" and outcome.decision is not None:
            shell.alert_fired_again(alert, outcome.decision.failing, deadline)
    except Exception as error:  # noqa: BLE001 - the alert was handled; verification is a follow-up
        logs.warning(f"could not record the alert for verification: {error}", incident_id=alert.incident_id)


class Ticks:
    def __init__(self, watchdog: Any) -> None:
        self._watchdog = watchdog
        self.config = watchdog.config
        self.cloud_run = watchdog.cloud_run
        self._lock = threading.Lock()
        self._watched: set[ServiceRef] = {
            ServiceRef(*entry) for entry in self.config.services.entries if len(entry) == 3
        }
        self._metrics: Any = None

    def watch(self, ref: ServiceRef) -> None:
        with self._lock:
            self._watched.add(ref)

    def watched(self) -> list[ServiceRef]:
        with self._lock:
            return sorted(self._watched, key=str)

    def _forget(self, ref: ServiceRef) -> None:
        with self._lock:
            self._watched.discard(ref)

    # --- the tick ------------------------------------------------------------

    def handle(self, tick: Any, deadline: float) -> Any:
        from watchdog.flows.alerts import Outcome

        refs = self.watched()
        if not refs:
            logs.info("tick: nothing to verify", decision="tick", reason="nothing_to_verify")
            return Outcome("nothing", "nothing_to_verify")
        verdicts = []
        for ref in refs:
            if deadline - time.monotonic() < 2:
                break  # the next tick continues
            lock = self._watchdog._service_lock(ref)
            if not lock.acquire(blocking=False):
                continue  # an alert for it is being handled: it goes first
            try:
                verdicts += self._service(ref, deadline)
            except (api_exceptions.NotFound, api_exceptions.PermissionDenied, api_exceptions.Forbidden) as error:
                logs.error(f"tick: cannot read {ref}, not verifying it here: {error}", service=str(ref))
                self._forget(ref)
            except Exception as error:  # noqa: BLE001 - transient or not, the next tick tries again
                logs.warning(f"tick: {ref} not verified this time: {type(error).__name__}: {error}", service=str(ref))
            finally:
                lock.release()
        final = [v for v in verdicts if v.final]
        return Outcome("verified" if final else "nothing", ",".join(v.reason for v in verdicts) or "none")

    def _service(self, ref: ServiceRef, deadline: float) -> list[verify.Verdict]:
        service = self.cloud_run.get_service(ref, deadline)
        read = ledger.read(service.get("annotations"))
        if isinstance(read, ledger.Unreadable):
            self._forget(ref)  # the alert path reports it loudly; nothing here writes over it
            return []
        now = self._watchdog._clock()
        untold = False  # a verdict recorded but not posted keeps the service watched
        for record in read.records:
            if verify.due_to_tell(record, now, self.config.deadline_seconds):
                untold |= not self._tell(ref, record, None, deadline)  # recorded earlier, never posted
            elif record.state and record.told_at is None:
                untold = True  # its writer may still be posting it
        verdicts = []
        for record in [r for r in read.records if verify.under_verification(r, now)]:
            verdict = self._verify(ref, service, record, now, deadline)
            verdicts.append(verdict)
            if verdict.final:
                untold |= not self._settle(ref, record, verdict, now, deadline)
        if not untold and not any(v.action == verify.WAIT for v in verdicts):
            self._forget(ref)
        return verdicts

    def _verify(
        self, ref: ServiceRef, service: dict, record: ledger.Record, now: float, deadline: float
    ) -> verify.Verdict:
        try:
            revision = self.cloud_run.get_revision(ref, record.to_revision, deadline)
        except api_exceptions.NotFound:
            revision = None
        found = self._evidence(ref, record, now, deadline)
        verdict = verify.verify(record, service, revision, found, now, self.config.verify_minutes * 60)
        logs.info(
            f"verification of {ref.service} ({record.incident}): {verdict.reason}: {verdict.detail}",
            decision=f"verify_{verdict.action}",
            reason=verdict.reason,
            incident_id=record.incident,
            service=str(ref),
            to_revision=record.to_revision,
            evidence=list(verdict.evidence),
        )
        return verdict

    def _evidence(self, ref: ServiceRef, record: ledger.Record, now: float, deadline: float) -> verify.Evidence | None:
        """Monitoring's evidence for the restored revision; None when it cannot be read (never "recovered")."""
        queries = verify.plan(ref, record, now)
        try:
            answers = {q.name: self._read(q, deadline) for q in queries}
        except Exception as error:  # noqa: BLE001 - unavailable, denied, slow: no evidence this tick
            logs.warning(
                f"tick: Monitoring could not be read for {ref.service}: {type(error).__name__}: {error}",
                service=str(ref),
            )
            return None
        return verify.evidence(record, now, answers)

    def _read(self, query: verify.Query, deadline: float) -> list[dict]:
        from google.cloud import monitoring_v3
        from google.protobuf import json_format

        from watchdog.edges.monitoring import client

        if self.config.cloud_run_endpoint.startswith("http://") and not self.config.monitoring_endpoint:
            raise ConnectionError("a local Cloud Run stand-in and no MONITORING_API_ENDPOINT: not reading Monitoring")
        if self._metrics is None:
            self._metrics = client(monitoring_v3.MetricServiceClient, self.config.monitoring_endpoint)
        remaining = deadline - time.monotonic()
        if remaining < 1:
            raise TimeoutError("no time left for Monitoring")
        aggregation = {
            "alignment_period": {"seconds": verify.ALIGNMENT},
            "per_series_aligner": monitoring_v3.Aggregation.Aligner.ALIGN_SUM,
            "cross_series_reducer": monitoring_v3.Aggregation.Reducer.REDUCE_SUM,
            "group_by_fields": list(query.group_by),
        }
        pager = self._metrics.list_time_series(
            request={
                "name": f"projects/{query.project}",
                "filter": query.filter,
                "interval": {"start_time": _stamp(query.start), "end_time": _stamp(query.end)},
                "aggregation": aggregation,
                "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
            },
            retry=None,  # the next tick is the retry
            timeout=max(0.5, min(MONITORING_TIMEOUT, remaining - 0.5)),
        )
        return [json_format.MessageToDict(type(s).pb(s)) for s in pager]

    # --- recording and posting ----------------------------------------------

    def alert_fired_again(self, alert: Any, revision: str, deadline: float) -> None:
        """The decision reported ``rollback_did_not_fix`` loudly: record the escalation on the rollback to it.

        Recorded as already told: the decision's own report is the escalation (``<!here>``, no further
        rollback); a second ``<!here>`` for the same alert would page on-call twice.
        """
        service = self.cloud_run.get_service(alert.service, deadline)
        read = ledger.read(service.get("annotations"))
        if isinstance(read, ledger.Unreadable):
            return
        record = read.rolled_to.get(revision)
        if record is None or record.state:
            return
        now = round(self._watchdog._clock(), 3)

        def escalate(found: ledger.Record) -> ledger.Record | None:
            escalated = verify.alert_fired_again(found, now)
            return None if escalated is None else replace(escalated, told_at=now)

        if self._update(alert.service, record.incident, escalate, deadline, service) is not None:
            logs.error(
                f"{alert.service.service}: escalated (alert_fired_again): incident {alert.incident_id} "
                f"opened for {revision}, the revision it was rolled back to",
                decision="escalated",
                reason="alert_fired_again",
                incident_id=record.incident,
                service=str(alert.service),
            )

    def _settle(
        self,
        ref: ServiceRef,
        record: ledger.Record,
        verdict: verify.Verdict,
        now: float,
        deadline: float,
        service: dict | None = None,
    ) -> bool:
        """Record, post, record that it was posted: see the module docstring for why in this order.

        True when nothing is left to post (posted, or another delivery recorded a verdict first)."""
        claimed = self._update(
            ref, record.incident, lambda r: None if r.state else verify.decided(r, verdict, now), deadline, service
        )
        if claimed is None:
            return True  # another delivery recorded a verdict first: it posts
        return self._tell(ref, claimed, verdict, deadline)

    def _tell(self, ref: ServiceRef, record: ledger.Record, verdict: verify.Verdict | None, deadline: float) -> bool:
        """Post a recorded verdict and record that it was; False when it must be posted again later."""
        message = verify.render(ref, record, verdict, self._watchdog._clock())
        posted = self._watchdog._notifier_factory(deadline).post(message, thread=record.thread)
        if not posted.ok and posted.retryable:
            logs.warning(
                f"verdict for {ref.service} not posted yet, a later tick retries: {posted.error}",
                service=str(ref),
                incident_id=record.incident,
            )
            return False
        if not posted.ok:
            logs.error(f"Slack refused the verdict for good: {posted.error}: {message.text}", service=str(ref))
        if posted.ok:
            self._restate_card(ref, record, deadline)
        told_at = round(self._watchdog._clock(), 3)
        self._update(ref, record.incident, lambda r: None if r.told_at else _told(r, told_at), deadline)
        logs.log(
            "ERROR" if record.state == verify.ESCALATED else "NOTICE",
            f"{ref.service}: {record.state} ({record.why})",
            decision=record.state,
            reason=record.why,
            incident_id=record.incident,
            service=str(ref),
            posted=posted.ok,
            alert_to_rollback_s=round(record.at - record.alert_at, 1) if record.alert_at else None,
            rollback_to_verdict_s=round((record.verdict_at or told_at) - record.at, 1),
        )
        return True

    def _restate_card(self, ref: ServiceRef, record: ledger.Record, deadline: float) -> None:
        """The card itself moves to recovered / not recovered (the thread reply above is what pages)."""
        if record.state not in (verify.RECOVERED, verify.ESCALATED) or not record.thread:
            return
        from watchdog.core import decision as rules
        from watchdog.core import report, traffic
        from watchdog.core.intake import Alert

        try:
            service, history = self.cloud_run.read(ref, deadline)
            decided = rules.rebuilt(record, history.loaded, self._watchdog.config, traffic.traffic_split(service))
            alert = Alert(record.incident, "open", ref, record.from_revision, started_at=record.alert_at)
            card = report.render(alert, decided, report.Action(record.state), buttons=self._watchdog._buttons)
            updated = self._watchdog._notifier_factory(deadline).update(card, record.thread)
            if not updated.ok:
                logs.warning(f"could not update the card: {updated.error}", service=str(ref))
        except Exception as error:  # noqa: BLE001 - the verdict is posted; the card's headline is a courtesy
            logs.warning(f"could not update the card: {type(error).__name__}: {error}", service=str(ref))

    def _update(
        self, ref: ServiceRef, incident: str, change: Any, deadline: float, service: dict | None = None
    ) -> ledger.Record | None:
        """Apply ``change`` to the incident's record with the service's etag; re-read on a conflict.

        Returns the record written, or None when ``change`` declined (the record already changed).
        """
        for attempt in range(3):
            if service is None or attempt:
                service = self.cloud_run.get_service(ref, deadline)
            read = ledger.read(service.get("annotations"))
            record = read.find(incident) if isinstance(read, ledger.Ledger) else None
            new = change(record) if record is not None else None
            if new is None:
                return None
            try:
                self.cloud_run.annotate(
                    ref, ledger.with_record(service.get("annotations"), new), service.get("etag", ""), deadline
                )
                return new
            except ConcurrentChange:
                continue
        raise ConcurrentChange(f"{ref} kept changing while recording the verdict")


def _told(record: ledger.Record, at: float) -> ledger.Record:
    return replace(record, told_at=at)


def _stamp(epoch: float) -> dict:
    return {"seconds": int(epoch), "nanos": int((epoch % 1) * 1e9)}
