"""The pure verdict (watchdog/core/verification.py): a table of named cases, one per rule and where rules meet;
the evidence read the way the real client reads it from the Monitoring stand-in, for each of terraform's
policies with its metric as defined; and the messages, which say only what was seen."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace

import pytest

from tests.standins.monitoring import MonitoringStandIn
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
FAILING = "netra-backend-staging-00119-qor"
METRIC = "logging.googleapis.com/user/cloud_run_startup_failures"
CONNECTS = "logging.googleapis.com/user/rollback-watchdog/db-connect-seconds"
SEED = fixture("verification/restored_backend.json")
ROLLBACK = Record("0.inc", FAILING, RESTORED, at=NOW - 900, alert_at=NOW - 960, reported=True, thread="C0ONCALL:1.2",
                  metric=METRIC)  # fmt: skip
SLOW_DB = replace(ROLLBACK, metric=CONNECTS, percentile=99, threshold=5.0)
START, END = NOW - 900, NOW - v.INGEST_DELAY
QUIET = v.Evidence(START, END, METRIC, healthy_probes=4, first_seen=START)
NOTHING_SEEN = v.Evidence(START, END, METRIC)


def service(split: dict[str, int] | None = None) -> dict:
    found = copy.deepcopy(SEED["service"])
    found["trafficStatuses"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": r, "percent": p}
                                for r, p in (split or {RESTORED: 100}).items()]  # fmt: skip
    return found


def revision(**changes) -> dict:
    return {**copy.deepcopy(SEED["revision"]), **changes}


NOT_READY = {"conditions": [{"type": "Ready", "state": "CONDITION_FAILED"}]}
WINDOW_OVER = {"at": NOW - v.HORIZON - 60}

# name: (record, service, revision, evidence, expected action, expected reason)
CASES = {
    "quiet with traffic for the whole window": (ROLLBACK, service(), revision(), QUIET, v.RECOVERED, "quiet"),
    "quiet, traffic seen in answered requests only (no new instance, no probe)": (
        ROLLBACK, service(), revision(), replace(QUIET, healthy_probes=0, requests=80), v.RECOVERED, "quiet"),
    "no probe, no request: never recovered without evidence": (
        ROLLBACK, service(), revision(), NOTHING_SEEN, v.WAIT, v.NO_TRAFFIC),
    "5xx answers are traffic but not evidence of health": (
        ROLLBACK, service(), revision(), replace(NOTHING_SEEN, errors=30), v.WAIT, v.NO_TRAFFIC),
    "no traffic yet, before the quiet time: no note yet": (
        replace(ROLLBACK, at=NOW - 500), service(), revision(), replace(NOTHING_SEEN, start=NOW - 500), v.WAIT,
        "waiting_for_quiet"),
    "no traffic for the whole window: not verified": (
        replace(ROLLBACK, **WINDOW_OVER), service(), revision(), replace(NOTHING_SEEN, start=NOW - v.HORIZON - 60),
        v.UNVERIFIED, v.NO_TRAFFIC),
    "traffic came late: the quiet time counts from when it came": (
        ROLLBACK, service(), revision(), replace(QUIET, first_seen=END - 300), v.WAIT, "waiting_for_quiet"),
    "traffic in the first minute: the quiet time counts from the rollback": (
        ROLLBACK, service(), revision(), replace(QUIET, first_seen=START + 59), v.RECOVERED, "quiet"),
    "a verdict already recorded": (replace(ROLLBACK, state="escalated"), service(), revision(), QUIET, v.NOTHING,
                                   "already_decided"),
    "closed under the old rules (recovered_at)": (replace(ROLLBACK, recovered_at=NOW - 60), service(), revision(),
                                                  QUIET, v.NOTHING, "already_decided"),
    "the incident closed: not evidence, no traffic stays no traffic": (
        replace(ROLLBACK, closed_at=NOW - 800), service(), revision(), NOTHING_SEEN, v.WAIT, v.NO_TRAFFIC),
    "the incident closed: not evidence, failures still escalate": (
        replace(ROLLBACK, closed_at=NOW - 800), service(), revision(), replace(QUIET, failures=2), v.ESCALATED,
        "failures_continue"),
    "past the window by more than an hour (written before verification)": (
        replace(ROLLBACK, at=NOW - v.HORIZON - v.LATE - 1), service(), revision(), QUIET, v.NOTHING, "too_old"),
    "report not posted yet": (replace(ROLLBACK, reported=False), service(), revision(), QUIET, v.WAIT,
                              "report_pending"),
    "rolled forward to a fix by a human": (ROLLBACK, service({"netra-backend-staging-00120-fix": 100}), revision(),
                                           QUIET, v.UNDONE, "traffic_moved"),
    "traffic moved wins over failures": (ROLLBACK, service({FAILING: 100}), revision(), replace(QUIET, failures=3),
                                         v.UNDONE, "traffic_moved"),
    "still the split the rollback set (two revisions)": (
        replace(ROLLBACK, after=((RESTORED, 70), ("netra-backend-staging-00117-abc", 30))),
        service({RESTORED: 70, "netra-backend-staging-00117-abc": 30}), revision(), QUIET, v.RECOVERED, "quiet"),
    "a field revert serves the target's share: not moved, and it is the one judged": (
        replace(ROLLBACK, after=((RESTORED, 100),), revert="netra-backend-staging-00121-rev", revert_state="serving"),
        service({"netra-backend-staging-00121-rev": 100}), revision(), QUIET, v.RECOVERED, "quiet"),
    "a field revert still pending: the target serves": (
        replace(ROLLBACK, after=((RESTORED, 100),), revert="netra-backend-staging-00121-rev", revert_state="pending"),
        service({RESTORED: 100}), revision(), QUIET, v.RECOVERED, "quiet"),
    "a field revert that just began serving: no traffic yet is no news": (
        replace(ROLLBACK, revert="netra-backend-staging-00121-rev", revert_state="serving", revert_at=NOW - 600,
                after=(("netra-backend-staging-00121-rev", 100),)),
        service({"netra-backend-staging-00121-rev": 100}), revision(), NOTHING_SEEN, v.WAIT, "waiting_for_quiet"),
    "restored revision not Ready": (ROLLBACK, service(), revision(**NOT_READY), QUIET, v.ESCALATED,
                                    "restored_not_ready"),
    "restored revision deleted": (ROLLBACK, service(), None, QUIET, v.ESCALATED, "restored_not_ready"),
    "Monitoring denied (403): not verified at once": (
        ROLLBACK, service(), revision(), v.NoEvidence("monitoring_denied", "PermissionDenied"), v.UNVERIFIED,
        "monitoring_denied"),
    "Monitoring refused the query (400/404): not verified at once": (
        ROLLBACK, service(), revision(), v.NoEvidence("monitoring_refused", "InvalidArgument"), v.UNVERIFIED,
        "monitoring_refused"),
    "Monitoring unavailable: wait, never recovered": (
        ROLLBACK, service(), revision(), v.NoEvidence("monitoring_unavailable", "ServiceUnavailable"), v.WAIT,
        "monitoring_unavailable"),
    "Monitoring unavailable to the end of the window: not verified": (
        replace(ROLLBACK, **WINDOW_OVER), service(), revision(), v.NoEvidence("monitoring_unavailable", "x"),
        v.UNVERIFIED, "monitoring_unavailable"),
    "failures continue": (ROLLBACK, service(), revision(), replace(QUIET, failures=2), v.ESCALATED,
                          "failures_continue"),
    "failures continue even before the quiet time is up": (
        replace(ROLLBACK, at=NOW - 200), service(), revision(), replace(QUIET, start=NOW - 200, failures=1),
        v.ESCALATED, "failures_continue"),
    "unhealthy probes": (ROLLBACK, service(), revision(), replace(QUIET, unhealthy_probes=1), v.ESCALATED,
                         "probes_failing"),
    "Slow DB connects: p99 above the policy's threshold in a minute": (
        SLOW_DB, service(), revision(), v.Evidence(START, END, CONNECTS, worst=7.5, worst_at=NOW - 300,
                                                   signal_minutes=9, first_seen=START), v.ESCALATED, "above_threshold"),
    "Slow DB connects: many fast connects and no probe are evidence enough": (
        SLOW_DB, service(), revision(), v.Evidence(START, END, CONNECTS, worst=0.21, signal_minutes=12,
                                                   first_seen=START), v.RECOVERED, "quiet"),
    "Slow DB connects: the threshold itself is not above it": (
        SLOW_DB, service(), revision(), v.Evidence(START, END, CONNECTS, worst=5.0, signal_minutes=12,
                                                   first_seen=START), v.RECOVERED, "quiet"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_verdict(case):
    record, found_service, found_revision, evidence, action, reason = CASES[case]
    verdict = v.verify(record, found_service, found_revision, evidence, NOW, VERIFY)
    assert (verdict.action, verdict.reason) == (action, reason)


# --- Each of terraform's policies, read as the real client reads its metric from the stand-in ------------------

SIGNALS = Config.from_env({"WATCHDOG_SIGNAL_METRICS": (
    "startup-failure-line=logging.googleapis.com/user/rollback-watchdog/container-startup-failures,"
    "db-timeout=logging.googleapis.com/user/rollback-watchdog/db-connection-timeouts")}).signal_metrics  # fmt: skip
STARTUP = "logging.googleapis.com/user/rollback-watchdog/container-startup-failures"
TIMEOUTS = "logging.googleapis.com/user/rollback-watchdog/db-connection-timeouts"
PROBES, REQUESTS = v.PROBE_METRIC, v.REQUEST_METRIC
LABELS = {"project_id": "netra-staging", "service_name": "netra-backend-staging", "location": "us-central1",
          "configuration_name": "netra-backend-staging"}  # fmt: skip
MINUTES = [START + 60 * k + 30 for k in range(1, 12)]  # points inside the window, one a minute


def seed_healthy(store, revision_name: str) -> None:
    """A healthy revision with traffic: its startup probes passed, it answers requests."""
    where = {**LABELS, "revision_name": revision_name}
    store.counts(PROBES, where, [(MINUTES[0], 2)], is_healthy="true", probe_type="Startup")
    store.counts(REQUESTS, where, [(t, 40) for t in MINUTES], response_code="200", response_code_class="2xx")


def seed_failing_lines(store, metric: str) -> None:
    """The failing revision keeps logging (not evidence about the restored one), and so does the restored one."""
    store.counts(
        metric, {**LABELS, "revision_name": FAILING}, [(t, 9) for t in MINUTES], log="run.googleapis.com/stderr"
    )
    store.counts(metric, {**LABELS, "revision_name": RESTORED}, [(MINUTES[5], 2)], log="run.googleapis.com/stderr")


def seed_connects(store, slow: bool) -> None:
    """One value per connect (terraform's value extractor), fast ones in every minute; some slow ones if ``slow``."""
    where = {**LABELS, "revision_name": RESTORED}
    store.values(CONNECTS, where, [(t, [0.04, 0.06, 0.05] * 10 + ([11.0, 13.0] if slow and k == 4 else []))
                                   for k, t in enumerate(MINUTES)], log="run.googleapis.com/stdout")  # fmt: skip
    store.values(CONNECTS, {**LABELS, "revision_name": FAILING}, [(t, [14.0] * 5) for t in MINUTES],
                 log="run.googleapis.com/stdout")  # fmt: skip


# name: (terraform policy's notification, what the restored revision shows, action, reason)
TERRAFORM = {
    "startup failures (counter), restored healthy": (
        "startup_failures", lambda s: seed_healthy(s, RESTORED), v.RECOVERED, "quiet"),
    "startup failures (counter), restored keeps failing": (
        "startup_failures", lambda s: (seed_healthy(s, RESTORED), seed_failing_lines(s, STARTUP)), v.ESCALATED,
        "failures_continue"),
    "startup failure line (log match → its counter), restored healthy": (
        "startup_failure_lines", lambda s: seed_healthy(s, RESTORED), v.RECOVERED, "quiet"),
    "startup failure line (log match → its counter), restored keeps failing": (
        "startup_failure_lines", lambda s: (seed_healthy(s, RESTORED), seed_failing_lines(s, STARTUP)), v.ESCALATED,
        "failures_continue"),
    "DB timeout line (log match → its counter), restored healthy": (
        "db_timeout", lambda s: seed_healthy(s, RESTORED), v.RECOVERED, "quiet"),
    "DB timeout line (log match → its counter), restored keeps timing out": (
        "db_timeout", lambda s: (seed_healthy(s, RESTORED), seed_failing_lines(s, TIMEOUTS)), v.ESCALATED,
        "failures_continue"),
    "DB timeouts (counter), restored healthy": ("db_timeouts", lambda s: seed_healthy(s, RESTORED), v.RECOVERED,
                                                "quiet"),
    "DB timeouts (counter), restored keeps timing out": (
        "db_timeouts", lambda s: (seed_healthy(s, RESTORED), seed_failing_lines(s, TIMEOUTS)), v.ESCALATED,
        "failures_continue"),
    "Slow DB connects (distribution), restored healthy: many fast connects": (
        "slow_db_connect", lambda s: seed_connects(s, slow=False), v.RECOVERED, "quiet"),
    "Slow DB connects (distribution), restored slow in one minute": (
        "slow_db_connect", lambda s: seed_connects(s, slow=True), v.ESCALATED, "above_threshold"),
}  # fmt: skip


@pytest.fixture
def monitoring():
    with MonitoringStandIn() as standin:
        standin.store.clock = lambda: NOW
        yield standin


def read_as_the_watchdog(monitoring, record: Record) -> v.Evidence:
    from watchdog.edges.monitoring import TimeSeries

    series = TimeSeries(monitoring.address)
    answers = {q.name: series.read(q, v.ALIGNMENT, timeout=5) for q in v.plan(REF, record, NOW)}
    return v.evidence(record, NOW, answers)


@pytest.mark.parametrize("case", TERRAFORM)
def test_each_of_terraforms_policies_is_verified_with_its_metric_as_defined(monitoring, case):
    policy, seed, action, reason = TERRAFORM[case]
    alert = parse(fixture(f"verification/{policy}.INFERRED.json"))
    record = Record("0.inc", FAILING, RESTORED, at=START, alert_at=START - 60, reported=True,
                    **v.recorded_signal(alert, SIGNALS))  # fmt: skip
    seed(monitoring.store)
    found = read_as_the_watchdog(monitoring, record)
    verdict = v.verify(record, service(), revision(), found, NOW, VERIFY)
    assert (verdict.action, verdict.reason) == (action, reason), verdict
    for call in monitoring.calls("ListTimeSeries"):
        assert f'resource.labels.revision_name = "{RESTORED}"' in call["filter"]  # never the failing revision


# name: (terraform policy, recorded metric, percentile, threshold)
RECORDED = {
    "startup failures: its own counter": ("startup_failures", STARTUP, None, None),
    "startup failure line: the counter its signal label names": ("startup_failure_lines", STARTUP, None, None),
    "DB timeout line: the counter its signal label names": ("db_timeout", TIMEOUTS, None, None),
    "DB timeouts: its own counter": ("db_timeouts", TIMEOUTS, None, None),
    "Slow DB connects: p99 against the threshold the notification carries": ("slow_db_connect", CONNECTS, 99, 5.0),
}  # fmt: skip


@pytest.mark.parametrize("case", RECORDED)
def test_the_record_keeps_what_the_alert_measured(case):
    policy, metric, percentile, threshold = RECORDED[case]
    fields = v.recorded_signal(parse(fixture(f"verification/{policy}.INFERRED.json")), SIGNALS)
    assert fields == {"metric": metric, "percentile": percentile, "threshold": threshold}


def test_the_threshold_is_read_from_the_notification_first():
    alert = fixture("verification/slow_db_connect.INFERRED.json")
    alert["incident"]["threshold_value"] = "2.5"
    assert v.recorded_signal(parse(alert))["threshold"] == 2.5
    del alert["incident"]["threshold_value"]
    assert v.recorded_signal(parse(alert))["threshold"] == 5.0  # the condition's thresholdValue


@pytest.mark.parametrize(
    ("metric", "kind"),
    [(METRIC, v.COUNTER), ("run.googleapis.com/request_count", ""), ("", ""), ('logging.googleapis.com/user/x" OR "', "")],
    ids=["log-based counter", "a request count is not a failure count", "log-match alert: no metric",
         "a metric that would break out of the filter's quotes"],
)  # fmt: skip
def test_only_a_log_based_counter_or_a_percentile_is_read_as_the_failure_signal(metric, kind):
    assert v.signal_kind(replace(ROLLBACK, metric=metric)) == kind
    assert ("failures" in [q.name for q in v.plan(REF, replace(ROLLBACK, metric=metric), NOW)]) == bool(kind)


def test_once_a_field_revert_serves_its_revision_is_the_one_read():
    reverted = replace(SLOW_DB, revert="netra-backend-staging-00121-rev", revert_state="serving")
    for query in v.plan(REF, reverted, NOW):
        assert 'resource.labels.revision_name = "netra-backend-staging-00121-rev"' in query.filter


def test_plan_reads_the_restored_revision_only_and_ends_before_the_ingest_delay():
    queries = v.plan(REF, SLOW_DB, NOW)
    assert [q.name for q in queries] == ["probes", "requests", "signal"]
    for query in queries:
        assert f'resource.labels.revision_name = "{RESTORED}"' in query.filter
        assert (query.start, query.end, query.project) == (SLOW_DB.at, NOW - 180, "netra-staging")
    assert queries[0].group_by == ("metric.label.is_healthy",)
    assert (queries[2].aligner, queries[2].reducer) == ("ALIGN_PERCENTILE_99", "REDUCE_NONE")


def test_no_reads_before_anything_can_be_ingested():
    assert v.plan(REF, replace(ROLLBACK, at=NOW - 100), NOW) == []


def test_a_distribution_is_never_counted_as_failures():
    """The old bug: each DISTRIBUTION point's count (every connect, fast ones included) was read as failures."""
    answers = {"failures": [{"points": [{"value": {"distributionValue": {"count": "33"}},
                                         "interval": {"endTime": "2027-01-15T08:00:00Z"}}]}]}  # fmt: skip
    found = v.evidence(replace(ROLLBACK, metric=CONNECTS), NOW, answers)
    assert (found.failures, found.metric) == (0, "")
    assert "distribution" in found.unreadable


def test_evidence_sums_failures_probes_and_requests_by_class():
    def point(value: int, end: str = "2027-01-15T08:00:00Z") -> dict:
        return {"value": {"int64Value": str(value)}, "interval": {"startTime": "2027-01-15T07:59:00Z", "endTime": end}}

    answers = {
        "failures": [{"points": [point(2), point(0)]}],
        "probes": [{"metric": {"labels": {"is_healthy": "true"}}, "points": [point(5)]},
                   {"metric": {"labels": {"is_healthy": "false"}}, "points": [point(1)]}],
        "requests": [{"metric": {"labels": {"response_code_class": "2xx"}}, "points": [point(30)]},
                     {"metric": {"labels": {"response_code_class": "5xx"}}, "points": [point(4)]}],
    }  # fmt: skip
    found = v.evidence(ROLLBACK, NOW, answers)
    assert (found.failures, found.healthy_probes, found.unhealthy_probes) == (2, 5, 1)
    assert (found.requests, found.errors, found.metric) == (30, 4, METRIC)
    assert found.first_seen == v._time("2027-01-15T07:59:00Z")


# --- Telling once ----------------------------------------------------------------------------------------------


def test_a_verdict_is_told_by_its_writer_first_then_by_anyone_after_the_deadline_for_a_day():
    recorded = v.decided(ROLLBACK, v.Verdict(v.RECOVERED, "quiet", ""), NOW)
    assert not v.due_to_tell(recorded, NOW + 10, claim_seconds=60)
    assert v.due_to_tell(recorded, NOW + 61, claim_seconds=60)
    assert not v.due_to_tell(replace(recorded, told_at=NOW + 1), NOW + 61, claim_seconds=60)
    assert not v.due_to_tell(recorded, NOW + v.HORIZON + 1, claim_seconds=60)
    assert v.never_told(recorded, NOW + v.HORIZON + 1)


def test_the_note_is_claimed_once_and_is_moot_after_a_verdict():
    note = v.Verdict(v.WAIT, v.NO_TRAFFIC, "")
    claimed = v.noted(ROLLBACK, note, NOW)
    assert (claimed.note, claimed.note_at, claimed.note_told_at) == (v.NO_TRAFFIC, NOW, None)
    assert v.noted(claimed, note, NOW + 60) is None  # already claimed: told once
    assert v.note_due(claimed, NOW + 61, claim_seconds=60)
    assert not v.note_due(replace(claimed, note_told_at=NOW + 1), NOW + 61, claim_seconds=60)
    assert not v.note_due(replace(claimed, state="recovered"), NOW + 61, claim_seconds=60)


def test_the_alert_firing_again_escalates_once():
    escalated = v.alert_fired_again(ROLLBACK, NOW)
    assert (escalated.state, escalated.why) == ("escalated", "alert_fired_again")
    assert v.alert_fired_again(escalated, NOW + 5) is None


# name: (record, expected reason); the close never records a verdict or recovered_at
CLOSES = {
    "under verification: it goes on": (ROLLBACK, "closed_verification_continues"),
    "after a not-recovered verdict: nothing changes": (replace(ROLLBACK, state="escalated"), "closed_after_verdict"),
    "a rollback never verified (older than the window)": (replace(ROLLBACK, at=NOW - 2 * v.HORIZON),
                                                          "closed_not_verified"),
}  # fmt: skip


@pytest.mark.parametrize("case", CLOSES)
def test_a_close_is_never_evidence_of_recovery(case):
    record, reason = CLOSES[case]
    found, closed = v.on_close(record, NOW - 30, NOW)
    assert found == reason
    assert (closed.closed_at, closed.state, closed.recovered_at) == (NOW - 30, record.state, None)
    assert v.on_close(closed, NOW, NOW)[1] is None  # recorded once


# --- The messages say only what was seen --------------------------------------------------------------------------


def text(message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) + message.text


def recorded(verdict: v.Verdict, record: Record = ROLLBACK) -> Record:
    return v.decided(record, verdict, NOW)


# name: (record, verdict, serving, must say, must not say)
MESSAGES = {
    "recovered, still pinned: says so, and how to unpin": (
        ROLLBACK, v.Verdict(v.RECOVERED, "quiet", "quiet"), {RESTORED: 100},
        ["Recovered", f"Traffic: {RESTORED} 100% (pinned", "--to-latest"], ["moved since", "<!here>"]),
    "recovered, re-posted after on-call rolled forward: never 'still pinned'": (
        ROLLBACK, None, {"netra-backend-staging-00120-fix": 100},
        ["Traffic now: netra-backend-staging-00120-fix 100% (moved since the rollback)"],
        ["stays pinned", "pinned by the watchdog"]),
    "recovered after the no-traffic note: says the evidence changed": (
        replace(ROLLBACK, note=v.NO_TRAFFIC, note_at=NOW - 600, note_told_at=NOW - 599),
        v.Verdict(v.RECOVERED, "quiet", "quiet"), {RESTORED: 100}, ["The evidence changed since the note"], []),
    "recovered after the incident closed: the close is not the evidence": (
        replace(ROLLBACK, closed_at=NOW - 700), v.Verdict(v.RECOVERED, "quiet", "quiet"), {RESTORED: 100},
        ["says nothing about", "own evidence"], []),
    "not recovered pages, says what was seen": (
        ROLLBACK, v.Verdict(v.ESCALATED, "above_threshold", "p99 7.5 > 5"), {RESTORED: 100},
        ["<!here>", "Not recovered", "percentile is above the policy's threshold", "p99 7.5"], ["Recovered"]),
    "Monitoring denied: what failed, the traffic, the check by hand and the IAM fix": (
        ROLLBACK, v.Verdict(v.UNVERIFIED, "monitoring_denied", "PermissionDenied: 403 Permission denied"),
        {RESTORED: 100},
        ["Not verified", "permission denied", f"Traffic: {RESTORED} 100%", "gcloud logging read",
         "monitoring.timeSeries.list", "--member serviceAccount:watchdog@netra-staging.iam.gserviceaccount.com"],
        ["Recovered", "<!here>", "https://monitoring"]),
    "no traffic for the whole window: not verified, says so": (
        ROLLBACK, v.Verdict(v.UNVERIFIED, v.NO_TRAFFIC, "no traffic"), {RESTORED: 100},
        ["Not verified", "No traffic reached", "gcloud logging read"], ["Recovered"]),
    "rolled forward: verification stopped, says what serves now": (
        ROLLBACK, v.Verdict(v.UNDONE, "traffic_moved", "traffic moved after the rollback: fix 100% now"),
        {"netra-backend-staging-00120-fix": 100},
        ["Verification stopped", "Traffic now: netra-backend-staging-00120-fix 100%"], ["pinned by the watchdog"]),
}  # fmt: skip


@pytest.mark.parametrize("case", MESSAGES)
def test_each_verdict_message_states_what_is_true(case):
    record, verdict, serving, says, never = MESSAGES[case]
    state = verdict or v.Verdict(v.RECOVERED, "quiet", "")
    shown = text(verdict_message.render(REF, recorded(state, record), verdict, NOW, serving,
                                        "watchdog@netra-staging.iam.gserviceaccount.com"))  # fmt: skip
    for fact in says:
        assert fact in shown
    for claim in never:
        assert claim not in shown


def test_the_no_traffic_note_says_what_ends_the_window():
    note = verdict_message.render_note(REF, ROLLBACK, v.Verdict(v.WAIT, v.NO_TRAFFIC, "x"), NOW, {RESTORED: 100})
    shown = text(note)
    assert "Not verified yet" in shown
    assert "keeps watching" in shown
    assert "2027-01-16 07:45 UTC" in shown  # 24 h after the rollback
    assert "until traffic moves off it" in shown
    assert "Recovered" not in shown
    assert not note.loud


@pytest.mark.parametrize(
    ("subject", "says"),
    [(replace(ROLLBACK, metric=STARTUP), f"{STARTUP} (any new count is a failure)"),
     (SLOW_DB, f"the p99 of {CONNECTS} per minute against the policy's threshold 5"),
     (replace(ROLLBACK, metric=""), "probes and requests only"),
     (parse(fixture("verification/startup_failure_lines.INFERRED.json")), "probes and requests only")],
    ids=["counter", "percentile", "log match without a counter", "an alert before its rollback"],
)  # fmt: skip
def test_the_follow_up_promises_what_verification_will_do(subject, says):
    promise = v.follow_up(subject, 10)
    assert says in promise
    assert " its " not in promise.split(". It says")[0]  # "reads X's its probes" was once printed
    assert "recovered after 10 min of traffic" in promise
    assert "The incident closing is not taken as recovery" in promise
    assert "no recovery follow-up" not in promise


def test_the_follow_up_of_a_log_match_names_the_counter_when_one_is_mapped():
    alert = parse(fixture("verification/db_timeout.INFERRED.json"))
    assert f"{TIMEOUTS} (any new count is a failure)" in v.follow_up(alert, 10, SIGNALS)


# --- Records, ticks, settings ------------------------------------------------------------------------------------


def test_records_written_before_verification_read_without_the_new_fields():
    old = {
        "rollback-watchdog/rollbacks": '[{"incident":"0.a","from":"r-2","to":"r-1","at":1700000000,"reported":true}]'
    }
    [record] = read(old).records
    assert (record.state, record.metric, record.verdict_at, record.told_at) == ("", "", None, None)
    assert (record.threshold, record.percentile, record.closed_at, record.note) == (None, None, None, "")
    assert record.restored == "r-1"
    kept = with_record(old, replace(record, state="recovered", why="quiet", verdict_at=1700000900.5))
    assert '"state":"recovered"' in kept["rollback-watchdog/rollbacks"]
    assert "percentile" not in kept["rollback-watchdog/rollbacks"]  # unset fields stay out of the annotation
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


@pytest.mark.parametrize(
    "value",
    ["db-timeout", "db-timeout=run.googleapis.com/request_count", 'db-timeout=logging.googleapis.com/user/x"y',
     "DB=logging.googleapis.com/user/x"],
    ids=["no metric", "not a log-based counter", "a quote", "not a label value"],
)  # fmt: skip
def test_signal_metrics_are_validated(value):
    with pytest.raises(ConfigError, match=r"^WATCHDOG_SIGNAL_METRICS: "):
        Config.from_env({"WATCHDOG_SIGNAL_METRICS": value})


# --- The fixtures and the mapping are terraform's own -------------------------------------------------------------


def _terraform():
    from tests.terraform import test_wiring as tf

    return tf


@pytest.mark.parametrize("policy", ["startup_failures", "startup_failure_lines", "db_timeout", "db_timeouts",
                                    "slow_db_connect"])  # fmt: skip
def test_each_policy_fixture_is_what_terraforms_policy_sends(policy):
    """The notification fixtures above carry terraform's conditions (alerts.tf, defaults from variables.tf)."""
    tf = _terraform()
    body = tf.detection_policies()[policy]
    incident = fixture(f"verification/{policy}.INFERRED.json")["incident"]
    assert incident["policy_user_labels"]["signal"] == body["user_labels"]["signal"]
    condition = tf.conditions(body)[0]
    if "condition_matched_log" in condition:
        assert "conditionMatchedLog" in incident["condition"]
        assert incident["metric"]["type"] == ""  # a log match names no metric
        return
    threshold = tf.block(condition, "condition_threshold")
    # metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics[0].triggers["NAME"]}\" AND …
    name = re.search(r'triggers\["(\w+)"\]', threshold["filter"]).group(1)
    defined = tf.resource("google_logging_metric", name)["name"].replace("${var.name_prefix}", "rollback-watchdog")
    assert incident["metric"]["type"] == f"logging.googleapis.com/user/{defined}"
    aggregation = tf.block(threshold, "aggregations")
    fixed = incident["condition"]["conditionThreshold"]
    assert fixed["aggregations"][0]["perSeriesAligner"] == aggregation["per_series_aligner"]
    assert fixed["comparison"] == threshold["comparison"]
    value = threshold["threshold_value"]
    if isinstance(value, str) and value.startswith("${var."):
        value = tf.variables()[value[6:-1]]["default"]
    assert float(incident["threshold_value"]) == fixed["thresholdValue"] == value


def test_terraform_maps_each_log_match_policy_to_the_counter_on_the_same_lines():
    tf = _terraform()
    text = (tf.MODULE / "function.tf").read_text()
    mapped = dict(re.findall(r'for m in google_logging_metric\.(\w+) : "([a-z-]+)=logging\.googleapis\.com/user/\$\{m\.name\}"',
                             text))  # fmt: skip
    by_signal = {signal: name for name, signal in mapped.items()}
    log_matches = {name: body for name, body in tf.detection_policies().items()
                   if tf.is_log_match(body) and body["notification_channels"] == "${local.watchdog_channels}"}  # fmt: skip
    assert sorted(log_matches) == ["db_timeout", "startup_failure_lines"]  # the ones that alert the watchdog
    for name, body in log_matches.items():
        signal = body["user_labels"]["signal"]
        assert signal in by_signal, f"{name}: its signal {signal!r} maps to no counter"
        counter = tf.resource("google_logging_metric", by_signal[signal])
        match = re.search(
            r"\(\$\{(local\.\w+_match)\}\)", tf.block(tf.conditions(body)[0], "condition_matched_log")["filter"]
        )
        assert match, name
        assert match.group(1) in counter["filter"], f"{name} and its counter match different lines"
        assert "value_extractor" not in counter  # a counter, not a distribution
    expected = {s: f"logging.googleapis.com/user/{tf.resource('google_logging_metric', n)['name']}".replace(
        "${var.name_prefix}", "rollback-watchdog") for s, n in by_signal.items()}  # fmt: skip
    assert dict(SIGNALS) == expected  # what these tests use is what terraform writes
