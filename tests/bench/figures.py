"""The figures of ``make bench``. Each returns result entries: name, value, unit, goal, met, baseline, detail."""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from tests.bench import seeds
from tests.bench.harness import (
    Function,
    before_update,
    delivery,
    encode,
    is_update,
    ms,
    percentile,
    reseed,
    round_trips,
    send,
    standin_busy,
    watchdog_env,
)

FLOOR = Path(__file__).resolve().parent / "floor" / "main.py"
LATENCY = 0.100  # injected per-call latency for the warm critical-path figures

# Modules that must not be imported before the traffic update (prefixes).
FORBIDDEN = ("slack_sdk", "google.cloud.monitoring", "google.cloud.pubsub", "watchdog.tools.cli", "pyinstrument")


def entry(name, value, unit, goal, met, baseline=None, **detail) -> dict:
    out = {"name": name, "value": value, "unit": unit, "goal": goal, "met": met}
    if baseline is not None:
        out["baseline"] = baseline
    if detail:
        out["detail"] = detail
    return out


def _wait_update(api, service: str, since: float = 0.0, timeout: float = 10.0) -> tuple[list[dict], dict]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        reads, update = before_update(list(api.state.requests), service, since)
        if update is not None:
            return reads, update
        time.sleep(0.001)
    raise AssertionError(f"no traffic update for {service}")


# --- 1-3: warm critical path ---------------------------------------------------


def warm_critical_path(api, slack, samples: int = 12) -> list[dict]:
    fleet = seeds.fleet(samples + 1)
    results = []
    with Function(watchdog_env(api, slack)) as function:
        # 1 + 2: 100 ms per call.
        reseed(api, fleet, latency=LATENCY)
        send(function.url, delivery("bench-svc-000"))  # warm: clients, connections, executor threads
        trips, delays, busy = [], [], []
        for index in range(1, samples + 1):
            service = f"bench-svc-{index:03d}"
            body = encode(delivery(service))
            started = time.monotonic()
            status = send(function.url, body)
            assert status == 200, status
            reads, update = _wait_update(api, service, started)
            trips.append(round_trips(reads))
            delays.append(update["time"] - started)
            busy.append(standin_busy(reads, LATENCY))
        worst = max(trips)
        results.append(
            entry(
                "critical_path_round_trips",
                worst,
                "read round trips before the update",
                "1 (service GET ∥ revisions LIST), then the update",
                worst == 1,
                reads=[f"{r['method']} {r['path'].split('/services/')[-1]}" for r in reads],
                samples=samples,
            )
        )
        p50 = statistics.median(delays)
        results.append(
            entry(
                "alert_to_update_ms",
                ms(p50),
                "ms (p50, warm, 100 ms per API call)",
                f"≤ {ms(LATENCY) + 30:g}",
                ms(p50) <= ms(LATENCY) + 30,
                baseline=ms(LATENCY),
                max_ms=ms(max(delays)),
                min_ms=ms(min(delays)),
                standin_busy_ms_p50=ms(statistics.median(busy)),
                samples=samples,
            )
        )

        # 3: zero injected latency.
        fleet = seeds.fleet(51)
        reseed(api, fleet, latency=0.0)
        send(function.url, delivery("bench-svc-000"))
        overhead, busy, bodies = [], [], []
        for index in range(1, 51):
            service = f"bench-svc-{index:03d}"
            body = encode(delivery(service, incident_id=f"0.dup{index:03d}"))
            bodies.append(body)
            started = time.monotonic()
            assert send(function.url, body) == 200
            reads, update = _wait_update(api, service, started)
            overhead.append(update["time"] - started)
            busy.append(standin_busy(reads, 0.0))
        duplicate = []
        for body in bodies:
            started = time.monotonic()
            assert send(function.url, body) == 200
            duplicate.append(time.monotonic() - started)
    with Function({}, source=FLOOR) as floor:
        send(floor.url, delivery("bench-svc-000"))
        floor_trip = []
        for body in bodies:
            started = time.monotonic()
            assert send(floor.url, body) == 200
            floor_trip.append(time.monotonic() - started)
    p50 = ms(percentile(overhead, 50))
    results.append(
        entry(
            "handling_overhead_ms",
            p50,
            "ms p50: delivery sent → update received (0 ms per API call)",
            "p50 ≤ 10",
            p50 <= 10,
            p99_ms=ms(percentile(overhead, 99)),
            standin_busy_ms_p50=ms(percentile(busy, 50)),
            without_standin_ms_p50=ms(percentile([o - b for o, b in zip(overhead, busy, strict=True)], 50)),
            samples=len(overhead),
        )
    )
    results.append(
        entry(
            "duplicate_delivery_ms",
            ms(percentile(duplicate, 50)),
            "ms p50: full HTTP round trip of a redelivered, already-handled alert (0 ms per API call)",
            "informational",
            True,
            baseline=ms(percentile(floor_trip, 50)),
            p99_ms=ms(percentile(duplicate, 99)),
            baseline_is="the floor function's HTTP round trip (functions-framework, no work)",
            samples=len(duplicate),
        )
    )
    return results


