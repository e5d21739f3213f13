"""A button click on a cold process (process start → answer) and on a warm one (request → answer).

Slack gives the buttons' Request URL 3 seconds, and the click's whole work (the clicker checked, the
service read, the update sent, the card updated) happens before the answer. The figure is taken on the
real ``slack_actions`` function (functions-framework, as deployed) with 100 ms added to every Cloud Run
and every Slack call. A cold process here is the Python side of a cold start only: on Cloud Run the
container start comes on top, which is why terraform keeps one warm instance (slack_actions.tf).
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

from tests.bench import seeds
from tests.bench.harness import Function, ms, reseed, watchdog_env
from tests.standins.slack import SlackFault, block_actions, signed, user
from watchdog.config import ServiceRef
from watchdog.core import actions, ledger

LATENCY = 0.1
SECRET = "bench-signing-secret-0123456789ab"
TEAM, CLICKER, GROUP = "T0BENCH", "U0BENCH", "S0BENCH"
SERVICE = "click-svc-000"
REF = ServiceRef("netra-staging", "us-central1", SERVICE)
INCIDENT = "0.click-bench"
# The clicker is an approver through a group: the first click reads the group, later ones reuse it.
SETTINGS = {"SLACK_SIGNING_SECRET": SECRET, "WATCHDOG_SLACK_TEAM": TEAM, "WATCHDOG_SLACK_APPROVERS": GROUP}


def _world(api, slack) -> dict:
    """A rolled-back service (its ledger record) and its card in the channel; every call 100 ms."""
    seed = seeds.service_seed(SERVICE)
    reseed(api, seed, latency=LATENCY)
    newest, target = seeds.newest_revision(seed, SERVICE), seeds.target_revision(seed, SERVICE)
    with api.state.lock:
        service = api.state.services[REF.name]
        record = ledger.Record(INCIDENT, newest, target, time.time() - 60, before=(("LATEST", 100, ""),),
                               after=((target, 100),), latest=newest)  # fmt: skip
        service["annotations"] = ledger.with_record({}, record)
        service["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": target, "percent": 100}]
    slack.state.reset()
    slack.state.users[CLICKER] = user(CLICKER, team=TEAM)
    slack.state.usergroups[GROUP] = [CLICKER]
    slack.state.faults.append(SlackFault(kind="delay", seconds=LATENCY, times=10**6, path="/api/"))
    posted = slack.state.accept("chat.postMessage", {"channel": "C0ONCALL", "text": "card",
                                                     "blocks": [actions.buttons(REF, INCIDENT)]})  # fmt: skip
    return json.loads(json.dumps(posted))  # the card as posted (a click updates the stand-in's copy)


def _click(url: str, card: dict, retry_refused: float = 0.0) -> int:
    """One signed "I'm on it" click (an annotations update), as Slack posts it; its HTTP status."""
    payload = block_actions(card, actions.ACK, CLICKER, TEAM)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    end = time.monotonic() + retry_refused
    while True:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **signed(SECRET, body)}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except urllib.error.URLError as error:
            if not isinstance(error.reason, ConnectionRefusedError) or time.monotonic() > end:
                raise
            time.sleep(0.002)


def _cold(api, slack, card: dict) -> tuple[float, float]:
    """(process start → answer, and → the update at Cloud Run) of the first click of a new process."""
    before = len(api.state.requests)
    function = Function(watchdog_env(api, slack, **SETTINGS), target="slack_actions", signature="http").spawn()
    try:
        assert _click(function.url, card, retry_refused=60) == 200
        answered = time.monotonic() - function.started
        update = next(r for r in api.state.requests[before:] if r["method"] == "PATCH")
        return answered, update["time"] - function.started
    finally:
        function.stop()


def click_figures(api, slack, cold_runs: int = 5, warm_clicks: int = 10) -> list[dict]:
    from tests.bench.figures import entry

    card = _world(api, slack)
    _cold(api, slack, card)  # page cache and .pyc files warm
    cold, cold_update = [], []
    for _ in range(cold_runs):
        answered, updated = _cold(api, slack, card)
        cold.append(answered)
        cold_update.append(updated)
    warm = []
    with Function(watchdog_env(api, slack, **SETTINGS), target="slack_actions", signature="http") as function:
        assert _click(function.url, card) == 200  # the instance's first click: clients built, group read
        for _ in range(warm_clicks):
            started = time.monotonic()
            assert _click(function.url, card) == 200
            warm.append(time.monotonic() - started)
    api.state.latency = 0.0
    slack.state.faults.clear()
    p50_cold, p50_warm = statistics.median(cold), statistics.median(warm)
    return [
        entry(
            "cold_click_ms",
            ms(p50_cold),
            "ms (p50, 100 ms per Cloud Run and Slack call): process start → a click answered "
            "(clicker checked, service read, update sent, card updated)",
            "< 3000 (Slack's limit; Cloud Run's container start not included)",
            p50_cold < 3.0,
            baseline=ms(4 * LATENCY),
            baseline_is="the click's four sequential calls at 100 ms each, nothing else",
            max_ms=ms(max(cold)),
            to_update_ms_p50=ms(statistics.median(cold_update)),
            runs=cold_runs,
        ),
        entry(
            "warm_click_ms",
            ms(p50_warm),
            "ms (p50, 100 ms per call): signed click sent → answered, on a warm instance",
            "≤ 600",
            p50_warm <= 0.6,
            baseline=ms(3 * LATENCY),
            baseline_is="users.info while the service is read, then the update and the card's update, 100 ms each",
            max_ms=ms(max(warm)),
            samples=warm_clicks,
        ),
    ]
