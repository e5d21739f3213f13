"""The ``slack_actions`` HTTP function: Slack's interactivity Request URL for the card's buttons. A thin shell.

This is the one endpoint that must be publicly invokable (Slack cannot present
a Google identity token), so every request is authenticated another way, in
this order, before anything is read or changed:

1. ``X-Slack-Signature`` over the raw body with ``SLACK_SIGNING_SECRET``
   (slack-sdk's ``SignatureVerifier``, constant-time), timestamps more than
   5 minutes off refused. Any missing, malformed, non-ASCII or stale header is
   a 401, and nothing else is read: no request that fails here gets a 5xx;
2. the payload: form-encoded ``payload=<JSON object>`` of the shape Slack sends,
   or a 400 (watchdog/core/actions.py ``parse_click``);
3. the workspace: ``team.id`` must be ``WATCHDOG_SLACK_TEAM``;
4. the user: in ``WATCHDOG_SLACK_APPROVERS`` (user IDs, or user-group IDs
   resolved with ``usergroups.users.list``, a "yes" reused for
   ``actions.GROUP_MEMBERS_TTL``), and not a guest, external or deactivated
   user (``users.info``). A refusal is a 200 with an ephemeral message to that
   user saying who can act, and nothing changes;
5. the button: the card's own action on a service in ``WATCHDOG_SERVICES``
   with a rollback the watchdog made (watchdog/core/actions.py decides).

Then, before the answer (a Cloud Function gets no CPU once it has answered) and
inside Slack's 3 seconds: one read (while the user is checked), one
etag-guarded update sent once (the operation is not awaited), a structured log
line, and the card updated or the user told. An update that times out or gets
409 is not retried blindly: the service is read again and the answer says what
is true (``actions.after_write``).

The clients (Cloud Run, with its credentials and connections, and Slack's
WebClient) are built once per instance and reused by every click; clicks take
turns in an instance (it is deployed with one request at a time anyway).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from watchdog import __version__
from watchdog.config import Config, ConfigError
from watchdog.core import actions
from watchdog.edges import logs

DEADLINE = 2.5  # seconds from the request to the answer: Slack shows the click as failed at 3
CHECKED_BY = 1.1  # the user checked and the service read within this many seconds of the request
ANSWER_RESERVE = 0.5  # kept after the last Cloud Run call: the card's update or the user's message
WRITE_TIMEOUT = 1.0  # one update's answer: a late one leaves time to read the service and, if needed, resend
MIN_WRITE = 0.4  # an update is not started with less time than this before ANSWER_RESERVE

_build = threading.Lock()
_clients: _Clients | None = None
_turn = threading.Lock()  # one click at a time per instance: the clients carry the click's deadline
_groups: dict[str, tuple[float, frozenset[str]]] = {}  # approvers' group → (monotonic read time, members)


@dataclass
class _Clients:
    key: tuple
    cloud_run: Any  # watchdog.edges.cloudrun.CloudRun
    slack: Any  # watchdog.edges.slack.SlackBot
    pool: ThreadPoolExecutor


def warm() -> None:
    """Import what a click needs, at instance start (``main.py``, when the target is ``slack_actions``).

    A warm instance (``min_instance_count``) then answers its first click without paying for imports."""
    from slack_sdk.signature import SignatureVerifier  # noqa: F401

    from watchdog.edges import cloudrun, slack  # noqa: F401


def respond(request):
    """Flask request in, (body, status, headers) out."""
    started = time.monotonic()
    raw = request.get_data()
    try:
        config = Config.from_env()
    except ConfigError as error:
        logs.error(f"slack action refused: invalid configuration: {error}", decision="action_refused")
        return _json({"error": "misconfigured"}, 503)
    if not config.slack.signing_secret:
        logs.error("slack action refused: SLACK_SIGNING_SECRET is not set", decision="action_refused")
        return _json({"error": "not configured"}, 503)
    if not _authentic(config.slack.signing_secret, raw, request.headers):
        logs.warning("slack action refused: bad, missing or stale signature", decision="action_refused")
        return _json({"error": "invalid signature"}, 401)
    payload = actions.payload_from_form(raw)
    click = payload if isinstance(payload, actions.NotAClick) else actions.parse_click(payload)
    if isinstance(click, actions.NotAClick):
        if click.malformed:
            logs.warning(f"slack action refused: {click.reason}", decision="action_malformed")
            return _json({"error": "malformed payload"}, 400)
        logs.info(f"slack interaction ignored: {click.reason}", decision="action_ignored")
        return "", 200, {}
    if not config.slack.bot_token:
        logs.error("slack action refused: SLACK_BOT_TOKEN is not set", decision="action_refused")
        return _json({"error": "not configured"}, 503)
    deadline = started + DEADLINE
    if not _turn.acquire(timeout=max(0.0, deadline - time.monotonic() - 1.0)):
        logs.warning("slack action not handled: the previous click is still being handled", decision="action_busy")
        return _json({"error": "busy"}, 503)  # Slack shows the clicker that the click failed: true
    try:
        return _act(config, click, request.headers.get("X-Slack-Retry-Num", ""), started, deadline)
    finally:
        _turn.release()


def _authentic(secret: str, raw: bytes, headers) -> bool:
    """The request carries Slack's signature of this body, made within 5 minutes; anything else is not."""
    timestamp, signature = headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
    if not actions.signature_headers_wellformed(timestamp, signature):
        return False
    from slack_sdk.signature import SignatureVerifier

    try:
        return SignatureVerifier(secret).is_valid(raw, timestamp, signature)
    except (ValueError, TypeError):  # whatever the verifier cannot judge is not authentic
        return False