# --- 4: cold start ------------------------------------------------------------


def _cold_watchdog(api, slack, index: int) -> tuple[float, float]:
    service = f"cold-svc-{index:03d}"
    reseed(api, seeds.service_seed(service), latency=0.0)
    body = delivery(service)
    function = Function(watchdog_env(api, slack)).spawn()
    try:
        status = send(function.url, body, retry_refused=60)
        responded = time.monotonic()
        assert status == 200, status
        _reads, update = _wait_update(api, service, function.started)
        return update["time"] - function.started, responded - function.started
    finally:
        function.stop()


def _cold_floor() -> float:
    function = Function({}, source=FLOOR).spawn()
    try:
        assert send(function.url, delivery("cold-floor"), retry_refused=60) == 200
        return time.monotonic() - function.started
    finally:
        function.stop()


def _imported(stderr: bytes) -> set[str]:
    names = set()
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[-1].strip()
            if name != "package":
                names.add(name)
    return names


def imports_before_update(api, slack) -> tuple[set[str], set[str], set[str]]:
    """Modules imported by the watchdog process up to the update, and by the floor up to its first answer.

    ``python -X importtime`` (PYTHONPROFILEIMPORTTIME=1) writes each import to the
    function's stderr as it happens; the stand-in snapshots the stderr file when
    the update arrives, while the function is blocked waiting for its answer.
    """
    service = "import-svc-000"
    reseed(api, seeds.service_seed(service), latency=0.2)
    with tempfile.TemporaryDirectory() as tmp:
        err = Path(tmp) / "stderr"
        snapshot: list[int] = []

        def on_arrival(entry: dict) -> None:
            if is_update(entry) and not snapshot:
                snapshot.append(err.stat().st_size)

        api.state.requests.on_arrival = on_arrival
        function = Function(watchdog_env(api, slack, PYTHONPROFILEIMPORTTIME="1"), stderr_path=err).spawn()
        try:
            assert send(function.url, delivery(service), retry_refused=60) == 200
        finally:
            function.stop()
            api.state.requests.on_arrival = None
        watchdog = _imported(err.read_bytes()[: snapshot[0]])
        after = _imported(err.read_bytes()) - watchdog
        floor_err = Path(tmp) / "floor-stderr"
        function = Function({"PYTHONPROFILEIMPORTTIME": "1"}, source=FLOOR, stderr_path=floor_err).spawn()
        try:
            assert send(function.url, delivery("cold-floor"), retry_refused=60) == 200
        finally:
            function.stop()
        floor = _imported(floor_err.read_bytes())
    return watchdog, floor, after


