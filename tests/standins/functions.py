"""A local stand-in for the one Cloud Functions v2 call the operator commands make (REST).

``GET /v2/projects/P/locations/R/functions/F`` answers the ``Function`` resource
(https://cloud.google.com/functions/docs/reference/rest/v2/projects.locations.functions#Function), of which
``status`` and ``doctor`` read ``serviceConfig.environmentVariables.WATCHDOG_SERVICES`` and
``serviceConfig.serviceAccountEmail``; 404 NOT_FOUND for a function it does not hold, as the API answers.
:func:`as_deployed` builds the function terraform/function.tf deploys.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.standins.loopback import Server, StandIn

_FUNCTION = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/functions/[^/?]+)$")


def as_deployed(
    services: str,
    service_account: str,
    project: str = "netra-staging",
    region: str = "us-central1",
    name: str = "rollback-watchdog",
    **env: str,
) -> dict:
    """The alert function as terraform/function.tf deploys it: entry point, identity and environment."""
    full = f"projects/{project}/locations/{region}/functions/{name}"
    return {
        "name": full,
        "description": "Rollback watchdog: receives Cloud Monitoring incidents (Pub/Sub push) and rolls back traffic.",
        "buildConfig": {"runtime": "python312", "entryPoint": "handle_alert"},
        "serviceConfig": {
            "service": f"projects/{project}/locations/{region}/services/{name}",
            "timeoutSeconds": 60,
            "availableMemory": "256M",
            "environmentVariables": {
                "WATCHDOG_SERVICES": services,
                "WATCHDOG_SERVICE_ACCOUNT": service_account,
                "WATCHDOG_DRY_RUN": "true",
                "LOG_EXECUTION_ID": "true",
                **env,
            },
            "maxInstanceCount": 1,
            "ingressSettings": "ALLOW_INTERNAL_ONLY",
            "uri": f"https://{name}-abc123-uc.a.run.app",
            "serviceAccountEmail": service_account,
            "allTrafficOnLatestRevision": True,
            "secretEnvironmentVariables": [
                {
                    "key": "SLACK_BOT_TOKEN",
                    "projectId": project,
                    "secret": "rollback-watchdog-slack-bot-token",
                    "version": "latest",
                }
            ],
            "maxInstanceRequestConcurrency": 1,
        },
        "state": "ACTIVE",
        "updateTime": "2026-01-01T00:00:00.000000000Z",
        "environment": "GEN_2",
        "url": f"https://{region}-{project}.cloudfunctions.net/{name}",
    }


class FunctionsState:
    def __init__(self, functions: list[dict] | None = None) -> None:
        self.lock = threading.Lock()
        self.functions = {f["name"]: f for f in functions or []}
        self.requests: list[dict] = []


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        with state.lock:
            state.requests.append({"method": "GET", "path": path})
            match = _FUNCTION.match(path)
            found = state.functions.get(match.group(1)) if match else None
        if found is None:
            name = match.group(1) if match else path
            return self._send(404, {"error": {"code": 404, "message": f"Resource '{name}' was not found",
                                              "status": "NOT_FOUND"}})  # fmt: skip
        return self._send(200, found)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FunctionsStandIn(StandIn):
    """``with FunctionsStandIn([as_deployed(...)]) as functions: functions.url``."""

    handler = _Handler

    def __init__(self, functions: list[dict] | None = None, port: int = 0) -> None:
        super().__init__(FunctionsState(functions), port)
