"""Deploy events: audit entries in (both API versions, both delivery paths), the sentinel's warning out."""

from __future__ import annotations

import copy
import json
import time

import pytest

from tests.support import FIXTURES, deliver, fixture, post, pubsub_body
from watchdog.config import Config, ServiceScope
from watchdog.core import ledger, precheck
from watchdog.core.deploys import DeployEvent
from watchdog.core.intake import Ignored, parse
from watchdog.core.sentinel import NOTHING, WARN, judge

AUTH = "projects/netra-staging/locations/us-central1/services/netra-auth-service"
SEED = fixture("cloudrun/incident_seed.json")
FILES = sorted(p.name for p in (FIXTURES / "deploys").glob("*.json"))


def entry(name: str) -> dict:
    return fixture(f"deploys/{name}")


def auth_state(serving: str = "netra-auth-service-00041-kip") -> tuple[dict, list[dict]]:
    """The auth service before the breaking deploy: 00041 (private-ranges-only) serving."""
    service = copy.deepcopy(next(s for s in SEED["services"] if s["name"] == AUTH))
    revisions = sorted((copy.deepcopy(r) for r in SEED["revisions"] if r["service"] == AUTH),
                       key=lambda r: r["createTime"], reverse=True)  # fmt: skip
    service["trafficStatuses"] = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": serving, "percent": 100}
    ]
    return service, revisions


# fixture, what intake makes of it
INTAKE = [
    ("v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json", ("v1", "ALL_TRAFFIC", "gcloud")),
    ("v1_CreateService_gcloud.INFERRED.json", ("v1", "ALL_TRAFFIC", "gcloud")),
    ("v1_ReplaceService_gcloud_traffic_only.INFERRED.json", ("v1", "ALL_TRAFFIC", "gcloud")),
    ("v2_UpdateService_terraform_first_entry.INFERRED.json", ("v2", "ALL_TRAFFIC", "terraform")),
    ("v2_CreateService_console.INFERRED.json", ("v2", "ALL_TRAFFIC", "console")),
    ("v2_UpdateService_terraform_last_entry_no_request.INFERRED.json", "no_request"),
    ("v2_UpdateService_watchdog_traffic_only.INFERRED.json", "no_template"),
    ("v1_ReplaceService_console.INFERRED.json", ("v1", "ALL_TRAFFIC", "console")),
    ("v2_UpdateService_wif_deployer.INFERRED.json", ("v2", "ALL_TRAFFIC", "terraform")),
    # Cloud Run logs a request it refused, with the full request: no revision comes of it
    ("v1_ReplaceService_gcloud_refused.INFERRED.json", "refused"),
    # the deploy paths of tests/test_deploy_paths.py
    ("v2_UpdateService_terraform_unpin.INFERRED.json", ("v2", "ALL_TRAFFIC", "terraform")),
    ("v2_UpdateService_terraform_drift_fix.INFERRED.json", ("v2", "ALL_TRAFFIC", "terraform")),
    ("v2_UpdateService_terraform_after_previews.INFERRED.json", ("v2", "ALL_TRAFFIC", "terraform")),
    ("v1_ReplaceService_gcloud_update_traffic_to_latest.INFERRED.json", ("v1", "ALL_TRAFFIC", "gcloud")),
    ("v1_ReplaceService_gcloud_fix_while_pinned.INFERRED.json", ("v1", "PRIVATE_RANGES_ONLY", "gcloud")),
    ("v1_ReplaceService_gcloud_no_traffic_tag.INFERRED.json", ("v1", "ALL_TRAFFIC", "gcloud")),
    ("v1_ReplaceService_gcloud_logged_after_its_revision.INFERRED.json", ("v1", "ALL_TRAFFIC", "gcloud")),
    (
        "v2_UpdateService_watchdog_field_revert.INFERRED.json",
        ("v2", "PRIVATE_RANGES_ONLY", "gl-python/3.12.3 grpc/1.66.0 gax/2.19.0 gapic/0.16.2"),
    ),
]
# Writes whose template the service already holds: no revision comes of them, so `check` does not apply.
NO_NEW_REVISION = ("traffic_only", "update_traffic", "drift_fix")


def test_every_fixture_is_in_the_table():
    assert sorted(name for name, _ in INTAKE) == FILES


