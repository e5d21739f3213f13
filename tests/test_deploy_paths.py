"""The deploy paths real teams use, as the sentinel must see them (issue 21): where the traffic goes, whether the
deploy releases the watchdog's pin, which revision it made, what served before it.

Each named case is an audit entry as the audit log writes it (tests/fixtures/deploys/, INFERRED fields marked in
its ``_comment``) and the world as the watchdog reads it (tests/deploy_worlds.py), judged by the pure sentinel.
The ones that need the shell (the revision read by name behind a hundred previews, two processes at once, the
un-pin warned and held through the alert path) also run end to end, through functions-framework and the stand-ins
under terraform's grants.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests import deploy_worlds as w
from tests.support import FunctionProcess, deliver, deliver_until_acked, fixture, incident_seed_at, pubsub_body
from watchdog.config import Config, ServiceScope
from watchdog.core import ledger, sentinel
from watchdog.core.deploys import DeployEvent
from watchdog.core.intake import parse, rfc3339

ROLLED_BACK = rfc3339("2025-09-16T17:43:10Z")  # the watchdog's rollback of the incident, as on the day
AFTER = rfc3339("2025-09-17T10:00:01.604Z")  # the revisions the 2025-09-17 deploys made, 1.5 s after the entry
FIXED = "netra-auth-service-00044-fix"
APPLIED = "netra-auth-service-00044-tfa"
V143 = "gcr.io/netra-staging/netra-auth:v1.43.0"
REVERT = "netra-auth-service-revert-7a72df"


def event(name: str, **changes) -> DeployEvent:
    parsed = parse(fixture(f"deploys/{name}.INFERRED.json"))
    assert isinstance(parsed, DeployEvent), parsed
    return DeployEvent(**{**parsed.__dict__, **changes}) if changes else parsed


# --- the worlds ---------------------------------------------------------------------------------------


def pinned() -> dict:
    return w.pinned(w.auth(), ROLLED_BACK)


def unpinned() -> dict:
    """terraform's apply took effect: its revision (v1.43.0, all-traffic) serves 100% through LATEST."""
    world = pinned()
    return w.deployed(world, w.revision(APPLIED, AFTER, like=w.like(world, w.R42), image=V143), w.LATEST_100)


def drift_fixed() -> dict:
    """terraform's traffic (LATEST 100) took effect: no new revision, so 00043 serves again."""
    return w.deployed(pinned(), None, w.LATEST_100)


def fixed_at_zero() -> dict:
    """gcloud deployed the fix while pinned: its revision exists, the pin holds."""
    world = pinned()
    fix = w.revision(FIXED, AFTER, like=w.like(world, w.R41), image=V143)
    return w.deployed(world, fix, [{"type": w.REVISION_TYPE, "revision": w.R41, "percent": 100}])


def taken_over() -> dict:
    """After the field revert released the pin (its revision follows LATEST), terraform applies all-traffic."""
    world = w.pinned(w.auth(), ROLLED_BACK, revert=REVERT)
    applied = w.revision(APPLIED, AFTER, like=w.like(world, w.R42), image=V143)
    return w.deployed(world, applied, w.LATEST_100)


def before_the_flip() -> dict:
    """The auth service before the breaking deploy: 00041 serves (LATEST)."""
    world = w.auth()
    world["revisions"] = [r for r in world["revisions"] if r["name"].endswith(w.R41)]
    service = world["services"][0]
    service["latestCreatedRevision"] = service["latestReadyRevision"] = f"{w.AUTH}/revisions/{w.R41}"
    return world


def logged_after_its_revision() -> dict:
    """The breaking deploy took effect: 00042 (created 2 s before its entry) serves through LATEST."""
    world = w.auth()
    world["revisions"] = [r for r in world["revisions"] if not r["name"].endswith(w.R43)]
    service = world["services"][0]
    service["latestCreatedRevision"] = service["latestReadyRevision"] = f"{w.AUTH}/revisions/{w.R42}"
    return world


