"""`rollback-watchdog status` (and doctor's "needs a human") against the Cloud Run stand-in.

Four services, one per situation: clear, paused (fresh and forgotten), pinned for two days with a newer
revision waiting at 0%, and a rollback that was escalated. Text and --json, exit codes 0/1/2.
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from tests.support import fixture
from watchdog.core import ledger
from watchdog.tools.cli import cli

LOCATION = "projects/netra-staging/locations/us-central1"
NOW = time.time()
DAY = 86400


def clone(seed: dict, name: str, *, traffic: list | None = None, annotations: dict | None = None) -> dict:
    """The backend service and its revisions, renamed (backend's revisions 00118-paz and 00119-qor)."""
    old = "netra-backend-staging"
    text = json.dumps({"services": [s for s in seed["services"] if s["name"].endswith(old)],
                       "revisions": [r for r in seed["revisions"] if f"/services/{old}/" in r["name"]]})  # fmt: skip
    copied = json.loads(text.replace(old, name))
    service = copied["services"][0]
    if traffic is not None:
        service["traffic"] = traffic
    service["annotations"] = annotations or {}
    return copied


def pinned_to(revision: str) -> list[dict]:
    return [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision, "percent": 100}]


def record(name: str, at: float, **fields) -> ledger.Record:
    return ledger.Record("0.inc-" + name, f"{name}-00119-qor", f"{name}-00118-paz", at, alert_at=at - 60,
                         reported=True, **fields)  # fmt: skip


def pause_info(by: str, at: float, reason: str) -> dict:
    return {ledger.PAUSED_KEY: "true", ledger.PAUSE_INFO_KEY: json.dumps({"by": by, "at": at, "reason": reason})}


@pytest.fixture
def world(cloud_run):
    global NOW  # each world is built at its own "now": ages ("3h00m") are read against the clock
    NOW = time.time()
    seed = fixture("cloudrun/incident_seed.json")
    cloud_run.state.reset()
    for part in [
        clone(seed, "clear-svc"),
        clone(seed, "paused-svc", annotations=pause_info("alice", NOW - 3600, "db migration")),
        clone(seed, "forgotten-svc", annotations=pause_info("bob", NOW - 3 * DAY, "load test")),
        clone(seed, "pinned-svc", traffic=pinned_to("pinned-svc-00118-paz"),
              annotations=ledger.with_record({}, record("pinned-svc", NOW - 2 * DAY, state="recovered", why="quiet"))),
        clone(seed, "escalated-svc", traffic=pinned_to("escalated-svc-00118-paz"),
              annotations=ledger.with_record({}, record("escalated-svc", NOW - 600, state="escalated",
                                                        why="failures_continue"))),
    ]:  # fmt: skip
        cloud_run.state.load(part)
    return cloud_run


def run(cloud_run, *args: str, services: str = "") -> tuple[int, str]:
    names = services or ",".join(
        f"netra-staging/us-central1/{n}" for n in ("clear-svc", "paused-svc", "forgotten-svc", "pinned-svc",
                                                   "escalated-svc")
    )  # fmt: skip
    env = {"CLOUD_RUN_API_ENDPOINT": cloud_run.url, "WATCHDOG_SERVICES": names}
    result = CliRunner().invoke(cli, ["status", *args], env=env)
    return result.exit_code, result.stdout


def test_json_shows_what_the_watchdog_holds_and_what_needs_a_human(world):
    code, out = run(world, "--json")
    assert code == 1
    report = json.loads(out)
    by_name = {s["service"].rsplit("/", 1)[-1]: s for s in report["services"]}
    assert list(by_name) == ["clear-svc", "paused-svc", "forgotten-svc", "pinned-svc", "escalated-svc"]

    clear = by_name["clear-svc"]
    assert (clear["paused"], clear["pinned"], clear["rollbacks"], clear["needs_human"]) == (False, False, [], [])

    paused = by_name["paused-svc"]
    assert (paused["paused"], paused["paused_by"], paused["paused_reason"]) == (True, "alice", "db migration")
    assert paused["needs_human"] == []  # an hour is fine

    forgotten = by_name["forgotten-svc"]
    assert forgotten["needs_human"] == ["paused for 3 days by bob: load test"]

    pinned = by_name["pinned-svc"]
    assert (pinned["pinned"], pinned["pinned_to"]) == (True, "pinned-svc-00118-paz")
    assert pinned["waiting"] == ["pinned-svc-00119-qor"]  # the newer revision waits at 0%
    assert pinned["cooldown_until"] is None
    [rollback] = pinned["rollbacks"]
    assert (rollback["from_revision"], rollback["to_revision"], rollback["outcome"], rollback["reported"]) == (
        "pinned-svc-00119-qor", "pinned-svc-00118-paz", "recovered", True)  # fmt: skip
    assert pinned["needs_human"] == [
        "traffic pinned to pinned-svc-00118-paz for 2 days; waiting at 0%: pinned-svc-00119-qor"
    ]

    escalated = by_name["escalated-svc"]
    assert escalated["rollbacks"][0]["outcome"] == "escalated"
    assert escalated["cooldown_until"] == pytest.approx(NOW - 600 + 1800, abs=0.01)  # WATCHDOG_COOLDOWN_SECONDS
    assert escalated["needs_human"] == ["rollback for incident 0.inc-escalated-svc did not fix it (failures_continue)"]
    assert report["exit_code"] == 1


