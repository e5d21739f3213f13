"""The verification tick: read → verify (watchdog/core/verification.py) → tell (flows/verdicts.py). A thin shell.

Cloud Scheduler publishes a tick to the watchdog's events topic every minute (terraform/verify.tf),
which terraform delivers to the events function, not to the alert function that rolls back: so the
fully qualified ``PROJECT/REGION/SERVICE`` entries of ``WATCHDOG_SERVICES`` (terraform writes them so)
are read on every tick, one GetService each, and only a rollback under verification in a service's
ledger costs more (its revision, and Monitoring). Services this instance rolled back are added to
them, and dropped once they hold nothing to verify. ``SERVICE``, ``REGION/SERVICE`` and ``*``
entries cannot be located without a ListServices call per project and region, which a tick every
minute should not cost: such services are verified by the instance that rolled them back, or by any
instance once an alert for them has been seen. With nothing registered a tick makes no Cloud Run and
no Monitoring call.

A verdict is posted once, although ticks arrive at least once and overlap: it is recorded
first, then posted, then recorded as posted (flows/verdicts.py says why in that order); one that
Slack did not take is posted by a later tick, and keeps its service watched until it is. The
``no_traffic`` note is told the same way. Every message is written from the traffic read at the
start of the tick. An alert for the service goes first: a tick skips a service another delivery
is handling. Transient Cloud Run or Monitoring errors never fail the tick (the next one, a minute
later, tries again): the tick is acknowledged, and nothing is called recovered without evidence. A
Monitoring denial (403) is a verdict: "not verified", told once.
"""

from __future__ import annotations

import time
from typing import Any

from google.api_core import exceptions as api_exceptions

from watchdog.config import ServiceRef
from watchdog.core import ledger
from watchdog.core import verification as verify
from watchdog.core.intake import Tick
from watchdog.core.traffic import traffic_split
from watchdog.core.vocabulary import Result
from watchdog.edges import logs
from watchdog.flows.deps import Deps
from watchdog.flows.outcomes import Outcome
from watchdog.flows.verdicts import Verdicts

MONITORING_TIMEOUT = 5.0  # seconds per list_time_series; a slow Monitoring waits for the next tick