def behind_previews(count: int, remembered: str = "") -> Callable[[], dict]:
    """00041 serves by name (each --no-traffic preview kept it), ``count`` previews after it; the apply's first
    entry is logged when its operation starts, before its revision exists. ``remembered``: a redelivery after the
    apply took effect, the baseline remembered with the claim of the warning (the deploy's key)."""

    def world() -> dict:
        start = w.created(w.auth(), w.R41) + 3600
        base = w.serving(w.previews(w.auth(), count, start=start), w.R41)
        if not remembered:
            return base
        applied = w.revision(APPLIED, rfc3339("2025-09-20T10:00:01.604Z"), like=w.like(base, w.R41), image=V143,
                             egress="ALL_TRAFFIC")  # fmt: skip
        after = w.deployed(base, applied, w.LATEST_100)
        service = after["services"][0]
        service["annotations"] = ledger.with_claim(service.get("annotations"), remembered, AFTER, w.R41)
        return after

    return world


def preview_tagged() -> dict:
    world = w.auth()
    preview = w.revision("netra-auth-service-00044-pre", AFTER, like=w.like(world, w.R43), image=V143)
    traffic = [{"type": w.REVISION_TYPE, "revision": w.R43, "percent": 100},
               {"type": w.REVISION_TYPE, "revision": "netra-auth-service-00044-pre", "tag": "preview"}]  # fmt: skip
    return w.deployed(world, preview, traffic)


def released_earlier() -> dict:
    """Another deploy released the pin already (marked on the rollback's record): this one is a deploy like any."""
    world = unpinned()
    service = world["services"][0]
    record = w.record_of(service)
    row = (sentinel.RELEASED_EVENT, "deployer@netra-staging.iam.gserviceaccount.com", AFTER - 3600, "another-deploy")
    service["annotations"] = ledger.updated(service["annotations"], w.INCIDENT, events=(row,))
    assert record is not None
    return world


def warned(world: Callable[[], dict], key: str) -> Callable[[], dict]:
    def done() -> dict:
        found = world()
        service = found["services"][0]
        service["annotations"] = ledger.with_warned(service.get("annotations"), key, w.R41)
        return found

    return done


@dataclass(frozen=True)
class Case:
    entry: str  # tests/fixtures/deploys/<entry>.INFERRED.json
    world: Callable[[], dict]
    expect: dict  # DeployVerdict fields, exactly
    text: tuple[str, ...] = ()  # in the message
    config: dict = field(default_factory=dict)
    first_page: int = 0  # only this many revisions listed (the rest read by name, as the shell does)
    changes: dict = field(default_factory=dict)  # on the parsed event


UNPIN = "v2_UpdateService_terraform_unpin"
PIN_RELEASED = f"routes 100% to the new revision and releases the watchdog's pin on `{w.R41}` (incident {w.INCIDENT})"

