"""The field revert after a pin: create → wait until Ready → move the pinned share. A thin shell.

The rules (which revision, which fields, which images, which traffic) are pure code in
:mod:`watchdog.core.field_revert`; this shell reads, writes and waits, in the order that keeps
every step safe to repeat:

1. read the digests Cloud Run resolved the failing revision's images to (v1 revision);
2. ``validate_only`` the update that creates the new revision at 0% behind a tag, then send it,
   etag-guarded, with the ledger record naming it (``revert``, ``pending``) in the same update:
   the revision and the record cannot come apart, and a redelivery finds the record instead of
   creating another revision (the name is fixed per incident as well);
3. wait for the revision's ``Ready`` condition while the delivery's deadline allows; the next
   verification ticks keep waiting (:meth:`FieldRevert.advance`), up to
   :data:`watchdog.core.field_revert.READY_SECONDS` after it was created;
4. once Ready: move the pinned share to it in a second etag-guarded update, every tag kept, and
   record ``serving``. Never Ready, or failed: record ``failed``; traffic stays pinned.

Nothing here deletes a revision. A failure of any step leaves the pin in place, which is safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from google.api_core import exceptions as api_exceptions

from watchdog.config import ServiceRef
from watchdog.core import field_revert, ledger, traffic
from watchdog.edges import logs
from watchdog.edges.cloudrun import CloudRun, ConcurrentChange, confirmed

POLL_START, POLL_MAX = 0.5, 3.0  # seconds between reads of the new revision
MOVE_SECONDS = 4.0  # of the deadline kept for moving traffic and telling on-call once it is Ready

CREATED, SERVING, PENDING, FAILED, NOT_MADE = "created", "serving", "pending", "failed", "not_made"


@dataclass(frozen=True)
class Progress:
    """Where a field revert stands after a step."""

    state: str  # SERVING, PENDING, FAILED or NOT_MADE
    revision: str = ""  # the new revision
    detail: str = ""  # one sentence for on-call
    images: tuple[tuple[str, str], ...] = ()  # (image as the failing revision names it, as pinned)
    reverted: tuple = ()  # field_revert.Plan.reverted: the fields set back
    released: bool = False  # the share follows LATEST again: the pin is released


class FieldRevert:
    def __init__(self, cloud_run: CloudRun, clock: Callable[[], float]) -> None:
        self.cloud_run = cloud_run
        self._clock = clock

    def start(
        self,
        ref: ServiceRef,
        incident: str,
        failing: dict,
        target: dict,
        deadline: float,
        event: tuple = (),
        *,
        wait: bool = True,
    ) -> Progress:
        """Steps 1–4 for the rollback of ``incident`` (already pinned to ``target``), as far as the deadline allows.

        ``event`` (action, user, at, action_ts): who asked for it from the card or the command line, written
        into the record with the revision (watchdog/core/actions.py). ``wait=False`` (the card's button)
        returns once the revision is created: the verification ticks move traffic to it."""
        service = self.cloud_run.get_service(ref, deadline)
        read = ledger.read(service.get("annotations"))
        record = read.find(incident) if isinstance(read, ledger.Ledger) else None
        if record is None:
            return Progress(NOT_MADE, detail="the rollback's record is gone from the ledger: the pin stays")
        if record.revert:
            return self.advance(ref, service, record, deadline)  # a redelivery: carry on where it stands
        failing_name = traffic.short_name(failing.get("name", ""))
        try:
            digests = self.cloud_run.image_digests(ref, failing_name, deadline)
        except api_exceptions.GoogleAPICallError as error:
            logs.warning(f"could not read the image digests of {failing_name}: {error}", service=str(ref))
            digests = {}
        plan = field_revert.plan(service, failing, target, digests, incident)
        if isinstance(plan, field_revert.Unplannable):
            return Progress(NOT_MADE, detail=plan.reason)
        pending = ledger.updated(
            service.get("annotations"),
            incident,
            revert=plan.name,
            revert_state=ledger.REVERT_PENDING,
            revert_at=round(self._clock(), 3),
            events=(*record.events, event) if event else record.events,
        )
        entries = field_revert.candidate_traffic(list(service.get("traffic") or []), plan.name)
        made = self._create(ref, plan, entries, pending or {}, service.get("etag", ""), deadline)
        if made is not None:
            return made
        logs.log(
            "NOTICE",
            f"field revert of {ref.service}: creating {plan.name}",
            decision="field_revert_created",
            incident_id=incident,
            service=str(ref),
            revision=plan.name,
            images=[pinned for _tag, pinned in plan.images],
        )
        if not wait:  # the card's button: Slack's 3 s; the verification ticks move traffic once it is Ready
            return Progress(PENDING, plan.name, f"{plan.name} is being created", plan.images, plan.reverted)
        progress = self._wait_and_move(ref, incident, plan.name, record.to_revision, deadline)
        return Progress(progress.state, plan.name, progress.detail, plan.images, plan.reverted, progress.released)

    def advance(self, ref: ServiceRef, service: dict, record: ledger.Record, deadline: float) -> Progress:
        """A field revert under way (a tick, or a redelivery): move traffic once Ready; give up after
        :data:`READY_SECONDS`."""
        if record.revert_state == ledger.REVERT_SERVING:
            return Progress(SERVING, record.revert, f"{record.revert} serves")
        if record.revert_state == ledger.REVERT_FAILED:
            return Progress(FAILED, record.revert, f"{record.revert} never became Ready: traffic stays pinned")
        return self._wait_and_move(ref, record.incident, record.revert, record.to_revision, deadline, record.revert_at)

    def _create(
        self, ref: ServiceRef, plan, entries: list[dict], annotations: dict, etag: str, deadline: float
    ) -> Progress | None:
        """Validate, then send the update that creates the revision; a Progress when it could not be made."""
        try:
            self.cloud_run.start_template_update(
                ref, plan.template, entries, annotations, etag, deadline, validate_only=True
            )
            self.cloud_run.start_template_update(ref, plan.template, entries, annotations, etag, deadline)
        except ConcurrentChange:
            return Progress(NOT_MADE, detail="the service changed while the field revert was prepared: the pin stays")
        except (api_exceptions.GoogleAPICallError, ValueError) as error:
            logs.error(f"field revert of {ref.service} refused: {error}", service=str(ref), revision=plan.name)
            return Progress(NOT_MADE, detail=f"Cloud Run refused the new revision ({_short(error)}): the pin stays")
        return None

    def _wait_and_move(
        self, ref: ServiceRef, incident: str, name: str, target: str, deadline: float, since: float | None = None
    ) -> Progress:
        delay = POLL_START
        while True:
            try:
                revision = self.cloud_run.get_revision(ref, name, deadline)
            except api_exceptions.NotFound:
                revision = {}
            state = _ready_state(revision)
            if state == "ready":
                return self._move(ref, incident, name, target, deadline)
            expired = since is not None and self._clock() - since > field_revert.READY_SECONDS
            if state == "failed" or expired:
                why = _condition_message(revision) or f"not Ready {field_revert.READY_SECONDS / 60:.0f} min after"
                self._record(ref, incident, ledger.REVERT_FAILED, deadline)
                return Progress(FAILED, name, f"{name} never became Ready ({why}): traffic stays pinned on {target}")
            if deadline - time.monotonic() < delay + MOVE_SECONDS:
                return Progress(PENDING, name, f"{name} is not Ready yet; the next verification tick looks again")
            time.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    def _move(self, ref: ServiceRef, incident: str, name: str, target: str, deadline: float) -> Progress:
        service = self.cloud_run.get_service(ref, deadline)
        read = ledger.read(service.get("annotations"))
        record = read.find(incident) if isinstance(read, ledger.Ledger) else None
        if record is None or record.revert_state != ledger.REVERT_PENDING:
            return Progress(SERVING if record and record.revert_state == ledger.REVERT_SERVING else NOT_MADE, name)
        if ledger.paused(service.get("annotations")):  # hands off: the move waits for resume
            return Progress(PENDING, name, f"{name} is Ready; the watchdog is paused, so traffic stays on {target} "
                            "until it is resumed")  # fmt: skip
        split = {k: v for k, v in traffic.traffic_split(service).items() if v}
        if split.get(target, 0) == 0:
            self._record(ref, incident, ledger.REVERT_FAILED, deadline, service)
            return Progress(FAILED, name, f"traffic was moved off {target} since the rollback: left as it is")
        release = field_revert.releases(record.before, service, name)
        entries = field_revert.moved_traffic(list(service.get("traffic") or []), target, name, release=release)
        after = tuple(
            (traffic.short_name(e.get("revision", "")) or name, e["percent"]) for e in entries if e.get("percent")
        )
        annotations = ledger.updated(
            service.get("annotations"), incident, revert_state=ledger.REVERT_SERVING, after=after
        )
        operation = self.cloud_run.start_pin(ref, entries, service.get("etag", ""), annotations or {}, deadline)
        result = self.cloud_run.await_pin(ref, operation, deadline)
        moved = confirmed(result, dict(after))
        logs.log(
            "NOTICE",
            f"field revert of {ref.service}: {name} serves {dict(after).get(name, 0)}%",
            decision="field_reverted",
            verified=moved,
            incident_id=incident,
            service=str(ref),
            revision=name,
        )
        detail = f"{name} serves {dict(after).get(name, 0)}%" + ("" if moved else " (not yet confirmed)")
        return Progress(SERVING, name, detail, released=release)

    def _record(self, ref: ServiceRef, incident: str, state: str, deadline: float, service: dict | None = None) -> None:
        def change(annotations: dict | None) -> dict | None:
            read = ledger.read(annotations)
            record = read.find(incident) if isinstance(read, ledger.Ledger) else None
            if record is None or record.revert_state == state:
                return None
            return ledger.updated(annotations, incident, revert_state=state)

        self.cloud_run.reannotate(ref, service or self.cloud_run.get_service(ref, deadline), change, deadline)


def _ready_state(revision: dict) -> str:
    """ "ready", "failed" or "waiting", from the revision's ``Ready`` condition."""
    for condition in revision.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            state = condition.get("state")
            if state == "CONDITION_SUCCEEDED" and not revision.get("deleteTime"):
                return "ready"
            if state == "CONDITION_FAILED":
                return "failed"
    return "waiting"


def _condition_message(revision: dict) -> str:
    for condition in revision.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready" and condition.get("message"):
            return str(condition["message"])[:200]
    return ""


def _short(error: Exception) -> str:
    return str(getattr(error, "message", "") or error)[:200]
