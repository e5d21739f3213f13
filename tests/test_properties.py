"""Property-based intake: whatever arrives, no uncaught exception and no traffic change."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.standins.cloudrun import CloudRunStandIn
from tests.support import fixture, pubsub_body
from watchdog.config import Config
from watchdog.core.intake import Alert, Ignored, parse
from watchdog.flows.app import build

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5),
    max_leaves=30,
)
REAL = fixture("alerts/v1.2_metric_threshold_cloud_run_revision_open.INFERRED.json")
KEYS = ["incident_id", "state", "resource", "policy_user_labels", "condition", "scoping_project_id",
        "started_at", "ended_at", "url", "resource_name", "documentation", "summary"]  # fmt: skip


@st.composite
def mutated_notifications(draw) -> dict:
    """The real payload with keys dropped or replaced by arbitrary JSON (wrong types, unicode, huge)."""
    payload = copy.deepcopy(REAL)
    incident = payload["incident"]
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=6, unique=True)):
        if draw(st.booleans()):
            incident.pop(key, None)
        else:
            incident[key] = draw(json_values | st.text(min_size=1000, max_size=5000))
    if draw(st.booleans()):
        incident["resource"] = {"type": "cloud_run_revision", "labels": draw(
            st.dictionaries(st.sampled_from(["service_name", "location", "project_id", "revision_name"]),
                            json_values | st.text(max_size=300)))}  # fmt: skip
    return payload


@st.composite
def bodies(draw):
    kind = draw(st.sampled_from(["json", "mutated", "truncated", "raw-bytes", "envelope", "deep"]))
    if kind == "json":
        return draw(json_values)
    if kind == "mutated":
        return pubsub_body(draw(mutated_notifications()))
    if kind == "truncated":
        data = pubsub_body(REAL)["message"]["data"]
        return {"message": {"data": data[: draw(st.integers(0, len(data) - 1))]}}
    if kind == "deep":  # json.loads raises RecursionError somewhere past ~1,000 levels
        depth = draw(st.integers(500, 200_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"incident":', "}")]))
        text = opener * depth + draw(st.sampled_from(["1", "{}", "[]"])) + closer * depth
        return {"message": {"data": base64.b64encode(text.encode()).decode()}}
    if kind == "raw-bytes":
        return {"message": {"data": base64.b64encode(draw(st.binary(max_size=200))).decode()}}
    return {"message": draw(json_values), "subscription": draw(json_values)}


@given(bodies())
@settings(max_examples=400, deadline=None)
def test_parse_never_raises(body):
    result = parse(body)
    assert isinstance(result, (Alert, Ignored))
    if isinstance(result, Alert):
        assert result.service.service
        assert result.service.region
        assert result.service.project


@pytest.mark.parametrize("depth", [1_000, 10_000, 100_000])
def test_deeply_nested_payloads_are_unparseable_not_a_crash(depth):
    for text in ("[" * depth + "]" * depth, '{"incident":' * depth + "{}" + "}" * depth):
        result = parse({"message": {"data": base64.b64encode(text.encode()).decode()}})
        assert isinstance(result, Ignored)
        assert result.reason == "unparseable"
    assert parse("[" * depth + "]" * depth).reason == "unparseable"


@pytest.fixture(scope="module")
def checkout_api():
    """The reference service 'checkout' (both revisions all-traffic: no egress change to act on)."""
    service = fixture("cloudrun/reference_service_checkout.json")
    revisions = fixture("cloudrun/reference_revisions_checkout.json")["revisions"]
    with CloudRunStandIn({"services": [service], "revisions": revisions}) as api:
        config = Config.from_env({"CLOUD_RUN_API_ENDPOINT": api.url, "WATCHDOG_SERVICES": "*",
                                  "WATCHDOG_DEADLINE_SECONDS": "10"})  # fmt: skip
        yield api, build(config)


@given(bodies())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_handler_never_crashes_and_never_changes_traffic(checkout_api, body):
    api, watchdog = checkout_api
    outcome = watchdog.handle(body)
    assert outcome.result in {"ignored", "nothing", "reported", "error"}
    assert not any(
        r["method"] == "PATCH" and r["status"] == 200 and "traffic" in r["query"].get("updateMask", "")
        for r in api.state.requests
    )
    json.dumps(outcome.reason)  # a plain, loggable reason