def clients(config: Config) -> _Clients:
    """The instance's clients, built on the first click and reused (rebuilt only if the settings change)."""
    global _clients
    key = (config.cloud_run_endpoint, config.slack.bot_token, config.slack.api_url)
    with _build:
        if _clients is None or _clients.key != key:
            from watchdog.edges.cloudrun import CloudRun
            from watchdog.edges.slack import SlackBot

            _clients = _Clients(
                key,
                CloudRun(config.cloud_run_endpoint, call_timeout=DEADLINE),
                SlackBot(config.slack, lambda: DEADLINE),
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="click-read"),
            )
            logs.info(f"rollback watchdog {__version__} buttons ready", version=__version__)
        return _clients


def _act(config: Config, click: actions.Click, retry: str, started: float, deadline: float):
    from watchdog.edges.slack import remaining_until

    built = clients(config)
    slack, cloud_run = built.slack.until(remaining_until(deadline)), built.cloud_run
    fields = {"action": click.action, "user": click.user, "service": str(click.service), "incident_id": click.incident}
    read: Future | None = None
    if click.service in config.services:  # reading is harmless: it runs while the clicker is checked
        read = built.pool.submit(cloud_run.get_service, click.service, started + CHECKED_BY)
    refused = _refusal(config, slack, click, fields)
    if refused:
        logs.warning(f"slack action refused: {refused}", decision="action_refused", **fields)
        _tell(slack, click, f":no_entry: {refused}. Nothing was changed.")
        return "", 200, {}
    try:
        service = read.result() if read is not None else {}
        if click.action == actions.REVERT:
            plan, service = _revert_field(cloud_run, click, service, deadline - ANSWER_RESERVE)
        else:
            plan, service = _write(cloud_run, click, service, deadline - ANSWER_RESERVE, fields)
    except Exception as error:  # noqa: BLE001 - the click gets an answer, the log has the error
        logs.error(f"slack action failed: {type(error).__name__}: {error}", decision="action_failed", **fields)
        _tell(slack, click, f":warning: Could not {actions.VERBS[click.action]}: Cloud Run answered "
                            f"{type(error).__name__}. Nothing was changed.")  # fmt: skip
        return "", 200, {}
    logs.log(
        "NOTICE" if plan.outcome == "apply" else "WARNING" if plan.outcome == "unknown" else "INFO",
        f"slack action {click.action} by {click.user} on {click.service.service}: {plan.outcome} ({plan.reason})",
        decision=f"action_{plan.outcome}",
        reason=plan.reason,
        retry=retry,
        elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        **fields,
    )
    if plan.outcome == "apply":
        updated = _restate(config, cloud_run, slack, click, plan, service, deadline)
        if not updated.ok:
            logs.warning(f"could not update the card: {updated.error}", **fields)
            _tell(slack, click, f":white_check_mark: Done: {plan.detail}. The card could not be updated, "
                                "so it still shows the state before this click.")  # fmt: skip
    elif plan.outcome == "refused":
        _tell(slack, click, f":no_entry: {plan.detail}. Nothing was changed.")
    elif plan.outcome == "unknown":
        _tell(slack, click, f":warning: {plan.detail}.")
    elif plan.reason != "same_click":  # a retry of a click already answered gets no second answer
        _tell(slack, click, f":information_source: {plan.detail}. Nothing was changed.")
    return "", 200, {}


