"""Know that the rollback worked: ticks in process (tests/fakes.py), and through the real functions-framework
server where the wiring is the point (the scheduler's message through Pub/Sub, two instances, webhook mode; ``e2e``).

A real rollback is made by an alert; then the record is aged on the Cloud Run stand-in (its
``at`` moved back, as if the rollback had happened minutes ago), points are seeded in the
Monitoring stand-in, and verification ticks (Pub/Sub messages with the ``rollback-watchdog-tick``
attribute, as Cloud Scheduler publishes them) are delivered. What the watchdog concluded is read
off the stand-ins: Slack messages, ledger annotations and the request logs.
"""

from __future__ import annotations

import json
import re
import threading
import time

import grpc
import pytest

from tests.conftest import BACKEND
from tests.standins.monitoring import MonitoringStandIn
from tests.support import FunctionProcess, deliver, fixture, incident_alert, pubsub_body
from watchdog.core import ledger

BACKEND_ALERT = "alerts/incident_backend_startup_metric_threshold.json"
RESTORED = "netra-backend-staging-00118-paz"
FAILING = "netra-backend-staging-00119-qor"
FAILURES = "logging.googleapis.com/user/cloud_run_startup_failures"
PROBES = "run.googleapis.com/container/completed_probe_count"
REQUESTS = "run.googleapis.com/request_count"
TICK = {"rollback-watchdog-tick": "1"}
FULL_SCOPE = "netra-staging/us-central1/netra-auth-service,netra-staging/us-central1/netra-backend-staging"


@pytest.fixture
def monitoring():
    with MonitoringStandIn() as standin:
        standin.store.ingest_delay = 120  # Google's figure for completed_probe_count
        # the incident fixture's policy is a user's own log-based counter, not one of terraform's
        standin.store.define(FAILURES, "DELTA", "INT64", ("log",))
        yield standin


@pytest.fixture
def stack(in_process, monitoring):
    """The function in process (tests/fakes.py), Monitoring through its door; the ticks' own wiring through
    functions-framework: ``function_stack``."""
    return in_process(MONITORING_API_ENDPOINT=monitoring.address, WATCHDOG_VERIFY_MINUTES="10")


@pytest.fixture
def function_stack(start_stack, monitoring):
    return start_stack(MONITORING_API_ENDPOINT=monitoring.address, WATCHDOG_VERIFY_MINUTES="10")


def tick(stack) -> int:
    status, _ = stack.deliver(pubsub_body(b"tick", attributes=TICK))
    return status


def roll_back(stack) -> dict:
    assert stack.deliver(pubsub_body(fixture(BACKEND_ALERT))) == (200, "OK")
    assert stack.serving(BACKEND) == {RESTORED: 100}
    [report] = stack.messages
    return report


def record(stack) -> ledger.Record:
    [found] = ledger.records(stack.cloud_run.state.services[BACKEND]["annotations"])
    return found


def age(stack, minutes: float) -> float:
    """Move the rollback ``minutes`` into the past (and its alert one more minute back); returns its time."""
    with stack.cloud_run.state.lock:
        service = stack.cloud_run.state.services[BACKEND]
        items = json.loads(service["annotations"][ledger.ROLLBACKS_KEY])
        at = time.time() - minutes * 60
        items[-1]["at"], items[-1]["alert_at"] = at, at - 60
        service["annotations"][ledger.ROLLBACKS_KEY] = json.dumps(items)
    return at


def points(revision: str, metric: str, times: list[float], value: int = 1, **labels: str) -> dict:
    return {
        "metric": {"type": metric, "labels": labels},
        "resource": {
            "type": "cloud_run_revision",
            "labels": {"project_id": "netra-staging", "service_name": "netra-backend-staging",
                       "location": "us-central1", "revision_name": revision,
                       "configuration_name": "netra-backend-staging"},
        },
        "metricKind": "DELTA",
        "valueType": "INT64",
        "points": [{"interval": {"startTime": _ts(t - 60), "endTime": _ts(t)}, "value": {"int64Value": str(value)}}
                   for t in times],
    }  # fmt: skip


def _ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def healthy_startup(monitoring, at: float) -> None:
    monitoring.store.add(points(RESTORED, PROBES, [at + 60, at + 120], 2, is_healthy="true", probe_type="Startup"))


