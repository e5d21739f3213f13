"""Over realistic histories: the Cloud Run stand-in seeded from tests/fixtures/histories, outcomes read off the
stand-ins' request logs. In process (tests/fakes.py), but for the credential corpus, which also reads the
function's log and runs explain: through functions-framework."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from tests import histories
from tests.credentials import CREDENTIALS
from tests.support import incident_alert, pubsub_body
from watchdog.core import field_revert
from watchdog.tools.cli import cli

STARTED = histories.NOW - 120  # the histories are placed before NOW; their alerts start just before it


def seeded(start_stack, name: str, **env: str):
    """The history's world, the watchdog deployed (terraform's grants) for its service."""
    history = histories.load(name)
    env.setdefault("WATCHDOG_SERVICES", history.service_name)
    stack = start_stack(seed=history.seed(), **env)
    return stack, history


def alert_body(history, incident_id: str = "0.e2e-1") -> dict:
    revision = history.name(history.spec.get("alert", {}).get("revision"))
    return pubsub_body(incident_alert(history.service_name, revision, incident_id=incident_id, started_at=STARTED))


@pytest.mark.parametrize(
    ("name", "serving_after", "tags_after"),
    [
        ("canary_named", {1: 100}, {"canary": 2}),
        ("canary_no_revision_named", {1: 100}, {}),
        ("preview_tag_not_preferred", {1: 100}, {"preview": 2}),
        ("tags_survive", {1: 100}, {"stable": 1, "latest": None}),
    ],
)
def test_rollback_keeps_tags_and_moves_only_the_failing_share(in_process, name, serving_after, tags_after):
    stack, history = seeded(in_process, name)
    assert stack.deliver(alert_body(history)) == (200, "OK")

    [update] = stack.traffic_updates()
    sent = update["body"]["traffic"]
    assert sum(t.get("percent", 0) for t in sent) == 100
    statuses = stack.cloud_run.state.services[history.full_name]["trafficStatuses"]
    assert {s["revision"]: s["percent"] for s in statuses if s["percent"]} == {
        history.name(n): p for n, p in serving_after.items()
    }
    latest = stack.cloud_run.state.services[history.full_name]["latestReadyRevision"].rsplit("/", 1)[-1]
    tags = {s["tag"]: s["revision"] for s in statuses if s.get("tag")}
    assert tags == {t: history.name(n) if n else latest for t, n in tags_after.items()}
    [message] = stack.messages
    text = json.dumps(message["blocks"], ensure_ascii=False)
    assert f"Why `{history.name(1)}`" in text
    for tag in tags_after:
        assert f"`{tag}`" in text


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("human_revert", "revert"),
        ("never_ready_in_between", "no_matching_change"),
        ("never_ready_newest_no_revision", "newest_not_ready"),
        ("only_preview_before_change", "no_known_good_target"),
        ("ambiguous_no_revision", "ambiguous_revision"),
    ],
)
def test_no_safe_move_is_reported_once_and_traffic_left_alone(in_process, name, reason):
    stack, history = seeded(in_process, name)
    before = stack.cloud_run.state.services[history.full_name]["trafficStatuses"]
    body = alert_body(history)
    for _ in range(3):  # redeliveries and re-notifications
        assert stack.deliver(body) == (200, "OK")

    assert stack.traffic_attempts() == []
    assert stack.cloud_run.state.services[history.full_name]["trafficStatuses"] == before
    [message] = stack.messages
    assert reason.replace("_", " ") in message["text"]
    lines = [entry for entry in stack.logs() if entry.get("reason") == reason]
    assert lines, "the decision is logged with its reason"


def test_never_ready_revision_named_by_the_alert_changes_nothing(in_process):
    stack, history = seeded(in_process, "never_ready_newest_named")
    assert stack.deliver(alert_body(history)) == (200, "OK")
    assert stack.patches() == []
    assert stack.messages == []


def test_an_open_after_its_close_changes_nothing(in_process):
    stack, history = seeded(in_process, "incident_egress_flip")
    revision = history.name(3)
    closed = pubsub_body(
        incident_alert(history.service_name, revision, incident_id="0.late", state="closed", started_at=STARTED)
    )
    opened = pubsub_body(incident_alert(history.service_name, revision, incident_id="0.late", started_at=STARTED))
    assert stack.deliver(closed) == (200, "OK")
    assert stack.deliver(opened) == (200, "OK")
    assert stack.traffic_attempts() == []
    assert stack.messages == []
    memory = stack.cloud_run.state.services[history.full_name]["annotations"]["rollback-watchdog/memory"]
    assert "0.late" in json.loads(memory)["closed"]


def test_a_dead_letter_replay_is_reported_not_acted_on(in_process):
    stack, history = seeded(in_process, "incident_egress_flip")
    alert = incident_alert(history.service_name, history.name(3), incident_id="0.replay", started_at=STARTED)
    body = pubsub_body(alert, published_at=time.time() - 3 * 86400)
    assert stack.deliver(body) == (200, "OK")
    assert stack.traffic_attempts() == []
    [message] = stack.messages
    assert "stale alert" in message["text"]


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_an_alert_on_the_revision_the_watchdog_restored_is_loud_and_rolls_nothing_back(in_process, mode):
    """A plain pin restores the target; a field revert its own new revision: an alert on either is loud."""
    stack, history = seeded(in_process, "incident_egress_flip", WATCHDOG_FIELD_REVERT=mode,
                            WATCHDOG_DEADLINE_SECONDS="20")  # fmt: skip
    assert stack.deliver(alert_body(history, "0.first")) == (200, "OK")
    restored = history.name(1) if mode == "off" else field_revert.revision_name(history.service_name, "0.first")
    assert stack.serving(history.full_name) == {restored: 100}
    updates = len(stack.traffic_updates())
    again = pubsub_body(incident_alert(history.service_name, restored, incident_id="0.second", started_at=STARTED))
    assert stack.deliver(again) == (200, "OK")
    assert len(stack.traffic_updates()) == updates
    loud = stack.messages[-1]
    assert loud["text"].startswith("<!here>")
    assert "<!here>" in json.dumps(loud["blocks"])
    assert "did not fix it" in loud["text"]


def test_an_unreadable_ledger_is_reported_and_never_overwritten(in_process):
    stack, history = seeded(in_process, "unreadable_ledger")
    raw = stack.cloud_run.state.services[history.full_name]["annotations"]
    assert stack.deliver(alert_body(history)) == (200, "OK")
    assert stack.deliver(alert_body(history)) == (200, "OK")
    assert stack.patches() == []
    assert stack.cloud_run.state.services[history.full_name]["annotations"] == raw
    [message] = stack.messages
    assert "cannot be read" in message["text"]


@pytest.mark.e2e
def test_no_credential_reaches_slack_the_logs_or_explain(start_stack, tmp_path):
    """The breaking revision's env carries every credential shape; none leaves the watchdog."""
    history = histories.load("incident_egress_flip")
    seed = history.seed()
    for revision in seed["revisions"]:  # the breaking revision and the failing one after it
        if revision["name"].endswith((history.name(2), history.name(3))):
            revision["containers"][0]["env"] = [{"name": k, "value": v} for k, v in CREDENTIALS.items()]
    stack = start_stack(seed=seed, WATCHDOG_SERVICES=history.service_name)
    body = pubsub_body(incident_alert(history.service_name, history.name(3), incident_id="0.leak", started_at=STARTED))
    assert stack.deliver(body) == (200, "OK")
    assert stack.traffic_updates()

    slack = json.dumps(stack.slack.state.requests)
    logs = stack.function.log_path.read_text()
    explained = CliRunner().invoke(
        cli,
        ["explain", "--alert", str(_write(tmp_path, "alert.json", body)), "--json"],
        env={"CLOUD_RUN_API_ENDPOINT": stack.cloud_run.url, "WATCHDOG_SERVICES": "*"},
    )
    assert explained.exit_code == 0, explained.output
    text_out = CliRunner().invoke(
        cli,
        ["explain", "--alert", str(_write(tmp_path, "alert.json", body))],
        env={"CLOUD_RUN_API_ENDPOINT": stack.cloud_run.url, "WATCHDOG_SERVICES": "*"},
    )
    assert "DATABASE_URL" in slack  # the card names what the rollback put back, never the values
    for name, value in CREDENTIALS.items():
        secret = value.split("\n")[0].split(" ")[-1]
        for where, seen in (("slack", slack), ("logs", logs), ("explain --json", explained.output),
                            ("explain", text_out.output)):  # fmt: skip
            assert secret not in seen, f"{name} leaked into {where}"


def _write(tmp_path, name: str, data) -> object:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_an_incident_that_cannot_be_located_tells_on_call_which_policy_to_fix(in_process):
    stack = in_process()
    alert = incident_alert("netra-auth-service", incident_id="0.nowhere")
    incident = alert["incident"]
    incident["resource"]["labels"].pop("location")
    incident["resource_name"] = "netra-staging Cloud Run Revision"
    incident["policy_user_labels"] = {}
    incident["condition"] = {"conditionMatchedLog": {"filter": 'resource.type="cloud_run_revision"'}}
    incident["policy_name"] = "Startup failures"
    for _ in range(2):
        assert stack.deliver(pubsub_body(alert)) == (200, "OK")
    assert stack.patches() == []
    [message] = stack.messages
    assert "netra-auth-service" in message["text"]
    assert "Startup failures" in message["text"]
    assert "names no region" in message["text"]
    warnings = [line for line in stack.logs() if line.get("reason") == "no_region"]
    assert len(warnings) == 2  # every delivery is logged; Slack hears it once
    assert {(w["severity"], w["policy"], w["service"]) for w in warnings} == {
        ("WARNING", "Startup failures", "netra-auth-service")
    }
