"""The staging incident, replayed locally: ``make demo``.

Auth and backend each have a ``private-ranges-only`` revision using Cloud SQL
and a later ``all-traffic`` revision (auth also a hotfix on top). The alerts
that fired 37 hours after the deploy are delivered as CloudEvents to the real
functions-framework server running ``main.handle_alert``; the Cloud Run and
Slack stand-ins show what the watchdog did.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from tests.incident import ACTIONS, PREFIX, standins
from tests.standins.cloudrun import CloudRunStandIn
from tests.standins.monitoring import MonitoringStandIn
from tests.standins.slack import SlackStandIn, print_message
from tests.support import FunctionProcess, deliver, fixture, pubsub_body
from watchdog.core import field_revert

# The revision the field revert creates for auth: v1.42.0 (00043's code) with egress private-ranges-only.
AUTH_REVERT = field_revert.revision_name("netra-auth-service", "0.auth-db-timeout-1")

SERVICES = {
    "netra-auth-service": "alerts/incident_auth_db_timeout_log_match.json",
    "netra-backend-staging": "alerts/incident_backend_startup_metric_threshold.json",
}


def say(text: str = "") -> None:
    print(text, flush=True)


def history(api: CloudRunStandIn, service: str) -> None:
    state = api.state
    serving = {s["revision"]: s["percent"] for s in state.services[PREFIX + service]["trafficStatuses"]}
    for revision in state.revisions[PREFIX + service]:
        short = revision["name"].rsplit("/", 1)[-1]
        egress = revision.get("vpcAccess", {}).get("egress", "PRIVATE_RANGES_ONLY").lower().replace("_", "-")
        sql = ",".join(revision["volumes"][0]["cloudSqlInstance"]["instances"]).split(":")[-1]
        traffic = f"{serving.get(short, 0):>3}%"
        say(f"    {short:<34} {revision['createTime'][:19]}  egress={egress:<20} cloudsql={sql:<24} {traffic}")


DEPLOYS = {  # the breaking deploys' audit entries, a moment before each new revision was created
    "netra-auth-service": ("netra-auth-service-00041-kip", "2025-09-15T04:27:40.512Z"),
    "netra-backend-staging": ("netra-backend-staging-00118-paz", "2025-09-15T04:29:01.733Z"),
}
DEPLOYED_IMAGES = {  # what each breaking deploy shipped (its revision in the seed runs it)
    "netra-auth-service": "gcr.io/netra-staging/netra-auth:v1.42.0",
    "netra-backend-staging": "gcr.io/netra-staging/netra-backend:v2.18.0",
}


def deploy_warnings(api: CloudRunStandIn, slack: SlackStandIn, function: FunctionProcess) -> None:
    """2025-09-15 04:27: the deploys' audit entries reach the watchdog; it warns 37 hours before the symptom."""
    say("\n   2025-09-15 04:27: the breaking deploys' audit log entries (Logging sink → Pub/Sub) reach the watchdog")
    state = api.state
    kept = {}
    for service, (serving, _) in DEPLOYS.items():  # as it was at that moment: the old revision serving
        kept[service] = state.services[PREFIX + service]["traffic"]
        state.services[PREFIX + service]["traffic"] = [
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": serving, "percent": 100}
        ]
        state._refresh_status(state.services[PREFIX + service])
    for service, (_, at) in DEPLOYS.items():
        entry = fixture("deploys/v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json")
        entry["insertId"], entry["timestamp"] = f"demo-{service}", at
        entry["resource"]["labels"]["service_name"] = service
        entry["protoPayload"]["resourceName"] = f"namespaces/netra-staging/services/{service}"
        entry["protoPayload"]["request"]["name"] = f"namespaces/netra-staging/services/{service}"
        requested = entry["protoPayload"]["request"]["service"]
        requested["metadata"]["name"] = service
        requested["spec"]["template"]["spec"]["containers"][0]["image"] = DEPLOYED_IMAGES[service]
        status, _ = deliver(function.url, pubsub_body(entry))
        say(f"   deploy of {service} (egress → all-traffic, gcloud) → HTTP {status}")
    say("   What on-call saw in Slack, 37 hours before the first symptom:")
    for message in slack.state.messages:
        print_message(message)
    slack.state.messages.clear()
    for service, traffic in kept.items():  # the deploys went ahead, and traffic followed them
        state.services[PREFIX + service]["traffic"] = traffic
        state._refresh_status(state.services[PREFIX + service])
    api.state.requests.clear()


