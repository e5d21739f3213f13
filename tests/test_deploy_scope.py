"""Deploy events the sentinel must not turn into pages, end to end under the grants terraform/ makes.

The sink exports every Cloud Run write of a watched project (and, with a folder sink, of other projects), but
the function may read only the services in WATCHDOG_SERVICES. Each case: acknowledged (200), nothing read that
it may not read (no 403 at all), no ERROR line, and a Slack message only where the promise says so: a risky
deploy of any service is warned about, judged from its request when the watchdog may not read the service.
"""

from __future__ import annotations

import copy

import pytest

from tests.conftest import AUTH
from tests.support import deliver, fixture, pubsub_body

pytestmark = pytest.mark.e2e

FIRST = "deploys/v2_UpdateService_terraform_first_entry.INFERRED.json"


def deploy_of(service: str, project: str = "netra-staging", **changes) -> dict:
    """The breaking terraform deploy (all-traffic with Cloud SQL), of another service or project."""
    entry = copy.deepcopy(fixture(FIRST))
    name = f"projects/{project}/locations/us-central1/services/{service}"
    entry["resource"]["labels"].update(service_name=service, project_id=project)
    entry["protoPayload"]["resourceName"] = name
    entry["protoPayload"]["request"]["service"]["name"] = name
    entry["logName"] = f"projects/{project}/logs/cloudaudit.googleapis.com%2Factivity"
    entry["insertId"] = f"{project}-{service}"
    entry["operation"]["id"] = f"projects/{project}/locations/us-central1/operations/{service}-1"
    for key, value in changes.items():
        entry["protoPayload"][key] = value
    return entry


def errors(stack) -> list[dict]:
    return [line for line in stack.function.logs() if line["severity"] in ("ERROR", "CRITICAL", "ALERT")]


# name: (the entry, a warning expected)
CASES = {
    "a risky deploy of an unwatched service in a watched project": (deploy_of("netra-frontend"), True),
    "a risky deploy in an unwatched project (a folder sink)": (deploy_of("etl", project="netra-data"), True),
    "a safe deploy of an unwatched service": ("safe", False),
    "an unwatched service's entry without the request": ("no-request", False),
}


@pytest.mark.parametrize(("body", "warned"), CASES.values(), ids=CASES.keys())
def test_unwatched_deploys_are_judged_from_the_request_and_never_read(start_stack, body, warned):
    stack = start_stack()
    if body == "safe":
        body = deploy_of("netra-frontend")
        body["protoPayload"]["request"]["service"]["template"]["vpcAccess"]["egress"] = "PRIVATE_RANGES_ONLY"
    elif body == "no-request":
        body = deploy_of("netra-frontend")
        del body["protoPayload"]["request"]
    assert deliver(stack.function.url, pubsub_body(body)) == (200, "OK")
    assert deliver(stack.function.url, pubsub_body(body)) == (200, "OK")  # a redelivery: one warning at most
    assert stack.cloud_run.state.requests == []  # nothing read: no 403 to log
    assert stack.denied() == []
    assert errors(stack) == []
    if warned:
        [warning] = stack.messages
        assert "Serving now: not read" in warning["text"]
        assert "is not in WATCHDOG_SERVICES" in warning["text"]
    else:
        assert stack.messages == []


def test_a_refused_deploy_is_acknowledged_and_says_nothing(start_stack):
    stack = start_stack(WATCHDOG_SENTINEL="hold")
    refused = fixture("deploys/v1_ReplaceService_gcloud_refused.INFERRED.json")
    assert deliver(stack.function.url, pubsub_body(refused)) == (200, "OK")  # never a hold's 500
    assert stack.messages == []
    assert stack.cloud_run.state.requests == []
    [line] = [line for line in stack.function.logs() if line.get("decision") == "ignored"]
    assert (line["reason"], line["severity"]) == ("refused", "INFO")


def test_a_watched_deploy_whose_entry_has_no_request_is_judged_from_the_service(start_stack):
    """Whether v2 UpdateService entries carry the request is not documented: the first entry without one is read
    from the service (which holds the requested template at once); the operation's other entry adds nothing."""
    stack = start_stack()
    state = stack.cloud_run.state
    state.services[AUTH]["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                                        "revision": "netra-auth-service-00041-kip", "percent": 100}]  # fmt: skip
    state._refresh_status(state.services[AUTH])
    first = copy.deepcopy(fixture(FIRST))
    requested = first["protoPayload"].pop("request")["service"]["template"]
    state.services[AUTH]["template"] = requested  # the update stored it
    last = copy.deepcopy(fixture("deploys/v2_UpdateService_terraform_last_entry_no_request.INFERRED.json"))
    for body in (first, last, first):
        assert deliver(stack.function.url, pubsub_body(body)) == (200, "OK")
    [warning] = stack.messages
    assert "Risky deploy of `netra-auth-service`" in warning["text"]
    assert "Serving before it: `netra-auth-service-00041-kip`" in warning["text"]
    assert stack.denied() == []
    assert errors(stack) == []