def test_text_names_who_paused_when_and_why(world):
    code, out = run(world)
    assert code == 1
    assert "paused-svc: ok" in out
    assert "paused by alice since" in out
    assert ": db migration" in out
    assert "forgotten-svc: NEEDS A HUMAN" in out
    assert "traffic pinned to pinned-svc-00118-paz since" in out
    assert "waiting at 0%: pinned-svc-00119-qor" in out
    assert "incident 0.inc-escalated-svc: escalated-svc-00119-qor → escalated-svc-00118-paz, reported, escalated" in out
    assert out.rstrip().endswith("status: needs a human")


def test_all_clear_is_exit_0(world):
    code, out = run(world, "--service", "clear-svc")
    assert code == 0
    assert "clear-svc: ok" in out
    assert "no rollbacks on record" in out


def test_a_service_that_cannot_be_read_or_located_is_exit_2(world):
    code, out = run(world, "--json", services="netra-staging/us-central1/gone-svc,clear-svc")
    assert code == 2
    found = {s["service"]: s for s in json.loads(out)["services"]}
    assert found["clear-svc"]["error"] == "give --project and --region to locate it"
    assert "NotFound" in found["netra-staging/us-central1/gone-svc"]["error"]
    code, out = run(world, "--project", "netra-staging", "--region", "us-central1", services="clear-svc")
    assert code == 0


def test_a_rollback_left_without_a_verdict_needs_a_human(world):
    old = ledger.with_record({}, record("clear-svc", time.time() - 3 * 3600))  # no verdict three hours later
    service = world.state.services[f"{LOCATION}/services/clear-svc"]
    service["annotations"] = old
    service["traffic"] = pinned_to("clear-svc-00118-paz")  # the rollback moved traffic
    world.state._refresh_status(service)
    code, out = run(world, "--json", "--service", "clear-svc")
    [status] = json.loads(out)["services"]
    assert status["rollbacks"][0]["outcome"] == "verifying"
    assert status["needs_human"] == ["rollback for incident 0.inc-clear-svc (3h00m ago) was never verified"]
    assert code == 1


def test_pause_reason_is_recorded_and_shown(world):
    where = ["--project", "netra-staging", "--region", "us-central1", "--service", "clear-svc"]
    env = {"CLOUD_RUN_API_ENDPOINT": world.url}
    paused = CliRunner().invoke(cli, ["pause", *where, "--reason", "investigating", "--by", "carol"], env=env)
    assert paused.exit_code == 0, paused.output
    annotations = world.state.services[f"{LOCATION}/services/clear-svc"]["annotations"]
    assert ledger.paused(annotations)  # the switch readers know is unchanged
    info = ledger.pause_info(annotations)
    assert (info["by"], info["reason"]) == ("carol", "investigating")
    assert abs(info["at"] - time.time()) < 30
    _, out = run(world, "--service", "clear-svc")
    assert "paused by carol since" in out
    assert ": investigating" in out
    resumed = CliRunner().invoke(cli, ["resume", *where], env=env)
    assert resumed.exit_code == 0
    assert ledger.PAUSE_INFO_KEY not in world.state.services[f"{LOCATION}/services/clear-svc"]["annotations"]


def test_doctor_reports_the_same_needs_a_human_findings(world):
    from watchdog.tools import doctor

    env = {"CLOUD_RUN_API_ENDPOINT": world.url, "WATCHDOG_SERVICES": "netra-staging/us-central1/forgotten-svc,"
           "netra-staging/us-central1/escalated-svc,netra-staging/us-central1/clear-svc"}  # fmt: skip
    _config, _found = doctor.config_findings(env)
    findings = doctor._needs_human(_config, "netra-staging", "", 10.0, lambda _t: None)
    assert [(f.status, f.subject.rsplit("/", 1)[-1], f.message) for f in findings] == [
        ("problem", "forgotten-svc", "needs a human: paused for 3 days by bob: load test"),
        ("problem", "escalated-svc",
         "needs a human: rollback for incident 0.inc-escalated-svc did not fix it (failures_continue)"),
    ]  # fmt: skip


def test_a_star_scope_lists_the_services_of_the_given_project_and_region(world):
    code, out = run(world, "--json", services="*")
    assert code == 2  # '*' without --project/--region cannot be located
    assert json.loads(out)["services"][0]["error"] == "WATCHDOG_SERVICES is '*': give --project and --region"
    code, out = run(world, "--json", "--project", "netra-staging", "--region", "us-central1", services="*")
    names = sorted(s["service"].rsplit("/", 1)[-1] for s in json.loads(out)["services"])
    assert names == ["clear-svc", "escalated-svc", "forgotten-svc", "paused-svc", "pinned-svc"]
    assert code == 1