CASES = {
    "terraform un-pin (read after the apply took effect)": Case(
        UNPIN, unpinned,
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True, "keeps": True, "revision": APPLIED,
         "baseline": w.R41, "hold": False},
        (PIN_RELEASED, f"It keeps egress `all-traffic`, the value the watchdog rolled away from (`{w.R43}`)",
         "The watchdog will revert the egress on a new revision that keeps the deploy's code if its symptoms alert "
         f"(traffic pinned to {w.R41} meanwhile)"),
    ),
    "terraform un-pin (read before its revision exists)": Case(
        UNPIN, pinned,
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True, "revision": "", "baseline": w.R41},
        (PIN_RELEASED, "(`revision pending`)"),
    ),
    "terraform un-pin under hold": Case(
        UNPIN, unpinned,
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True, "hold": True, "serves": APPLIED},
        (PIN_RELEASED, f"will pin traffic back to {w.R41} as soon as {APPLIED} serves, then revert the egress on a "
         "new revision that keeps the deploy's code (WATCHDOG_SENTINEL=hold)"),
        config={"sentinel": "hold"},
    ),
    "terraform un-pin under hold, WATCHDOG_FIELD_REVERT=off": Case(
        UNPIN, unpinned,
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True, "hold": True, "serves": APPLIED},
        (f"will pin traffic back to {w.R41} as soon as {APPLIED} serves (WATCHDOG_SENTINEL=hold)",),
        config={"sentinel": "hold", "field_revert": "off"},
    ),
    "terraform un-pin under hold, an hour after the rollback": Case(
        UNPIN, lambda: w.pinned(w.auth(), rfc3339("2025-09-17T09:00:00Z")),
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True, "hold": False},
        ("will only report:", "it rolled this service back 60 min ago", "cooldown is 120 min"),
        config={"sentinel": "hold", "cooldown_seconds": 7200},
    ),
    "drift fix: terraform restores 00043's template and LATEST 100%": Case(
        "v2_UpdateService_terraform_drift_fix", drift_fixed,
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True, "creates": False, "put_back": w.R43,
         "serves": w.R43, "hold": True},
        (f"puts `{w.R43}` back", f"routes 100% to `{w.R43}` and releases the watchdog's pin on `{w.R41}`",
         f"the template equals `{w.R43}`'s", f"will pin traffic back to {w.R41} as soon as {w.R43} serves"),
        config={"sentinel": "hold"},
    ),
    "the same by hand (gcloud update-traffic --to-latest): warned loudly, never held": Case(
        "v1_ReplaceService_gcloud_update_traffic_to_latest", drift_fixed,
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True, "put_back": w.R43, "hold": False},
        (f"puts `{w.R43}` back",),
        config={"sentinel": "hold"},
    ),
    "120 previews in front of the serving revision (read by name)": Case(
        "v2_UpdateService_terraform_after_previews", behind_previews(120),
        {"action": sentinel.WARN, "reason": "risky", "baseline": w.R41, "revision": "", "hold": True},
        (f"Serving before it: `{w.R41}`", "egress-flip", "routes 100% to the new revision",
         f"will pin traffic back to {w.R41} as soon as the new revision serves"),
        config={"sentinel": "hold"}, first_page=100,
    ),
    "20 previews in front of the serving revision": Case(
        "v2_UpdateService_terraform_after_previews", behind_previews(20),
        {"action": sentinel.WARN, "reason": "risky", "baseline": w.R41},
        (f"Serving before it: `{w.R41}`", "egress-flip"),
        first_page=100,
    ),
    "120 previews, redelivered after the apply took the traffic (the baseline remembered)": Case(
        "v2_UpdateService_terraform_after_previews",
        behind_previews(120, remembered=event("v2_UpdateService_terraform_after_previews").key),
        {"action": sentinel.WARN, "reason": "risky", "baseline": w.R41, "revision": APPLIED, "hold": True},
        (f"Serving before it: `{w.R41}`", f"will pin traffic back to {w.R41} as soon as {APPLIED} serves"),
        config={"sentinel": "hold"}, first_page=100,
    ),
    "console deploy (v1 ReplaceService, a browser, client-name cloud-console)": Case(
        "v1_ReplaceService_console", before_the_flip,
        {"action": sentinel.WARN, "reason": "risky", "baseline": w.R41, "revision": ""},
        ("via console", "egress-flip", "all-traffic-cloud-sql", "routes 100% to the new revision",
         f"will roll back to {w.R41} if its symptoms alert"),
    ),
    "gcloud deploy --no-traffic --tag preview": Case(
        "v1_ReplaceService_gcloud_no_traffic_tag", preview_tagged,
        {"action": sentinel.WARN, "reason": "risky", "revision": "netra-auth-service-00044-pre", "serves": "",
         "baseline": w.R43, "hold": False},
        ("tagged `preview` at 0%", "already the case in the serving revision",
         "acts on it only once it takes traffic"),
        config={"sentinel": "hold"},
    ),
    "late timestamp: a v1 entry written 2 s after its revision": Case(
        "v1_ReplaceService_gcloud_logged_after_its_revision", logged_after_its_revision,
        {"action": sentinel.WARN, "reason": "risky", "revision": w.R42, "baseline": w.R41, "creates": True},
        (f"(`{w.R42}`)", "egress-flip", f"Serving before it: `{w.R41}`"),
    ),
    "the fix deployed with gcloud while pinned: 0%, named": Case(
        "v1_ReplaceService_gcloud_fix_while_pinned", fixed_at_zero,
        {"action": sentinel.NOTE, "reason": "pinned", "revision": FIXED, "undoes": True, "loud": False},
        (f"(`{FIXED}`)", "it gets 0% (pinned)", "undoing the breaking change", "--to-latest"),
    ),
    "the fix deployed with gcloud while pinned, before its revision exists": Case(
        "v1_ReplaceService_gcloud_fix_while_pinned", pinned,
        {"action": sentinel.NOTE, "reason": "pinned", "revision": ""},
        ("(`revision pending`)", "it gets 0% (pinned)"),
    ),
    "the fix applied with terraform: releases the pin with the target's value": Case(
        UNPIN, pinned,
        {"action": sentinel.NOTE, "reason": "releases_pin_fixed", "loud": False, "undoes": True, "releases": True},
        (PIN_RELEASED, "It puts egress back to `private-ranges-only`, undoing the breaking change"),
        changes={"template": {**event(UNPIN).template, "vpcAccess": {"egress": "PRIVATE_RANGES_ONLY",
                 "connector": "projects/netra-staging/locations/us-central1/connectors/staging-connector"}}},
    ),
    "after the field revert released the pin, terraform puts all-traffic back": Case(
        UNPIN, taken_over,
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True, "keeps": True},
        ("takes over from the watchdog's field-revert revision `netra-auth-service-revert-7a72df`",),
    ),
    "terraform un-pin under hold, pinned to the watchdog's field-revert revision: held back to it": Case(
        UNPIN, lambda: w.pinned(w.auth(), ROLLED_BACK, revert=REVERT, follows=False),
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True, "hold": True, "baseline": REVERT},
        (f"releases the watchdog's pin on `{REVERT}`", f"will pin traffic back to {REVERT} as soon as"),
        config={"sentinel": "hold", "field_revert": "off"},
    ),
    "a later gcloud deploy that sends the field-revert label back is a deploy": Case(
        "v1_ReplaceService_gcloud_egress_all_traffic", lambda: w.pinned(w.auth(), ROLLED_BACK, revert=REVERT),
        {"action": sentinel.WARN, "reason": "releases_pin", "loud": True},
        (f"takes over from the watchdog's field-revert revision `{REVERT}`",),
        changes={"labels": {"rollback-watchdog": "field-revert"}, "at": "2025-09-17T10:00:00.104Z"},
    ),
    "a deploy after another deploy released the pin is not taken for the release": Case(
        UNPIN, released_earlier,
        {"action": sentinel.WARN, "reason": "risky", "releases": False, "loud": False, "pinned": None},
    ),
    "the watchdog's own field-revert revision": Case(
        "v2_UpdateService_watchdog_field_revert", pinned, {"action": sentinel.NOTHING, "reason": "own_revision"}
    ),
    "a copy of a deploy already warned about (another delivery of the entry)": Case(
        UNPIN, warned(unpinned, event(UNPIN).key), {"action": sentinel.NOTHING, "reason": "already_warned"}
    ),
}  # fmt: skip