def cold_start(api, slack, runs: int = 7) -> list[dict]:
    _cold_floor()  # page cache and .pyc files warm for both
    _cold_watchdog(api, slack, 999)
    watchdog, answered, floor = [], [], []
    for index in range(runs):  # interleaved, so machine noise hits both alike
        floor.append(_cold_floor())
        to_update, to_answer = _cold_watchdog(api, slack, index)
        watchdog.append(to_update)
        answered.append(to_answer)
    ratio = statistics.median(watchdog) / statistics.median(floor)
    ratios = [w / f for w, f in zip(watchdog, floor, strict=True)]
    imported, floor_imports, after = imports_before_update(api, slack)
    extra = sorted(imported - floor_imports)
    forbidden = sorted(
        m for m in imported if m.startswith(FORBIDDEN) or (m.startswith("click") and m not in floor_imports)
    )
    return [
        entry(
            "cold_start_ratio",
            round(ratio, 3),
            "× floor (p50 process start → update received / p50 floor start → first answer)",
            "≤ 1.15",
            ratio <= 1.15,
            baseline=ms(statistics.median(floor)),
            watchdog_ms_p50=ms(statistics.median(watchdog)),
            watchdog_answer_ms_p50=ms(statistics.median(answered)),
            floor_ms_p50=ms(statistics.median(floor)),
            pairwise_ratio_min=round(min(ratios), 3),
            pairwise_ratio_max=round(max(ratios), 3),
            runs=runs,
        ),
        entry(
            "imports_before_update_forbidden",
            len(forbidden),
            "forbidden modules imported before the update",
            "0 (no Slack, Monitoring, Pub/Sub, CLI, no click beyond functions-framework's)",
            not forbidden,
            forbidden=forbidden,
            modules_beyond_floor=extra,
            imported_after_update=sorted(m for m in after if "." not in m or m.startswith(FORBIDDEN))[:40],
        ),
    ]


# --- 5-6: storm ---------------------------------------------------------------


