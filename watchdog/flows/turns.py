"""Deliveries for one service take turns inside an instance.

Duplicates then read the ledger after the first one wrote it instead of racing
it; across instances the etag still guards the update. An alert or a deploy
event waits for its turn (until a second before its deadline, then Pub/Sub
redelivers); a verification tick never waits: an alert for the service goes
first, and the next tick looks again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from watchdog.config import ServiceRef
from watchdog.flows.outcomes import InProgress


class Turns:
    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def turn(self, ref: ServiceRef, deadline: float) -> Iterator[None]:
        """The service's turn, waited for; :class:`InProgress` (redeliver) when it does not come in time."""
        lock = self._lock(ref)
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic() - 1)):
            raise InProgress(f"another delivery for {ref} is still being handled")
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def turn_if_free(self, ref: ServiceRef) -> Iterator[bool]:
        """The service's turn if nobody has it (True), without waiting; False while another delivery has it."""
        lock = self._lock(ref)
        mine = lock.acquire(blocking=False)
        try:
            yield mine
        finally:
            if mine:
                lock.release()

    def _lock(self, ref: ServiceRef) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(str(ref), threading.Lock())