def judged(case: Case) -> tuple[DeployEvent, sentinel.DeployVerdict]:
    parsed = event(case.entry, **case.changes)
    service, revisions = w.read(case.world())
    if case.first_page:  # the first page of ListRevisions, then what the verdict wants by name
        page = revisions[: case.first_page]
        wanted = sentinel.wanted(parsed, service, page)
        revisions = page + [r for r in revisions[case.first_page :] if r["name"].rsplit("/", 1)[-1] in wanted]
    config = Config(services=ServiceScope.parse("netra-auth-service"), **case.config)
    return parsed, sentinel.judge(parsed, service, revisions, config, rfc3339(parsed.at) + 20)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_deploy_path_is_seen_as_it_really_is(case: Case):
    parsed, verdict = judged(case)
    assert {key: getattr(verdict, key) for key in case.expect} == case.expect, verdict.detail
    if verdict.action == sentinel.NOTHING:
        return
    message = sentinel.render(parsed, verdict)
    for fragment in case.text:
        assert fragment in message.text
    assert message.loud is verdict.loud


def test_the_serving_revision_behind_120_previews_is_read_by_name_and_only_it():
    parsed = event("v2_UpdateService_terraform_after_previews")
    service, revisions = w.read(behind_previews(120)())
    assert sentinel.wanted(parsed, service, revisions[:100]) == (w.R41,)
    assert sentinel.wanted(parsed, service, revisions) == ()


