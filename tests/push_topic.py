"""The watchdog's topic and its push subscription in one process: how the playground delivers without pstest.

Where Google's pstest fake cannot be built (it needs Go and Debian's packages, from
apt as root), the playground serves this instead, on the port and the
``PUBSUB_EMULATOR_HOST`` pstest would have had. It is a gRPC server for the two
Publisher calls the operator commands make, ``Publish`` (``rollback-watchdog drill``
and the playground's ticks, through google-cloud-pubsub's ``PublisherClient``) and
``GetTopic`` (``rollback-watchdog doctor``), for one topic. Every other call answers
UNIMPLEMENTED (gRPC's own answer for a method nobody serves), the IAM methods
included, as pstest does: there are no subscriptions to pull from.

``Publish`` refuses what Pub/Sub refuses (a topic that does not exist: NOT_FOUND; a
message with neither data nor attributes, more than 100 attributes, a key over 256
or a value over 1024 bytes, more than 1000 messages or 10 MB in one request:
INVALID_ARGUMENT; https://cloud.google.com/pubsub/quotas#resource_limits and the
``PubsubMessage`` proto), and gives each message an id and a publish time.

Each message is then POSTed to the push endpoint as terraform's push subscription
(terraform/pubsub.tf) does: the JSON push body ``{"message": {data (base64),
attributes, messageId, message_id, publishTime, publish_time}, "subscription"}``,
no CloudEvent headers (functions-framework turns it into the CloudEvent itself), an
empty ``data`` or no attributes left out as proto3 JSON leaves them out. 102, 200,
201, 202 and 204 acknowledge; any other answer, or none within the ack deadline, is
retried with exponential backoff, and after ``max_attempts`` the message goes to
the dead letter (``dead_letters``, one JSON line each), as the subscription's retry
and dead-letter policies do; the backoff here is 1–60 s instead of 10–600 s, so a
redelivery is seen in the playground's terminal. Pub/Sub's ``deliveryAttempt`` is
not sent: the watchdog does not read it.

What it does not do: keep messages across a restart (they live in this process),
deliver two messages at once (one at a time, in order of due time: a message
waiting for its retry does not hold up the next), or authenticate (no OIDC token;
functions-framework checks none).
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf import json_format, timestamp_pb2
from google.pubsub_v1.types import pubsub

from tests.eventarc_bridge import Attempt
from tests.support import post

ACKNOWLEDGED = (102, 200, 201, 202, 204)  # https://cloud.google.com/pubsub/docs/push
MAX_MESSAGES = 1000  # per Publish request
MAX_REQUEST_BYTES = 10_000_000  # a Publish request, and so each message in it
MAX_ATTRIBUTES = 100
MAX_KEY_BYTES, MAX_VALUE_BYTES = 256, 1024
RETRY = (1.0, 60.0)  # the subscription's minimum and maximum backoff, a tenth of terraform's 10 s and 600 s
MAX_ATTEMPTS = 10  # terraform's max_delivery_attempts default
ACK_DEADLINE = 60.0  # terraform's function_timeout_seconds default: for push, the request timeout


def refusal(topics: set[str], request: Any) -> tuple[grpc.StatusCode, str] | None:
    """Why Pub/Sub would refuse this ``PublishRequest`` (a protobuf), or None when it accepts it."""
    if not request.topic:
        return grpc.StatusCode.INVALID_ARGUMENT, "topic is required"
    if request.topic not in topics:
        return grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={request.topic.rsplit('/', 1)[-1]})."
    if not request.messages:
        return grpc.StatusCode.INVALID_ARGUMENT, "messages is required: a Publish request carries at least one"
    if len(request.messages) > MAX_MESSAGES:
        return (
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{len(request.messages)} messages in one request: at most {MAX_MESSAGES}",
        )
    if request.ByteSize() > MAX_REQUEST_BYTES:
        return (
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is {request.ByteSize()} bytes: at most {MAX_REQUEST_BYTES}",
        )
    for n, message in enumerate(request.messages):
        if not message.data and not message.attributes:
            return grpc.StatusCode.INVALID_ARGUMENT, f"message {n} is empty: it needs data or at least one attribute"
        if len(message.attributes) > MAX_ATTRIBUTES:
            return (
                grpc.StatusCode.INVALID_ARGUMENT,
                f"message {n} has {len(message.attributes)} attributes: at most {MAX_ATTRIBUTES}",
            )
        for key, value in message.attributes.items():
            if not key or len(key.encode()) > MAX_KEY_BYTES:
                return (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"message {n}: attribute key {key[:40]!r} must be 1 to {MAX_KEY_BYTES} bytes",
                )
            if len(value.encode()) > MAX_VALUE_BYTES:
                return (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"message {n}: attribute {key!r} is over {MAX_VALUE_BYTES} bytes",
                )
    return None


def push_body(message: Any, subscription: str) -> dict:
    """A published ``PubsubMessage`` (protobuf, with its id and publish time) as the push subscription POSTs it."""
    fields = json_format.MessageToDict(message)  # proto3 JSON: bytes in base64, empty fields left out
    fields["message_id"], fields["publish_time"] = fields["messageId"], fields["publishTime"]
    return {"message": fields, "subscription": subscription}


def backoff(attempt: int, retry: tuple[float, float] = RETRY) -> float:
    """Seconds before the next delivery after ``attempt`` failed ones: doubling from the minimum, capped."""
    low, high = retry
    return min(high, low * 2 ** (attempt - 1))


@dataclass(order=True)
class _Due:
    at: float  # time.monotonic()
    seq: int
    body: dict = field(compare=False)
    attributes: dict[str, str] = field(compare=False)
    data: bytes = field(compare=False)
    attempts: int = field(compare=False, default=0)


class PushTopic:
    """``with PushTopic(topic, subscription, url) as topic: os.environ["PUBSUB_EMULATOR_HOST"] = topic.host``.

    ``told`` hears of every delivery attempt (tests.eventarc_bridge.Attempt, ``then`` saying what comes next);
    ``attempts`` keeps them all."""

    def __init__(
        self,
        topic: str,
        subscription: str,
        endpoint: str,
        port: int = 0,
        *,
        told: Callable[[Attempt], None] = lambda _attempt: None,
        retry: tuple[float, float] = RETRY,
        max_attempts: int = MAX_ATTEMPTS,
        ack_deadline: float = ACK_DEADLINE,
        dead_letters: Path | None = None,
    ) -> None:
        self.topic, self.subscription, self.endpoint = topic, subscription, endpoint
        self.told, self.retry, self.max_attempts, self.ack_deadline = told, retry, max_attempts, ack_deadline
        self.dead_letters = dead_letters
        self.attempts: list[Attempt] = []
        self.dead: list[dict] = []
        self._due: list[_Due] = []
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._stopping = False
        self._pusher = threading.Thread(target=self._push_all, name="push-subscription", daemon=True)
        # Pub/Sub takes 10 MB requests; gRPC servers refuse more than 4 MB unless told
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                   options=[("grpc.max_receive_message_length", 2 * MAX_REQUEST_BYTES)])  # fmt: skip
        request_pb, topic_pb = pubsub.PublishRequest.pb(), pubsub.GetTopicRequest.pb()
        handlers = {
            "Publish": grpc.unary_unary_rpc_method_handler(
                self._publish, request_deserializer=request_pb.FromString, response_serializer=_serialize
            ),
            "GetTopic": grpc.unary_unary_rpc_method_handler(
                self._get_topic, request_deserializer=topic_pb.FromString, response_serializer=_serialize
            ),
        }
        self._server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher",
                                                                                    handlers)])  # fmt: skip
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.host = f"127.0.0.1:{self.port}"  # the value for PUBSUB_EMULATOR_HOST

    # --- the topic ------------------------------------------------------------------------------------------------

    def _publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        refused = refusal({self.topic}, request)
        if refused is not None:
            context.abort(*refused)
        millis = round(time.time() * 1000)  # "2021-02-26T19:13:55.749Z", as in Google's push example
        published = timestamp_pb2.Timestamp(seconds=millis // 1000, nanos=millis % 1000 * 1_000_000)
        ids = []
        with self._changed:
            for message in request.messages:
                message.message_id = str(next(self._ids))
                message.publish_time.CopyFrom(published)
                heapq.heappush(self._due, _Due(time.monotonic(), int(message.message_id),
                                               push_body(message, self.subscription), dict(message.attributes),
                                               message.data))  # fmt: skip
                ids.append(message.message_id)
            self._changed.notify()
        return pubsub.PublishResponse.pb()(message_ids=ids)

    def _get_topic(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.topic != self.topic:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={request.topic.rsplit('/', 1)[-1]})."
            )
        return pubsub.Topic.pb()(name=self.topic)

    # --- the push subscription ------------------------------------------------------------------------------------

    def _next(self) -> _Due | None:
        """The next message whose delivery is due, waiting for it; None once stopping."""
        with self._changed:
            while not self._stopping:
                wait = self._due[0].at - time.monotonic() if self._due else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._due)
                self._changed.wait(wait)
            return None

    def _push_all(self) -> None:
        while (due := self._next()) is not None:
            try:
                status, _ = post(self.endpoint, json.dumps(due.body).encode(), {"Content-Type": "application/json"},
                                 timeout=self.ack_deadline)  # fmt: skip
            except OSError:  # no answer (refused, reset, past the ack deadline): a nack
                status = 0
            due.attempts += 1
            acked = status in ACKNOWLEDGED
            if acked:
                then = ""
            elif due.attempts >= self.max_attempts:
                then = "dead-lettered" + (f" (in {self.dead_letters})" if self.dead_letters else "")
                self._dead_letter(due, status)
            else:
                wait = backoff(due.attempts, self.retry)
                then = f"redelivered in {wait:g} s"
                with self._changed:
                    heapq.heappush(self._due, _Due(time.monotonic() + wait, due.seq, due.body, due.attributes,
                                                   due.data, due.attempts))  # fmt: skip
            attempt = Attempt(due.body["message"]["messageId"], status, due.attributes, due.data, acked,
                              delivery_attempt=due.attempts, then=then)  # fmt: skip
            self.attempts.append(attempt)
            self.told(attempt)

    def _dead_letter(self, due: _Due, status: int) -> None:
        letter = {**due.body, "attempts": due.attempts, "last_status": status}
        self.dead.append(letter)
        if self.dead_letters is not None:
            with self.dead_letters.open("a") as sink:
                sink.write(json.dumps(letter) + "\n")

    def undelivered(self) -> int:
        """Messages published and not yet acknowledged nor dead-lettered (lost when this process stops)."""
        with self._changed:
            return len(self._due)

    # --- life -----------------------------------------------------------------------------------------------------

    def start(self) -> Self:
        self._server.start()
        self._pusher.start()
        return self

    def stop(self) -> None:
        """Stop taking messages first, then stop pushing (a delivery under way is waited for)."""
        self._server.stop(grace=None).wait()
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._pusher.is_alive():
            self._pusher.join(self.ack_deadline + 5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()