def text_of(message: dict) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False) + message.get("text", "")


def cloud_run_calls(stack) -> int:
    return len(stack.cloud_run.state.requests)


def test_a_rollback_that_recovers_is_confirmed_once_in_its_thread(stack, monitoring):
    report = roll_back(stack)
    assert record(stack).metric == FAILURES  # the alert's own metric, stored at rollback time
    at = age(stack, 14)
    healthy_startup(monitoring, at)
    # the failing revision still logs failures: not the restored revision's, so not evidence
    monitoring.store.add(points(FAILING, FAILURES, [at + 60, at + 300]))

    assert tick(stack) == 200

    assert len(stack.messages) == 2
    verdict = stack.messages[1]
    assert verdict["thread_ts"] == report["ts"]
    body = text_of(verdict)
    assert "Recovered" in body
    assert RESTORED in body
    assert "alert → rollback 60s" in body
    assert "rollback → recovered 14m" in body
    assert f"{FAILURES}: 0 for {RESTORED}" in body
    assert f"{PROBES}: 4 healthy, 0 unhealthy" in body
    assert "<!here>" not in body
    done = record(stack)
    assert (done.state, done.why) == ("recovered", "quiet")
    assert done.told_at is not None
    assert done.verdict_at <= done.told_at

    calls = monitoring.calls("ListTimeSeries")
    assert sorted(c["filter"].split('"')[1] for c in calls) == [FAILURES, PROBES, REQUESTS]
    for call in calls:
        assert f'resource.labels.revision_name = "{RESTORED}"' in call["filter"]
        end = time.mktime(time.strptime(call["interval"]["endTime"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert end <= time.time() - 180  # the evidence window ends before the ingest delay
        assert call["aggregation"]["perSeriesAligner"] == "ALIGN_SUM"

    # a duplicate tick and the next minute's tick: the service was forgotten, nothing is called or posted
    before_run, before_mon = cloud_run_calls(stack), len(monitoring.requests)
    assert tick(stack) == 200
    assert tick(stack) == 200
    assert len(stack.messages) == 2
    assert (cloud_run_calls(stack), len(monitoring.requests)) == (before_run, before_mon)


def test_verification_waits_for_the_quiet_time_beyond_the_ingest_delay(stack, monitoring):
    roll_back(stack)
    at = age(stack, 11)  # 11 minutes, but Monitoring shows only up to 3 minutes ago: 8 of 10 quiet minutes
    healthy_startup(monitoring, at)
    assert tick(stack) == 200
    assert len(stack.messages) == 1
    assert record(stack).state == ""
    waited = [line for line in stack.logs() if line.get("reason") == "waiting_for_quiet"]
    assert waited
    assert "quiet with traffic for 8m" in waited[0]["message"]
    monitoring.store.clear()
    healthy_startup(monitoring, age(stack, 14))  # the same probes, three minutes further back
    assert tick(stack) == 200
    assert record(stack).state == "recovered"


def test_failures_continuing_on_the_restored_revision_escalate_loudly_and_never_roll_back(stack, monitoring):
    report = roll_back(stack)
    at = age(stack, 5)
    monitoring.store.add(points(RESTORED, FAILURES, [at + 60, at + 120], 3))

    assert tick(stack) == 200

    [_, escalation] = stack.messages
    assert escalation["thread_ts"] == report["ts"]
    blocks = json.dumps(escalation["blocks"], ensure_ascii=False)
    assert "<!here>" in blocks
    assert "Not recovered" in blocks
    assert "The egress change was probably not the cause" in blocks
    assert f"6 new {FAILURES}" in blocks  # what was seen
    assert (record(stack).state, record(stack).why) == ("escalated", "failures_continue")
    # later ticks post nothing more; a new alert on the restored revision does not roll back again
    assert tick(stack) == 200
    assert len(stack.messages) == 2
    again = pubsub_body(incident_alert("netra-backend-staging", RESTORED))
    assert stack.deliver(again) == (200, "OK")
    assert len(stack.traffic_updates()) == 1
    assert stack.serving(BACKEND) == {RESTORED: 100}


def test_unhealthy_probes_on_the_restored_revision_escalate(stack, monitoring):
    roll_back(stack)
    at = age(stack, 5)
    monitoring.store.add(points(RESTORED, PROBES, [at + 60], 2, is_healthy="false", probe_type="Startup"))
    assert tick(stack) == 200
    assert (record(stack).state, record(stack).why) == ("escalated", "probes_failing")
    assert "2 unhealthy" in text_of(stack.messages[-1])


def test_an_alert_on_the_restored_revision_records_the_escalation(stack, monitoring):
    roll_back(stack)
    again = pubsub_body(incident_alert("netra-backend-staging", RESTORED, incident_id="0.again-1"))
    assert stack.deliver(again) == (200, "OK")

    assert len(stack.traffic_updates()) == 1  # no further automatic rollback
    [_, decision] = stack.messages  # the decision's loud report is the escalation: on-call is paged once
    assert "<!here>" in decision["text"]
    assert "<!here>" in json.dumps(decision["blocks"])
    done = record(stack)
    assert (done.state, done.why) == ("escalated", "alert_fired_again")
    assert done.told_at is not None
    # a redelivery of that alert and the ticks that follow add nothing
    assert stack.deliver(again) == (200, "OK")
    age(stack, 20)
    assert tick(stack) == 200
    assert len(stack.messages) == 2
    assert (record(stack).state, record(stack).told_at) == ("escalated", done.told_at)


def test_monitoring_unavailable_means_retry_on_the_next_tick_never_recovered(stack, monitoring):
    roll_back(stack)
    at = age(stack, 14)
    healthy_startup(monitoring, at)
    monitoring.fail_next("ListTimeSeries", grpc.StatusCode.UNAVAILABLE, n=1)

    assert tick(stack) == 200  # acknowledged: the next tick is the retry
    assert len(stack.messages) == 1
    assert record(stack).state == ""
    assert any(line.get("reason") == "monitoring_unavailable" for line in stack.logs())

    monitoring.fail_next("ListTimeSeries", grpc.StatusCode.DEADLINE_EXCEEDED, n=1)
    assert tick(stack) == 200
    assert record(stack).state == ""

    assert tick(stack) == 200
    assert record(stack).state == "recovered"
    assert len(stack.messages) == 2


def test_a_tick_with_nothing_to_verify_calls_nothing(stack, monitoring):
    for _ in range(3):
        assert tick(stack) == 200
    assert stack.cloud_run.state.requests == []
    assert monitoring.requests == []
    assert stack.messages == []


def test_a_tick_is_never_an_alert(stack, monitoring):
    """An incident in a tick's data is still a tick: no read, no rollback."""
    body = pubsub_body(fixture(BACKEND_ALERT), attributes=TICK)
    assert stack.deliver(body) == (200, "OK")
    assert stack.cloud_run.state.requests == []
    assert stack.traffic_updates() == []


@pytest.mark.e2e
def test_every_tick_reads_the_fully_qualified_scope(start_stack, monitoring):
    """Ticks reach the events function, and rollbacks come from the alert function (terraform/pubsub.tf): the
    configured services are read on every tick, one GetService each, and nothing more while none is verifying."""
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address, WATCHDOG_SERVICES=FULL_SCOPE)
    assert tick(stack) == 200
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in stack.cloud_run.state.requests) == [
        "netra-auth-service", "netra-backend-staging"
    ]  # fmt: skip
    assert tick(stack) == 200
    assert len(stack.cloud_run.state.requests) == 4
    assert {r["method"] for r in stack.cloud_run.state.requests} == {"GET"}
    assert monitoring.requests == []


@pytest.mark.e2e
def test_overlapping_ticks_on_two_instances_post_one_verdict(start_stack, monitoring, tmp_path):
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address, WATCHDOG_SERVICES=FULL_SCOPE,
                        WATCHDOG_VERIFY_MINUTES="10")  # fmt: skip
    roll_back(stack)
    at = age(stack, 14)
    healthy_startup(monitoring, at)
    other = FunctionProcess(stack.function.env, log_path=tmp_path / "other.log").start()  # a second instance
    try:
        statuses: list[int] = []
        senders = [
            threading.Thread(
                target=lambda url=url: statuses.append(deliver(url, pubsub_body(b"tick", attributes=TICK))[0])
            )
            for url in [stack.function.url, other.url] * 4
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        assert statuses == [200] * 8
        verdicts = [m for m in stack.messages if "Recovered" in text_of(m) and m.get("thread_ts")]
        assert len(verdicts) == 1  # one reply in the thread (the card itself also says so, updated in place)
        assert record(stack).state == "recovered"
    finally:
        other.stop()


@pytest.mark.e2e
def test_webhook_mode_posts_the_verdict_as_a_new_message(start_stack, monitoring, slack):
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address, SLACK_BOT_TOKEN="", SLACK_CHANNEL="",
                        SLACK_WEBHOOK_URL=slack.webhook_url)  # fmt: skip
    roll_back(stack)
    healthy_startup(monitoring, age(stack, 14))
    assert tick(stack) == 200
    [_, verdict] = stack.messages
    assert verdict["kind"] != "chat.postMessage"
    assert "thread_ts" not in verdict
    assert "Recovered" in text_of(verdict)


