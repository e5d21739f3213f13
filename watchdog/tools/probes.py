"""The doctor's probes of Cloud Run and IAM: the rights the watchdog holds, proven without changing anything.

Only ``rollback-watchdog doctor`` asks these (watchdog/tools/rollback_rights.py): they are the tools' own, not part
of the Cloud Run port the flows use (watchdog/flows/deps.py), on the same client, credentials and deadlines.
"""

from __future__ import annotations

from google.api_core import exceptions
from google.cloud import run_v2
from google.protobuf import json_format

from watchdog.config import ServiceRef
from watchdog.edges.cloudrun import CloudRun


class ProbingCloudRun(CloudRun):
    """The Cloud Run client with the doctor's probes: a server-side dry run and ``testIamPermissions``."""

    def validate_update(
        self, ref: ServiceRef, traffic: list[dict], etag: str, annotations: dict[str, str], deadline: float
    ) -> dict:
        """Cloud Run's server-side dry run of a rollback: the same mask and body, ``validate_only=true``.

        Nothing is persisted (service.proto: "validated and default values
        populated, without persisting"); the operation is not polled (a dry run's
        operation is not kept). Returns the would-be service the operation
        carries (its ``response``, else its ``metadata``), or {} if it carries none.
        """
        service = run_v2.Service(
            name=ref.name,
            etag=etag,
            annotations=annotations,
            traffic=[run_v2.TrafficTarget(_traffic_target(t)) for t in traffic],
        )
        operation = self._update(service, ["traffic", "annotations"], deadline, validate_only=True)
        raw = operation.operation
        for packed in (raw.response, raw.metadata):
            if packed.type_url.endswith("google.cloud.run.v2.Service"):
                would_be = run_v2.Service.pb(run_v2.Service())
                packed.Unpack(would_be)
                return json_format.MessageToDict(would_be)
        return {}

    def test_permissions(self, resource: str, permissions: list[str], deadline: float) -> set[str]:
        """Which of ``permissions`` the caller holds on a Cloud Run resource (``:testIamPermissions``)."""
        from google.iam.v1 import iam_policy_pb2

        response = self._services.test_iam_permissions(
            request=iam_policy_pb2.TestIamPermissionsRequest(resource=resource, permissions=permissions),
            retry=self._retry(deadline),
            timeout=self._timeout(deadline),
        )
        return set(response.permissions)

    def test_service_account_permissions(
        self, iam_endpoint: str, email: str, permissions: list[str], deadline: float
    ) -> set[str]:
        """Which of ``permissions`` the caller holds on a service account (IAM API v1, REST).

        ``POST {iam}/v1/projects/-/serviceAccounts/EMAIL:testIamPermissions`` with the
        same credentials as the Cloud Run calls (google-auth's AuthorizedSession;
        no IAM client library is a dependency).
        """
        url = f"{(iam_endpoint or 'https://iam.googleapis.com').rstrip('/')}/v1/projects/-/serviceAccounts/{email}"

        def call() -> set[str]:
            response = self._session.post(
                url + ":testIamPermissions", json={"permissions": permissions}, timeout=self._timeout(deadline)
            )
            if response.status_code >= 400:
                raise exceptions.from_http_response(response)
            return set(response.json().get("permissions", []))

        return self._retry(deadline)(call)()


def _traffic_target(target: dict) -> dict:
    """A v2 REST JSON traffic target as the proto-plus constructor takes it."""
    out: dict = {"type_": target.get("type", "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION")}
    for key in ("revision", "percent", "tag"):
        if target.get(key):
            out[key] = target[key]
    return out
