"""Card figures (warm, 100 ms per Cloud Run call): alert → the card's first post, and a click → its update applied."""

from __future__ import annotations

import json
import statistics
import time
from urllib.parse import urlencode

from tests.bench import seeds
from tests.bench.harness import Function, encode, ms, reseed, send, watchdog_env
from tests.bench.harness import delivery as alert_delivery
from tests.standins.slack import signed, user
from tests.support import post

LATENCY = 0.1
SECRET = "bench-signing-secret-0123456789ab"
SETTINGS = {"SLACK_SIGNING_SECRET": SECRET, "WATCHDOG_SLACK_TEAM": "T0BENCH", "WATCHDOG_SLACK_APPROVERS": "U0BENCH"}


def card_figures(api, slack, samples: int = 10) -> list[dict]:
    from tests.bench.figures import entry

    fleet = seeds.fleet(samples + 1, prefix="card-svc")
    first_posts, clicks = [], []
    slack.state.users["U0BENCH"] = user("U0BENCH", team="T0BENCH")
    with (
        Function(watchdog_env(api, slack, **SETTINGS)) as function,
        Function(watchdog_env(api, slack, **SETTINGS), target="slack_actions", signature="http") as actions,
    ):
        reseed(api, fleet, latency=LATENCY)
        send(function.url, alert_delivery("card-svc-000"))  # warm both
        for index in range(1, samples + 1):
            service = f"card-svc-{index:03d}"
            body = encode(alert_delivery(service))
            before = len(slack.state.requests)
            started = time.monotonic()
            assert send(function.url, body) == 200
            first = next(r for r in slack.state.requests[before:] if r["path"].endswith("chat.postMessage"))
            first_posts.append(first["time"] - started)
            card = next(m for m in slack.state.messages if service in m.get("text", ""))
            payload = _click(card)
            raw = urlencode({"payload": json.dumps(payload)}).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded", **signed(SECRET, raw)}
            log_before = len(api.state.requests)
            started = time.monotonic()
            status, _ = post(actions.url, raw, headers)
            assert status == 200
            update = next(
                r for r in api.state.requests[log_before:] if r["method"] == "PATCH" and r["path"].endswith(service)
            )
            clicks.append(update["time"] - started)
    p50_post, p50_click = statistics.median(first_posts), statistics.median(clicks)
    return [
        entry(
            "alert_to_first_post_ms",
            ms(p50_post),
            "ms (p50, warm, 100 ms per Cloud Run call): alert sent → the card's first post reaches Slack",
            "≤ 330",
            ms(p50_post) <= 330,
            baseline=ms(2 * LATENCY),
            baseline_is="one read round trip and the update at 100 ms each",
            max_ms=ms(max(first_posts)),
            samples=samples,
        ),
        entry(
            "click_to_update_ms",
            ms(p50_click),
            "ms (p50, warm, 100 ms per Cloud Run call): signed click sent → the etag-guarded update reaches Cloud Run",
            "≤ 400",
            ms(p50_click) <= 400,
            baseline=ms(LATENCY),
            baseline_is="the one read at 100 ms",
            max_ms=ms(max(clicks)),
            samples=samples,
        ),
    ]


def _click(card: dict) -> dict:
    [block] = [b for b in card["blocks"] if b["type"] == "actions"]
    button = next(e for e in block["elements"] if e["action_id"] == "acknowledge")
    return {
        "type": "block_actions",
        "team": {"id": "T0BENCH"},
        "user": {"id": "U0BENCH"},
        "channel": {"id": card["channel"]},
        "container": {"type": "message", "message_ts": card["ts"], "channel_id": card["channel"]},
        "message": {"ts": card["ts"], "blocks": card["blocks"]},
        "actions": [{"action_id": "acknowledge", "value": button["value"], "action_ts": f"{time.time():.6f}"}],
    }
