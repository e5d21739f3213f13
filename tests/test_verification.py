"""The pure verdict (watchdog/core/verification.py): a table of named cases, one per rule and where rules meet."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from tests.support import fixture
from watchdog.config import Config, ConfigError, ServiceRef
from watchdog.core import verdict_message
from watchdog.core import verification as v
from watchdog.core.intake import Tick, parse
from watchdog.core.ledger import Record, read, with_record

NOW = 1_800_000_000.0
VERIFY = 600.0
REF = ServiceRef("netra-staging", "us-central1", "netra-backend-staging")
RESTORED = "netra-backend-staging-00118-paz"
METRIC = "logging.googleapis.com/user/cloud_run_startup_failures"
SEED = fixture("verification/restored_backend.json")
ROLLBACK = Record("0.inc", "netra-backend-staging-00119-qor", RESTORED, at=NOW - 900, alert_at=NOW - 960,
                  reported=True, thread="C0ONCALL:1.2", metric=METRIC)  # fmt: skip
START, END = NOW - 900, NOW - v.INGEST_DELAY
QUIET = v.Evidence(START, END, METRIC, healthy_probes=4)


def service(percent: int = 100) -> dict:
    found = copy.deepcopy(SEED["service"])
    found["trafficStatuses"][0]["percent"] = percent
    return found


def revision(**changes) -> dict:
    return {**copy.deepcopy(SEED["revision"]), **changes}


NOT_READY = {"conditions": [{"type": "Ready", "state": "CONDITION_FAILED"}]}

# name: (record changes, service, revision, evidence, expected action, expected reason)
CASES = {
    "quiet for the whole window": ({}, service(), revision(), QUIET, v.RECOVERED, "quiet"),
    "quiet, no probes ran (instances already up)": ({}, service(), revision(), replace(QUIET, healthy_probes=0),
                                                   v.RECOVERED, "quiet"),
    "a verdict already recorded": ({"state": "escalated"}, service(), revision(), QUIET, v.NOTHING, "already_decided"),
    "the incident closed first": ({"recovered_at": NOW - 60}, service(), revision(), QUIET, v.NOTHING,
                                  "already_decided"),
    "older than the horizon": ({"at": NOW - v.HORIZON - 1}, service(), revision(), QUIET, v.NOTHING, "too_old"),
    "report not posted yet": ({"reported": False}, service(), revision(), QUIET, v.WAIT, "report_pending"),
    "traffic moved by a human": ({}, service(50), revision(), QUIET, v.UNDONE, "traffic_moved"),
    "traffic moved wins over failures": ({}, service(0), revision(), replace(QUIET, failures=3), v.UNDONE,
                                         "traffic_moved"),
    "restored revision not Ready": ({}, service(), revision(**NOT_READY), QUIET, v.ESCALATED, "restored_not_ready"),
    "restored revision deleted": ({}, service(), None, QUIET, v.ESCALATED, "restored_not_ready"),
    "Monitoring unavailable is never recovered": ({}, service(), revision(), None, v.WAIT, "monitoring_unavailable"),
    "failures continue": ({}, service(), revision(), replace(QUIET, failures=2), v.ESCALATED, "failures_continue"),
    "failures continue even before the quiet time is up": (
        {"at": NOW - 200}, service(), revision(), replace(QUIET, start=NOW - 200, failures=1), v.ESCALATED,
        "failures_continue"),
    "unhealthy probes": ({}, service(), revision(), replace(QUIET, unhealthy_probes=1), v.ESCALATED,
                         "probes_failing"),
    "quiet but the window is short (ingest delay)": ({"at": NOW - 700}, service(), revision(),
                                                     replace(QUIET, start=NOW - 700), v.WAIT, "waiting_for_quiet"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_verdict(case):
    changes, found_service, found_revision, evidence, action, reason = CASES[case]
    verdict = v.verify(replace(ROLLBACK, **changes), found_service, found_revision, evidence, NOW, VERIFY)
    assert (verdict.action, verdict.reason) == (action, reason)


def test_plan_reads_the_restored_revision_only_and_ends_before_the_ingest_delay():
    queries = v.plan(REF, ROLLBACK, NOW)
    assert [q.name for q in queries] == ["probes", "failures"]
    for query in queries:
        assert f'resource.labels.revision_name = "{RESTORED}"' in query.filter
        assert (query.start, query.end, query.project) == (ROLLBACK.at, NOW - 180, "netra-staging")
    assert queries[0].filter.startswith(f'metric.type = "{v.PROBE_METRIC}"')
    assert queries[0].group_by == ("metric.label.is_healthy",)


@pytest.mark.parametrize(
    ("metric", "reads_failures"),
    [(METRIC, True), ("run.googleapis.com/request_count", False), ("", False)],
    ids=["log-based metric", "a request count is not a failure count", "log-match alert: no metric"],
)
def test_only_a_log_based_metric_is_read_as_the_failure_signal(metric, reads_failures):
    names = [q.name for q in v.plan(REF, replace(ROLLBACK, metric=metric), NOW)]
    assert ("failures" in names) == reads_failures


def test_no_reads_before_anything_can_be_ingested():
    assert v.plan(REF, replace(ROLLBACK, at=NOW - 100), NOW) == []


def test_evidence_sums_failures_and_probes_by_health():
    answers = {
        "failures": [{"points": [{"value": {"int64Value": "2"}, "interval": {"endTime": "2027-01-15T08:00:00Z"}},
                                 {"value": {"int64Value": "0"}, "interval": {"endTime": "2027-01-15T07:59:00Z"}}]}],
        "probes": [{"metric": {"labels": {"is_healthy": "true"}}, "points": [{"value": {"int64Value": "5"}}]},
                   {"metric": {"labels": {"is_healthy": "false"}}, "points": [{"value": {"int64Value": "1"}}]}],
    }  # fmt: skip
    found = v.evidence(ROLLBACK, NOW, answers)
    assert (found.failures, found.healthy_probes, found.unhealthy_probes, found.metric) == (2, 5, 1, METRIC)


def test_a_verdict_is_told_by_its_writer_first_then_by_anyone_after_the_deadline():
    recorded = v.decided(ROLLBACK, v.Verdict(v.RECOVERED, "quiet", ""), NOW)
    assert not v.due_to_tell(recorded, NOW + 10, claim_seconds=60)
    assert v.due_to_tell(recorded, NOW + 61, claim_seconds=60)
    assert not v.due_to_tell(replace(recorded, told_at=NOW + 1), NOW + 61, claim_seconds=60)


def test_the_alert_firing_again_escalates_once():
    escalated = v.alert_fired_again(ROLLBACK, NOW)
    assert (escalated.state, escalated.why) == ("escalated", "alert_fired_again")
    assert v.alert_fired_again(escalated, NOW + 5) is None


def test_escalation_message_pages_inside_the_blocks():
    message = verdict_message.render(REF, v.decided(ROLLBACK, v.Verdict(v.ESCALATED, "failures_continue", "x"), NOW),
                                     v.Verdict(v.ESCALATED, "failures_continue", "x"), NOW)  # fmt: skip
    assert message.loud
    assert message.blocks[0]["text"]["text"].startswith("<!here>")
    assert "The egress change was probably not the cause" in message.blocks[0]["text"]["text"]


def test_records_written_before_verification_read_without_the_new_fields():
    old = {
        "rollback-watchdog/rollbacks": '[{"incident":"0.a","from":"r-2","to":"r-1","at":1700000000,"reported":true}]'
    }
    [record] = read(old).records
    assert (record.state, record.metric, record.verdict_at, record.told_at) == ("", "", None, None)
    kept = with_record(old, replace(record, state="recovered", why="quiet", verdict_at=1700000900.5))
    assert '"state":"recovered"' in kept["rollback-watchdog/rollbacks"]
    assert read(kept).records[0].verdict_at == 1700000900.5


def test_a_tick_is_recognised_by_its_attribute_whatever_its_data():
    alert = fixture("alerts/incident_backend_startup_metric_threshold.json")
    assert isinstance(parse({"message": {"data": "dGljaw==", "attributes": {"rollback-watchdog-tick": "1"}}}), Tick)
    assert isinstance(parse(alert, {"rollback-watchdog-tick": "1"}), Tick)
    assert not isinstance(parse(alert), Tick)


def test_the_alert_names_its_metric():
    assert parse(fixture("alerts/incident_backend_startup_metric_threshold.json")).metric_type == METRIC
    assert parse(fixture("alerts/incident_auth_db_timeout_log_match.json")).metric_type == ""


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "0", "-1", "ten", "1441"])
def test_verify_minutes_is_validated(value):
    with pytest.raises(ConfigError, match=r"^WATCHDOG_VERIFY_MINUTES: "):
        Config.from_env({"WATCHDOG_VERIFY_MINUTES": value})


def test_verify_minutes_defaults_to_ten():
    assert Config.from_env({}).verify_minutes == 10
    assert Config.from_env({"WATCHDOG_VERIFY_MINUTES": "2.5"}).verify_minutes == 2.5