def recovered(api: CloudRunStandIn, slack: SlackStandIn, monitoring: MonitoringStandIn, function) -> bool:
    """Recovery confirmed from Cloud Monitoring: startup probes of the restored revision healthy, quietly."""
    from watchdog.core import ledger

    say("\n10. Recovery, confirmed from Cloud Monitoring (the demo moves auth's rollback 14 minutes into the past")
    say("   instead of waiting; the Monitoring stand-in holds the restored revision's healthy startup probes):")
    service = api.state.services[PREFIX + "netra-auth-service"]
    with api.state.lock:
        items = json.loads(service["annotations"][ledger.ROLLBACKS_KEY])
        at = time.time() - 14 * 60
        items[-1]["at"], items[-1]["alert_at"] = at, at - 60
        service["annotations"][ledger.ROLLBACKS_KEY] = json.dumps(items)
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    monitoring.store.add({
        "metric": {"type": "run.googleapis.com/container/completed_probe_count",
                   "labels": {"is_healthy": "true", "probe_type": "Startup"}},
        "resource": {"type": "cloud_run_revision", "labels": {
            "project_id": "netra-staging", "service_name": "netra-auth-service", "location": "us-central1",
            "revision_name": AUTH_REVERT, "configuration_name": "netra-auth-service"}},
        "metricKind": "DELTA", "valueType": "INT64",
        "points": [{"interval": {"startTime": stamp(t - 60), "endTime": stamp(t)}, "value": {"int64Value": "2"}}
                   for t in (at + 60, at + 120)],
    })  # fmt: skip
    before = len(slack.state.messages)
    status, _ = deliver(function.url, pubsub_body(b"tick", attributes={"rollback-watchdog-tick": "1"}))
    say(f"   the minute's tick (Cloud Scheduler → Pub/Sub) → HTTP {status}")
    for message in slack.state.messages[before:]:
        print_message(message)
    card = next(m for m in slack.state.messages if m.get("text", "").startswith("Recovered: netra-auth-service"))
    say("   and the incident's card itself, updated in place:")
    print_message(card)
    return any("ecovered" in m.get("text", "") for m in slack.state.messages[before:])


def buttons(api: CloudRunStandIn, slack: SlackStandIn, env: dict, where: Path) -> bool:
    """On-call clicks the backend card's Undo: refused for someone not on call, done for the on-call engineer."""
    from tests.standins.slack import block_actions, interaction, user
    from tests.support import post

    say("\n9. The card's buttons, through the slack_actions function (signed requests, approvers only):")
    slack.state.users.update(
        {"U0ONCALL": user("U0ONCALL", team="T0NETRA"), "U0VISITOR": user("U0VISITOR", team="T0NETRA")}
    )
    card = next(m for m in slack.state.messages if "netra-backend-staging" in m.get("text", "") and m.get("blocks"))
    with FunctionProcess(env, target="slack_actions", signature="http", log_path=where / "actions.log") as actions:
        for who in ("U0VISITOR", "U0ONCALL"):
            payload = block_actions(card, "undo_rollback", who, "T0NETRA")
            status, _ = post(actions.url, *interaction(ACTIONS["SLACK_SIGNING_SECRET"], payload))
            told = [e["text"] for e in slack.state.ephemeral if e["user"] == who]
            say(f"   {who} clicks Undo → HTTP {status}" + (f"; told: {told[-1]}" if told else ""))
    api.state.read_service(PREFIX + "netra-backend-staging")  # the undo's operation finishes
    say("   The card after the undo:")
    print_message(card)
    say("  netra-backend-staging")
    history(api, "netra-backend-staging")
    serving = {
        s["revision"]: s["percent"] for s in api.state.services[PREFIX + "netra-backend-staging"]["trafficStatuses"]
    }
    return serving == {"netra-backend-staging-00119-qor": 100} and "Undone by" in json.dumps(card["blocks"])


BACKEND_PINNED = "netra-backend-staging-00118-paz"


