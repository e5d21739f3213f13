"""Deliveries acknowledged without acting, each telling on-call what to fix when there is something to fix.

- **ignored input** (core/intake's ``Ignored``) is logged; a Cloud Run incident that cannot be
  located (the policy needs fixing) is logged as a WARNING and posted, once per instance;
- a **permanent Cloud Run error** on an alert is logged at ERROR and posted with what to do;
  denied and refused updates are as loud as a failed rollback, the rest are not;
- a service that **kept changing** under every attempt is logged at ERROR and posted loudly,
  with the command to roll back by hand.

Acknowledging wins over retrying for all of them: a later delivery would meet the same
answer, and a 500 would have Pub/Sub redeliver until the dead letter with nobody told.
"""

from __future__ import annotations

from collections.abc import Callable

from google.api_core import exceptions as api_exceptions

from watchdog.core import decision as rules
from watchdog.core import report
from watchdog.core.intake import Alert, Ignored
from watchdog.core.slack_text import pin_command, split_text
from watchdog.edges import logs
from watchdog.edges.cloudrun import rest_status
from watchdog.flows.outcomes import Outcome
from watchdog.flows.reporting import Reporter, Told


def ignored(ignored: Ignored, delivery_id: str, deadline: float, reporter: Reporter, told: Told) -> Outcome:
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
    if told.first(f"ignored:{ignored.incident_id}:{ignored.reason}"):
        posted = reporter.post(report.render_unlocated(ignored), deadline).ok
    return Outcome("ignored", ignored.reason, ignored.incident_id, ignored.service, posted=posted)


def permanent(
    alert: Alert,
    error: Exception,
    deadline: float,
    reporter: Reporter,
    identity: Callable[[], str],
    decided: rules.Decision | None = None,
) -> Outcome:
    """Cloud Run answered the alert's reads or update with an error retrying cannot help: say what to do.

    Traffic was not changed: the message says so first, then the command to roll back by hand (to the target
    when the decision was made), then the fix."""
    what, fix, loud = _what_to_do(alert, error, identity)
    said = report.cloud_run_said(error)
    logs.error(
        f"permanent error, acknowledged: {type(error).__name__}: {said}",
        decision="error",
        incident_id=alert.incident_id,
        service=str(alert.service),
        hint=fix or what,
    )
    split = decided.split if decided is not None and decided.split else {"REVISION": 100}
    manual = pin_command(alert.service, split)
    serving = split_text(decided.serving) if decided is not None and decided.serving else ""
    message = report.render_refused(alert, what, said, manual, fix, loud=loud, split=serving)
    posted = reporter.post(message, deadline)
    return Outcome("error", type(error).__name__, alert.incident_id, str(alert.service), posted=posted.ok)


def _what_to_do(alert: Alert, error: Exception, identity: Callable[[], str]) -> tuple[str, str, bool]:
    """(what happened, the command that fixes it, loud): denied and refused are loud, since the watchdog cannot act."""
    if alert.drill and isinstance(error, api_exceptions.NotFound):
        return "the drill names a service Cloud Run does not know (check --service, --region, --project)", "", False
    if isinstance(error, api_exceptions.NotFound):
        return "the service the alert names was not found (check the service and region in the alert policy)", "", False
    if isinstance(error, (api_exceptions.PermissionDenied, api_exceptions.Forbidden)):
        from watchdog.core import permissions  # its patterns are compiled only when a call was denied

        missing = permissions.missing_permission(str(error), alert.service, identity())
        return f"the watchdog may not ({missing.permission} on {missing.resource})", missing.command, True
    if isinstance(error, (api_exceptions.Unauthenticated, api_exceptions.Unauthorized)):
        return "the watchdog could not authenticate (check the function's service account)", "", False
    if isinstance(error, (api_exceptions.Conflict, api_exceptions.PreconditionFailed)) or (
        isinstance(error, api_exceptions.BadRequest) and rest_status(error) == "FAILED_PRECONDITION"
    ):
        # not an etag conflict (those are re-read and decided again): retrying cannot help
        return "Cloud Run refused the update", "", True
    return "Cloud Run refused the request", "", False


def kept_changing(alert: Alert, target: str, conflicts: int, deadline: float, reporter: Reporter) -> Outcome:
    """Every attempt of this delivery lost the etag race: report it and acknowledge.

    "Every attempt" is ``alerts.MAX_CONCURRENT_RETRIES``, or fewer when another one
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
    posted = reporter.post(_notice(text, loud=True), deadline)
    return Outcome("error", "kept_changing", alert.incident_id, str(alert.service), posted=posted.ok)


def _manual(alert: Alert, target: str = "") -> str:
    return report.rollback_command(alert, target or "REVISION")


def _notice(text: str, loud: bool) -> report.Message:
    return report.Message(report.escape(text), [report.section(report.escape(text))], loud=loud)