def test_the_tolerance_is_what_keeps_a_late_entry_from_its_own_revision():
    """Without the tolerance the entry is compared with the revision it made: "no template change"."""
    parsed = event("v1_ReplaceService_gcloud_logged_after_its_revision")
    service, revisions = w.read(logged_after_its_revision())
    config = Config(services=ServiceScope.parse("*"))
    assert sentinel.judge(parsed, service, revisions, config, rfc3339(parsed.at)).reason == "risky"
    own = sentinel.own_revision(parsed, service, revisions)
    assert own is not None
    assert own["name"].endswith(w.R42)
    late = DeployEvent(**{**parsed.__dict__, "at": "2025-09-15T04:28:30.000Z"})  # 49 s after: not its own any more
    assert sentinel.judge(late, service, revisions, config, rfc3339(late.at)).reason == "no_template_change"


def test_the_console_deploy_is_exported_by_the_sink_and_named():
    from tests.terraform.test_sentinel_wiring import FN, filters, matches

    entry = fixture("deploys/v1_ReplaceService_console.INFERRED.json")
    assert "Mozilla" in entry["protoPayload"]["requestMetadata"]["callerSuppliedUserAgent"]
    per_project, folder = filters([FN])
    assert matches(per_project["netra-staging"], entry)
    assert matches(folder, entry)
    parsed = parse(entry)
    assert (parsed.api, parsed.user_agent, str(parsed.service)) == (
        "v1", "console", "netra-staging/us-central1/netra-auth-service"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "traffic"),
    [
        ("v2_UpdateService_terraform_unpin", ({"type": w.LATEST_TYPE, "percent": 100},)),
        ("v1_ReplaceService_gcloud_egress_all_traffic", ({"type": w.LATEST_TYPE, "percent": 100},)),
        ("v1_ReplaceService_gcloud_fix_while_pinned", ({"type": w.REVISION_TYPE, "percent": 100, "revision": w.R41},)),
        ("v1_ReplaceService_gcloud_no_traffic_tag", (
            {"type": w.REVISION_TYPE, "percent": 100, "revision": w.R43},
            {"type": w.REVISION_TYPE, "percent": 0, "revision": "netra-auth-service-00044-pre", "tag": "preview"})),
        ("v2_UpdateService_watchdog_field_revert", (
            {"type": w.REVISION_TYPE, "percent": 100, "revision": w.R41},
            {"type": w.REVISION_TYPE, "percent": 0, "revision": "netra-auth-service-revert-7a72df",
             "tag": "watchdog-revert"})),
        ("v2_UpdateService_terraform_last_entry_no_request", None),
    ],
)  # fmt: skip
def test_the_requests_traffic_in_the_v2_shape(entry, traffic):
    found = fixture(f"deploys/{entry}.INFERRED.json")
    if "request" not in found["protoPayload"]:
        found["operation"]["first"] = True  # judged from the service: its traffic is the service's after it
    parsed = parse(found)
    assert parsed.traffic == traffic


