"""What every flow shares when it tells on-call: Slack posts, the incident's one card, and the memory of what was told.

- :class:`Reporter` posts and updates, each through a notifier bounded by the delivery's
  deadline. A failed post comes back as ``Posted(ok=False)``, never raises: the caller
  decides whether Pub/Sub redelivers or the flow carries on. A notification never
  blocks or undoes an action.
- :func:`settle_report` is a rollback report's lease in the ledger: the record is marked
  reported once the report is out; until then a redelivery sends it again.
- :func:`remember` writes what was told into the service's ledger (an annotation-only,
  etag-guarded update), best effort: the message is out; the memory is a courtesy.
- :class:`Told` remembers it in this instance where the ledger may not be written.
- :func:`restated` renders a rollback's card again from its ledger record and the service as read
  (watchdog/core/card.py ``state_of``): every later update of the card (a click, the command line, a
  verdict, a field revert finishing) shows the same card for the same facts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from watchdog.config import ServiceRef
from watchdog.core import card, ledger, report
from watchdog.core.intake import Alert
from watchdog.edges import logs
from watchdog.edges.slack import Posted
from watchdog.flows.deps import CloudRun
from watchdog.flows.outcomes import TransientError


class Reporter:
    """Slack for the flows: :meth:`post` a message, :meth:`update` one, show an incident's :meth:`card`."""

    def __init__(self, notifier_factory: Callable[[float], Any], *, bot: bool, buttons: bool) -> None:
        self._notifier = notifier_factory  # deadline → Notifier; built lazily, after the update
        self.bot = bot  # chat.update works: the card is posted early and updated in place
        self.buttons = buttons  # the card's buttons need a bot token and the slack_actions endpoint's workspace

    def post(self, message: report.Message, deadline: float, thread: str = "", *, quiet: bool = False) -> Posted:
        """Post ``message`` (in ``thread`` when given); a failure is logged here, unless the caller words it."""
        posted = self._notifier(deadline).post(message, thread=thread)
        if not posted.ok and not quiet:
            logs.warning(f"slack post failed: {posted.error}", decision="slack_failed")
        return posted

    def update(self, message: report.Message, posted: str, deadline: float) -> Posted:
        """Replace the message posted at ``posted`` ("channel:ts"); the caller words a failure."""
        return self._notifier(deadline).update(message, posted)

    def card(self, card: report.Message, posted: str, since: float, deadline: float) -> Posted:
        """Show ``card``: update it where it was posted, or where a lost post of it is found, else post it.

        One card per incident, whatever Slack's timeouts or a crash did: a post whose answer never came
        is found again by its metadata before a second one is made.
        """
        notifier = self._notifier(deadline)
        where = posted or notifier.find(card.card, since - 60)
        result = notifier.update(card, where) if where else notifier.post(card)
        if not result.ok:
            logs.warning(f"slack post failed: {result.error}", decision="slack_failed")
        return result


class Told:
    """What this instance has told on-call, for what the ledger cannot remember; the oldest forgotten past ``size``.

    The ledger cannot remember a report on a service out of scope, with an unreadable
    ledger, or none at all, nor during a dry run or a pause (which promise to write
    nothing): one instance then tells each once.
    """

    def __init__(self, size: int = 1000) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._guard = threading.Lock()

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        with self._guard:
            self._add(key)

    def first(self, key: str) -> bool:
        """True the first time ``key`` is told, which remembers it; False after."""
        with self._guard:
            if key in self._keys:
                return False
            self._add(key)
            return True

    def _add(self, key: str) -> None:
        self._keys[key] = None
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)


def remember(
    cloud_run: CloudRun,
    ref: ServiceRef,
    service: dict,
    change: Callable[[dict | None], dict | None],
    deadline: float,
    what: str,
    log: dict[str, Any] | None = None,
) -> None:
    """Best effort: ``change`` the ledger's memory in an annotation-only update; never in the way of the answer.

    A failure is logged as "could not remember ``what``", with the ``log`` fields."""
    try:
        cloud_run.reannotate(ref, service, change, deadline)
    except Exception as error:  # noqa: BLE001 - the message went out; the memory is a courtesy
        logs.warning(f"could not remember {what} in the ledger: {error}", **(log or {}))


def settle_report(cloud_run: CloudRun, alert: Alert, service: dict, posted: Posted, deadline: float) -> None:
    """Mark a rollback's record reported once its report is out; if it could not be sent but may be later, redeliver.

    A permanent Slack failure (bad token, unknown channel) is not retried: the
    ERROR log line carries the report instead, and the record is marked reported
    all the same. The mark is etag-guarded and tried once more on a fresh read;
    a second conflict raises, and Pub/Sub redelivers.
    """
    if not posted.ok and posted.retryable:
        raise TransientError(f"rollback done, report not sent yet: {posted.error}")
    if not posted.ok:
        logs.error(
            f"rollback done but Slack refused the report for good: {posted.error}",
            decision="report_lost",
            incident_id=alert.incident_id,
            service=str(alert.service),
        )

    def reported(annotations: dict | None) -> dict | None:
        return ledger.updated(annotations, alert.incident_id, reported=True, thread=posted.thread if posted.ok else "")

    cloud_run.reannotate(alert.service, service, reported, deadline)


def restated(
    cloud_run: CloudRun,
    config,
    ref: ServiceRef,
    record: ledger.Record,
    service: dict,
    deadline: float,
    *,
    buttons: bool,
    serving: dict[str, int] | None = None,
    verdict: str = "",
) -> report.Message:
    """The card of ``record`` in the state ``service`` shows (read just now), with its diff rebuilt from the revisions.

    ``serving``: traffic as a write just requested it, when Cloud Run has not reported it yet (a click's undo);
    the card then says so rather than describe the traffic before the write."""
    from watchdog.core import decision as rules
    from watchdog.core import traffic

    history = cloud_run.history(ref, deadline)
    decided = rules.rebuilt(record, history.loaded, config, traffic.traffic_split(service))
    alert = Alert(record.incident, "open", ref, record.from_revision, policy_name=record.policy,
                  started_at=record.alert_at, url=incident_url(ref, record.incident))  # fmt: skip
    state = replace(card.state_of(record, service, verdict=verdict), kept=_kept(record, history.loaded))
    if serving is not None:
        state = replace(state, serving=serving, read_back=False)
    return report.render(alert, decided, state, buttons=buttons)


def _kept(record: ledger.Record, revisions: list[dict]) -> tuple[tuple[str, str], ...]:
    """The field revert's images: (as the failing revision names them, as the new revision pins them)."""
    from watchdog.core.traffic import short_name

    by_name = {short_name(r.get("name", "")): r for r in revisions}
    failing, made = by_name.get(record.from_revision), by_name.get(record.revert)
    if not record.revert or failing is None or made is None:
        return ()
    images = [[c.get("image", "") for c in r.get("containers") or []] for r in (failing, made)]
    return tuple(zip(*images, strict=False))


def incident_url(ref: ServiceRef, incident: str) -> str:
    """The incident's page in the console, for an incident id Cloud Monitoring made ("0.…"); "" otherwise."""
    if not incident.startswith("0.") or not incident.replace(".", "").replace("-", "").isalnum():
        return ""
    return f"https://console.cloud.google.com/monitoring/alerting/incidents/{incident}?project={ref.project}"