def test_a_verdict_slack_could_not_take_is_posted_by_a_later_tick_once(stack, monitoring):
    from tests.standins.slack import SlackFault

    roll_back(stack)
    healthy_startup(monitoring, age(stack, 14))
    stack.slack.state.faults.append(SlackFault(kind="status", status=503, times=20))
    assert tick(stack) == 200
    assert len(stack.messages) == 1
    recorded = record(stack)
    assert recorded.state == "recovered"  # recorded before the post: not lost
    assert recorded.told_at is None
    stack.slack.state.faults.clear()
    assert tick(stack) == 200  # within the writer's deadline: left to it
    assert len(stack.messages) == 1
    with stack.cloud_run.state.lock:  # the writer's deadline (8 s here) has passed
        service = stack.cloud_run.state.services[BACKEND]
        items = json.loads(service["annotations"][ledger.ROLLBACKS_KEY])
        items[-1]["verdict_at"] -= 30
        service["annotations"][ledger.ROLLBACKS_KEY] = json.dumps(items)
    assert tick(stack) == 200
    assert tick(stack) == 200
    assert len(stack.messages) == 2  # posted once, by the first tick after the deadline
    assert "Recovered" in text_of(stack.messages[1])
    assert record(stack).told_at is not None


def test_the_incident_closing_after_a_confirmed_recovery_posts_nothing_more(stack, monitoring):
    roll_back(stack)
    healthy_startup(monitoring, age(stack, 14))
    assert tick(stack) == 200
    assert len(stack.messages) == 2
    closed = fixture(BACKEND_ALERT)
    closed["incident"]["state"], closed["incident"]["ended_at"] = "closed", int(time.time())
    assert stack.deliver(pubsub_body(closed)) == (200, "OK")
    assert len(stack.messages) == 2


