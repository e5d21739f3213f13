"""A local stand-in for the one IAM API v1 method the doctor calls on a service account (REST).

``POST /v1/projects/-/serviceAccounts/EMAIL:testIamPermissions`` with
``{"permissions": [...]}`` answers ``{"permissions": [granted...]}``, or ``{}``
when none is granted (proto3 JSON leaves an empty repeated field out), as
``google.iam.v1.TestIamPermissionsResponse``. The grants are the Cloud Run
stand-in's map (``CloudRunState.granted``, key ``projects/-/serviceAccounts/EMAIL``),
so one map decides both what the doctor is told and what the update is allowed.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.standins.loopback import Server, StandIn

_TEST = re.compile(r"^/v1/(projects/-/serviceAccounts/[^/:]+):testIamPermissions$")


class IamState:
    def __init__(self, grants: Any) -> None:
        self.grants = grants  # anything with allowed(resource, permission), e.g. CloudRunState
        self.lock = threading.Lock()
        self.requests: list[dict] = []


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with state.lock:
            state.requests.append({"path": self.path, "body": body})
        match = _TEST.match(self.path)
        if match is None:
            return self._send(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})
        wanted = body.get("permissions")
        if not isinstance(wanted, list):
            return self._send(400, {"error": {"code": 400, "message": "permissions", "status": "INVALID_ARGUMENT"}})
        granted = [p for p in wanted if state.grants.allowed(match.group(1), p)]
        return self._send(200, {"permissions": granted} if granted else {})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class IamStandIn(StandIn):
    """``with IamStandIn(cloud_run.state) as iam: iam.url``."""

    handler = _Handler

    def __init__(self, grants: Any, port: int = 0) -> None:
        super().__init__(IamState(grants), port)