@pytest.mark.parametrize("wrap", ["sink", "eventarc"])
@pytest.mark.parametrize(("name", "expected"), INTAKE, ids=[n for n, _ in INTAKE])
def test_intake_reads_both_api_versions_and_both_delivery_paths(name, expected, wrap):
    body = pubsub_body(entry(name)) if wrap == "sink" else entry(name)
    parsed = parse(body)
    if isinstance(expected, str):
        assert isinstance(parsed, Ignored)
        assert parsed.reason == expected
        return
    api, egress, agent = expected
    assert isinstance(parsed, DeployEvent)
    assert str(parsed.service) == "netra-staging/us-central1/netra-auth-service"
    assert (parsed.api, parsed.template["vpcAccess"]["egress"], parsed.user_agent) == (api, egress, agent)
    assert parsed.template["volumes"][0]["cloudSqlInstance"]["instances"] == [
        "netra-staging:us-central1:staging-shared-postgres"
    ]
    assert parsed.principal.endswith(".iam.gserviceaccount.com") or parsed.principal.startswith("principal://")
    assert parsed.from_service is False


WIF = (
    "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/github/subject/"
    "repo:netra/platform:ref:refs/heads/main"
)
# fixture: (who deployed, with what)
WHO = {
    "v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json": (
        "deployer@netra-staging.iam.gserviceaccount.com",
        "gcloud",
    ),
    "v2_UpdateService_terraform_first_entry.INFERRED.json": (
        "deployer@netra-staging.iam.gserviceaccount.com",
        "terraform",
    ),
    # a browser user agent: the template's run.googleapis.com/client-name (cloud-console) names the console
    "v1_ReplaceService_console.INFERRED.json": ("deployer@netra-staging.iam.gserviceaccount.com", "console"),
    # no principalEmail through workload identity federation: principalSubject names the deployer
    "v2_UpdateService_wif_deployer.INFERRED.json": (WIF, "terraform"),
}


@pytest.mark.parametrize(("name", "expected"), WHO.items(), ids=WHO.keys())
def test_who_deployed_and_with_what(name, expected):
    parsed = parse(entry(name))
    assert (parsed.principal, parsed.user_agent) == expected
    from watchdog.core.sentinel import render

    service, revisions = auth_state()
    text = render(parsed, judge(parsed, service, revisions, Config(services=ServiceScope.parse("*")))).text
    assert f"by {expected[0]} via {expected[1]}" in text
    assert "Mozilla" not in text
    assert "unknown" not in text


def test_a_refused_request_is_no_deploy_whatever_it_asked_for():
    refused = entry("v1_ReplaceService_gcloud_refused.INFERRED.json")
    assert refused["protoPayload"]["request"]["service"]["spec"]["template"]  # the full request is in the entry
    parsed = parse(pubsub_body(refused))
    assert (parsed.reason, parsed.tell) == ("refused", False)
    assert "code 3" in parsed.detail
    accepted = copy.deepcopy(refused)
    accepted["protoPayload"]["status"] = {}
    assert isinstance(parse(accepted), DeployEvent)


def _without_request(operation: dict | None) -> dict:
    first = entry("v2_UpdateService_terraform_first_entry.INFERRED.json")
    del first["protoPayload"]["request"]
    if operation is None:
        del first["operation"]
    else:
        first["operation"] = {"id": first["operation"]["id"], "producer": "run.googleapis.com", **operation}
    return first


# Whether v2 UpdateService entries carry the request is not documented: the first (or only) entry of an
# operation without one is judged from the service; the other entry of the operation is not a second deploy.
NO_REQUEST = {
    "the first entry of the operation": ({"first": True}, True),
    "an entry of no operation (the only one)": (None, True),
    "the last entry of the operation": ({"last": True}, False),
    "an entry in the middle of the operation": ({}, False),
}


@pytest.mark.parametrize(("operation", "judged"), NO_REQUEST.values(), ids=NO_REQUEST.keys())
def test_an_entry_without_its_request(operation, judged):
    parsed = parse(_without_request(operation))
    if not judged:
        assert (type(parsed), parsed.reason) == (Ignored, "no_request")
        return
    assert isinstance(parsed, DeployEvent)
    assert (parsed.from_service, parsed.template) == (True, {})


def test_a_deploy_read_from_the_service_is_judged_like_its_request():
    """The update stores the requested template in the service at once: the same verdict as the request's."""
    from watchdog.core.deploys import with_service_template

    service, revisions = auth_state()
    with_request = parse(entry("v2_UpdateService_terraform_first_entry.INFERRED.json"))
    service["template"] = copy.deepcopy(with_request.template) | {"labels": {"x": "y"}}
    read = with_service_template(parse(_without_request({"first": True})), service)
    assert (read.template, read.key) == (with_request.template, with_request.key)
    config = Config(services=ServiceScope.parse("*"))
    assert judge(read, service, revisions, config).reason == judge(with_request, service, revisions, config).reason
    assert with_service_template(read, {"name": AUTH}) is None


