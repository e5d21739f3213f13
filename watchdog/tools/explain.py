"""``rollback-watchdog explain``: what the watchdog would decide for an alert, with the revision diff and reasons.

The same ``decide`` as the function, over the service read live (read only) or
from files, so the same values are shown (default deny, ``WATCHDOG_SHOW_ENV``) and every
line and ``--json`` field goes through the redactor on its way out. Files must be about
the alert's service: a service JSON for another service (or none, ``{}``) would explain a
decision the watchdog never takes.
"""

from __future__ import annotations

import time

import click

from watchdog.config import Config, ServiceRef
from watchdog.tools.options import (
    CONTEXT,
    ROOT,
    CouldNotCheck,
    api_call,
    change_json,
    config_options,
    emit_json,
    json_option,
    load_config,
    progress,
    read_json,
    say,
    waiting,
)
from watchdog.tools.options import cloud_run as connected

EXAMPLES = ROOT / "docs" / "examples" / "staging-incident"

EPILOG = f"""\b
Exit codes:
  0  the decision was explained (whatever it is: rollback, report, nothing, ignored)
  2  could not explain: unreadable files, files about another service, invalid configuration,
     Cloud Run API errors

\b
Nothing is ever changed: explain only reads.

\b
Try it on the staging incident (the alert, the service and its revisions as saved then):
  rollback-watchdog explain --services us-central1/netra-backend-staging \\
    --alert {EXAMPLES}/alert.json \\
    --service-json {EXAMPLES}/service.json \\
    --revisions-json {EXAMPLES}/revisions.json
"""


@click.command(epilog=EPILOG, context_settings=CONTEXT)
@click.option(
    "--alert",
    "alert_path",
    required=True,
    help="Monitoring notification JSON, or a Pub/Sub message / CloudEvent body carrying it ('-' = stdin).",
)
@click.option(
    "--service-json",
    help="The alert's service as `GET …/services/S` returns it (v2 REST JSON), instead of a live lookup.",
)
@click.option("--revisions-json", help='Its revisions, newest first: {"revisions": [...]} or a list.')
@json_option
@click.option("--deadline", type=float, default=30.0, show_default=True, help="Seconds for the live lookup.")
@config_options
def explain(alert_path, service_json, revisions_json, as_json, deadline, **settings) -> None:
    """Show what the watchdog would decide for an alert, with the revision diff and reasons."""
    from watchdog.core import decision as rules
    from watchdog.core.intake import Alert, parse

    if bool(service_json) != bool(revisions_json):
        raise click.UsageError("give both --service-json and --revisions-json, or neither (live lookup)")
    config = load_config(**settings)
    parsed = parse(read_json(alert_path, "alert"))
    if not isinstance(parsed, Alert):
        result = {"alert": None, "ignored": {"reason": parsed.reason, "detail": parsed.detail}}
        if as_json:
            emit_json(result)
        else:
            say(f"Ignored ({parsed.reason}): {parsed.detail}")
            say("The watchdog acknowledges this delivery and does nothing.")
        return
    alert = parsed
    until = time.monotonic() + deadline
    related: list[str] = []
    cloud_run = None
    history = None
    if service_json:
        service = read_json(service_json, "service")
        raw = read_json(revisions_json, "revisions")
        revisions = raw.get("revisions", []) if isinstance(raw, dict) else raw
        if not isinstance(service, dict) or not isinstance(revisions, list):
            raise CouldNotCheck("--service-json must hold an object, --revisions-json a list or {revisions: [...]}")
        wrong = mismatch(alert.service, service, revisions)
        if wrong:
            raise CouldNotCheck(f"{wrong}: the files must be about the alert's service {alert.service.name}")
        revisions = sorted(revisions, key=lambda r: str(r.get("createTime", "")), reverse=True)
        complete = True
    else:
        cloud_run = connected(config.cloud_run_endpoint)
        with waiting(f"reading {alert.service} and its revisions"):
            service, history = api_call(lambda: cloud_run.read(alert.service, until))
        revisions, complete = history.loaded, history.complete
    now = time.time()
    if alert.state == "closed":
        show_closed(alert, rules.recovery(alert, service, now), as_json)
        return
    decided = rules.decide(alert, service, revisions, config, now, history_complete=complete)
    while decided.action == rules.NEED_MORE and history is not None:
        progress(f"read {len(history.loaded)} revisions; reading the next page")
        api_call(history.read_more)
        revisions, complete = history.loaded, history.complete
        decided = rules.decide(alert, service, revisions, config, now, history_complete=complete)
    if cloud_run is not None and decided.breaking:
        from watchdog.flows import blast_radius

        with waiting("looking for the same change in other services"):
            related = api_call(
                lambda: blast_radius.related(config, cloud_run, alert, decided, until, revisions=revisions)
            )
    if as_json:
        emit_json(explain_json(alert, decided, related, len(revisions), cloud_run is not None))
    else:
        show_decision(alert, decided, related, config, len(revisions))