@pytest.mark.e2e
def test_the_scheduler_tick_through_pubsub_is_acknowledged_and_verifies(function_stack, monitoring, monkeypatch):
    """The message terraform's job publishes (its data and attributes, read from verify.tf), through the pstest
    Pub/Sub fake and a pull-to-CloudEvent bridge: acknowledged, and the rollback is confirmed."""
    stack = function_stack
    from google.cloud import pubsub_v1

    from tests.eventarc_bridge import EventarcBridge
    from tests.pubsub_emulator.server import PubSubEmulator
    from tests.terraform.test_wiring import block, resource

    target = block(resource("google_cloud_scheduler_job", "verify_tick"), "pubsub_target")
    assert target["data"] == '${base64encode("tick")}'
    roll_back(stack)
    healthy_startup(monitoring, age(stack, 14))
    topic = "projects/netra-staging/topics/rollback-watchdog-alerts"
    subscription = "projects/netra-staging/subscriptions/watchdog-push"
    with PubSubEmulator() as emulator:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        try:
            publisher.create_topic(name=topic)
            subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
            publisher.publish(topic, b"tick", **target["attributes"]).result(10)  # as the job publishes it
            [attempt] = EventarcBridge(subscriber, subscription, stack.function.url).pump()
        finally:
            subscriber.close()
            publisher.transport.close()
    assert (attempt.status, attempt.acked, attempt.attributes) == (200, True, TICK)
    assert record(stack).state == "recovered"
    assert "Recovered" in text_of(stack.messages[-1])