def test_revisions_are_ordered_by_their_creation_not_by_the_listing():
    from watchdog.core.deploys import newest_first

    _, revisions = auth_state()
    shuffled = [revisions[1], revisions[-1], revisions[0], *revisions[2:-1]]
    assert newest_first(shuffled) == revisions


@pytest.mark.parametrize(
    "mangle",
    [
        lambda e: e["protoPayload"].update(methodName="google.cloud.run.v2.Services.DeleteService"),
        lambda e: e["protoPayload"].update(serviceName="storage.googleapis.com"),
        lambda e: e["protoPayload"]["request"]["service"].update(template=[]),
        lambda e: (
            e["resource"].update(labels={}),
            e["protoPayload"].update(resourceName="x"),
            e["protoPayload"]["request"]["service"].update(name=""),
        ),
        lambda e: e["protoPayload"].update(request="not an object"),
    ],
)
def test_malformed_entries_are_ignored_with_a_reason(mangle):
    bad = entry("v2_UpdateService_terraform_first_entry.INFERRED.json")
    mangle(bad)
    parsed = parse(pubsub_body(bad))
    assert isinstance(parsed, Ignored)
    assert parsed.reason


def test_copies_of_one_deploy_share_a_key_and_other_deploys_do_not():
    first = parse(entry("v2_UpdateService_terraform_first_entry.INFERRED.json"))
    copy_ = parse(pubsub_body(entry("v2_UpdateService_terraform_first_entry.INFERRED.json")))
    other = parse(entry("v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json"))
    assert first.key == copy_.key
    assert first.key != other.key


@pytest.mark.parametrize(
    "name", [n for n, e in INTAKE if not isinstance(e, str) and not any(w in n for w in NO_NEW_REVISION)]
)
def test_the_sentinel_and_check_agree(name):
    """Same pair of templates, same verdict: the deploy warning is `check` at deploy time."""
    event = parse(entry(name))
    service, revisions = auth_state("netra-auth-service-00041-kip")
    verdict = judge(event, service, revisions, Config(services=ServiceScope.parse("*")))
    serving = next(r for r in revisions if r["name"].endswith("00041-kip"))
    expected = precheck.evaluate(serving, event.template)
    assert verdict.action == (WARN if not expected.ok else NOTHING)
    assert [f.rule for f in verdict.findings] == [f.rule for f in expected.findings]


def test_the_warning_names_the_rule_its_fix_who_and_what_the_watchdog_will_do():
    from watchdog.core.sentinel import render

    event = parse(entry("v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json"))
    service, revisions = auth_state()
    verdict = judge(event, service, revisions, Config(services=ServiceScope.parse("*")))
    text = render(event, verdict).text
    assert "egress-flip" in text
    assert "all-traffic-cloud-sql" in text
    assert "Cloud NAT" in text  # the fix
    assert "deployer@netra-staging.iam.gserviceaccount.com via gcloud" in text
    assert "will roll back to `netra-auth-service-00041-kip`" in text.replace(
        "will roll back to netra", "will roll back to `netra"
    ).replace("kip if", "kip` if")
    assert "revision pending" in text


@pytest.mark.parametrize("serving", ["netra-auth-service-00043-nul", "netra-auth-service-00041-kip"])
def test_a_traffic_only_write_and_the_watchdogs_own_write_are_not_deploys(serving):
    """gcloud update-traffic re-sends the template of the newest revision, whatever serves (even when pinned)."""
    service, revisions = auth_state(serving)
    config = Config(
        services=ServiceScope.parse("*"), own_principal="rollback-watchdog-fn@netra-staging.iam.gserviceaccount.com"
    )
    traffic = parse(entry("v1_ReplaceService_gcloud_traffic_only.INFERRED.json"))
    assert judge(traffic, service, revisions, config).reason == "no_template_change"
    assert parse(entry("v2_UpdateService_watchdog_traffic_only.INFERRED.json")).reason == "no_template"
    own = parse(entry("v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json"))
    own = DeployEvent(**{**own.__dict__, "principal": config.own_principal})
    assert judge(own, service, revisions, config).reason == "own_write"


