"""1,000 deliveries (50 services × 20 duplicates, open and closed, shuffled, 16 at a time)."""

from __future__ import annotations

import collections

import pytest

from tests.storm import run_storm, storm_bodies, storm_seed

pytestmark = pytest.mark.e2e


def test_storm_rolls_back_each_service_exactly_once_and_loses_no_report(start_stack, capsys):
    stack = start_stack(WATCHDOG_SERVICES="*", WATCHDOG_DEADLINE_SECONDS="20")
    stack.cloud_run.state.reset(storm_seed(50))
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
    assert len(updates) == 50  # exactly one per service
    assert set(per_service.values()) == {1}  # 0 duplicates
    assert set(reported) == set(per_service)  # 0 lost reports
    assert set(reported.values()) == {1}  # and each reported once
    replies = collections.Counter(m["text"].split()[1] for m in stack.messages if "recovered" in m["text"])
    assert set(replies.values()) <= {1}  # at most one recovery reply per incident
    for name in per_service:
        full = f"projects/netra-staging/locations/us-central1/services/{name}"
        assert stack.serving(full) == {f"{name}-00118-paz": 100}
