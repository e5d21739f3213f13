"""A delivery storm: many services, many duplicates, open and closed, shuffled, delivered concurrently.

Shared by the storm test (tests/test_storm.py) and the benchmarks. Deliveries
follow Pub/Sub's rules: anything but 2xx is delivered again.
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tests.support import INCIDENT_SYMPTOMS, deliver_until_acked, fixture, incident_alert, pubsub_body

PROJECT, REGION = "netra-staging", "us-central1"


def storm_seed(services: int) -> dict:
    """``services`` services, each a private-ranges-only revision and a newer all-traffic one serving."""
    base = fixture("cloudrun/incident_seed.json")
    template_service = base["services"][1]
    template_revisions = [r for r in base["revisions"] if r["service"] == template_service["name"]]
    seed: dict = {"services": [], "revisions": []}
    for i in range(services):
        name = f"svc-{i:03d}"
        full = f"projects/{PROJECT}/locations/{REGION}/services/{name}"
        shorts = []
        for revision in template_revisions:
            copy_ = copy.deepcopy(revision)
            short = copy_["name"].rsplit("/", 1)[-1].replace("netra-backend-staging", name)
            copy_.update(name=f"{full}/revisions/{short}", service=full)
            seed["revisions"].append(copy_)
            shorts.append(short)
        service = copy.deepcopy(template_service)
        latest = f"{full}/revisions/{shorts[-1]}"
        service.update(name=full, latestReadyRevision=latest, latestCreatedRevision=latest, etag=f'"{name}-1"')
        service["template"]["revision"] = shorts[-1]
        seed["services"].append(service)
    return seed


@dataclass
class StormResult:
    deliveries: int
    attempts: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds

    def percentile(self, q: float) -> float:
        return statistics.quantiles(self.latencies_ms, n=100)[int(q) - 1]


def storm_bodies(services: int, duplicates: int, closed_every: int = 5, seed: int = 7) -> list[dict]:
    """``duplicates`` deliveries per service's incident, every ``closed_every``-th one a close, shuffled."""
    bodies = []
    started = INCIDENT_SYMPTOMS  # the seed is the incident's backend, copied
    for i in range(services):
        incident = f"0.storm-{i:03d}"
        for n in range(duplicates):
            state = "closed" if closed_every and n % closed_every == closed_every - 1 else "open"
            alert = incident_alert(f"svc-{i:03d}", incident_id=incident, state=state, started_at=started)
            bodies.append(pubsub_body(alert))
    random.Random(seed).shuffle(bodies)
    return bodies


def run_storm(url: str, bodies: list[dict], concurrency: int = 16) -> StormResult:
    latencies: list[float] = []
    attempts: list[int] = []

    def one(body: dict) -> None:
        started = time.monotonic()
        statuses = deliver_until_acked(url, body, attempts=60, backoff=0.2)
        latencies.append((time.monotonic() - started) * 1000)
        attempts.append(len(statuses))

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, bodies))
    return StormResult(len(bodies), sum(attempts), time.monotonic() - started, latencies)