def _refusal(config: Config, slack, click: actions.Click, fields: dict) -> str:
    """Why this user may not act here (watchdog/core/actions.py ``refusal``), reading Slack only when needed."""
    watched = click.service in config.services
    if not config.slack_team or click.team != config.slack_team or not watched:
        return actions.refusal(click, config.slack_team, watched, False, None)
    approver, group_unread = _approver(config, slack, click, fields)
    user = None
    if approver:
        found = slack.user_info(click.user)
        if not found.ok:
            logs.warning(f"could not check the clicking user: {found.error}", **fields)
        user = found.value if found.ok else None
    return actions.refusal(click, config.slack_team, watched, approver, user, group_unread=group_unread)


def _approver(config: Config, slack, click: actions.Click, fields: dict) -> tuple[bool, bool]:
    """(is an approver, an approvers' group could not be read). A group's "yes" is reused briefly."""
    if click.user in config.slack_approvers:
        return True, False
    unread = False
    for group in (a for a in config.slack_approvers if a.startswith("S")):
        now = time.monotonic()
        cached = _groups.get(group)
        if cached is not None and actions.group_members_usable(now - cached[0], click.user in cached[1]):
            return True, False
        found = slack.group_members(group)
        if not found.ok:  # an unreadable group grants nothing
            logs.warning(f"could not read the approvers' group {group}: {found.error}", **fields)
            unread = True
            continue
        _groups[group] = (now, frozenset(found.value))
        if click.user in found.value:
            return True, False
    return False, unread


def _write(cloud_run, click: actions.Click, service: dict, deadline: float, fields: dict):
    """Plan and send the click's update once; after a timeout or a 409, read again and say what is true.

    Returns (the plan as it turned out, the service as last read). A lost answer is never followed by the
    same update with a stale etag: :func:`actions.after_write` compares the reads. When nothing landed
    (the etag unchanged), the same update goes again with the same etag: whichever copy Cloud Run takes
    first applies, the other gets 409, so it applies at most once. When someone else's change landed,
    the click is planned again on what serves now."""
    from watchdog.edges.cloudrun import TRANSIENT, ConcurrentChange

    in_flight = changed = False  # an update of ours may still land; someone else's change landed meanwhile
    for _ in range(3):
        plan = actions.plan(click, service, time.time())
        if plan.outcome == "refused" and changed:
            return actions.changed_meanwhile(click, service, plan), service
        if plan.outcome != "apply":
            return plan, service
        if deadline - time.monotonic() < MIN_WRITE:
            return actions.gave_up(click, service, in_flight=in_flight, changed=changed), service
        traffic = list(plan.traffic) if plan.traffic is not None else None
        try:
            cloud_run.set_traffic_and_annotations(
                click.service, traffic, plan.annotations or {}, service.get("etag", ""),
                min(deadline - 0.2, time.monotonic() + WRITE_TIMEOUT), once=True,
            )  # fmt: skip
            return plan, service
        except ConcurrentChange:  # refused: this copy did not land
            logs.info("slack action update refused (409): reading the service again", **fields)
        except TRANSIENT as lost:  # no answer: this copy may have landed, or may still
            in_flight = True
            logs.info(f"slack action update not confirmed ({type(lost).__name__}): reading the service again",
                      **fields)  # fmt: skip
        try:
            fresh = cloud_run.get_service(click.service, deadline)
        except Exception as error:  # noqa: BLE001 - cannot tell what happened: say so, never "nothing changed"
            logs.warning(f"could not read the service after the update: {type(error).__name__}", **fields)
            return actions.gave_up(click, service, in_flight=in_flight, changed=changed), service
        truth = actions.after_write(click, service, fresh)
        if truth == actions.DONE:
            return plan, fresh
        if truth == actions.CHANGED:  # every copy sent so far carried a stale etag now: none can land
            in_flight, changed = False, True
        service = fresh
    return actions.gave_up(click, service, in_flight=in_flight, changed=changed), service