def mismatch(expected: ServiceRef, service: dict, revisions: list) -> str:
    """What in the files is about another service than the alert's ("" when they all match)."""
    name = str(service.get("name") or "")
    if not name:
        if "apiVersion" in service or "metadata" in service:
            return "--service-json is the v1 (Knative) shape; explain reads the v2 REST JSON (GET /v2/…/services/S)"
        return "--service-json names no service (an empty or partial object)"
    if name != expected.name:
        parts = name.split("/")
        if len(parts) != 6 or parts[0::2] != ["projects", "locations", "services"]:
            return f"--service-json names {name[:120]!r}, not projects/P/locations/R/services/S"
        got = ServiceRef(parts[1], parts[3], parts[5])
        differs = [f"{what} {theirs!r}, not {mine!r}" for what, theirs, mine in (
            ("service", got.service, expected.service), ("project", got.project, expected.project),
            ("region", got.region, expected.region)) if theirs != mine]  # fmt: skip
        return f"--service-json is about {got} ({'; '.join(differs)})"
    for revision in revisions:
        if not isinstance(revision, dict):
            return "--revisions-json holds something that is not a revision object"
        revision_name = str(revision.get("name", ""))
        owner = str(revision.get("service") or revision_name.rpartition("/revisions/")[0])
        if owner and owner != name:
            return f"--revisions-json holds {revision_name[:160]!r}, a revision of {owner[:160]}"
    return ""


def alert_json(alert) -> dict:
    return {
        "incident_id": alert.incident_id,
        "state": alert.state,
        "service": str(alert.service),
        "revision": alert.revision,
        "policy": alert.policy_name,
        "condition_kind": alert.condition_kind,
        "found_by": alert.found_by,
        "drill": ("live" if alert.drill_live else "dry-run") if alert.drill else None,
    }


def explain_json(alert, decided, related: list[str], revisions_read: int, live: bool) -> dict:
    return {
        "alert": alert_json(alert),
        "decision": {
            "action": decided.action,
            "reason": decided.reason,
            "detail": decided.detail,
            "failing": decided.failing,
            "breaking": decided.breaking,
            "target": decided.target,
            "skipped": list(decided.skipped),
            "would_roll_back": decided.would_roll_back,
            "serving": decided.serving,
            "traffic_after": decided.split,
            "traffic_update": list(decided.traffic),
            "trust": decided.trust,
            "moved_from": list(decided.moved_from),
            "breaking_deleted": decided.breaking_deleted,
            "loud": decided.loud,
            "trigger_changes": [change_json(c) for c in decided.trigger_changes],
            "changes": [change_json(c) for c in decided.changes],
        },
        "revisions_read": revisions_read,
        "related": related if live else None,
    }


def show_decision(alert, decided, related: list[str], config: Config, revisions_read: int) -> None:
    drill = f" [DRILL {'live' if alert.drill_live else 'dry-run'}]" if alert.drill else ""
    say(f"Incident {alert.incident_id} ({alert.state}){drill} on {alert.service}")
    say(f"  policy: {alert.policy_name or 'unknown'} ({alert.condition_kind}); found by {alert.found_by}")
    say(f"  revision: {alert.revision or '(none named: the one serving most traffic)'}")
    say("")
    say(f"Decision: {decided.action.upper()} ({decided.reason})")
    say(f"  {decided.detail}")
    if decided.serving:
        say("  traffic now: " + ", ".join(f"{k} {v}%" for k, v in decided.serving.items()))
    if decided.split:
        after = ", ".join(f"{k} {v}%" for k, v in sorted(decided.split.items(), key=lambda kv: -kv[1]) if v)
        tags = ", ".join(e["tag"] for e in decided.traffic if e.get("tag"))
        say(f"  traffic after: {after}" + (f" (tags kept: {tags})" if tags else ""))
    if decided.trust:
        say(f"  why {decided.target}: {decided.trust}")
    for label, value in (("failing", decided.failing), ("breaking", decided.breaking), ("target", decided.target)):
        if value:
            say(f"  {label}: {value}")
    if decided.skipped:
        say("  skipped: " + ", ".join(decided.skipped))
    if decided.trigger_changes:
        say("")
        say(f"What changed in {decided.breaking} ({config.rollback_on} changes):")
        for change in decided.trigger_changes:
            say(f"  - {change}")
    rest = [c for c in decided.changes if c not in decided.trigger_changes]
    if rest:
        say("")
        say(f"Also different from {decided.target}:" if decided.target else "Configuration diff:")
        for change in rest:
            say(f"  - {change}")
    if related:
        say("")
        say("Same change elsewhere (last 24 h):")
        for line in related:
            say(f"  - {line}")
    say("")
    say(f"({revisions_read} revisions read; nothing was changed)")


def show_closed(alert, recovered, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "alert": alert_json(alert),
                "recovery": None
                if recovered is None
                else {
                    "from": recovered.record.from_revision,
                    "to": recovered.record.to_revision,
                    "alert_to_rollback_s": recovered.alert_to_rollback,
                    "rollback_to_recovery_s": recovered.rollback_to_recovery,
                },
            }
        )
        return
    say(f"Incident {alert.incident_id} (closed) on {alert.service}")
    if recovered is None:
        say("Decision: NOTHING (closed_not_acted_on): the watchdog did not roll back for this incident")
    else:
        say(
            f"Decision: NOTHING (closed): rolled back {recovered.record.from_revision} → "
            f"{recovered.record.to_revision}; the close is not taken as recovery: verification of "
            f"{recovered.record.restored} gives the verdict in the report's Slack thread"
        )
