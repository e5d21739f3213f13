"""The playground's own topic (tests/push_topic.py), through the real google-cloud-pubsub client: it refuses what
Pub/Sub refuses, answers the doctor's two reads as pstest does, and POSTs each message as the push subscription
does, redelivering a refused one with backoff until it goes to the dead letter."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1.types import pubsub

from tests.push_topic import PushTopic, backoff, push_body, refusal
from tests.standins.loopback import Server
from tests.support import free_port
from watchdog.core.intake import rfc3339

TOPIC = "projects/netra-staging/topics/rollback-watchdog-alerts"
SUBSCRIPTION = "projects/netra-staging/subscriptions/rollback-watchdog-alerts-push"
FAST = (0.05, 0.2)  # the backoff, shortened again, so that a test sees retries in a second


class Endpoint:
    """A push endpoint on loopback that answers each POST with the next scripted status (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.received, self.lock = list(statuses), [], threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with endpoint.lock:
                    endpoint.received.append((dict(self.headers), json.loads(body), time.monotonic()))
                    status = endpoint.statuses.pop(0) if len(endpoint.statuses) > 1 else endpoint.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

        self.server = Server(0, Handler, None)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def until(what, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (found := what()):
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)
    return found


@pytest.fixture
def publisher(monkeypatch) -> Iterator:
    """``publisher(statuses, **options)``: a PushTopic pushing to an Endpoint that answers ``statuses`` (or to
    ``url=``), and a real PublisherClient pointed at it; (client, topic, endpoint)."""
    started: list = []

    def start(statuses: list[int] = (200,), *, url: str = "", **options):
        endpoint = Endpoint(list(statuses))
        topic = PushTopic(TOPIC, SUBSCRIPTION, url or endpoint.url, **{"retry": FAST, **options}).start()
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", topic.host)
        client = pubsub_v1.PublisherClient()
        started.append((client, topic, endpoint))
        return client, topic, endpoint

    yield start
    for client, topic, endpoint in started:
        client.transport.close()
        topic.stop()
        endpoint.close()


# --- the topic: what Pub/Sub refuses, refused -------------------------------------------------------------------


def message(data: bytes = b"x", **attributes: str) -> dict:
    return {"data": data, "attributes": attributes}


def request(*messages: dict, topic: str = TOPIC):
    return pubsub.PublishRequest.pb()(topic=topic, messages=[pubsub.PubsubMessage.pb()(**m) for m in messages])


REFUSED = {
    "an unknown topic": (request(message(), topic="projects/netra-staging/topics/other"), "NOT_FOUND"),
    "no topic": (request(message(), topic=""), "INVALID_ARGUMENT"),
    "no message": (request(), "INVALID_ARGUMENT"),
    "neither data nor attributes": (request(message(b"")), "INVALID_ARGUMENT"),
    "101 attributes": (request(message(**{f"k{n}": "v" for n in range(101)})), "INVALID_ARGUMENT"),
    "an attribute key of 257 bytes": (request(message(**{"k" * 257: "v"})), "INVALID_ARGUMENT"),
    "an attribute value of 1025 bytes": (request(message(k="é" * 512 + "v")), "INVALID_ARGUMENT"),
    "1001 messages": (request(*[message()] * 1001), "INVALID_ARGUMENT"),
    "over 10 MB": (request(message(b"x" * 10_000_001)), "INVALID_ARGUMENT"),
}
ACCEPTED = {
    "data only": request(message(b"{}")),
    "attributes only": request(message(b"", origin="script")),
    "100 attributes, key 256 and value 1024 bytes": request(
        message(**{f"k{n}": "v" for n in range(99)}, **{"k" * 256: "é" * 512})
    ),
    "1000 messages": request(*[message()] * 1000),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_publish_pubsub_refuses_is_refused_with_its_status(case):
    publish, status = REFUSED[case]
    refused = refusal({TOPIC}, publish)
    assert refused is not None
    assert refused[0].name == status
    assert refused[1]


@pytest.mark.parametrize("case", ACCEPTED)
def test_a_publish_pubsub_accepts_is_accepted(case):
    assert refusal({TOPIC}, ACCEPTED[case]) is None


CLIENT_REFUSED = {  # (what the client publishes, the exception google-cloud-pubsub raises from the status)
    "an unknown topic": (("projects/netra-staging/topics/other", b"x", {}), exceptions.NotFound),
    "neither data nor attributes": ((TOPIC, b"", {}), exceptions.InvalidArgument),
    "a value of 1025 bytes": ((TOPIC, b"x", {"k": "v" * 1025}), exceptions.InvalidArgument),
}


@pytest.mark.parametrize("case", CLIENT_REFUSED)
def test_the_client_sees_the_refusal_and_nothing_is_posted(publisher, case):
    (topic_name, data, attributes), error = CLIENT_REFUSED[case]
    client, topic, endpoint = publisher()
    with pytest.raises(error):
        client.publish(topic_name, data, **attributes).result(10)
    time.sleep(0.2)
    assert endpoint.received == []
    assert topic.undelivered() == 0


def test_the_doctor_reads_the_topic_and_finds_no_iam_as_with_pstest(publisher):
    client, _topic, _endpoint = publisher()
    assert client.get_topic(topic=TOPIC, timeout=10).name == TOPIC
    with pytest.raises(exceptions.NotFound):
        client.get_topic(topic="projects/netra-staging/topics/other", timeout=10)
    with pytest.raises(exceptions.MethodNotImplemented):  # the doctor's "this endpoint does not implement IAM"
        client.get_iam_policy(request={"resource": TOPIC}, timeout=10)
    with pytest.raises(exceptions.MethodNotImplemented):  # no topic administration: it is terraform's
        client.create_topic(name="projects/netra-staging/topics/new", timeout=10)


# --- the push subscription ----------------------------------------------------------------------------------------


def test_a_published_message_is_posted_as_the_push_subscription_posts_it(publisher):
    client, topic, endpoint = publisher([200])
    message_id = client.publish(TOPIC, b'{"incident": {}}', **{"rollback-watchdog-drill": "live"}).result(10)
    [(headers, body, _at)] = until(lambda: endpoint.received)
    assert headers["Content-Type"] == "application/json"
    assert not [name for name in headers if name.lower().startswith("ce-")]  # a push body, not a CloudEvent
    assert body["subscription"] == SUBSCRIPTION
    pushed = body["message"]
    assert set(pushed) == {"data", "attributes", "messageId", "message_id", "publishTime", "publish_time"}
    assert base64.b64decode(pushed["data"]) == b'{"incident": {}}'
    assert pushed["attributes"] == {"rollback-watchdog-drill": "live"}
    assert pushed["messageId"] == pushed["message_id"] == message_id
    assert pushed["publishTime"] == pushed["publish_time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", pushed["publishTime"])
    assert abs(rfc3339(pushed["publishTime"]) - time.time()) < 30
    until(lambda: topic.attempts)
    assert [(a.message_id, a.status, a.acked, a.then) for a in topic.attempts] == [(message_id, 200, True, "")]


def test_a_message_without_data_is_posted_without_data_as_proto3_json_leaves_it_out(publisher):
    client, _topic, endpoint = publisher([200])
    client.publish(TOPIC, b"", origin="someone's script").result(10)
    [(_headers, body, _at)] = until(lambda: endpoint.received)
    assert "data" not in body["message"]  # the shape main._push_without_data is there for
    assert body["message"]["attributes"] == {"origin": "someone's script"}


def test_push_body_leaves_out_empty_attributes():
    published = pubsub.PubsubMessage.pb()(data=b"tick", message_id="7")
    published.publish_time.FromSeconds(1_800_000_000)
    assert push_body(published, SUBSCRIPTION) == {
        "message": {"data": "dGljaw==", "messageId": "7", "message_id": "7", "publishTime": "2027-01-15T08:00:00Z",
                    "publish_time": "2027-01-15T08:00:00Z"},
        "subscription": SUBSCRIPTION,
    }  # fmt: skip


def test_each_message_gets_its_own_id_and_they_are_posted_in_publish_order(publisher):
    client, _topic, endpoint = publisher([204])
    ids = [client.publish(TOPIC, f"m{n}".encode()).result(10) for n in range(3)]
    assert len(set(ids)) == 3
    until(lambda: len(endpoint.received) == 3)
    assert [body["message"]["messageId"] for _h, body, _at in endpoint.received] == ids


def test_a_refused_delivery_is_redelivered_after_its_backoff_until_acknowledged(publisher):
    client, topic, endpoint = publisher([500, 503, 200])
    message_id = client.publish(TOPIC, b"tick", **{"rollback-watchdog-tick": "1"}).result(10)
    until(lambda: len(topic.attempts) == 3)
    assert [(a.status, a.acked, a.delivery_attempt, a.then) for a in topic.attempts] == [
        (500, False, 1, "redelivered in 0.05 s"), (503, False, 2, "redelivered in 0.1 s"), (200, True, 3, "")]  # fmt: skip
    times = [at for _h, _b, at in endpoint.received]
    assert times[1] - times[0] >= 0.05
    assert times[2] - times[1] >= 0.1
    assert {body["message"]["messageId"] for _h, body, _at in endpoint.received} == {message_id}
    time.sleep(0.5)
    assert len(endpoint.received) == 3  # acknowledged: never posted again
    assert topic.dead == []
    assert topic.undelivered() == 0


@pytest.mark.parametrize("status", [102, 200, 201, 202, 204])
def test_every_status_pubsub_counts_as_an_ack_acknowledges(publisher, status):
    client, topic, _endpoint = publisher([status, 500])
    client.publish(TOPIC, b"x").result(10)
    until(lambda: topic.attempts)
    time.sleep(0.3)
    assert [(a.status, a.acked) for a in topic.attempts] == [(status, True)]


def test_a_waiting_redelivery_does_not_hold_up_the_next_message(publisher):
    client, topic, _endpoint = publisher([500, 200], retry=(1.0, 1.0))
    first = client.publish(TOPIC, b"first").result(10)
    until(lambda: topic.attempts)
    second = client.publish(TOPIC, b"second").result(10)
    until(lambda: len(topic.attempts) == 3)
    assert [(a.message_id, a.status) for a in topic.attempts] == [(first, 500), (second, 200), (first, 200)]


def test_a_delivery_refused_max_attempts_times_goes_to_the_dead_letter(publisher, tmp_path):
    letters = tmp_path / "dead-letters.jsonl"
    client, topic, endpoint = publisher([500], max_attempts=3, dead_letters=letters)
    message_id = client.publish(TOPIC, b"alert", kind="x").result(10)
    until(lambda: len(topic.attempts) == 3)
    assert topic.attempts[-1].then == f"dead-lettered (in {letters})"
    [letter] = [json.loads(line) for line in letters.read_text().splitlines()]
    assert (letter["message"]["messageId"], letter["attempts"], letter["last_status"]) == (message_id, 3, 500)
    assert base64.b64decode(letter["message"]["data"]) == b"alert"
    time.sleep(0.5)
    assert len(endpoint.received) == 3
    assert topic.undelivered() == 0


def test_no_answer_counts_as_a_refusal(publisher):
    nobody = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    client, topic, _endpoint = publisher(url=nobody, max_attempts=2)
    client.publish(TOPIC, b"alert").result(10)
    until(lambda: len(topic.attempts) == 2)
    assert [(a.status, a.acked, a.then) for a in topic.attempts] == [(0, False, "redelivered in 0.05 s"),
                                                                      (0, False, "dead-lettered")]  # fmt: skip


@pytest.mark.parametrize(("attempt", "seconds"), [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (9, 60)])
def test_the_backoff_doubles_from_the_minimum_up_to_the_maximum(attempt, seconds):
    assert backoff(attempt) == seconds