# --- end to end -------------------------------------------------------------------------------------


def eventarc_audit(url: str, body: dict) -> tuple[int, str]:
    headers = {
        "Content-Type": "application/json",
        "ce-id": body["insertId"],
        "ce-source": "//cloudaudit.googleapis.com/projects/netra-staging/logs/activity",
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.audit.log.v1.written",
        "ce-time": body["timestamp"],
        "ce-dataschema": "type.googleapis.com/google.logging.v2.LogEntry",
        "ce-subject": f"run.googleapis.com/{body['protoPayload']['resourceName']}",
        "ce-methodname": body["protoPayload"]["methodName"],
        "ce-servicename": "run.googleapis.com",
    }
    return post(url, json.dumps(body).encode(), headers)


def before_the_breaking_deploy(stack) -> None:
    state = stack.cloud_run.state
    state.services[AUTH]["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                                        "revision": "netra-auth-service-00041-kip", "percent": 100}]  # fmt: skip
    state._refresh_status(state.services[AUTH])


@pytest.mark.e2e
def test_one_warning_per_deploy_whatever_arrives(start_stack):
    stack = start_stack()
    before_the_breaking_deploy(stack)
    first = entry("v2_UpdateService_terraform_first_entry.INFERRED.json")
    last = entry("v2_UpdateService_terraform_last_entry_no_request.INFERRED.json")
    for body in (pubsub_body(first), pubsub_body(last), pubsub_body(first)):
        assert deliver(stack.function.url, body) == (200, "OK")
    assert eventarc_audit(stack.function.url, first)[0] == 200
    assert stack.traffic_attempts() == []
    [warning] = stack.messages
    assert "Risky deploy of `netra-auth-service`" in warning["text"]
    assert "terraform" in warning["text"]
    memory = json.loads(stack.cloud_run.state.services[AUTH]["annotations"][ledger.MEMORY_KEY])
    assert len(memory["warned"]) == 1
    # a new instance (cold start) still remembers: the ledger has it
    stack.function.stop()
    stack.function.start()
    assert deliver(stack.function.url, pubsub_body(first)) == (200, "OK")
    assert len(stack.messages) == 1


@pytest.mark.e2e
def test_out_of_scope_services_are_warned_never_read_nor_written(start_stack):
    """The function may read only the watched services: a deploy of another is judged from its request alone."""
    stack = start_stack(WATCHDOG_SERVICES="other")
    before_the_breaking_deploy(stack)
    assert (
        eventarc_audit(stack.function.url, entry("v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json"))[0] == 200
    )
    [warning] = stack.messages
    assert "will only report" in warning["text"]
    assert "Serving now: not read" in warning["text"]  # true: the watchdog did not read it
    assert "all-traffic-cloud-sql" in warning["text"]  # what the request alone shows
    assert stack.cloud_run.state.requests == []
    assert stack.denied() == []
    assert [line for line in stack.function.logs() if line["severity"] == "ERROR"] == []


def _fix(traffic: list[dict]) -> dict:
    """The fix (egress back to private-ranges-only), its entry logged now: after the rollback."""
    fix = entry("v2_UpdateService_terraform_first_entry.INFERRED.json")
    fix["protoPayload"]["request"]["service"]["template"]["vpcAccess"]["egress"] = "PRIVATE_RANGES_ONLY"
    fix["protoPayload"]["request"]["service"]["traffic"] = traffic
    fix["insertId"] = "the-fix"
    fix["operation"]["id"] = "op-the-fix"
    fix["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return fix


# the fix's traffic: (what the note says, loud)
FIX_TRAFFIC = {
    "pinned (the service's traffic sent back as it is)": (
        [
            {
                "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                "revision": "netra-auth-service-00041-kip",
                "percent": 100,
            }
        ],
        ("it gets 0% (pinned)", "undoing the breaking change", "--to-latest"),
    ),
    "LATEST 100 (terraform's traffic block)": (
        [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
        ("routes 100% to the new revision and releases the watchdog's pin", "undoing the breaking change"),
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize(("traffic", "says"), FIX_TRAFFIC.values(), ids=FIX_TRAFFIC.keys())
def test_the_fix_deployed_while_traffic_is_pinned_is_noted_in_the_incident_thread(start_stack, traffic, says):
    stack = start_stack(WATCHDOG_FIELD_REVERT="off")  # a pin that stays: the field revert would release it
    assert deliver(stack.function.url, pubsub_body(fixture("alerts/incident_auth_db_timeout_log_match.json"))) == (
        200,
        "OK",
    )
    [report] = stack.messages
    assert deliver(stack.function.url, pubsub_body(_fix(traffic))) == (200, "OK")
    note = stack.messages[-1]
    assert note["thread_ts"] == report["ts"]
    assert "reply_broadcast" not in note  # a note, not a page
    for words in says:
        assert words in note["text"]
    assert len(stack.traffic_updates()) == 1  # the rollback only


@pytest.mark.e2e
def test_malformed_deploy_entries_are_acknowledged_and_change_nothing(start_stack):
    stack = start_stack()
    bad = entry("v2_UpdateService_terraform_first_entry.INFERRED.json")
    bad["protoPayload"]["request"] = {"service": {"template": "nope"}}
    assert deliver(stack.function.url, pubsub_body(bad)) == (200, "OK")
    assert stack.patches() == []
    assert stack.messages == []
    assert any(line.get("decision") == "ignored" for line in stack.function.logs())


@pytest.mark.e2e
def test_hold_pins_traffic_back_once_the_risky_deploy_serves_and_undo_applies(start_stack):
    stack = start_stack(WATCHDOG_SENTINEL="hold")
    before_the_breaking_deploy(stack)
    event = entry("v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json")
    event["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 5))
    body = pubsub_body(event)
    assert deliver(stack.function.url, body)[0] == 500  # warned; its revision does not serve yet: redeliver
    [warning] = stack.messages
    assert "will pin traffic back to netra-auth-service-00041-kip as soon as the new revision serves" in warning["text"]
    assert stack.traffic_attempts() == []
    # the deploy goes ahead: its revision is created and takes all the traffic
    good = next(r for r in stack.cloud_run.state.revisions[AUTH] if r["name"].endswith("00041-kip"))
    risky = copy.deepcopy(good)
    risky.update(
        name=good["name"].replace("00041-kip", "00044-new"),
        createTime=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
    )
    risky["vpcAccess"]["egress"] = "ALL_TRAFFIC"
    stack.cloud_run.state.deploy(AUTH, risky)
    assert deliver(stack.function.url, body) == (200, "OK")  # the redelivery holds it
    assert stack.serving(AUTH) == {"netra-auth-service-00041-kip": 100}
    record = ledger.find(stack.cloud_run.state.services[AUTH]["annotations"], f"hold-{parse(event).key}")
    assert (record.from_revision, record.to_revision) == (
        "netra-auth-service-00044-new",
        "netra-auth-service-00041-kip",
    )
    assert len(stack.messages) == 2  # the warning, then the hold's card
    assert stack.messages[1]["text"].startswith("Rolled back netra-auth-service to netra-auth-service-00041-kip")
    # more copies of the entry change nothing; the cooldown and the ledger apply as for any rollback
    assert deliver(stack.function.url, body) == (200, "OK")
    assert len(stack.traffic_updates()) == 1


@pytest.mark.e2e
def test_hold_never_touches_services_out_of_scope(start_stack):
    stack = start_stack(WATCHDOG_SENTINEL="hold", WATCHDOG_SERVICES="other")
    before_the_breaking_deploy(stack)
    event = entry("v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json")
    assert deliver(stack.function.url, pubsub_body(event)) == (200, "OK")
    [warning] = stack.messages
    assert "will only report" in warning["text"]
    assert stack.patches() == []


def test_a_hold_can_be_undone_like_any_rollback():
    """The hold's ledger record is a rollback record: the card's undo puts the deploy's traffic back."""
    from watchdog.config import ServiceRef
    from watchdog.core import actions

    service, _ = auth_state("netra-auth-service-00041-kip")
    record = ledger.Record("hold-abc", "netra-auth-service-00044-new", "netra-auth-service-00041-kip", 1000.0,
                           before=(("LATEST", 100, ""),), after=(("netra-auth-service-00041-kip", 100),),
                           latest=service["latestCreatedRevision"].rsplit("/", 1)[-1])  # fmt: skip
    service["annotations"] = ledger.with_record({}, record)
    ref = ServiceRef("netra-staging", "us-central1", "netra-auth-service")
    click = actions.Click(actions.UNDO, "U0ONCALL", "T0", "C0", "1.0", "2.0", ref, "hold-abc")
    plan = actions.plan(click, service, 2000.0)
    assert plan.outcome == "apply"
    assert plan.traffic == ({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100},)
