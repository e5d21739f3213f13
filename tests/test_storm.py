"""1,000 deliveries (50 services × 20 duplicates, open and closed, shuffled, 16 at a time).

A close that is handled before any open of its incident makes every later open of it change
nothing (an out-of-order delivery), so a service is rolled back exactly once, or not at all
when its incident was seen closed first; the ledger says which.
"""

from __future__ import annotations

import collections

import pytest

from tests.storm import run_storm, storm_bodies, storm_seed
from watchdog.core import ledger

pytestmark = pytest.mark.e2e


def test_storm_rolls_back_each_service_exactly_once_and_loses_no_report(start_stack, capsys):
    seed = storm_seed(50)
    watched = ",".join(s["name"].rsplit("/", 1)[-1] for s in seed["services"])  # as deployed: each one named
    stack = start_stack(seed=seed, WATCHDOG_SERVICES=watched, WATCHDOG_DEADLINE_SECONDS="20")
    bodies = storm_bodies(services=50, duplicates=20)
    assert len(bodies) == 1000

    result = run_storm(stack.function.url, bodies, concurrency=16)

    updates = stack.traffic_updates()
    per_service = collections.Counter(u["path"].rsplit("/", 1)[-1] for u in updates)
    rollback_reports = [m for m in stack.messages if m["text"].startswith("Rolled back")]
    reported = collections.Counter(m["text"].split()[2] for m in rollback_reports)
    with capsys.disabled():
        print(
            f"\nstorm: {result.deliveries} deliveries ({result.attempts} attempts incl. redeliveries) in "
            f"{result.seconds:.1f} s = {result.per_second:.0f}/s; p50 {result.percentile(50):.0f} ms, "
            f"p99 {result.percentile(99):.0f} ms; rollbacks {len(updates)} over {len(per_service)} services; "
            f"rollback reports {len(rollback_reports)}; recovery replies "
            f"{sum('recovered' in m['text'] for m in stack.messages)}"
        )
    assert set(per_service.values()) == {1}  # 0 duplicates
    assert len(updates) >= 25  # most incidents are opened before one of their 4 closes is handled
    for i in range(50):
        name = f"svc-{i:03d}"
        annotations = stack.cloud_run.state.services[f"projects/netra-staging/locations/us-central1/services/{name}"]
        memory = ledger.read(annotations.get("annotations"))
        if name in per_service:
            assert memory.find(f"0.storm-{i:03d}") is not None
        else:  # untouched, and only because its close came first
            assert f"0.storm-{i:03d}" in memory.closed, name
            assert stack.serving(f"projects/netra-staging/locations/us-central1/services/{name}") == {
                f"{name}-00119-qor": 100
            }
    assert set(reported) == set(per_service)  # 0 lost reports
    assert set(reported.values()) == {1}  # and each reported once
    replies = collections.Counter(m["text"].split()[1] for m in stack.messages if "recovered" in m["text"])
    assert set(replies.values()) <= {1}  # at most one recovery reply per incident
    for name in per_service:
        full = f"projects/netra-staging/locations/us-central1/services/{name}"
        assert stack.serving(full) == {f"{name}-00118-paz": 100}
