"""The blast radius: other services in the project and region that made the same change within 24 h.

Against the Cloud Run stand-in with the real google-cloud-run client; and end to end, the section of
the Slack report, looked up only after the traffic update.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from tests.cloudrun_seeds import revision, service, short
from tests.conftest import AUTH
from tests.standins.cloudrun import CloudRunStandIn
from tests.support import deliver, fixture, pubsub_body
from watchdog.config import Config, ServiceRef, ServiceScope
from watchdog.core.decision import decide
from watchdog.core.intake import Alert
from watchdog.edges.cloudrun import CloudRun
from watchdog.flows import blast_radius

SEED = fixture("cloudrun/incident_seed.json")
# createTime of netra-auth-service-00042-vex, the revision that flipped egress
BREAKING_AT = datetime.fromisoformat("2025-09-15T04:27:41+00:00").timestamp()
HOUR = 3600.0
NOW = BREAKING_AT + 30 * HOUR
AUTH_REF = ServiceRef("netra-staging", "us-central1", "netra-auth-service")


def flipped(name: str, at: float, *, serving_old: bool = False, back: bool = False, image_only: bool = False) -> dict:
    """A service whose newest revision (at ``at``) flips egress (or reverses it, or changes only the image)."""
    old_egress, new_egress = ("ALL_TRAFFIC", "PRIVATE_RANGES_ONLY") if back else ("PRIVATE_RANGES_ONLY", "ALL_TRAFFIC")
    first = revision(name, 1, at - 48 * HOUR, egress=old_egress)
    second = revision(name, 2, at, egress=old_egress if image_only else new_egress)
    return {"services": [service(name, [first, second], serving=short(first) if serving_old else "")],
            "revisions": [first, second]}  # fmt: skip


def load(api: CloudRunStandIn, *seeds: dict) -> None:
    for seed in seeds:
        api.state.load(seed)


def auth_decision(config: Config):
    alert = Alert("0.auth-1", "open", AUTH_REF, "netra-auth-service-00043-nul")
    revisions = sorted((r for r in SEED["revisions"] if r["service"] == AUTH), key=lambda r: r["createTime"])[::-1]
    service_json = next(s for s in SEED["services"] if s["name"] == AUTH)
    decided = decide(alert, service_json, revisions, config, NOW)
    assert decided.breaking == "netra-auth-service-00042-vex"
    return alert, decided


def lookup(api: CloudRunStandIn, config: Config, **kw) -> list[str]:
    alert, decided = auth_decision(config)
    return blast_radius.related(config, CloudRun(api.url), alert, decided, time.monotonic() + 20, now=NOW, **kw)


def test_names_services_with_the_same_flip_within_24_hours_and_what_the_watchdog_would_do(cloud_run):
    load(
        cloud_run,
        flipped("netra-frontend", BREAKING_AT + 2 * HOUR),
        flipped("netra-billing", BREAKING_AT - 3 * HOUR),
        flipped("netra-canary", BREAKING_AT + 1 * HOUR, serving_old=True),
        flipped("netra-search", BREAKING_AT + 30 * HOUR),  # too late
        flipped("netra-images", BREAKING_AT + 1 * HOUR, image_only=True),  # another kind of change
        flipped("netra-reverse", BREAKING_AT + 1 * HOUR, back=True),  # the opposite flip
        flipped("netra-legacy", BREAKING_AT - 72 * HOUR),  # not updated since: not even read
    )
    config = Config(services=ServiceScope.parse("netra-auth-service,netra-frontend,netra-canary"))
    lines = lookup(cloud_run, config)
    assert sorted(lines) == sorted(
        [
            "netra-frontend: netra-frontend-00002-r02 changed vpc egress: private-ranges-only → all-traffic "
            "(2.0 h after; in scope): would roll back to netra-frontend-00001-r01",
            "netra-billing: netra-billing-00002-r02 changed vpc egress: private-ranges-only → all-traffic "
            "(3.0 h before; out of scope): report only: out of scope (would roll back to netra-billing-00001-r01)",
            "netra-canary: netra-canary-00002-r02 changed vpc egress: private-ranges-only → all-traffic "
            "(1.0 h after; in scope): not serving traffic yet; run `rollback-watchdog check` before migrating",
            "netra-backend-staging: netra-backend-staging-00119-qor changed vpc egress: private-ranges-only → "
            "all-traffic (1 min after; out of scope): report only: out of scope "
            "(would roll back to netra-backend-staging-00118-paz)",
        ]
    )
    read = {r["path"] for r in cloud_run.state.requests}
    assert not any("netra-legacy" in path for path in read)
    assert {r["method"] for r in cloud_run.state.requests} == {"GET"}
    others = [r for r in cloud_run.state.requests if r["path"].endswith("/revisions") and "netra-auth" not in r["path"]]
    assert {r["query"]["pageSize"] for r in others} == {str(blast_radius.PAGE_SIZE)}  # newest revisions only


def test_dry_run_and_paused_say_what_holds_the_rollback_back(cloud_run):
    load(cloud_run, flipped("netra-frontend", BREAKING_AT + 2 * HOUR))
    lines = lookup(cloud_run, Config(services=ServiceScope.parse("*"), dry_run=True))
    assert any(
        line.startswith("netra-frontend:")
        and line.endswith("would roll back to netra-frontend-00001-r01, but held back: dry run")
        for line in lines
    ), lines


def test_the_number_of_services_is_capped():
    seeds = [flipped(f"svc-{n:02d}", BREAKING_AT + n * 60) for n in range(25)]
    with CloudRunStandIn(SEED) as api:
        load(api, *seeds)
        lines = lookup(api, Config(services=ServiceScope.parse("*")), cap=20)
        reads = [r for r in api.state.requests if r["path"].endswith("/revisions") and "/svc-" in r["path"]]
    # most recently updated first: the backend (updated a day later) and 19 of the 25
    assert len(reads) == 19
    assert len([line for line in lines if line.startswith(("svc-", "netra-backend-staging:"))]) == 20
    assert lines[-1] == "+6 more services updated in the window, not checked (cap 20)"


def test_the_time_spent_is_bounded_by_the_budget(cloud_run):
    load(cloud_run, *[flipped(f"svc-{n:02d}", BREAKING_AT + n * 60) for n in range(12)])
    config = Config(services=ServiceScope.parse("*"))
    alert, decided = auth_decision(config)
    cloud_run.state.latency = 0.4
    started = time.monotonic()
    lines = blast_radius.related(config, CloudRun(cloud_run.url), alert, decided, time.monotonic() + 30, budget=1.5)
    assert time.monotonic() - started < 2.5
    assert lines[-1].endswith("services could not be checked in time")


def test_nothing_without_a_breaking_change(cloud_run):
    config = Config(services=ServiceScope.parse("*"))
    alert, decided = auth_decision(config)
    from dataclasses import replace

    assert blast_radius.related(config, CloudRun(cloud_run.url), alert, replace(decided, breaking=""), 1e12) == []
    assert cloud_run.state.requests == []


@pytest.mark.e2e
def test_the_report_names_the_same_change_elsewhere_looked_up_after_the_traffic_update(start_stack):
    # the hook runs only with 5 s or more left; a plain pin keeps this about the report (the field revert that
    # would follow for auth is tests/test_field_revert_e2e.py's)
    stack = start_stack(WATCHDOG_DEADLINE_SECONDS="20", WATCHDOG_FIELD_REVERT="off")
    assert deliver(stack.function.url, pubsub_body(fixture("alerts/incident_auth_db_timeout_log_match.json")))[0] == 200
    assert stack.serving(AUTH) == {"netra-auth-service-00041-kip": 100}
    [message] = stack.messages
    text = json.dumps(message["blocks"], ensure_ascii=False)
    assert "*Same change elsewhere (last 24 h):*" in text
    assert (
        "• netra-backend-staging: netra-backend-staging-00119-qor changed vpc egress: private-ranges-only → "
        "all-traffic (1 min after; in scope): would roll back to netra-backend-staging-00118-paz"
    ) in text
    requests = stack.cloud_run.state.requests
    update = next(i for i, r in enumerate(requests) if r["method"] == "PATCH" and "traffic" in r["query"]["updateMask"])
    listing = next(i for i, r in enumerate(requests) if r["path"].endswith("/locations/us-central1/services"))
    assert listing > update