class Ticks:
    def __init__(self, deps: Deps) -> None:
        self.config = deps.config
        self.cloud_run = deps.cloud_run
        self._turns = deps.turns
        self._clock = deps.clock
        self._watched = deps.watched  # registered by the alert door (flows/alerts.py), and the configured services
        self._verdicts = Verdicts(deps)
        self._series: Any = None  # Monitoring, on the first evidence read

    def _forget(self, ref: ServiceRef) -> None:
        self._watched.forget(ref)

    def handle(self, tick: Tick, deadline: float) -> Outcome:
        refs = self._watched.all()
        if not refs:
            logs.info("tick: nothing to verify", decision="tick", reason="nothing_to_verify")
            return Outcome(Result.NOTHING, "nothing_to_verify")
        verdicts = []
        for ref in refs:
            if deadline - time.monotonic() < 2:
                break  # the next tick continues
            with self._turns.turn_if_free(ref) as mine:
                if not mine:
                    continue  # an alert for it is being handled: it goes first
                try:
                    verdicts += self._service(ref, deadline)
                except (api_exceptions.NotFound, api_exceptions.PermissionDenied, api_exceptions.Forbidden) as error:
                    logs.error(f"tick: cannot read {ref}, not verifying it here: {error}", service=str(ref))
                    self._forget(ref)
                except Exception as error:  # noqa: BLE001 - transient or not, the next tick tries again
                    logs.warning(
                        f"tick: {ref} not verified this time: {type(error).__name__}: {error}", service=str(ref)
                    )
        final = [v for v in verdicts if v.final]
        return Outcome(Result.VERIFIED if final else Result.NOTHING, ",".join(v.reason for v in verdicts) or "none")

    def _service(self, ref: ServiceRef, deadline: float) -> list[verify.Verdict]:
        service = self.cloud_run.get_service(ref, deadline)
        read = ledger.read(service.get("annotations"))
        if isinstance(read, ledger.Unreadable):
            self._forget(ref)  # the alert path reports it loudly; nothing here writes over it
            return []
        now = self._clock()
        pending = [r for r in read.records if r.revert and r.revert_state == ledger.REVERT_PENDING]
        for record in pending:  # a field revert still waiting for its revision (flows/field_revert.py)
            self._field_revert(ref, service, record, deadline)
        if pending:
            return []  # verification resumes on the next tick, on the revision that then serves
        serving = traffic_split(service)  # read first: every message says what serves now
        claim = self.config.deadline_seconds
        untold = False  # something recorded but not posted keeps the service watched
        for record in read.records:
            if verify.due_to_tell(record, now, claim):
                untold |= not self._verdicts.tell(ref, record, None, deadline, serving)  # recorded, never posted
            elif verify.never_told(record, now):
                logs.error(
                    f"{ref.service}: the {record.state} verdict of incident {record.incident} was never posted "
                    "to Slack in a day of retries; no further attempts",
                    decision="verdict_lost",
                    incident_id=record.incident,
                    service=str(ref),
                )
            elif record.state and record.told_at is None:
                untold = True  # its writer may still be posting it
            if verify.note_due(record, now, claim):
                untold |= not self._verdicts.tell_note(ref, record, None, deadline, serving)
        verdicts = []
        for record in [r for r in read.records if verify.under_verification(r, now)]:
            verdict = self._verify(ref, service, record, now, deadline)
            verdicts.append(verdict)
            if verdict.final:
                untold |= not self._verdicts.settle(ref, record, verdict, now, deadline, serving)
            elif verdict.note and record.note != verdict.reason:
                untold |= not self._verdicts.note(ref, record, verdict, now, deadline, serving)
        if not untold and not any(v.action == verify.WAIT for v in verdicts):
            self._forget(ref)
        return verdicts

    def _field_revert(self, ref: ServiceRef, service: dict, record: ledger.Record, deadline: float) -> None:
        """Move traffic to a field-revert revision once it is Ready; tell on-call what became of it."""
        from watchdog.flows.field_revert import PENDING, FieldRevert

        progress = FieldRevert(self.cloud_run, self._clock).advance(ref, service, record, deadline)
        if progress.state != PENDING:
            self._verdicts.tell_revert(ref, record, progress, deadline)

    def _verify(
        self, ref: ServiceRef, service: dict, record: ledger.Record, now: float, deadline: float
    ) -> verify.Verdict:
        try:
            revision = self.cloud_run.get_revision(ref, record.restored, deadline)
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
            to_revision=record.restored,
            evidence=list(verdict.evidence),
        )
        return verdict

    def _evidence(
        self, ref: ServiceRef, record: ledger.Record, now: float, deadline: float
    ) -> verify.Evidence | verify.NoEvidence:
        """Monitoring's evidence for the restored revision, or why there is none (never "recovered" without it).

        A denial (403) or a refused query (400, 404) cannot get better by retrying: the verdict says so once
        (its ERROR line is the verdict's own, flows/verdicts.py). Anything else waits for the next tick."""
        queries = verify.plan(ref, record, now)
        try:
            answers = {q.name: self._read(q, deadline) for q in queries}
        except api_exceptions.Forbidden as error:  # PERMISSION_DENIED: IAM, not luck
            return verify.NoEvidence("monitoring_denied", f"{type(error).__name__}: {error}"[:400])
        except (api_exceptions.BadRequest, api_exceptions.NotFound) as error:
            return verify.NoEvidence("monitoring_refused", f"{type(error).__name__}: {error}"[:400])
        except Exception as error:  # noqa: BLE001 - unavailable, slow, throttled: no evidence this tick
            logs.warning(
                f"tick: Monitoring could not be read for {ref.service}: {type(error).__name__}: {error}",
                service=str(ref),
            )
            return verify.NoEvidence("monitoring_unavailable", f"{type(error).__name__}: {error}"[:400])
        return verify.evidence(record, now, answers)

    def _read(self, query: verify.Query, deadline: float) -> list[dict]:
        if self.config.cloud_run_endpoint.startswith("http://") and not self.config.monitoring_endpoint:
            raise ConnectionError("a local Cloud Run stand-in and no MONITORING_API_ENDPOINT: not reading Monitoring")
        if self._series is None:
            from watchdog.edges.monitoring import TimeSeries  # not on an alert's path

            self._series = TimeSeries(self.config.monitoring_endpoint)
        remaining = deadline - time.monotonic()
        if remaining < 1:
            raise TimeoutError("no time left for Monitoring")
        return self._series.read(query, verify.ALIGNMENT, timeout=max(0.5, min(MONITORING_TIMEOUT, remaining - 0.5)))