# --- which services: the deployed function's, or an explicit list; never "all clear" about nothing -----------


def test_the_watched_services_are_read_from_the_deployed_function(world):
    from tests.standins.functions import FunctionsStandIn, as_deployed

    watched = "netra-staging/us-central1/clear-svc,netra-staging/us-central1/forgotten-svc"
    deployed = as_deployed(watched, "rollback-watchdog-fn@netra-staging.iam.gserviceaccount.com")
    with FunctionsStandIn([deployed]) as functions:
        result = CliRunner().invoke(
            cli,
            ["status", "--project", "netra-staging", "--region", "us-central1", "--json"],
            env={
                "CLOUD_RUN_API_ENDPOINT": world.url,
                "CLOUD_FUNCTIONS_API_ENDPOINT": functions.url,
                "WATCHDOG_SERVICES": "",
            },
        )
        assert functions.state.requests == [
            {"method": "GET", "path": "/v2/projects/netra-staging/locations/us-central1/functions/rollback-watchdog"}
        ]
    assert result.exit_code == 1, result.output  # forgotten-svc needs a human
    assert sorted(s["service"] for s in json.loads(result.stdout)["services"]) == sorted(watched.split(","))
    assert (
        f"watched services: {watched} (from the deployed function "
        "projects/netra-staging/locations/us-central1/functions/rollback-watchdog)"
    ) in result.stderr


# env: (the end of the message, exit 2 in every case)
NOT_KNOWN = {
    "no --services and no deployed function": (
        {"CLOUD_FUNCTIONS_API_ENDPOINT": "DOWN"},
        "could not be read (Cloud Functions API at 127.0.0.1:{port} is unreachable: connection refused); give "
        "--services, or --function",
    ),
    "a deployed function that watches nothing": (
        {"CLOUD_FUNCTIONS_API_ENDPOINT": "EMPTY"},
        "watches no service (its WATCHDOG_SERVICES is empty)",
    ),
}


@pytest.mark.parametrize(("env", "message"), NOT_KNOWN.values(), ids=NOT_KNOWN.keys())
def test_without_a_list_of_services_status_says_so_and_exits_2(world, env, message):
    from tests.standins.functions import FunctionsStandIn, as_deployed
    from tests.support import free_port

    port = free_port()
    with FunctionsStandIn([as_deployed("", "fn@netra-staging.iam.gserviceaccount.com")]) as functions:
        env = {k: {"DOWN": f"http://127.0.0.1:{port}", "EMPTY": functions.url}[v] for k, v in env.items()}
        result = CliRunner().invoke(
            cli,
            ["status", "--project", "netra-staging", "--region", "us-central1"],
            env={"CLOUD_RUN_API_ENDPOINT": world.url, "WATCHDOG_SERVICES": "", **env},
        )
    assert result.exit_code == 2, result.output
    assert message.format(port=port) in result.stderr
    assert "all clear" not in result.output
    assert world.state.requests == []


def test_an_undo_and_the_failing_revision_serving_again_are_shown_whatever_the_verdict(world):
    """After an undo, the revision the watchdog rolled away from serves again: never "all clear"."""
    undone = record("clear-svc", time.time() - 3600, state="recovered", why="quiet",
                    events=(("undo_rollback", "U0ONCALL", time.time() - 600, "1.1"),))  # fmt: skip
    world.state.services[f"{LOCATION}/services/clear-svc"]["annotations"] = ledger.with_record({}, undone)
    code, out = run(world, "--json", "--service", "clear-svc")
    [status] = json.loads(out)["services"]
    assert (status["rollbacks"][0]["outcome"], status["rollbacks"][0]["undone_by"]) == ("undone", "U0ONCALL")
    [finding] = status["needs_human"]
    assert finding.startswith("clear-svc-00119-qor, which the watchdog rolled away from for incident 0.inc-clear-svc, "
                              "serves 100% again (undone by U0ONCALL at ")  # fmt: skip
    assert code == 1
    _, text = run(world, "--service", "clear-svc")
    assert "undone by U0ONCALL at " in text


def test_a_drill_a_human_undid_is_shown_and_is_no_finding(world):
    """A drill ends with its undo: the drilled revision serving again is the drill's end, not a problem; the
    rollback line still says who undid it."""
    undone = record("clear-svc", time.time() - 3600, state="recovered", why="quiet", drill=True,
                    events=(("undo_rollback", "U0ONCALL", time.time() - 600, "1.1"),))  # fmt: skip
    world.state.services[f"{LOCATION}/services/clear-svc"]["annotations"] = ledger.with_record({}, undone)
    code, out = run(world, "--json", "--service", "clear-svc")
    [status] = json.loads(out)["services"]
    assert (status["rollbacks"][0]["outcome"], status["rollbacks"][0]["undone_by"]) == ("undone", "U0ONCALL")
    assert status["needs_human"] == []
    assert code == 0
    _, text = run(world, "--service", "clear-svc")
    assert "undone by U0ONCALL at " in text