def _entry(name: str, service: str, at: float) -> dict:
    """A deploy fixture's audit entry for ``service``, logged at ``at`` (a moment before its revision exists)."""
    entry = fixture(f"deploys/{name}")
    entry["insertId"] = f"demo-{name.split('.')[0]}"
    entry["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(at))
    entry["resource"]["labels"]["service_name"] = service
    payload = entry["protoPayload"]
    if payload["methodName"].startswith("google.cloud.run.v1"):
        payload["resourceName"] = payload["request"]["name"] = f"namespaces/netra-staging/services/{service}"
    else:
        payload["resourceName"] = payload["request"]["service"]["name"] = PREFIX + service
        entry["operation"]["id"] = f"projects/netra-staging/locations/us-central1/operations/demo-{service}"
    return entry


def _revision(api: CloudRunStandIn, service: str, like: str, name: str, image: str, egress: str) -> dict:
    import copy

    base = next(r for r in api.state.revisions[PREFIX + service] if r["name"].endswith(like))
    revision = copy.deepcopy(base)
    revision.update(name=f"{PREFIX}{service}/revisions/{name}", uid=f"uid-{name}")
    revision.pop("createTime")  # the stand-in creates it now, as Cloud Run does
    revision["containers"][0]["image"] = image
    revision["vpcAccess"]["egress"] = egress
    return revision


def fix_while_pinned(api: CloudRunStandIn, slack: SlackStandIn, function: FunctionProcess) -> bool:
    """The fix (egress back to private-ranges-only, a new image) is deployed with gcloud while the watchdog keeps
    backend's traffic pinned: gcloud sends the pinned traffic back, so the new revision gets 0%."""
    service, name = "netra-backend-staging", "netra-backend-staging-00120-fix"
    say(
        f"\n8. The fix is deployed with gcloud while the watchdog keeps {service}'s traffic pinned to {BACKEND_PINNED}:"
    )
    at = time.time()
    api.state.deploy(PREFIX + service, _revision(api, service, BACKEND_PINNED, name,
                     "gcr.io/netra-staging/netra-backend:v2.19.0", "PRIVATE_RANGES_ONLY"), to_latest=False)  # fmt: skip
    entry = _entry("v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json", service, at - 1)
    template = entry["protoPayload"]["request"]["service"]["spec"]["template"]
    template["metadata"]["name"] = name  # gcloud run deploy --revision-suffix fix
    template["metadata"]["annotations"]["run.googleapis.com/vpc-access-egress"] = "private-ranges-only"
    template["spec"]["containers"][0]["image"] = "gcr.io/netra-staging/netra-backend:v2.19.0"
    template["spec"]["serviceAccountName"] = "netra-netra-backend-staging@netra-staging.iam.gserviceaccount.com"
    entry["protoPayload"]["request"]["service"]["spec"]["traffic"] = [{"revisionName": BACKEND_PINNED, "percent": 100}]
    before = len(slack.state.messages)
    status, _ = deliver(function.url, pubsub_body(entry))
    say(f"   gcloud run deploy {service} --revision-suffix fix (private-ranges-only, v2.19.0) → HTTP {status}")
    for message in slack.state.messages[before:]:
        print_message(message)
    notes = slack.state.messages[before:]
    return len(notes) == 1 and f"`{name}`" in notes[0]["text"] and "gets 0% (pinned)" in notes[0]["text"]


def terraform_unpins(api: CloudRunStandIn, slack: SlackStandIn, function: FunctionProcess) -> bool:
    """terraform's configuration still says all-traffic and LATEST 100%: its apply releases the watchdog's pin and
    puts the value it rolled away from back in service. Loud (<!here>), in the incident's thread."""
    service, name = "netra-backend-staging", "netra-backend-staging-00121-tfa"
    say(f"\n8b. A terraform apply of {service} whose configuration still says all-traffic and LATEST 100%:")
    at = time.time()
    api.state.deploy(PREFIX + service, _revision(api, service, "netra-backend-staging-00119-qor", name,
                     "gcr.io/netra-staging/netra-backend:v2.19.0", "ALL_TRAFFIC"), to_latest=True)  # fmt: skip
    entry = _entry("v2_UpdateService_terraform_unpin.INFERRED.json", service, at - 1)
    template = entry["protoPayload"]["request"]["service"]["template"]
    template["containers"][0]["image"] = "gcr.io/netra-staging/netra-backend:v2.19.0"
    template["serviceAccount"] = "netra-netra-backend-staging@netra-staging.iam.gserviceaccount.com"
    before = len(slack.state.messages)
    status, _ = deliver(function.url, pubsub_body(entry))
    say(f"   terraform apply (google_cloud_run_v2_service, traffic LATEST 100) → HTTP {status}")
    for message in slack.state.messages[before:]:
        print_message(message)
    warned = slack.state.messages[before:]
    return (
        len(warned) == 1
        and f"`{name}`" in warned[0]["text"]
        and "releases the watchdog's pin" in warned[0]["text"]
        and warned[0]["blocks"][0]["text"]["text"].startswith("<!here>")
    )


def deploys_while_pinned(api: CloudRunStandIn, slack: SlackStandIn, function: FunctionProcess) -> bool:
    """Steps 8 and 8b on backend, then backend put back as it was before them, for the card's buttons in step 9."""
    import copy

    key = PREFIX + "netra-backend-staging"
    with api.state.lock:
        kept = copy.deepcopy(api.state.services[key]), copy.deepcopy(api.state.revisions[key])
    ok = fix_while_pinned(api, slack, function)
    ok = terraform_unpins(api, slack, function) and ok
    with api.state.lock:
        api.state.services[key], api.state.revisions[key] = kept
    say("   (the demo now puts netra-backend-staging back as it was before these two deploys: pinned, for step 9)")
    return ok


def main() -> None:
    say("=" * 100)
    say("Rollback watchdog demo: the VPC egress incident (staging, 2025-09-15/16), replayed locally")
    say("=" * 100)
    with standins() as world:
        api, slack, monitoring = world.cloud_run, world.slack, world.monitoring
        say(
            "\n1. State before: one deploy (2025-09-15 04:27:41) flipped --vpc-egress private-ranges-only → all-traffic"
        )
        for service in SERVICES:
            say(f"  {service}")
            history(api, service)
        env = world.env()
        log = Path(tempfile.mkdtemp(prefix="watchdog-demo-")) / "function.log"
        say("\n2. Starting: functions-framework --source main.py --target handle_alert --signature-type cloudevent")
        with FunctionProcess(env, log_path=log) as function:
            say(f"   listening on {function.url}; Cloud Run stand-in {api.url}; Slack stand-in {slack.url}")
            deploy_warnings(api, slack, function)
            say("\n3. 2025-09-16 17:42: the alerts fire (37 hours after the deploy), delivered as Eventarc CloudEvents")
            bodies = {}
            for service, alert in SERVICES.items():
                bodies[service] = pubsub_body(fixture(alert))
                started = time.monotonic()
                status, _ = deliver(function.url, bodies[service])
                took = (time.monotonic() - started) * 1000
                policy = fixture(alert)["incident"]["policy_name"]
                say(f"   alert '{policy}' for {service} → HTTP {status} in {took:.0f} ms")
            say("\n4. What the watchdog decided (its structured log lines):")
            for line in function.logs():
                if line.get("decision") in ("rollback", "rolled_back"):
                    say(f"   [{line['severity']}] {line['message']}")
            say("\n5. What on-call saw in Slack:")
            for message in slack.state.messages:
                print_message(message)
            say(
                "\n6. State after: backend pinned to its last private-ranges-only revision; auth pinned, then field-"
                "reverted:\n   a new revision with 00043's code (v1.42.0, by digest) and egress private-ranges-only"
            )
            for service in SERVICES:
                say(f"  {service}")
                history(api, service)
            updates = [r for r in api.state.requests if r["method"] == "PATCH"]
            say("\n   Traffic updates sent to Cloud Run:")
            for update in updates:
                body, mask = update["body"], update["query"]["updateMask"]
                what = f"traffic={json.dumps(body['traffic'])}" if "traffic" in mask else "(ledger: report sent)"
                dry = (
                    " validateOnly (Cloud Run's dry run of the same update)"
                    if update["query"].get("validateOnly")
                    else ""
                )
                say(f"   PATCH …/{update['path'].rsplit('/', 1)[-1]}?updateMask={mask}{dry} {what}")
            say("\n7. Pub/Sub redelivers both alerts and Monitoring re-notifies (at-least-once delivery):")
            before_updates, before_messages = len(updates), len(slack.state.messages)
            for service, body in bodies.items():
                for attempt in (1, 2):
                    status, _ = deliver(function.url, body)
                    say(f"   duplicate #{attempt} for {service} → HTTP {status}")
            updates_after = len([r for r in api.state.requests if r["method"] == "PATCH"])
            say(f"   traffic updates: {before_updates} before, {updates_after} after; "
                f"Slack messages: {before_messages} before, {len(slack.state.messages)} after")  # fmt: skip
            ok = updates_after == before_updates and len(slack.state.messages) == before_messages
            say("   " + ("duplicates did nothing." if ok else "UNEXPECTED: duplicates changed something!"))
            ok = deploys_while_pinned(api, slack, function) and ok
            ok = buttons(api, slack, env, log.parent) and ok
            ok = recovered(api, slack, monitoring, function) and ok
    say("\nDone. Roll forward after the fix (Cloud NAT + private-ranges-only) with:")
    say("   gcloud run services update-traffic SERVICE --to-latest --region us-central1 --project netra-staging")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