def _restate(config: Config, cloud_run, slack, click: actions.Click, plan: actions.Plan, service: dict, deadline):
    """The card re-rendered for the state the click left (watchdog/core/card.py ``state_of``), never patched.

    The service as the write left it: the plan's annotations, and for an undo the traffic it asked for
    (Cloud Run reports it a moment later; the card says so)."""
    from watchdog.core import ledger
    from watchdog.core.traffic import traffic_split
    from watchdog.edges.slack import Posted
    from watchdog.flows.reporting import restated

    after = {**service, "annotations": plan.annotations} if plan.annotations is not None else service
    memory = ledger.read(after.get("annotations"))
    record = memory.find(click.incident) if isinstance(memory, ledger.Ledger) else None
    if record is None:
        return Posted(False, error="the rollback's record is gone")
    asked = None
    if plan.traffic is not None:
        asked = traffic_split(
            {"traffic": list(plan.traffic), "latestReadyRevision": service.get("latestReadyRevision")}
        )
        asked = {k: v for k, v in asked.items() if v}
    try:
        card = restated(cloud_run, config, click.service, record, after, deadline, buttons=True, serving=asked)
    except Exception as error:  # noqa: BLE001 - the change is made and logged; the card is a courtesy
        return Posted(False, error=f"could not read the revisions: {type(error).__name__}")
    return slack.replace(click.channel, click.message_ts, card.blocks, card.text)


def _revert_field(cloud_run, click: actions.Click, service: dict, deadline: float):
    """The card's "Revert field": the same rules as undo (watchdog/core/actions.py), then the revision is created
    (flows/field_revert.py); traffic moves to it on a later verification tick, once it is Ready."""
    from watchdog.flows.field_revert import NOT_MADE, FieldRevert

    plan = actions.plan(click, service, time.time())
    if plan.outcome != "apply":
        return plan, service
    from watchdog.core import ledger

    record = ledger.find(service.get("annotations"), click.incident)
    assert record is not None  # plan() applies only to a rollback it found in this very ledger
    failing = cloud_run.get_revision(click.service, record.from_revision, deadline)
    good = cloud_run.get_revision(click.service, record.to_revision, deadline)
    progress = FieldRevert(cloud_run, time.time).start(
        click.service, click.incident, failing, good, deadline, plan.event, wait=False
    )
    fresh = cloud_run.get_service(click.service, deadline)
    if progress.state == NOT_MADE:
        return actions.Plan("refused", "field_revert_not_made", progress.detail), fresh
    return replace(plan, annotations=fresh.get("annotations")), fresh


def _tell(slack, click: actions.Click, text: str) -> None:
    told = slack.ephemeral(click.channel, click.user, text)
    if not told.ok:
        logs.warning(f"could not answer the click: {told.error}")


def _json(body: dict, status: int):
    return json.dumps(body), status, {"Content-Type": "application/json"}
