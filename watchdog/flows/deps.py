"""What every flow is built from: one frozen bundle, made once per process by ``flows/app.build``.

The flows take a :class:`Deps` and nothing else: no flow builds a client, reads the environment or
calls back up into ``app``. Tests build the same bundle around in-process fakes (tests/fakes.py).

- ``cloud_run``: the :class:`CloudRun` port, the Cloud Run calls the flows make (watchdog/edges/cloudrun.py
  implements it; the doctor's probes are the tools' own, watchdog/tools/probes.py);
- ``reporter``: Slack for the flows, through a notifier built per deadline (flows/reporting.py);
- ``clock``: epoch seconds (the rules' "now"); deadlines stay on ``time.monotonic``;
- ``metric``: the decision metric, best effort (flows/extras.py);
- ``related``: the blast radius, best effort, after the update and before the report;
- ``turns``: deliveries for one service take turns (flows/turns.py);
- ``told``: reports the ledger cannot remember, told once per instance;
- ``watched``: the services verification ticks read (flows/ticks.py), registered by the alert door.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from watchdog.config import Config, ServiceRef

if TYPE_CHECKING:
    from watchdog.core.decision import Decision
    from watchdog.core.intake import Alert
    from watchdog.edges.cloudrun import RevisionHistory
    from watchdog.flows.outcomes import Outcome
    from watchdog.flows.reporting import Reporter, Told
    from watchdog.flows.turns import Turns


class CloudRun(Protocol):
    """The Cloud Run Admin API v2 as the flows use it: plain dicts in the v2 REST JSON shape, errors as
    ``google.api_core`` exceptions, ``ConcurrentChange`` for a stale etag, ``UpdateFailed`` for an operation that
    ended in error (watchdog/edges/cloudrun.py says how each call behaves)."""

    def identity(self) -> str: ...

    def get_service(self, ref: ServiceRef, deadline: float) -> dict: ...

    def get_revision(self, ref: ServiceRef, revision: str, deadline: float) -> dict: ...

    def read(self, ref: ServiceRef, deadline: float) -> tuple[dict, RevisionHistory]: ...

    def history(self, ref: ServiceRef, deadline: float, page_size: int = ...) -> RevisionHistory: ...

    def list_services(self, project: str, region: str, deadline: float) -> list[dict]: ...

    def start_pin(
        self, ref: ServiceRef, traffic: list[dict], etag: str, annotations: dict[str, str], deadline: float
    ) -> Any: ...

    def await_pin(self, ref: ServiceRef, operation: Any, deadline: float) -> dict: ...

    def set_traffic_and_annotations(
        self,
        ref: ServiceRef,
        traffic: list[dict] | None,
        annotations: dict[str, str],
        etag: str,
        deadline: float,
        *,
        once: bool = False,
    ) -> None: ...

    def annotate(self, ref: ServiceRef, annotations: dict[str, str], etag: str, deadline: float) -> None: ...

    def reannotate(
        self, ref: ServiceRef, service: dict, change: Callable[[dict | None], dict | None], deadline: float
    ) -> None: ...

    def image_digests(self, ref: ServiceRef, revision: str, deadline: float) -> dict[str, str]: ...

    def start_template_update(
        self,
        ref: ServiceRef,
        template: dict,
        traffic: list[dict],
        annotations: dict[str, str],
        etag: str,
        deadline: float,
        *,
        validate_only: bool = False,
    ) -> Any: ...


class Watched:
    """The services verification ticks read: the fully qualified entries of ``WATCHDOG_SERVICES`` (never dropped:
    the instance that gets the ticks is not the one that rolls back, terraform/pubsub.tf), and those an alert in
    this instance registered (dropped once they hold nothing to verify)."""

    def __init__(self, configured: frozenset[ServiceRef] = frozenset()) -> None:
        self._configured = configured
        self._refs: set[ServiceRef] = set(configured)
        self._lock = threading.Lock()

    @classmethod
    def of(cls, config: Config) -> Watched:
        return cls(frozenset(ServiceRef(*entry) for entry in config.services.entries if len(entry) == 3))

    def add(self, ref: ServiceRef) -> None:
        with self._lock:
            self._refs.add(ref)

    def forget(self, ref: ServiceRef) -> None:
        if ref in self._configured:
            return  # read on every tick: its next rollback may come from another instance
        with self._lock:
            self._refs.discard(ref)

    def all(self) -> list[ServiceRef]:
        with self._lock:
            return sorted(self._refs, key=str)


@dataclass(frozen=True)
class Deps:
    config: Config
    cloud_run: CloudRun
    reporter: Reporter
    clock: Callable[[], float]
    metric: Callable[[Alert, Outcome, float], None]  # best effort: never raises
    related: Callable[[Alert, Decision, float], list[str]]  # best effort: [] when it cannot say
    turns: Turns
    told: Told
    watched: Watched
