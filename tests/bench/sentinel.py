"""Deploy-event figures: deploy event → warning posted (warm, 100 ms per API call), and a storm of deploy events.

Every bench service (tests/bench/seeds.py) serves an all-traffic revision that
mounts Cloud SQL, so a deploy that keeps all-traffic fails the precheck rule
``all-traffic-cloud-sql``: each deploy event is one warning.
"""

from __future__ import annotations

import copy
import json
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from tests.bench import seeds
from tests.bench.harness import Function, ms, reseed, watchdog_env
from tests.support import deliver_until_acked, fixture, post, pubsub_body

LATENCY = 0.1
FIRST = "deploys/v2_UpdateService_terraform_first_entry.INFERRED.json"
LAST = "deploys/v2_UpdateService_terraform_last_entry_no_request.INFERRED.json"


def entries(service: str, number: int = 0) -> tuple[dict, dict]:
    """The two audit entries of one v2 UpdateService of ``service`` (the first carries the request)."""
    name = f"{seeds.LOCATION}/services/{service}"
    first, last = copy.deepcopy(fixture(FIRST)), copy.deepcopy(fixture(LAST))
    for entry, suffix in ((first, "first"), (last, "last")):
        entry["insertId"] = f"{service}-{number}-{suffix}"
        entry["resource"]["labels"]["service_name"] = service
        entry["protoPayload"]["resourceName"] = name
        entry["operation"]["id"] = f"{seeds.LOCATION}/operations/{service}-{number}"
        entry["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    first["protoPayload"]["request"]["service"]["name"] = name
    first["protoPayload"]["request"]["service"]["template"]["containers"][0]["image"] = f"gcr.io/x/{service}:v{number}"
    return first, last


def eventarc(url: str, entry: dict) -> int:
    headers = {
        "Content-Type": "application/json",
        "ce-id": entry["insertId"],
        "ce-source": "//cloudaudit.googleapis.com/projects/netra-staging/logs/activity",
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.audit.log.v1.written",
        "ce-time": entry["timestamp"],
    }
    return post(url, json.dumps(entry).encode(), headers)[0]


def deploy_warnings(api, slack, samples: int = 12) -> list[dict]:
    from tests.bench.figures import entry as figure

    results = []
    fleet = seeds.fleet(samples + 1, prefix="deploy-svc")
    with Function(watchdog_env(api, slack)) as function:
        reseed(api, fleet, latency=LATENCY)
        eventarc(function.url, entries("deploy-svc-000")[0])  # warm
        delays = []
        for index in range(1, samples + 1):
            service = f"deploy-svc-{index:03d}"
            first, _ = entries(service, index)
            before = len(slack.state.requests)
            started = time.monotonic()
            assert eventarc(function.url, first) == 200
            posted = [r for r in slack.state.requests[before:] if r["path"].endswith("chat.postMessage")]
            assert posted, f"no warning for {service}"
            delays.append(posted[0]["time"] - started)
        p50 = statistics.median(delays)
        results.append(
            figure(
                "deploy_to_warning_ms",
                ms(p50),
                "ms (p50, warm, 100 ms per Cloud Run call, none added by the Slack stand-in): deploy event sent → "
                "warning received by Slack",
                "≤ 230",
                ms(p50) <= 230,
                baseline=ms(2 * LATENCY),
                baseline_is="one read round trip and the post at 100 ms each",
                max_ms=ms(max(delays)),
                samples=samples,
            )
        )

        services = 50
        fleet = seeds.fleet(services, prefix="sentinel-storm")
        reseed(api, fleet, latency=0.0)
        before = len(slack.state.messages)
        work = []
        for index in range(services):
            first, last = entries(f"sentinel-storm-{index:03d}", 1)
            work += [("sink", first), ("sink", first), ("sink", last), ("eventarc", first)]
        random.Random(11).shuffle(work)

        def one(item) -> None:
            kind, entry = item
            if kind == "sink":
                deliver_until_acked(function.url, pubsub_body(entry), attempts=60, backoff=0.2)
            else:
                for _ in range(60):
                    if eventarc(function.url, entry) == 200:
                        return
                    time.sleep(0.2)

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, work))
        elapsed = time.monotonic() - started
        warnings = [m for m in slack.state.messages[before:] if "Risky deploy" in m.get("text", "")]
        per_service = {}
        for message in warnings:
            name = message["text"].split("`")[1]
            per_service[name] = per_service.get(name, 0) + 1
        results.append(
            figure(
                "deploy_storm_warnings",
                len(warnings),
                f"warnings for {len(work)} deploy events ({services} deploys × 2 copies of the first entry, the "
                "last entry and an Eventarc copy; shuffled, 16 at a time)",
                f"exactly {services}",
                len(warnings) == services and set(per_service.values()) == {1},
                events_per_s=round(len(work) / elapsed, 1),
                seconds=round(elapsed, 2),
            )
        )
    return results
