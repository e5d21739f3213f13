"""The pure rules at the Cloud Run edge: which errors are etag conflicts, what a 403 asks for, what is verified.

Errors are built the way google-api-core builds them from a REST answer
(``exceptions.from_http_response`` on a ``requests.Response`` carrying the Google
error envelope), so the rules see exactly what the client hands the watchdog.
"""

from __future__ import annotations

import json

import pytest
import requests
from google.api_core import exceptions

from watchdog.config import ServiceRef
from watchdog.core.permissions import missing_permission
from watchdog.edges.cloudrun import confirmed, is_etag_conflict

REF = ServiceRef("netra-staging", "us-central1", "netra-backend-staging")


def rest_error(code: int, status: str, message: str) -> exceptions.GoogleAPICallError:
    response = requests.Response()
    response.status_code = code
    response._content = json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()
    response.request = requests.Request("PATCH", f"https://run.googleapis.com/v2/{REF.name}").prepare()
    return exceptions.from_http_response(response)


@pytest.mark.parametrize(
    ("code", "status", "message", "conflict"),
    [
        pytest.param(409, "ABORTED", "etag mismatch", True, id="409-aborted"),
        pytest.param(409, "ABORTED", "The resource was modified concurrently", True, id="409-aborted-any-text"),
        pytest.param(400, "FAILED_PRECONDITION", "etag does not match", True, id="400-precondition-etag"),
        pytest.param(412, "FAILED_PRECONDITION", "Precondition Failed: Etag mismatch", True, id="412-etag"),
        pytest.param(409, "ALREADY_EXISTS", "Revision named 'x-00042' with different configuration already exists.",
                     False, id="409-already-exists"),
        pytest.param(400, "FAILED_PRECONDITION", "Service is not ready", False, id="400-precondition-other"),
        pytest.param(412, "FAILED_PRECONDITION", "Precondition Failed", False, id="412-other"),
        pytest.param(400, "INVALID_ARGUMENT", "bad etag format", False, id="400-invalid-argument"),
        pytest.param(403, "PERMISSION_DENIED", "Permission 'run.services.update' denied", False, id="403"),
    ],
)  # fmt: skip
def test_only_an_etag_conflict_means_read_again(code, status, message, conflict):
    assert is_etag_conflict(rest_error(code, status, message)) is conflict


@pytest.mark.parametrize(
    ("message", "permission", "resource", "command"),
    [
        pytest.param(
            "Permission 'iam.serviceaccounts.actAs' denied on service account "
            "rt@netra-staging.iam.gserviceaccount.com (or it may not exist).",
            "iam.serviceAccounts.actAs",
            "rt@netra-staging.iam.gserviceaccount.com",
            "gcloud iam service-accounts add-iam-policy-binding rt@netra-staging.iam.gserviceaccount.com "
            "--project netra-staging --member serviceAccount:me@p.iam.gserviceaccount.com "
            "--role roles/iam.serviceAccountUser",
            id="actAs",
        ),
        pytest.param(
            f"Permission 'run.services.update' denied on resource '{REF.name}' (or resource may not exist).",
            "run.services.update",
            REF.name,
            "gcloud run services add-iam-policy-binding netra-backend-staging --region us-central1 "
            "--project netra-staging --member serviceAccount:me@p.iam.gserviceaccount.com --role roles/run.developer",
            id="update",
        ),
        pytest.param(
            "The caller does not have permission",
            "run.services.update",
            REF.name,
            "gcloud run services add-iam-policy-binding netra-backend-staging --region us-central1 "
            "--project netra-staging --member serviceAccount:me@p.iam.gserviceaccount.com --role roles/run.developer",
            id="unnamed",
        ),
    ],
)
def test_a_403_names_the_permission_and_the_grant(message, permission, resource, command):
    missing = missing_permission(message, REF, "me@p.iam.gserviceaccount.com")
    assert (missing.permission, missing.resource, missing.command) == (permission, resource, command)


def test_without_a_known_identity_the_command_has_a_placeholder():
    assert "--member serviceAccount:WATCHDOG_SERVICE_ACCOUNT " in missing_permission("", REF).command


SETTLED = {"generation": "9", "observedGeneration": "9", "reconciling": False}
TO_TARGET = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "t", "percent": 100}]


@pytest.mark.parametrize(
    ("service", "verified"),
    [
        pytest.param({**SETTLED, "trafficStatuses": TO_TARGET}, True, id="settled-on-target"),
        pytest.param({**SETTLED, "reconciling": True, "trafficStatuses": TO_TARGET}, False, id="reconciling"),
        pytest.param({**SETTLED, "observedGeneration": "8", "trafficStatuses": TO_TARGET}, False,
                     id="older-generation"),
        pytest.param({**SETTLED, "traffic": TO_TARGET, "trafficStatuses": [
            {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "old", "percent": 100}]}, False,
            id="spec-says-target-status-says-old"),
        pytest.param({**SETTLED, "trafficStatuses": [*TO_TARGET, {"revision": "t", "percent": 0, "tag": "blue"}]},
                     True, id="tags-kept"),
    ],
)  # fmt: skip
def test_verified_means_settled_and_serving(service, verified):
    assert confirmed(service, "t") is verified
