"""The ``slack_actions`` HTTP function: Slack's interactivity Request URL for the card's buttons. A thin shell.

This is the one endpoint that must be publicly invokable (Slack cannot present
a Google identity token), so every request is authenticated another way, in
this order, before anything is read or changed:

1. ``X-Slack-Signature`` over the raw body with ``SLACK_SIGNING_SECRET``
   (slack-sdk's ``SignatureVerifier``, constant-time), timestamps older than
   5 minutes refused: 401, nothing changes;
2. the workspace: ``team.id`` must be ``WATCHDOG_SLACK_TEAM``;
3. the user: in ``WATCHDOG_SLACK_APPROVERS`` (user IDs, or user-group IDs
   resolved with ``usergroups.users.list``), and not a guest, external or
   deactivated user (``users.info``). A refusal is a 200 with an ephemeral
   message to that user, and nothing changes;
4. the button: the card's own action on a service in ``WATCHDOG_SERVICES``
   with a rollback the watchdog made (watchdog/core/actions.py decides).

Then, inside Slack's 3 seconds: one read, one etag-guarded update (the
operation is not awaited), a structured log line, and the card updated.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

from watchdog.config import Config, ConfigError
from watchdog.core import actions
from watchdog.edges import logs

DEADLINE = 2.5  # seconds: Slack times out at 3


def respond(request):
    """Flask request in, (body, status, headers) out."""
    raw = request.get_data()
    try:
        config = Config.from_env()
    except ConfigError as error:
        logs.error(f"slack action refused: invalid configuration: {error}", decision="action_refused")
        return _json({"error": "misconfigured"}, 503)
    secret = config.slack.signing_secret
    if not secret:
        logs.error("slack action refused: SLACK_SIGNING_SECRET is not set", decision="action_refused")
        return _json({"error": "not configured"}, 503)
    from slack_sdk.signature import SignatureVerifier

    try:
        valid = SignatureVerifier(secret).is_valid_request(raw, dict(request.headers))
    except ValueError:  # a timestamp that is not a number
        valid = False
    if not valid:
        logs.warning("slack action refused: bad, missing or stale signature", decision="action_refused")
        return _json({"error": "invalid signature"}, 401)
    try:
        payload = json.loads(parse_qs(raw.decode())["payload"][0])
    except (KeyError, IndexError, ValueError, UnicodeDecodeError):
        return _json({"error": "no payload"}, 400)
    click = actions.parse_click(payload)
    if isinstance(click, str):
        logs.info(f"slack interaction ignored: {click}", decision="action_ignored")
        return "", 200, {}
    return _act(config, click, retry=request.headers.get("X-Slack-Retry-Num", ""))


def _act(config: Config, click: actions.Click, retry: str):
    from slack_sdk import WebClient

    started = time.monotonic()
    deadline = started + DEADLINE
    kwargs = {"base_url": config.slack.api_url} if config.slack.api_url else {}
    slack = WebClient(token=config.slack.bot_token, timeout=2, **kwargs)
    refusal = _refusal(config, slack, click)
    fields = {"action": click.action, "user": click.user, "service": str(click.service), "incident_id": click.incident}
    if refusal:
        logs.warning(f"slack action refused: {refusal}", decision="action_refused", **fields)
        _ephemeral(slack, click, f":no_entry: {refusal}. Nothing was changed.")
        return "", 200, {}
    from watchdog.edges.cloudrun import CloudRun, ConcurrentChange

    cloud_run = CloudRun(config.cloud_run_endpoint, call_timeout=1.0)
    try:
        service = cloud_run.get_service(click.service, deadline)
        plan = actions.plan(click, service, time.time())
        if plan.outcome == "apply":
            cloud_run.set_traffic_and_annotations(
                click.service, list(plan.traffic) if plan.traffic is not None else None, plan.annotations,
                service.get("etag", ""), deadline,
            )  # fmt: skip
    except ConcurrentChange:
        plan = actions.Plan("refused", "changed_meanwhile", "the service changed while acting; try again")
    except Exception as error:  # noqa: BLE001 - the click gets an answer, the log has the error
        logs.error(f"slack action failed: {type(error).__name__}: {error}", decision="action_failed", **fields)
        _ephemeral(slack, click, f":warning: Could not {click.action.replace('_', ' ')}: {type(error).__name__}.")
        return "", 200, {}
    logs.log(
        "NOTICE" if plan.outcome == "apply" else "INFO",
        f"slack action {click.action} by {click.user} on {click.service.service}: {plan.outcome} ({plan.reason})",
        decision=f"action_{plan.outcome}",
        reason=plan.reason,
        retry=retry,
        elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        **fields,
    )
    if plan.outcome == "apply":
        when = time.strftime("%H:%M UTC", time.gmtime())
        try:
            card = actions.updated_card(click.blocks, click, when)
            slack.chat_update(
                channel=click.channel, ts=click.message_ts, blocks=card, text=f"{plan.detail} by <@{click.user}>"
            )
        except Exception as error:  # noqa: BLE001 - the change is made and logged; the card is a courtesy
            logs.warning(f"could not update the card: {error}", **fields)
    elif plan.outcome == "refused":
        _ephemeral(slack, click, f":no_entry: {plan.detail}. Nothing was changed.")
    return "", 200, {}


def _refusal(config: Config, slack, click: actions.Click) -> str:
    """Why this user may not act here, or "" (workspace, approvers, guests, scope)."""
    if not config.slack_team or click.team != config.slack_team:
        return "this workspace is not the one the watchdog answers (WATCHDOG_SLACK_TEAM)"
    if click.service not in config.services:
        return f"{click.service.service} is not a service the watchdog watches"
    approvers = set(config.slack_approvers)
    allowed = click.user in approvers
    for group in (a for a in approvers if a.startswith("S")):
        if allowed:
            break
        try:
            allowed = click.user in slack.usergroups_users_list(usergroup=group).get("users", [])
        except Exception:  # noqa: BLE001 - an unreadable group grants nothing
            continue
    if not allowed:
        return "you are not in WATCHDOG_SLACK_APPROVERS"
    try:
        user = slack.users_info(user=click.user).get("user") or {}
    except Exception:  # noqa: BLE001 - an unknown user is refused
        return "your Slack account could not be checked"
    if user.get("deleted") or user.get("is_restricted") or user.get("is_ultra_restricted") or user.get("is_stranger"):
        return "guests and external users cannot act on rollbacks"
    return ""


def _ephemeral(slack, click: actions.Click, text: str) -> None:
    try:
        slack.chat_postEphemeral(channel=click.channel, user=click.user, text=text)
    except Exception as error:  # noqa: BLE001 - best effort
        logs.warning(f"could not answer the click: {error}")


def _json(body: dict, status: int):
    return json.dumps(body), status, {"Content-Type": "application/json"}
