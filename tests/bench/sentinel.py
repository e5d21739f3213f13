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
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.bench import seeds
from tests.bench.harness import Function, delivery, encode, ms, reseed, send, watchdog_env
from tests.support import deliver, deliver_until_acked, fixture, post, pubsub_body

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


# --- alerts are never queued behind deploy events or ticks -------------------------------------------------


def _merge(*seeds_: dict) -> dict:
    return {key: [item for seed in seeds_ for item in seed[key]] for key in ("services", "revisions")}


def _alert_delays(api, url: str, services: list[str]) -> list[float]:
    from tests.bench.figures import _wait_update

    delays = []
    for service in services:
        body = encode(delivery(service))
        started = time.monotonic()
        assert send(url, body) == 200
        _reads, update = _wait_update(api, service, started)
        delays.append(update["time"] - started)
    return delays


def alert_isolation(api, slack, samples: int = 12, deploys: int = 200) -> list[dict]:
    """Alert → update on the alert function, idle, then while the events function (terraform's topology: its
    own subscription and process, handle_events) has a hold waiting (answering 500, redelivered) and
    ``deploys`` deploy events being delivered. 100 ms per Cloud Run call in both phases."""
    from tests.bench.figures import entry

    fleet = _merge(seeds.fleet(2 * samples + 1), seeds.fleet(deploys, prefix="deploy-svc"),
                   seeds.fleet(1, prefix="hold-svc"))  # fmt: skip
    env = watchdog_env(api, slack, WATCHDOG_SENTINEL="hold")
    with Function(env) as alerts, Function(env, target="handle_events") as events:
        reseed(api, fleet, latency=LATENCY)
        send(alerts.url, delivery("bench-svc-000"))  # warm both: clients, connections, threads
        eventarc(events.url, _flip(entries("deploy-svc-000", 0)[0]))
        idle = _alert_delays(api, alerts.url, [f"bench-svc-{i:03d}" for i in range(1, samples + 1)])

        # the load: a hold waiting for its revision (500s, redelivered as Pub/Sub would, faster) and a storm
        hold, _ = entries("hold-svc-000", 1)
        hold_body = pubsub_body(hold)
        stop = threading.Event()
        hold_statuses: list[int] = []

        def keep_holding() -> None:
            while not stop.is_set():
                hold_statuses.append(deliver_status(events.url, hold_body))
                time.sleep(0.2)

        storm = [pubsub_body(_flip(entries(f"deploy-svc-{i:03d}", 1)[0])) for i in range(deploys)]
        acked: list[float] = []

        def one(body: dict) -> None:
            deliver_until_acked(events.url, body, attempts=60, backoff=0.2)
            acked.append(time.monotonic())

        holder = threading.Thread(target=keep_holding, daemon=True)
        holder.start()
        pool = ThreadPoolExecutor(16)
        load_started = time.monotonic()
        futures = [pool.submit(one, body) for body in storm]
        time.sleep(0.3)  # the storm is under way
        measured_from = time.monotonic()
        loaded = _alert_delays(api, alerts.url, [f"bench-svc-{i:03d}" for i in range(samples + 1, 2 * samples + 1)])
        measured_to = time.monotonic()
        for future in futures:
            future.result()
        load_seconds = time.monotonic() - load_started
        stop.set()
        holder.join()
        pool.shutdown()
    during = sum(1 for t in acked if measured_from <= t <= measured_to)
    idle_p50, loaded_p50 = statistics.median(idle), statistics.median(loaded)
    warned = [m for m in slack.state.messages if "deploy-svc-" in m.get("text", "")]
    return [
        entry(
            "alert_to_update_under_events_ms",
            ms(loaded_p50),
            f"ms (p50, 100 ms per Cloud Run call): alert → update on the alert function while the events function "
            f"holds a deploy (500s, redelivered) and takes {deploys} deploy events, 16 at a time",
            "≤ idle p50 + 30 (unchanged: not queued behind them)",
            ms(loaded_p50) <= ms(idle_p50) + 30,
            baseline=ms(idle_p50),
            baseline_is="the same alerts with the events function idle",
            max_ms=ms(max(loaded)),
            events_acked_while_measuring=during,
            hold_500s=sum(1 for s in hold_statuses if s == 500),
            deploy_warnings=len(warned),
            load_seconds=round(load_seconds, 2),
            samples=samples,
        )
    ]


def _flip(entry: dict) -> dict:
    """A risky deploy that is not a blocking one (egress flipped, no hold): a warning, read and remembered."""
    entry["protoPayload"]["request"]["service"]["template"]["vpcAccess"]["egress"] = "PRIVATE_RANGES_ONLY"
    return entry


def deliver_status(url: str, body: dict) -> int:
    try:
        return deliver(url, body, timeout=30)[0]
    except OSError:
        return 0
