"""A small Eventarc: pull from a Pub/Sub subscription, POST each message to the function as a CloudEvent.

Eventarc delivers a Pub/Sub message as a binary-mode CloudEvent whose body is
``MessagePublishedData``: ``{"message": {data (base64), attributes, messageId,
publishTime}, "subscription": ...}`` (it duplicates the message fields in
snake_case too). A 2xx answer acknowledges the message; anything else leaves
it unacknowledged so Pub/Sub redelivers it — here a nack
(``modify_ack_deadline(0)``), so the redelivery comes at once.

It uses the real ``SubscriberClient`` against the pstest emulator and
:func:`tests.support.deliver` for the POST.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from google.api_core.exceptions import GoogleAPIError
from google.cloud import pubsub_v1

from tests.support import deliver


@dataclass
class Attempt:
    message_id: str
    status: int
    attributes: dict[str, str]
    data: bytes
    acked: bool
    delivery_attempt: int = 0  # of this message, from 1; 0: not counted (Pub/Sub counts only with a dead letter)
    then: str = ""  # what happens next when not acknowledged: "redelivered …", "dead-lettered …"


@dataclass
class EventarcBridge:
    subscriber: pubsub_v1.SubscriberClient
    subscription: str
    url: str
    attempts: list[Attempt] = field(default_factory=list)

    def body(self, message) -> dict:
        published = message.publish_time.rfc3339() if message.publish_time else ""
        data = base64.b64encode(message.data).decode()
        attributes = dict(message.attributes)
        return {
            "message": {
                "data": data,
                "attributes": attributes,
                "messageId": message.message_id,
                "message_id": message.message_id,
                "publishTime": published,
                "publish_time": published,
            },
            "subscription": self.subscription,
        }

    def pump(self, timeout: float = 15.0) -> list[Attempt]:
        """Pull until some messages arrive, deliver each once, ack on 2xx and nack otherwise."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            response = self.subscriber.pull(subscription=self.subscription, max_messages=10, timeout=5)
            if response.received_messages:
                return [self._deliver(received) for received in response.received_messages]
        raise AssertionError(f"no message on {self.subscription} within {timeout}s")

    def serve(self, stop: threading.Event, told: Callable[[Attempt], None] = lambda _attempt: None) -> None:
        """Deliver every message as it arrives until ``stop`` is set (pstest's pull waits 0.5 s when empty).

        A refused delivery is retried a second later, not at once: Pub/Sub backs off too.
        """
        while not stop.is_set():
            try:  # no retries: a stop must not wait out a retry deadline
                response = self.subscriber.pull(subscription=self.subscription, max_messages=10, timeout=5, retry=None)
            except GoogleAPIError:
                stop.wait(1)  # the emulator is going away (Ctrl-C reaches it too), or busy
                continue
            for received in response.received_messages:
                try:
                    attempt = self._deliver(received)
                except OSError:  # no answer: redelivered once the ack deadline passes
                    stop.wait(1)
                    continue
                told(attempt)
                if not attempt.acked:
                    stop.wait(1)

    def pending(self) -> int:
        """How many messages a pull returns now (they are nacked again at once)."""
        response = self.subscriber.pull(subscription=self.subscription, max_messages=10, timeout=5)
        ack_ids = [r.ack_id for r in response.received_messages]
        if ack_ids:
            self.subscriber.modify_ack_deadline(subscription=self.subscription, ack_ids=ack_ids, ack_deadline_seconds=0)
        return len(ack_ids)

    def _deliver(self, received) -> Attempt:
        message = received.message
        status, _ = deliver(self.url, self.body(message), event_id=message.message_id)
        acked = 200 <= status < 300
        if acked:
            self.subscriber.acknowledge(subscription=self.subscription, ack_ids=[received.ack_id])
        else:
            self.subscriber.modify_ack_deadline(
                subscription=self.subscription, ack_ids=[received.ack_id], ack_deadline_seconds=0
            )
        then = "" if acked else "redelivered"  # nacked: pstest offers it again at once, and serve() waits 1 s
        attempt = Attempt(message.message_id, status, dict(message.attributes), message.data, acked, then=then)
        self.attempts.append(attempt)
        return attempt
