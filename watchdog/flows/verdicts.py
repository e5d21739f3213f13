"""A verification verdict (or its one interim note), told once: record → post → record that it was posted.

A thin shell. Ticks arrive at least once and overlap, so a verdict is told in this order:

1. **record** the verdict in the ledger record (an etag-guarded annotation update). Of two
   overlapping ticks only one update succeeds; the other reads again, finds the verdict, and stops.
   The one that recorded it writes the verdict's log line (ERROR for not recovered / not verified):
   one line per rollback, whichever tick or instance decided;
2. **post** it in the rollback report's thread (bot mode) or as a new message (webhook), and move
   the card itself to recovered / not recovered;
3. **record** that it was posted (``told_at``).

A crash after 1, or Slack refusing the post for any reason (retryable or not), cannot lose the
verdict: it stays recorded but not told, and a later tick posts it once the writer's whole deadline
has passed (it might still have been posting), for a day (verification.due_to_tell). A crash between
2 and 3 posts it twice at most, as with the rollback report. Posting first would let two overlapping
ticks both post. The ``no_traffic`` note is told the same way (``note``, ``note_at``, ``note_told_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from watchdog.config import ServiceRef
from watchdog.core import decision as rules
from watchdog.core import ledger, report, traffic, verdict_message
from watchdog.core import verification as verify
from watchdog.core.intake import Alert
from watchdog.edges import logs
from watchdog.edges.cloudrun import ConcurrentChange
from watchdog.flows.deps import Deps
from watchdog.flows.reporting import restated

LOUD = (verify.ESCALATED, verify.UNVERIFIED)  # logged at ERROR: on-call must act


class Verdicts:
    def __init__(self, deps: Deps) -> None:
        self.config = deps.config
        self.cloud_run = deps.cloud_run
        self._reporter = deps.reporter
        self._clock = deps.clock

    def settle(
        self,
        ref: ServiceRef,
        record: ledger.Record,
        verdict: verify.Verdict,
        now: float,
        deadline: float,
        serving: Mapping[str, int] | None = None,
    ) -> bool:
        """Record, post, record that it was posted: see the module docstring for why in this order.

        True when nothing is left to post (posted, or another delivery recorded a verdict first)."""
        claimed = self._update(
            ref, record.incident, lambda r: None if r.state else verify.decided(r, verdict, now), deadline
        )
        if claimed is None:
            return True  # another delivery recorded a verdict first: it posts
        logs.log(
            "ERROR" if claimed.state in LOUD else "NOTICE",
            f"{ref.service}: {claimed.state} ({claimed.why}): {verdict.detail}",
            decision=claimed.state,
            reason=claimed.why,
            incident_id=claimed.incident,
            service=str(ref),
            to_revision=claimed.restored,
            alert_to_rollback_s=round(claimed.at - claimed.alert_at, 1) if claimed.alert_at else None,
            rollback_to_verdict_s=round((claimed.verdict_at or now) - claimed.at, 1),
        )
        return self.tell(ref, claimed, verdict, deadline, serving)

    def tell(
        self,
        ref: ServiceRef,
        record: ledger.Record,
        verdict: verify.Verdict | None,
        deadline: float,
        serving: Mapping[str, int] | None = None,
    ) -> bool:
        """Post a recorded verdict and record that it was; False when it must be posted again later."""
        message = verdict_message.render(ref, record, verdict, self._clock(), serving, self.cloud_run.identity())
        if not self._post(ref, record, message, record.verdict_at, deadline):
            return False
        self._restate_card(ref, record, deadline, verdict.detail if verdict is not None else "")
        told_at = round(self._clock(), 3)
        self._update(ref, record.incident, lambda r: None if r.told_at else replace(r, told_at=told_at), deadline)
        logs.info(f"{ref.service}: {record.state} told", decision="verdict_told", incident_id=record.incident)
        return True

    def note(
        self,
        ref: ServiceRef,
        record: ledger.Record,
        verdict: verify.Verdict,
        now: float,
        deadline: float,
        serving: Mapping[str, int] | None = None,
    ) -> bool:
        """The interim note, told once like a verdict; True when nothing is left to post."""
        claimed = self._update(ref, record.incident, lambda r: verify.noted(r, verdict, now), deadline)
        if claimed is None:
            return True  # told already, or being told by another delivery
        logs.info(
            f"{ref.service}: not verified yet ({verdict.reason}): {verdict.detail}",
            decision="verify_note",
            reason=verdict.reason,
            incident_id=record.incident,
            service=str(ref),
        )
        return self.tell_note(ref, claimed, verdict, deadline, serving)

    def tell_note(
        self,
        ref: ServiceRef,
        record: ledger.Record,
        verdict: verify.Verdict | None,
        deadline: float,
        serving: Mapping[str, int] | None = None,
    ) -> bool:
        message = verdict_message.render_note(ref, record, verdict, self._clock(), serving)
        if not self._post(ref, record, message, record.note_at, deadline):
            return False
        told_at = round(self._clock(), 3)

        def told(found: ledger.Record) -> ledger.Record | None:
            return None if found.note_told_at or found.note != record.note else replace(found, note_told_at=told_at)

        self._update(ref, record.incident, told, deadline)
        return True

    def _post(
        self, ref: ServiceRef, record: ledger.Record, message: report.Message, since: Any, deadline: float
    ) -> bool:
        """Post in the report's thread; a refusal is logged (ERROR once, by the writer; then WARNING) and retried."""
        posted = self._reporter.post(message, deadline, thread=record.thread, quiet=True)
        if posted.ok:
            return True
        first = since is None or self._clock() - since < self.config.deadline_seconds
        logs.log(
            "ERROR" if first and not posted.retryable else "WARNING",
            f"Slack did not take the message for {ref.service}, a later tick posts it: {posted.error}: {message.text}",
            decision="verdict_not_posted",
            service=str(ref),
            incident_id=record.incident,
        )
        return False

    def alert_fired_again(self, alert: Alert, revision: str, deadline: float) -> None:
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
        now = round(self._clock(), 3)

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

    def tell_revert(self, ref: ServiceRef, record: ledger.Record, progress, deadline: float) -> None:
        """A field revert finished on a tick: the card shows what now is (rendered again from the ledger, as read);
        a failure also pages in the thread (an edit of the card notifies nobody)."""
        from watchdog.flows.field_revert import FAILED

        try:
            service = self.cloud_run.get_service(ref, deadline)
            read = ledger.read(service.get("annotations"))
            now = read.find(record.incident) if isinstance(read, ledger.Ledger) else None
            if now is not None and now.thread:
                card = restated(self.cloud_run, self.config, ref, now, service, deadline,
                                buttons=self._reporter.buttons)  # fmt: skip
                self._reporter.update(card, now.thread, deadline)
            if progress.state == FAILED:
                alert, decided = self._restated(ref, record, deadline)
                self._reporter.post(report.render_revert_failed(alert, decided, progress.detail), deadline,
                                    thread=record.thread)  # fmt: skip
        except Exception as error:  # noqa: BLE001 - the ledger holds the state; the card is a courtesy
            logs.warning(f"could not update the card after the field revert: {error}", service=str(ref))

    def _restated(self, ref: ServiceRef, record: ledger.Record, deadline: float) -> tuple[Alert, rules.Decision]:
        """The alert and decision of a rollback already made, rebuilt from its record and the revisions."""
        service, history = self.cloud_run.read(ref, deadline)
        decided = rules.rebuilt(record, history.loaded, self.config, traffic.traffic_split(service))
        alert = Alert(record.incident, "open", ref, record.from_revision, policy_name=record.policy,
                      started_at=record.alert_at)  # fmt: skip
        return alert, decided

    def _restate_card(self, ref: ServiceRef, record: ledger.Record, deadline: float, verdict: str = "") -> None:
        """The card itself shows the verdict (the thread reply above is what pages), rendered from the ledger."""
        if record.state not in (verify.RECOVERED, verify.ESCALATED) or not record.thread:
            return
        try:
            service = self.cloud_run.get_service(ref, deadline)
            card = restated(self.cloud_run, self.config, ref, record, service, deadline,
                            buttons=self._reporter.buttons, verdict=verdict)  # fmt: skip
            updated = self._reporter.update(card, record.thread, deadline)
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