def test_the_card_itself_moves_to_recovered(stack, monitoring):
    roll_back(stack)
    healthy_startup(monitoring, age(stack, 14))
    assert tick(stack) == 200
    card = stack.messages[0]
    assert card["updates"], "the card was updated in place"
    assert card["blocks"][0]["text"]["text"].startswith(":white_check_mark: Recovered: netra-backend-staging")
    assert "*Rules it breaks:*" in json.dumps(card["blocks"])  # still the whole card, rebuilt from the ledger


def test_the_restated_card_still_names_the_policy_and_the_rollback(stack, monitoring):
    """Rebuilt from the ledger record, the card keeps what the first one said: the alert's policy, the cause, the target."""
    first = json.dumps(roll_back(stack)["blocks"])  # a copy: the stand-in updates the message in place
    healthy_startup(monitoring, age(stack, 14))
    assert tick(stack) == 200
    restated = json.dumps(stack.messages[0]["blocks"])
    assert restated != first, "the card was restated"

    def policy(blocks: str) -> str:
        return re.search(r"\*Policy\*\\n([^\"]*)\"", blocks).group(1)

    assert policy(first) != "unknown"
    assert policy(restated) == policy(first)
    assert f"*Why `{RESTORED}`:*" in first  # why the target was trusted, said when it was chosen
    for card in (first, restated):  # the rollback: its cause and what it rolled back to
        assert "*Cause:* vpc egress" in card
        assert f"`{RESTORED}`" in card


# --- Verification that reports only what it saw ------------------------------------------------------------------

SIGNALS = (
    "startup-failure-line=logging.googleapis.com/user/rollback-watchdog/container-startup-failures,"
    "db-timeout=logging.googleapis.com/user/rollback-watchdog/db-connection-timeouts"
)  # as terraform writes it
CONNECTS = "logging.googleapis.com/user/rollback-watchdog/db-connect-seconds"
STARTUP = "logging.googleapis.com/user/rollback-watchdog/container-startup-failures"
RESTORED_LABELS = {"project_id": "netra-staging", "service_name": "netra-backend-staging", "location": "us-central1",
                   "revision_name": RESTORED, "configuration_name": "netra-backend-staging"}  # fmt: skip


def thread_texts(stack, report: dict) -> list[str]:
    return [text_of(m) for m in stack.messages if m.get("thread_ts") == report["ts"]]


def closed_of(notification: dict) -> dict:
    closed = json.loads(json.dumps(notification))
    closed["incident"]["state"], closed["incident"]["ended_at"] = "closed", int(time.time())
    return closed


def errors(stack) -> list[dict]:
    return [line for line in stack.logs() if line.get("severity") == "ERROR"]


def requests_answered(monitoring, start: float, minutes: int, per_minute: int = 40) -> None:
    monitoring.store.counts(REQUESTS, RESTORED_LABELS, [(start + 60 * k, per_minute) for k in range(1, minutes + 1)],
                            response_code="200", response_code_class="2xx")  # fmt: skip


def test_no_traffic_is_not_verified_and_the_watch_goes_on_until_traffic_comes(stack, monitoring):
    report = roll_back(stack)
    at = age(stack, 30)  # a night: nothing reached the restored revision, no probe ran

    assert tick(stack) == 200
    [note] = thread_texts(stack, report)
    assert "Not verified yet" in note
    assert "no traffic since the rollback" in note
    assert "keeps watching" in note
    assert "Recovered" not in note
    assert (record(stack).state, record(stack).note) == ("", "no_traffic")
    assert record(stack).note_told_at is not None

    before = len(monitoring.calls("ListTimeSeries"))
    assert tick(stack) == 200  # still watching, and the note is not told twice
    assert len(monitoring.calls("ListTimeSeries")) > before
    assert len(thread_texts(stack, report)) == 1

    requests_answered(monitoring, at + 600, 12)  # morning: traffic, quietly, for 12 minutes
    assert tick(stack) == 200
    [_, verdict] = thread_texts(stack, report)
    assert "Recovered" in verdict
    assert "The evidence changed since the note" in verdict
    assert f"{REQUESTS}: 480 answered, 0 5xx" in verdict
    assert record(stack).state == "recovered"


