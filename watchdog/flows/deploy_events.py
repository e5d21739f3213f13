"""The deploy-event flow: read → judge (watchdog/core/sentinel.py) → claim → post → remember. A thin shell.

One read round trip (the service ∥ the first page of revisions), then the
revisions the verdict needs that the first page does not hold, read by name
(the serving one behind a hundred ``--no-traffic`` previews), and older pages
only while the promise (the alert path's decision) needs them. Then at most
one Slack post. Nothing here changes traffic, except through the alert path
when ``WATCHDOG_SENTINEL=hold`` holds a deploy.

One warning per deploy, across instances: copies of an entry reach several
instances at once. For a service the watchdog may change, the warning is
claimed in its ledger first (``claims``, an etag-guarded annotation update:
one delivery wins, the other reads the claim and is redelivered), then posted,
then remembered (``warned``). A claim older than the handling deadline
(``WATCHDOG_DEADLINE_SECONDS``, :attr:`DeployWatch.claim_lease`) belongs to a
delivery that died: the next one looks for its post by the message metadata
before posting (a top-level warning; a reply in a thread cannot be looked up
that way). A failed post gives the claim up, and Pub/Sub redelivers (500).
The deploy that moves traffic off the watchdog's remedy is marked on the
rollback's record in the same claim, so later deploys are not taken for it.

A service not in ``WATCHDOG_SERVICES`` is never read: the function may
``run.services.get`` only the watched services (terraform/iam.tf), and the sink
exports every Cloud Run write in the project, so a read would answer 403 on
every deploy of every other service. Its deploy is judged from the request
alone (the warning says the serving revision was not read), looked for in
Slack before it is posted, and remembered in this instance; a deploy of it
whose entry carries no request cannot be judged and is acknowledged quietly.

Copies of one deploy take the service's turn (flows/turns.py), so within an
instance each reads what the first remembered. Errors: a permanent one is
logged and acknowledged; a transient one, another delivery posting the
warning, or a hold still waiting for the revision to serve raises
:class:`TransientError` and Pub/Sub redelivers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from google.api_core import exceptions as api_exceptions

from watchdog.config import Config
from watchdog.core import deploys, ledger, sentinel
from watchdog.core.deploys import DeployEvent
from watchdog.core.intake import Alert, rfc3339
from watchdog.core.traffic import traffic_split
from watchdog.edges import logs
from watchdog.edges.cloudrun import CloudRun
from watchdog.flows.outcomes import PERMANENT, RETRY, InProgress, Outcome, TransientError
from watchdog.flows.reporting import Reporter, Told, remember
from watchdog.flows.turns import Turns

BY_NAME = 8  # revisions read by name at most per deploy event (what serves, the pin, the remembered baseline)


class HoldPending(Exception):
    """WATCHDOG_SENTINEL=hold: the risky deploy's revision does not serve yet; Pub/Sub redelivers to look again."""


class _Posted(Exception):
    """Another delivery posted this deploy's warning (found while claiming it)."""


