"""Stand-in seeds built from the shapes in tests/fixtures/cloudrun/incident_seed.json.

Every bench service is a copy of the incident's auth service: revisions older
than the egress change keep ``PRIVATE_RANGES_ONLY``, the change and every
revision after it use ``ALL_TRAFFIC``; traffic follows LATEST (the newest
revision serves 100%).
"""

from __future__ import annotations

import copy
import time

from tests.support import fixture

LOCATION = "projects/netra-staging/locations/us-central1"
_BASE = fixture("cloudrun/incident_seed.json")
_SERVICE = next(s for s in _BASE["services"] if s["name"].endswith("/netra-auth-service"))
_PRIVATE = next(r for r in _BASE["revisions"] if r["name"].endswith("-00041-kip"))
_EPOCH = time.mktime((2025, 1, 1, 0, 0, 0, 0, 0, 0))
SYMPTOMS = _EPOCH + 86400  # the bench's alerts start a day after its revisions: inside the change window


def _stamp(minutes: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(_EPOCH + minutes * 60))


def revision_name(service: str, number: int) -> str:
    return f"{service}-{number:05d}-b{number % 997:03d}"


def service_seed(service: str, revisions: int = 2, change_depth: int = 0) -> dict:
    """One service with ``revisions`` revisions; the egress change is ``change_depth`` below the newest.

    change_depth 0: the newest revision made the change, the one below it is the
    rollback target (the incident's shape). change_depth d: the newest d+1
    revisions are all ALL_TRAFFIC, the target is revision d+1 from the top.
    """
    assert revisions >= change_depth + 2
    name = f"{LOCATION}/services/{service}"
    out_revisions = []
    for number in range(1, revisions + 1):  # oldest first
        depth = revisions - number  # 0 = newest
        revision = copy.deepcopy(_PRIVATE)
        short = revision_name(service, number)
        revision.update(
            name=f"{name}/revisions/{short}",
            uid=f"uid-{short}",
            service=name,
            createTime=_stamp(number),
            updateTime=_stamp(number),
            etag=f'"rev-{short}"',
        )
        revision["containers"][0]["image"] = f"gcr.io/netra-staging/{service}:v1.{number}.0"
        if depth <= change_depth:
            revision["vpcAccess"]["egress"] = "ALL_TRAFFIC"
        out_revisions.append(revision)
    newest = out_revisions[-1]["name"]
    svc = copy.deepcopy(_SERVICE)
    svc.update(
        name=name,
        uid=f"uid-{service}",
        latestReadyRevision=newest,
        latestCreatedRevision=newest,
        traffic=[{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
    )
    svc.pop("etag", None)
    svc.pop("annotations", None)
    svc["template"]["revision"] = newest.rsplit("/", 1)[-1]
    return {"services": [svc], "revisions": out_revisions}


def fleet(count: int, prefix: str = "bench-svc", revisions: int = 2) -> dict:
    seed: dict = {"services": [], "revisions": []}
    for index in range(count):
        one = service_seed(f"{prefix}-{index:03d}", revisions)
        seed["services"] += one["services"]
        seed["revisions"] += one["revisions"]
    return seed


def newest_revision(seed: dict, service: str) -> str:
    return max((r for r in seed["revisions"] if r["service"].endswith("/" + service)), key=lambda r: r["createTime"])[
        "name"
    ].rsplit("/", 1)[-1]


def target_revision(seed: dict, service: str, change_depth: int = 0) -> str:
    ordered = sorted(
        (r for r in seed["revisions"] if r["service"].endswith("/" + service)), key=lambda r: r["createTime"]
    )
    return ordered[-(change_depth + 2)]["name"].rsplit("/", 1)[-1]