def test_no_traffic_for_the_whole_window_is_not_verified_once(stack, monitoring):
    report = roll_back(stack)
    age(stack, 24 * 60 + 5)  # the window ended without any traffic
    assert tick(stack) == 200
    assert tick(stack) == 200
    [verdict] = thread_texts(stack, report)
    assert "Not verified" in verdict
    assert "No traffic reached" in verdict
    assert "Recovered" not in verdict
    assert (record(stack).state, record(stack).why) == ("unverified", "no_traffic")


def test_an_early_close_is_not_recovery_and_later_failing_probes_are_reported(stack, monitoring):
    report = roll_back(stack)
    closed = closed_of(fixture(BACKEND_ALERT))
    assert stack.deliver(pubsub_body(closed)) == (200, "OK")  # two minutes after the rollback

    assert stack.messages == [report]  # the close posts nothing, and above all no "recovered"
    assert (record(stack).state, record(stack).recovered_at) == ("", None)
    assert record(stack).closed_at is not None
    assert any(line.get("reason") == "closed_verification_continues" for line in stack.logs())

    at = age(stack, 6)
    monitoring.store.add(points(RESTORED, PROBES, [at + 120], 3, is_healthy="false", probe_type="Startup"))
    assert tick(stack) == 200
    [escalation] = thread_texts(stack, report)
    assert "Not recovered" in escalation
    assert "<!here>" in escalation
    assert "says nothing about" in escalation  # the close, named for what it is
    # a redelivered close and later ticks: never "recovered" after "not recovered"
    assert stack.deliver(pubsub_body(closed)) == (200, "OK")
    healthy_startup(monitoring, age(stack, 20))
    assert tick(stack) == 200
    assert len(thread_texts(stack, report)) == 1
    assert not any("Recovered" in text_of(m) for m in stack.messages if m.get("thread_ts"))


@pytest.mark.parametrize(
    "fault",
    [{"kind": "status", "status": 503, "times": 50}, {"kind": "error", "error": "channel_not_found", "times": 50}],
    ids=["retryable: Slack unavailable", "not retryable: channel_not_found"],
)
def test_slack_down_at_the_close_and_at_the_verdict_loses_nothing(stack, monitoring, fault):
    from tests.standins.slack import SlackFault

    report = roll_back(stack)
    stack.slack.state.faults.append(SlackFault(**fault))
    assert stack.deliver(pubsub_body(closed_of(fixture(BACKEND_ALERT)))) == (200, "OK")
    healthy_startup(monitoring, age(stack, 14))
    assert tick(stack) == 200  # the verdict is recorded; Slack does not take it
    assert stack.messages == [report]
    assert (record(stack).state, record(stack).told_at) == ("recovered", None)
    assert tick(stack) == 200  # within the writer's deadline: left to it
    stack.slack.state.faults.clear()
    with stack.cloud_run.state.lock:  # the writer's deadline (8 s here) has passed
        service = stack.cloud_run.state.services[BACKEND]
        items = json.loads(service["annotations"][ledger.ROLLBACKS_KEY])
        items[-1]["verdict_at"] -= 30
        service["annotations"][ledger.ROLLBACKS_KEY] = json.dumps(items)
    assert tick(stack) == 200
    assert tick(stack) == 200
    [verdict] = thread_texts(stack, report)
    assert "Recovered" in verdict
    assert record(stack).told_at is not None


def test_after_a_roll_forward_nothing_says_traffic_is_still_pinned(stack, monitoring):
    report = roll_back(stack)
    healthy_startup(monitoring, age(stack, 14))
    with stack.cloud_run.state.lock:
        fix = json.loads(json.dumps(next(r for r in stack.cloud_run.state.revisions[BACKEND]
                                         if r["name"].endswith(RESTORED))))  # fmt: skip
    fix["name"] = fix["name"].replace(RESTORED, "netra-backend-staging-00120-fix")
    fix.pop("createTime", None)
    stack.cloud_run.state.deploy(BACKEND, fix)  # on-call deploys the fix and sends traffic to it
    assert stack.serving(BACKEND) == {"netra-backend-staging-00120-fix": 100}

    assert stack.deliver(pubsub_body(closed_of(fixture(BACKEND_ALERT)))) == (200, "OK")
    assert tick(stack) == 200
    [stopped] = thread_texts(stack, report)
    assert "Verification stopped" in stopped
    assert "Traffic now: netra-backend-staging-00120-fix 100%" in stopped
    for message in stack.messages[1:]:
        assert "pinned" not in text_of(message)
    assert (record(stack).state, record(stack).why) == ("undone", "traffic_moved")