class DeployWatch:
    def __init__(
        self,
        config: Config,
        cloud_run: CloudRun,
        reporter: Reporter,
        turns: Turns,
        hold: Callable[[Alert, float], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.cloud_run = cloud_run
        self._reporter = reporter
        self._turns = turns
        self._hold = hold  # the alert path: the same decision, update, ledger and card as an alert-driven rollback
        self._clock = clock
        self._warned = Told()  # deploys warned about, in this instance

    @property
    def claim_lease(self) -> float:
        """How long a claimed warning is another delivery's to post: its whole handling deadline."""
        return float(self.config.deadline_seconds)

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
        if event.from_service:
            read = deploys.with_service_template(event, service)
            if read is None:
                logs.info(
                    f"deploy of {event.service.service}: no request and no template to judge", reason="no_template"
                )
                return "nothing", "no_template", False
            event = read
        verdict = self._verdict(event, service, history, deadline)
        self._log(event, verdict, delivery_id, started)
        posted_ok = False
        if verdict.action != sentinel.NOTHING and not verdict.repeat and event.key not in self._warned:
            posted_ok = self._warn(event, verdict, service, deadline)
        elif verdict.releases and not verdict.repeat:
            self._mark_released(event, verdict, service, deadline)  # nothing to say, but later deploys must know
        if verdict.hold:
            return self._held(event, verdict, service, deadline, posted_ok)
        if verdict.action == sentinel.NOTHING:
            return "nothing", verdict.reason, False
        return ("warned" if verdict.action == sentinel.WARN else "noted"), verdict.reason, posted_ok

    def _verdict(self, event: DeployEvent, service: dict, history: Any, deadline: float) -> sentinel.DeployVerdict:
        """Judge on the revisions read so far and the ones it needs by name, reading older pages while the promise
        (the alert path's decision) needs them."""
        extra = self._by_name(event, service, history.loaded, deadline)
        memo: dict = {}  # revision pairs the decision compared, kept across pages
        while True:
            names = {r.get("name") for r in history.loaded}
            revisions = deploys.newest_first(history.loaded + [r for r in extra if r.get("name") not in names])
            verdict = sentinel.judge(
                event, service, revisions, self.config, self._clock(), complete=history.complete, memo=memo
            )
            if not verdict.need_more:
                return verdict
            history.read_more()

    def _by_name(self, event: DeployEvent, service: dict, loaded: list[dict], deadline: float) -> list[dict]:
        """The revisions the verdict needs that are not on the first page, read one by one (a deleted one is
        simply not there)."""
        found = []
        for name in sentinel.wanted(event, service, loaded)[:BY_NAME]:
            try:
                found.append(self.cloud_run.get_revision(event.service, name, deadline))
            except api_exceptions.NotFound:
                continue  # deleted since
            except (api_exceptions.Forbidden, api_exceptions.PermissionDenied) as error:
                # judged without it (the baseline falls back to the newest Ready revision before the deploy)
                # rather than losing the warning (terraform/iam.tf grants run.revisions.get)
                logs.warning(f"could not read revision {name}: {error}", service=str(event.service))
        return found

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
        verdict = replace(sentinel.judge(event, {}, [], self.config, self._clock()), unread=True)
        self._log(event, verdict, delivery_id, started)
        if verdict.action == sentinel.NOTHING:
            return "nothing", verdict.reason, False
        message = sentinel.render(event, verdict)
        posted = self._reporter.card(message, "", rfc3339(event.at) or self._clock(), deadline)  # found, else posted
        self._settle(event, posted)
        self._warned.add(event.key)
        return "warned", verdict.reason, posted.ok

    def _log(self, event: DeployEvent, verdict, delivery_id: str, started: float) -> None:
        promise = verdict.promise
        logs.info(
            f"deploy of {event.service.service}: {verdict.reason}: {verdict.detail}",
            decision=f"deploy_{verdict.action}",
            reason=verdict.reason,
            service=str(event.service),
            method=event.method,
            principal=event.principal,
            user_agent=event.user_agent,
            baseline_revision=verdict.baseline,
            new_revision=verdict.revision,
            route=verdict.route,
            promise=f"{promise.action}:{promise.reason}" if promise else "",
            target_revision=promise.target if promise else "",
            hold=verdict.hold,
            rules=[f.rule for f in verdict.findings if f.severity == "fail"],
            delivery_id=delivery_id,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _held(self, event: DeployEvent, verdict, service: dict, deadline: float, posted: bool):
        """Pin traffic back as soon as the deploy's revision serves: through the alert path, under its own incident."""
        revision = verdict.serves
        if revision and traffic_split(service).get(revision, 0) > 0 and self._hold is not None:
            alert = sentinel.hold_alert(event, revision, verdict.baseline, rfc3339(event.at) or self._clock())
            outcome = self._hold(alert, deadline)
            return "held", getattr(outcome, "reason", "held"), posted
        deployed = rfc3339(event.at)
        if deployed is not None and self._clock() - deployed > sentinel.HOLD_WAIT:
            logs.info(f"hold of {event.service}: the deploy never took traffic; nothing to hold", reason="hold_expired")
            return "nothing", "hold_expired", posted
        raise HoldPending(f"{event.service}: the deploy's revision does not serve yet ({revision or 'pending'})")

    def _warn(self, event: DeployEvent, verdict, service: dict, deadline: float) -> bool:
        """Claim, post, remember: one warning per deploy, whichever instance gets there first."""
        try:
            state = self._claim(event, verdict, service, deadline)
        except _Posted:
            self._warned.add(event.key)
            return False
        record = verdict.pinned  # a note, or the loud release of its pin, goes in the incident's thread
        in_thread = record is not None and (verdict.action == sentinel.NOTE or verdict.reason == "releases_pin")
        thread = record.thread if in_thread and record is not None else ""
        message = sentinel.render(event, verdict)
        if state == sentinel.STALE and not thread:  # the delivery that claimed it died: its post may be out
            posted = self._reporter.card(message, "", rfc3339(event.at) or self._clock(), deadline)
        else:
            posted = self._reporter.post(message, deadline, thread=thread, quiet=True)
        if not posted.ok and posted.retryable:
            self._give_up_claim(event, deadline)
        self._settle(event, posted)
        self._remember(event, service, deadline, verdict.baseline)
        return posted.ok

    def _claim(self, event: DeployEvent, verdict, service: dict, deadline: float) -> str:
        """Claim the warning in the ledger (etag-guarded; the deploy that releases the remedy marked with it).
        Returns the state it was in (FREE or STALE); raises InProgress while another delivery posts it, and
        _Posted when it is out. An unreadable ledger cannot be claimed: the warning is posted all the same."""
        states: list[str] = []
        now = self._clock()

        def claimed(annotations: dict | None) -> dict | None:
            memory = ledger.read(annotations)
            if not isinstance(memory, ledger.Ledger):
                states.append(sentinel.FREE)
                return None
            state = sentinel.posting(memory, event.key, now, self.claim_lease)
            if state == sentinel.POSTED:
                raise _Posted()
            if state == sentinel.CLAIMED:
                raise InProgress(f"another delivery is posting the warning for deploy {event.key}")
            states.append(state)
            written = ledger.with_claim(annotations, event.key, now, verdict.baseline)
            return (_released(written, event, verdict, now) or written) if written is not None else None

        self.cloud_run.reannotate(event.service, service, claimed, deadline)
        return states[-1] if states else sentinel.FREE

    def _mark_released(self, event: DeployEvent, verdict, service: dict, deadline: float) -> None:
        def marked(annotations: dict | None) -> dict | None:
            return _released(annotations, event, verdict, self._clock())

        remember(self.cloud_run, event.service, service, marked, deadline, "the deploy that released the pin")

    def _give_up_claim(self, event: DeployEvent, deadline: float) -> None:
        """A post that failed for now: give the claim up so that the redelivery posts at once."""

        def given_up(annotations: dict | None) -> dict | None:
            return ledger.without_claim(annotations, event.key)

        try:
            service = self.cloud_run.get_service(event.service, deadline)
        except Exception as error:  # noqa: BLE001 - the claim then runs out by itself (claim_lease)
            logs.warning(f"could not give up the deploy warning's claim: {error}", service=str(event.service))
            return
        remember(self.cloud_run, event.service, service, given_up, deadline, "the claim given up")

    def _settle(self, event: DeployEvent, posted) -> None:
        if posted.ok:
            return
        if posted.retryable:
            raise ConnectionError(f"deploy warning not posted yet: {posted.error}")
        logs.error(f"Slack refused the deploy warning for good: {posted.error}", service=str(event.service))

    def _remember(self, event: DeployEvent, service: dict, deadline: float, baseline: str) -> None:
        self._warned.add(event.key)

        def warned(annotations: dict | None) -> dict | None:
            return ledger.with_warned(annotations, event.key, baseline)

        try:
            fresh = self.cloud_run.get_service(event.service, deadline)  # the claim changed the etag
        except Exception:  # noqa: BLE001 - remember() tries with the first read and reads again on a conflict
            fresh = service
        remember(self.cloud_run, event.service, fresh, warned, deadline, "the deploy warning",
                 {"service": str(event.service)})  # fmt: skip


def _released(annotations: dict | None, event: DeployEvent, verdict, at: float) -> dict | None:
    """``annotations`` with the deploy that releases the watchdog's remedy marked on its rollback's record (later
    deploys are then not taken for it); None when it does not release it, or is marked already."""
    record = verdict.pinned
    if not verdict.releases or record is None:
        return None
    read = ledger.read(annotations)
    current = read.find(record.incident) if isinstance(read, ledger.Ledger) else None
    if current is None or any(e[0] == sentinel.RELEASED_EVENT and e[3] == event.key for e in current.events):
        return None
    row = (sentinel.RELEASED_EVENT, (event.principal or "unknown")[:120], round(at, 3), event.key)
    return ledger.updated(annotations, record.incident, events=(*current.events, row))