class RssSampler(threading.Thread):
    """Peak RSS of the function's process tree (gunicorn arbiter + worker), sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_worker = 0
        self.peak_tree = 0
        self.peak_tree_uss = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
                rss = [p.memory_info().rss for p in processes]
                self.peak_worker = max(self.peak_worker, max(rss[1:] or rss))
                self.peak_tree = max(self.peak_tree, sum(rss))
            except psutil.Error:
                pass
            self._halt.wait(0.01)

    def sample_uss(self) -> None:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
            self.peak_tree_uss = max(self.peak_tree_uss, sum(p.memory_full_info().uss for p in processes))
        except psutil.Error:
            pass

    def stop(self) -> None:
        self._halt.set()
        self.join()


def storm(api, slack, services: int = 50, duplicates: int = 20, concurrency: int = 16, latency: float = 0.0) -> list:
    fleet = seeds.fleet(services)
    warm = seeds.service_seed("warm-svc")
    fleet["services"] += warm["services"]
    fleet["revisions"] += warm["revisions"]
    reseed(api, fleet, latency=latency)
    slack.state.messages.clear()
    bodies = []
    for index in range(services):
        service = f"bench-svc-{index:03d}"
        body = delivery(service, incident_id=f"0.storm{index:03d}", message_id=f"9{index:015d}")
        bodies += [(service, body)] * duplicates
    random.Random(6).shuffle(bodies)
    # The pin only: the storm measures one rollback per service under duplicate deliveries; the field revert that
    # follows a pin (its own template update and traffic move) has its own figures (tests/bench/field_revert.py).
    with Function(watchdog_env(api, slack, WATCHDOG_FIELD_REVERT="off")) as function:
        assert send(function.url, delivery("warm-svc")) == 200
        sampler = RssSampler(function.process.pid)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            statuses = list(
                pool.map(lambda item: send(function.url, item[1], event_id=item[1]["message"]["messageId"]), bodies)
            )
        elapsed = time.monotonic() - started
        sampler.sample_uss()
        sampler.stop()
        threads = (
            len(psutil.Process(function.process.pid).children()[0].threads())
            if psutil.Process(function.process.pid).children()
            else 0
        )
    log = list(api.state.requests)
    updates = [e for e in log if is_update(e) and "/bench-svc-" in e["path"]]
    succeeded = [e for e in updates if e.get("status") == 200]
    per_service = {}
    for e in succeeded:
        name = e["path"].rsplit("/", 1)[-1]
        per_service[name] = per_service.get(name, 0) + 1
    serving_target = sum(
        1
        for index in range(services)
        if {
            s["revision"]: s["percent"]
            for s in api.state.services[f"{seeds.LOCATION}/services/bench-svc-{index:03d}"]["trafficStatuses"]
        }.get(seeds.target_revision(fleet, f"bench-svc-{index:03d}"))
        == 100
    )
    rollbacks = len(succeeded)
    suffix = "" if latency == 0 else f"_{int(latency * 1000)}ms"
    messages = [m for m in slack.state.messages if "bench-svc-" in str(m)]
    out = [
        entry(
            f"storm_deliveries_per_s{suffix}",
            round(len(bodies) / elapsed, 1),
            f"deliveries/s ({len(bodies)} = {services} services × {duplicates}, {concurrency} concurrent, "
            f"{ms(latency):g} ms per API call)",
            "reported",
            True,
            seconds=round(elapsed, 2),
            statuses={str(s): statuses.count(s) for s in sorted(set(statuses))},
            worker_threads=threads,
        ),
        entry(
            f"storm_rollbacks{suffix}",
            rollbacks,
            "successful traffic updates (the pins; field revert off)",
            f"exactly {services}",
            rollbacks == services and serving_target == services and max(per_service.values()) == 1,
            traffic_update_attempts=len(updates),
            rejected_by_etag=sum(1 for e in updates if e.get("status") == 409),
            services_serving_target=serving_target,
            slack_messages=len(messages),
            api_calls=sum(1 for e in log if "/bench-svc-" in e["path"] or "/operations/" in e["path"]),
        ),
    ]
    if latency == 0:
        out.append(
            entry(
                "peak_rss_mib",
                round(sampler.peak_worker / 2**20, 1),
                "MiB, peak RSS of the serving (worker) process over the storm",
                "≤ 128",
                sampler.peak_worker / 2**20 <= 128,
                tree_rss_peak_mib=round(sampler.peak_tree / 2**20, 1),
                tree_uss_after_mib=round(sampler.peak_tree_uss / 2**20, 1),
            )
        )
    return out


# --- 7: history ---------------------------------------------------------------

HISTORY_CASES = [(10, 0), (100, 0), (1000, 0), (1000, 499), (1000, 997)]


def history_scaling(api, slack, repeats: int = 3) -> list[dict]:
    rows = []
    with Function(watchdog_env(api, slack)) as function:
        reseed(api, seeds.service_seed("warm-svc"), latency=0.0)
        send(function.url, delivery("warm-svc"))
        for revisions, depth in HISTORY_CASES:
            times, busy, lists, calls = [], [], [], []
            for attempt in range(repeats):
                service = f"hist-{revisions}-{depth}-{attempt}"
                seed = seeds.service_seed(service, revisions, depth)
                reseed(api, seed, latency=0.0)
                body = encode(delivery(service, revision=seeds.newest_revision(seed, service)))
                started = time.monotonic()
                assert send(function.url, body) == 200
                reads, update = _wait_update(api, service, started)
                target = update["body"]["traffic"][0]["revision"]
                assert target == seeds.target_revision(seed, service, depth), (target, depth)
                times.append(update["time"] - started)
                busy.append(standin_busy(reads, 0.0))
                lists.append(sum(1 for r in reads if r["path"].endswith("/revisions")))
                calls.append(len(reads))
            rows.append(
                {
                    "revisions": revisions,
                    "change_depth": depth,
                    "decision_ms": ms(statistics.median(times)),
                    "standin_ms": ms(statistics.median(busy)),
                    "watchdog_ms": ms(statistics.median([t - b for t, b in zip(times, busy, strict=True)])),
                    "pages_read": max(lists),
                    "api_calls_before_update": max(calls),
                    # At 0 ms the two first reads need not overlap; with latency they are one round trip,
                    # and each further page is one more: round trips = pages read.
                    "round_trips_at_latency": max(lists),
                    "at_100ms_per_call_ms": ms(statistics.median(times) + max(lists) * LATENCY),
                }
            )
    top = next(r for r in rows if r["revisions"] == 1000 and r["change_depth"] == 0)
    base = rows[0]
    return [
        entry(
            "history_scaling",
            top["pages_read"],
            "revision pages read with the change at the top of 1,000 revisions",
            "≤ 2 pages (the first 100, then the rest in pages of 1,000: the revert check reads back to the "
            "value before the target's)",
            top["pages_read"] <= 2,
            baseline=base["decision_ms"],
            baseline_is="decision_ms with 10 revisions",
            cases=rows,
        )
    ]