def test_an_update_mask_without_traffic_leaves_the_traffic_to_the_service():
    found = fixture("deploys/v2_UpdateService_terraform_unpin.INFERRED.json")
    found["protoPayload"]["request"]["updateMask"] = "template"
    assert parse(found).traffic is None
    found["protoPayload"]["request"]["updateMask"] = {"paths": ["template", "traffic"]}
    assert parse(found).traffic == ({"type": w.LATEST_TYPE, "percent": 100},)


# --- end to end ----------------------------------------------------------------------------------------


def now_entry(name: str, at: float, insert: str = "") -> dict:
    """A fixture entry as it would be logged at ``at``."""
    entry = copy.deepcopy(fixture(f"deploys/{name}.INFERRED.json"))
    entry["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
    entry["receiveTimestamp"] = entry["timestamp"]
    if insert:
        entry["insertId"] = insert
    return entry


def rewind_rollback(stack, seconds: float) -> None:
    """The watchdog's rollback happened ``seconds`` earlier than it did (the demo's way to skip the wait)."""
    state = stack.cloud_run.state
    with state.lock:
        annotations = state.services[w.AUTH]["annotations"]
        items = json.loads(annotations[ledger.ROLLBACKS_KEY])
        for item in items:
            item["at"] -= seconds
            item["alert_at"] = item.get("alert_at", item["at"]) - seconds
        annotations[ledger.ROLLBACKS_KEY] = json.dumps(items)


def pinned_by_the_alert(stack) -> dict:
    """The incident's alert: the watchdog pins auth to 00041 (field revert off, so the pin stays), two hours ago."""
    alert = fixture("alerts/incident_auth_db_timeout_log_match.json")
    assert deliver(stack.function.url, pubsub_body(alert)) == (200, "OK")
    [card] = stack.messages
    assert stack.serving(w.AUTH) == {w.R41: 100}
    rewind_rollback(stack, 2 * 3600)
    return card


def terraform_applies(stack) -> tuple[dict, str]:
    """terraform's apply takes effect (its new revision serves 100% through LATEST); its entry, a moment before."""
    state = stack.cloud_run.state
    applied_at = time.time()
    template = w.like({"revisions": state.revisions[w.AUTH]}, w.R42)
    state.deploy(w.AUTH, w.revision(APPLIED, applied_at, like=template, image=V143), to_latest=True)
    return now_entry(UNPIN, applied_at - 1.0), APPLIED


@pytest.mark.e2e
def test_terraform_unpin_is_warned_loudly_in_the_incident_thread(start_stack):
    stack = start_stack(WATCHDOG_FIELD_REVERT="off")
    card = pinned_by_the_alert(stack)
    entry, applied = terraform_applies(stack)
    assert deliver(stack.function.url, pubsub_body(entry)) == (200, "OK")
    [warning] = stack.messages[1:]
    assert (warning["thread_ts"], warning.get("reply_broadcast")) == (card["ts"], True)  # pages the channel
    section = warning["blocks"][0]["text"]["text"]
    assert section.startswith("<!here> :rotating_light:")  # the mention in the blocks, where Slack notifies from it
    assert f"(`{applied}`)" in section
    assert "releases the watchdog's pin on" in section
    assert "the value the watchdog rolled away from" in section
    assert stack.serving(w.AUTH) == {applied: 100}  # warn: the watchdog changed nothing
    assert len(stack.traffic_updates()) == 1  # the rollback only
    record = w.record_of(stack.cloud_run.state.services[w.AUTH])
    assert [e[0] for e in record.events] == [sentinel.RELEASED_EVENT]  # later deploys are not taken for it


@pytest.mark.e2e
def test_terraform_unpin_is_held_under_hold_through_the_alert_path(start_stack):
    stack = start_stack(WATCHDOG_FIELD_REVERT="off", WATCHDOG_SENTINEL="hold")
    card = pinned_by_the_alert(stack)
    entry, applied = terraform_applies(stack)
    body = pubsub_body(entry)
    assert deliver(stack.function.url, body) == (200, "OK")  # its revision serves already: held at once
    assert stack.serving(w.AUTH) == {w.R41: 100}
    key = parse(entry).key
    hold = ledger.find(stack.cloud_run.state.services[w.AUTH]["annotations"], f"hold-{key}")
    assert (hold.from_revision, hold.to_revision) == (applied, w.R41)
    warning, held = stack.messages[1:]
    assert warning["thread_ts"] == card["ts"]
    assert f"will pin traffic back to {w.R41} as soon as {applied} serves" in warning["text"]
    assert held["text"].startswith(f"Rolled back netra-auth-service to {w.R41}")
    assert deliver(stack.function.url, body) == (200, "OK")  # a copy changes nothing more
    assert len(stack.traffic_updates()) == 2
    assert len(stack.messages) == 3


@pytest.mark.e2e
def test_one_warning_when_two_processes_receive_the_same_entry_at_once(start_stack, tmp_path):
    at = time.time()
    world = w.auth(incident_seed_at(at - 37 * 3600))
    world = w.serving(world, w.R41)
    stack = start_stack(seed=world)
    entry = now_entry("v2_UpdateService_terraform_first_entry", at)
    other = FunctionProcess(stack.function.env, log_path=tmp_path / "second.log").start()
    try:
        safe = now_entry("v2_UpdateService_terraform_first_entry", at, insert="warm-up")  # both instances warm
        safe["protoPayload"]["request"]["service"]["template"]["vpcAccess"]["egress"] = "PRIVATE_RANGES_ONLY"
        for url in (stack.function.url, other.url):
            assert deliver(url, pubsub_body(safe)) == (200, "OK")
        assert stack.messages == []
        stack.cloud_run.state.latency = 0.3  # both read before either writes
        start = threading.Barrier(2)
        statuses: dict[str, list[int]] = {}

        def receive(url: str) -> None:
            start.wait()
            statuses[url] = deliver_until_acked(url, pubsub_body(entry), backoff=0.3)

        workers = [threading.Thread(target=receive, args=(url,)) for url in (stack.function.url, other.url)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        other.stop()
    claims = [r for r in stack.patches() if r["query"].get("updateMask") == "annotations"]
    assert 409 in [r["status"] for r in claims], "the two deliveries did not race: the test proves nothing"
    [warning] = stack.messages
    assert "Risky deploy of `netra-auth-service`" in warning["text"]
    assert sorted(len(s) for s in statuses.values()) == [1, 2]  # the loser was redelivered, then saw the warning
    memory = w.memory(stack.cloud_run.state.services[w.AUTH])
    assert (memory["warned"], memory.get("claims")) == ([parse(entry).key], None)


@pytest.mark.e2e
def test_the_serving_revision_behind_120_previews_is_read_by_name(start_stack):
    at = time.time()
    base = w.auth(incident_seed_at(at - 10 * 86400))
    world = w.serving(w.previews(base, 120, start=w.created(base, w.R41) + 3600), w.R41)
    stack = start_stack(seed=world)
    state = stack.cloud_run.state
    entry = now_entry("v2_UpdateService_terraform_after_previews", at)  # the apply's first entry: operation start
    assert deliver(stack.function.url, pubsub_body(entry)) == (200, "OK")
    [warning] = stack.messages
    assert f"Serving before it: `{w.R41}`" in warning["text"]
    assert "egress-flip" in warning["text"]
    assert "routes 100% to the new revision" in warning["text"]
    reads = [r["path"].rsplit("/", 1)[-1] for r in state.requests if "/revisions/" in r["path"]]
    assert reads == [w.R41]  # the one revision the first page did not hold
    memory = w.memory(state.services[w.AUTH])
    assert memory["baselines"] == [f"{parse(entry).key}={w.R41}"]  # a redelivery after the apply knows it
    assert stack.denied() == []
