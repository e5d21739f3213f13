"""`rollback-watchdog drill --topic`: published to the pstest Pub/Sub fake, delivered by a small Eventarc
bridge to the real functions-framework server, reported in Slack as a DRILL dry run."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from google.cloud import pubsub_v1

from tests.conftest import BACKEND
from tests.eventarc_bridge import EventarcBridge
from tests.pubsub_emulator.server import PubSubEmulator
from tests.standins.cloudrun import Fault
from tests.support import PYTHON, ROOT, incident_seed_at

pytestmark = pytest.mark.e2e

TOPIC = "projects/netra-staging/topics/rollback-watchdog-alerts"
SUBSCRIPTION = "projects/netra-staging/subscriptions/eventarc-us-central1-watchdog-sub"
BACKEND_ARGS = ["--project", "netra-staging", "--region", "us-central1", "--service", "netra-backend-staging"]


@pytest.fixture
def pubsub(monkeypatch):
    with PubSubEmulator() as emulator:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        publisher.create_topic(name=TOPIC)
        subscriber.create_subscription(name=SUBSCRIPTION, topic=TOPIC, ack_deadline_seconds=60)
        yield emulator, subscriber
        subscriber.close()
        publisher.transport.close()


@pytest.fixture(autouse=True)
def watched(cloud_run, monkeypatch):
    """The command checks the service is watched and exists before it sends anything: it reads the same
    WATCHDOG_SERVICES and Cloud Run as the function."""
    monkeypatch.setenv("WATCHDOG_SERVICES", "netra-auth-service,us-central1/netra-backend-staging")
    monkeypatch.setenv("CLOUD_RUN_API_ENDPOINT", cloud_run.url)


def drill(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "watchdog", "drill", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_published_drill_reaches_the_watchdog_and_is_reported_as_a_dry_run(start_stack, pubsub):
    _emulator, subscriber = pubsub
    stack = start_stack()
    stack.cloud_run.state.reset(incident_seed_at(time.time()))  # a drill is now: the deploy 37 h old, as on the day
    result = drill(*BACKEND_ARGS, "--topic", TOPIC)
    assert result.returncode == 0, result.stderr
    message_id = result.stdout.strip()
    assert message_id  # pstest ids look like "m0"
    assert "dry-run drill drill-" in result.stderr
    assert f"published: message id {message_id}" in result.stderr

    bridge = EventarcBridge(subscriber, SUBSCRIPTION, stack.function.url)
    [attempt] = bridge.pump()
    assert (attempt.message_id, attempt.status, attempt.acked) == (message_id, 200, True)
    assert attempt.attributes == {"rollback-watchdog-drill": "dry-run"}
    notification = json.loads(attempt.data)
    incident = notification["incident"]
    assert notification["version"] == "1.2"
    assert incident["incident_id"].startswith("drill-")
    assert incident["state"] == "open"
    assert incident["policy_user_labels"] == {"rollback_watchdog_drill": "dry-run"}
    assert incident["resource"] == {
        "type": "cloud_run_revision",
        "labels": {
            "project_id": "netra-staging",
            "service_name": "netra-backend-staging",
            "location": "us-central1",
            "configuration_name": "netra-backend-staging",
        },
    }

    [message] = stack.messages
    assert message["text"].startswith(
        "[DRILL] DRY RUN: would roll back netra-backend-staging to netra-backend-staging-00118-paz"
    )
    context = message["blocks"][-1]["elements"][0]["text"]
    assert "*DRY RUN*" in context
    assert "*DRILL*" in context
    assert stack.traffic_updates() == []
    assert stack.serving(BACKEND) == {"netra-backend-staging-00119-qor": 100}
    decision = next(line for line in stack.function.logs() if line.get("decision") == "report")
    assert (decision["reason"], decision["drill"], decision["incident_id"]) == (
        "dry_run",
        True,
        incident["incident_id"],
    )
    assert bridge.pending() == 0  # acknowledged: never delivered again


def test_a_500_from_the_function_makes_pubsub_redeliver_until_it_is_acknowledged(start_stack, pubsub):
    _emulator, subscriber = pubsub
    stack = start_stack(WATCHDOG_DEADLINE_SECONDS="6")
    stack.cloud_run.state.reset(incident_seed_at(time.time()))
    stack.cloud_run.state.faults.append(Fault(status=503, times=1000))
    result = drill(*BACKEND_ARGS, WATCHDOG_TOPIC=TOPIC)  # the topic from the function's variable name
    assert result.returncode == 0, result.stderr
    bridge = EventarcBridge(subscriber, SUBSCRIPTION, stack.function.url)

    [first] = bridge.pump()
    assert (first.status, first.acked) == (500, False)
    assert stack.messages == []
    stack.cloud_run.state.faults.clear()  # Cloud Run recovers

    [second] = bridge.pump()
    assert second.message_id == first.message_id == result.stdout.strip()
    assert (second.status, second.acked) == (200, True)
    assert len(stack.messages) == 1
    assert stack.messages[0]["text"].startswith("[DRILL] DRY RUN")
    assert bridge.pending() == 0
    assert stack.traffic_updates() == []


def test_publishing_to_a_missing_topic_exits_2(pubsub):
    result = drill(*BACKEND_ARGS, "--topic", "projects/netra-staging/topics/nope")
    assert result.returncode == 2
    assert "topic projects/netra-staging/topics/nope not found" in result.stderr


def test_json_names_the_published_message(pubsub):
    _emulator, subscriber = pubsub
    result = drill(*BACKEND_ARGS, "--topic", TOPIC, "--live", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    [received] = subscriber.pull(subscription=SUBSCRIPTION, max_messages=1, timeout=10).received_messages
    assert data == {
        "incident_id": json.loads(received.message.data)["incident"]["incident_id"],
        "service": "netra-staging/us-central1/netra-backend-staging", "drill": "live", "topic": TOPIC,
        "message_id": received.message.message_id,
    }  # fmt: skip
