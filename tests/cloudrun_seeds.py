"""Build Cloud Run services and revisions (v2 REST JSON) for the operator-tool tests."""

from __future__ import annotations

import copy
import time

PROJECT = "netra-staging"
REGION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
CONNECTOR = f"{PARENT}/connectors/staging-connector"
SQL = "netra-staging:us-central1:staging-shared-postgres"


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(epoch))


def revision(
    service: str,
    number: int,
    created: float,
    *,
    egress: str = "PRIVATE_RANGES_ONLY",
    image: str = "",
    connector: str | None = CONNECTOR,
    sql: bool = True,
    env: dict[str, str] | None = None,
    interfaces: list[dict] | None = None,
    ready: bool = True,
) -> dict:
    name = f"{service}-{number:05d}-r{number % 97:02d}"
    vpc: dict = {"egress": egress}
    if connector:
        vpc["connector"] = connector
    if interfaces:
        vpc["networkInterfaces"] = interfaces
    container = {
        "image": image or f"gcr.io/{PROJECT}/{service}:v{number}",
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }
    rev = {
        "name": f"{PARENT}/services/{service}/revisions/{name}",
        "service": f"{PARENT}/services/{service}",
        "createTime": stamp(created),
        "vpcAccess": vpc,
        "containers": [container],
        "conditions": [{"type": "Ready", "state": "CONDITION_SUCCEEDED" if ready else "CONDITION_FAILED"}],
    }
    if sql:
        container["volumeMounts"] = [{"name": "cloudsql", "mountPath": "/cloudsql"}]
        rev["volumes"] = [{"name": "cloudsql", "cloudSqlInstance": {"instances": [SQL]}}]
    return rev


def service(name: str, revisions: list[dict], *, serving: str = "", updated: float | None = None) -> dict:
    """A service whose newest revision is ``revisions[-1]`` (oldest first); 100% to ``serving`` or LATEST."""
    newest = revisions[-1]
    ready = [r for r in revisions if r["conditions"][0]["state"] == "CONDITION_SUCCEEDED"]
    traffic = (
        [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": serving, "percent": 100}]
        if serving
        else [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    )
    return {
        "name": f"{PARENT}/services/{name}",
        "updateTime": stamp(updated) if updated else newest["createTime"],
        "latestCreatedRevision": newest["name"],
        "latestReadyRevision": ready[-1]["name"] if ready else "",
        "traffic": traffic,
        "template": {"containers": copy.deepcopy(newest["containers"])},
    }


def short(revision_or_name: dict | str) -> str:
    name = revision_or_name["name"] if isinstance(revision_or_name, dict) else revision_or_name
    return name.rsplit("/", 1)[-1]
