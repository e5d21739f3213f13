"""Field revert figures: how soon the pin protects the service, and how long until the hotfix's code serves again
with only the egress set back (tests/fixtures/histories/hotfix_on_top.json, 100 ms per API call).

Cloud Run's own time to start a revision is not the watchdog's and is not measured: the stand-in makes a new
revision Ready after ``ready_after_reads`` reads of it. What is measured is the watchdog's share: the pin, the
validated template update, its reads of the new revision (0.5 s apart, doubling to 3 s) and the traffic move.
"""

from __future__ import annotations

import statistics
import time

from tests import histories
from tests.bench.harness import Function, encode, ms, reseed, send, watchdog_env
from tests.support import incident_alert, pubsub_body

LATENCY = 0.1


def _patches(api, since: float) -> list[dict]:
    return [e for e in api.state.requests if e["method"] == "PATCH" and e["time"] >= since and e.get("status") == 200]


def _one(api, function: Function, history, incident: str, reads: int) -> dict[str, float]:
    reseed(api, history.seed(), latency=LATENCY)
    api.state.ready_after_reads = reads
    notification = incident_alert(history.service_name, history.name(3), incident_id=incident,
                                  started_at=histories.NOW - 120)  # fmt: skip
    body = encode(pubsub_body(notification))
    started = time.monotonic()
    assert send(function.url, body) == 200
    patches = _patches(api, started)
    # the ledger's own annotation-only writes (the card reported) are not steps of the revert
    steps = [p for p in patches if "traffic" in p["query"].get("updateMask", "") and not p["query"].get("validateOnly")]
    masks = [p["query"]["updateMask"] for p in steps]
    assert masks == ["traffic,annotations", "template,traffic,annotations", "traffic,annotations"], masks
    pin, created, moved = steps
    return {"pin": pin["time"] - started, "created": created["time"] - started, "moved": moved["time"] - started}


def field_revert_figures(api, slack, samples: int = 5) -> list[dict]:
    from tests.bench.figures import entry

    history = histories.load("hotfix_on_top")
    results = []
    env = watchdog_env(api, slack, WATCHDOG_SERVICES="checkout", WATCHDOG_FIELD_REVERT="auto")
    with Function(env) as function:
        _one(api, function, history, "0.warm", 0)  # warm: clients and connections
        for reads in (0, 3):
            runs = [_one(api, function, history, f"0.bench-{reads}-{n}", reads) for n in range(samples)]
            pin = statistics.median(r["pin"] for r in runs)
            moved = statistics.median(r["moved"] for r in runs)
            if reads == 0:
                results.append(entry(
                    "field_revert_pin_first_ms", ms(pin), "ms p50: alert → pin sent (field revert on, 100 ms per "
                    "API call)", "≤ 130 (as alert_to_update_ms: the field revert comes after the pin)", ms(pin) <= 130,
                    samples=samples))  # fmt: skip
            results.append(entry(
                f"field_revert_serving_{reads}_reads_ms", ms(moved),
                f"ms p50: alert → traffic moved to the reverted revision (Ready after {reads} reads)",
                "informational", True, pin_ms=ms(pin),
                created_ms=ms(statistics.median(r["created"] for r in runs)), samples=samples))  # fmt: skip
    return results