def test_monitoring_denied_is_one_error_line_and_one_thread_note(stack, monitoring):
    report = roll_back(stack)
    healthy_startup(monitoring, age(stack, 14))
    # terraform's verifier grant is missing (or not propagated yet): 403 on every read of the time series
    stack.grants.revoke("monitoring.timeSeries.list", "google_project_iam_member.function_verifies")
    errors_before = len(errors(stack))

    for _ in range(3):
        assert tick(stack) == 200

    [note] = thread_texts(stack, report)
    assert "Not verified" in note
    assert "permission denied" in note
    assert "monitoring.timeSeries.list" in note
    assert "gcloud projects add-iam-policy-binding netra-staging" in note
    assert f"Traffic: {RESTORED} 100% (pinned" in note
    assert "Recovered" not in note
    new_errors = errors(stack)[errors_before:]
    assert [(e.get("decision"), e.get("reason")) for e in new_errors] == [("unverified", "monitoring_denied")]
    assert len(monitoring.calls("ListTimeSeries")) == 1  # denied once; no retry can help
    assert (record(stack).state, record(stack).why) == ("unverified", "monitoring_denied")


def slow_db(stack) -> dict:
    alert = fixture("verification/slow_db_connect.INFERRED.json")
    assert stack.deliver(pubsub_body(alert)) == (200, "OK")
    assert stack.serving(BACKEND) == {RESTORED: 100}
    [report] = stack.messages
    assert (record(stack).metric, record(stack).percentile, record(stack).threshold) == (CONNECTS, 99, 5.0)
    return report


@pytest.mark.parametrize(
    ("slow", "verdict", "reason"),
    [(False, "Recovered", "quiet"), (True, "Not recovered", "above_threshold")],
    ids=["healthy: many fast connects", "unhealthy: slow connects in one minute"],
)
def test_slow_db_connects_are_verified_as_a_percentile_against_the_threshold(stack, monitoring, slow, verdict, reason):
    report = slow_db(stack)
    at = age(stack, 14)
    minutes = [at + 60 * k for k in range(1, 12)]
    # one value per connect, fast ones in every minute (and, when slow, a few 12 s ones in one minute); no probe ran
    monitoring.store.values(CONNECTS, RESTORED_LABELS,
                            [(t, [0.05] * 30 + ([12.0] * 3 if slow and k == 5 else [])) for k, t in enumerate(minutes)],
                            log="run.googleapis.com/stdout")  # fmt: skip
    assert tick(stack) == 200
    [told] = thread_texts(stack, report)
    assert verdict in told
    assert f"p99 of {CONNECTS} per minute" in told
    assert (record(stack).state, record(stack).why) == ("recovered" if not slow else "escalated", reason)
    [signal] = [c for c in monitoring.calls("ListTimeSeries") if CONNECTS in c["filter"]]
    assert signal["aggregation"]["perSeriesAligner"] == "ALIGN_PERCENTILE_99"


@pytest.mark.e2e
def test_the_default_path_a_log_match_first_is_verified_with_its_counter(start_stack, monitoring):
    stack = start_stack(MONITORING_API_ENDPOINT=monitoring.address, WATCHDOG_VERIFY_MINUTES="10",
                        WATCHDOG_SIGNAL_METRICS=SIGNALS)  # fmt: skip
    alert = fixture("verification/startup_failure_lines.INFERRED.json")
    assert stack.deliver(pubsub_body(alert)) == (200, "OK")
    [report] = stack.messages
    assert record(stack).metric == STARTUP  # the log match named no metric; its signal label did
    at = age(stack, 14)
    healthy_startup(monitoring, at)  # probes look fine …
    monitoring.store.counts(STARTUP, RESTORED_LABELS, [(at + 300, 2)], log="run.googleapis.com/varlog/system")
    assert tick(stack) == 200  # … but the restored revision logs the same failure
    [escalation] = thread_texts(stack, report)
    assert "Not recovered" in escalation
    assert f"2 new {STARTUP}" in escalation
