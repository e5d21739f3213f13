"""Prove the pstest binary behaves like Pub/Sub for the real google-cloud-pubsub client.

These tests fail (never skip) when build/pstest is missing, so a broken build.sh is
noticed in CI rather than silently reducing coverage.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import pubsub_v1

from tests.pubsub_emulator.server import PubSubEmulator

PROJECT = "test-project"
pytestmark = pytest.mark.e2e  # starts the pstest binary


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubEmulator]:
    """A fresh emulator per test, with PUBSUB_EMULATOR_HOST pointing at it."""
    with PubSubEmulator() as emu:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emu.host)
        yield emu


@pytest.fixture
def clients(
    emulator: PubSubEmulator,
) -> Iterator[tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]]:
    """Real clients; they read PUBSUB_EMULATOR_HOST when constructed."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    yield publisher, subscriber
    subscriber.close()
    publisher.transport.close()


def _topic_and_sub(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    ack_deadline_seconds: int = 10,
) -> tuple[str, str]:
    topic = publisher.topic_path(PROJECT, "rollbacks")
    sub = subscriber.subscription_path(PROJECT, "rollbacks-sub")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=ack_deadline_seconds)
    return topic, sub


def _pull(
    subscriber: pubsub_v1.SubscriberClient, sub: str, timeout: float = 15.0
) -> list[pubsub_v1.types.ReceivedMessage]:
    """Pull until at least one message arrives (pstest's Pull waits only 500ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = subscriber.pull(subscription=sub, max_messages=10, timeout=5)
        if resp.received_messages:
            return list(resp.received_messages)
    raise AssertionError(f"no message on {sub} within {timeout}s")


def test_binary_reports_loopback_address(emulator: PubSubEmulator) -> None:
    host, port = emulator.host.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0


def test_missing_binary_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"build\.sh"):
        PubSubEmulator(binary=tmp_path / "nope").start()


def test_publish_pull_ack_roundtrip(
    clients: tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient],
) -> None:
    publisher, subscriber = clients
    topic, sub = _topic_and_sub(publisher, subscriber)

    msg_id = publisher.publish(topic, b'{"service": "api"}', kind="rollback", rev="r-7").result(10)

    [received] = _pull(subscriber, sub)
    assert received.message.message_id == msg_id
    assert received.message.data == b'{"service": "api"}'
    assert dict(received.message.attributes) == {"kind": "rollback", "rev": "r-7"}

    subscriber.acknowledge(subscription=sub, ack_ids=[received.ack_id])
    resp = subscriber.pull(subscription=sub, max_messages=10, timeout=5)
    assert not resp.received_messages, "acked message must not be redelivered"


def test_nacked_message_is_redelivered(
    clients: tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient],
) -> None:
    publisher, subscriber = clients
    topic, sub = _topic_and_sub(publisher, subscriber, ack_deadline_seconds=60)
    msg_id = publisher.publish(topic, b"once", attempt="1").result(10)

    [first] = _pull(subscriber, sub)
    subscriber.modify_ack_deadline(subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=0)

    [again] = _pull(subscriber, sub)
    assert again.message.message_id == msg_id
    assert again.message.data == b"once"


def test_unacked_message_is_redelivered_after_deadline(
    clients: tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient],
) -> None:
    """At-least-once: an unacked message comes back once its ack deadline lapses.

    10s is pstest's (and Pub/Sub's) minimum ack deadline, so this test takes ~10s.
    """
    publisher, subscriber = clients
    topic, sub = _topic_and_sub(publisher, subscriber, ack_deadline_seconds=10)
    msg_id = publisher.publish(topic, b"lost-ack").result(10)

    [first] = _pull(subscriber, sub)
    started = time.monotonic()
    [again] = _pull(subscriber, sub, timeout=20)
    assert again.message.message_id == first.message.message_id == msg_id
    assert time.monotonic() - started >= 9, "redelivered before the ack deadline"
