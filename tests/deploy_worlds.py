"""Worlds for the deploy-event cases: the staging incident's auth service, as a deploy finds it.

A world is a Cloud Run stand-in seed (``{"services": [...], "revisions": [...]}``, v2 REST JSON), so the same
world seeds the stand-in for the end-to-end tests and feeds :func:`watchdog.core.sentinel.judge` directly
(:func:`read`) for the table tests. Builders, each returning a new world:

- :func:`auth`: the incident's auth service (00041 private-ranges-only, 00042 and 00043 all-traffic), LATEST;
- :func:`serving`: traffic pinned by revision (a human's, or gcloud ``--no-traffic``'s);
- :func:`pinned`: the watchdog's rollback of the incident: traffic pinned to 00041 and its ledger record;
- :func:`deployed`: a deploy took effect: its revision created (the newest), traffic as it routes it;
- :func:`previews`: ``--no-traffic`` preview revisions created after the serving one.
"""

from __future__ import annotations

import copy
import json

from tests.histories import statuses
from tests.support import fixture
from watchdog.core import ledger
from watchdog.core.deploys import newest_first
from watchdog.core.intake import rfc3339

AUTH = "projects/netra-staging/locations/us-central1/services/netra-auth-service"
R41, R42, R43 = "netra-auth-service-00041-kip", "netra-auth-service-00042-vex", "netra-auth-service-00043-nul"
INCIDENT = "0.auth-db-timeout-1"
THREAD = "C0ONCALL:1758044590.000100"  # the incident card's channel:ts
REVISION_TYPE = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
LATEST_TYPE = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
LATEST_100 = [{"type": LATEST_TYPE, "percent": 100}]


def stamp(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def auth(seed: dict | None = None) -> dict:
    """The incident's auth service and its revisions (``seed``: the incident seed moved in time, if given)."""
    seed = copy.deepcopy(seed or fixture("cloudrun/incident_seed.json"))
    return {
        "services": [s for s in seed["services"] if s["name"] == AUTH],
        "revisions": [r for r in seed["revisions"] if r["service"] == AUTH],
    }


def created(world: dict, name: str) -> float:
    return rfc3339(next(r for r in world["revisions"] if r["name"].endswith("/" + name))["createTime"])


def serving(world: dict, revision: str) -> dict:
    """Traffic pinned by revision to ``revision`` (not by the watchdog)."""
    world = copy.deepcopy(world)
    world["services"][0]["traffic"] = [{"type": REVISION_TYPE, "revision": revision, "percent": 100}]
    return world


def pinned(
    world: dict, at: float, *, thread: str = THREAD, revert: str = "", state: str = "", follows: bool = True
) -> dict:
    """The watchdog's rollback of the incident at ``at`` (epoch s): 00043 → 00041, pinned, reported in ``thread``.
    ``revert``: a field revert whose revision then served: following LATEST again, as before the rollback
    (``follows``), or pinned by name when traffic was pinned by revision before the rollback."""
    world = copy.deepcopy(world)
    service = world["services"][0]
    before = (("LATEST", 100, ""),) if follows else ((R43, 100, ""),)
    record = ledger.Record(
        INCIDENT, R43, R41, at, alert_at=at - 30, reported=True, thread=thread, before=before,
        after=((revert or R41, 100),), latest=R43, breaking=R42, policy="Database connection validation timeout",
        revert=revert, revert_state=ledger.REVERT_SERVING if revert else "", revert_at=at + 5 if revert else None,
        state=state,
    )  # fmt: skip
    service["annotations"] = ledger.with_record(service.get("annotations"), record)
    if revert:
        r43 = next(r for r in world["revisions"] if r["name"].endswith(R43))
        reverted = revision(revert, at + 5, like=r43, egress="PRIVATE_RANGES_ONLY")
        reverted["labels"] = {"rollback-watchdog": "field-revert"}
        serving = LATEST_100 if follows else [{"type": REVISION_TYPE, "revision": revert, "percent": 100}]
        world = deployed(
            world, reverted, [*serving, {"type": REVISION_TYPE, "revision": revert, "tag": "watchdog-revert"}]
        )
        world["services"][0]["annotations"] = service["annotations"]
        return world
    service["traffic"] = [{"type": REVISION_TYPE, "revision": R41, "percent": 100}]
    return world


def revision(name: str, at: float, *, like: dict, image: str = "", egress: str = "", env: dict | None = None) -> dict:
    """A revision created at ``at`` (of ``like``'s service): ``like``'s configuration with ``image``, ``egress``
    and extra ``env``."""
    found = copy.deepcopy(like)
    for key in ("createTime", "updateTime"):
        found[key] = stamp(at)
    parent = found.get("service") or AUTH
    found.update(name=f"{parent}/revisions/{name}", uid=f"uid-{name}", etag=f'"rev-{name}"')
    found["conditions"] = [{"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": stamp(at)}]
    container = found["containers"][0]
    if image:
        container["image"] = image
    if egress:
        found["vpcAccess"]["egress"] = egress
    for key, value in (env or {}).items():
        container["env"] = [e for e in container["env"] if e["name"] != key] + [{"name": key, "value": value}]
    found.pop("labels", None)
    return found


def like(world: dict, name: str) -> dict:
    return next(r for r in world["revisions"] if r["name"].endswith("/" + name))


def deployed(world: dict, new: dict | None, traffic: list[dict]) -> dict:
    """The world after a deploy took effect: ``new`` created (None: no revision came of it), traffic as routed."""
    world = copy.deepcopy(world)
    service = world["services"][0]
    if new is not None:
        world["revisions"].append(copy.deepcopy(new))
        service["latestCreatedRevision"] = service["latestReadyRevision"] = new["name"]
        template = {k: copy.deepcopy(v) for k, v in new.items() if k in service.get("template", {}) or k in (
            "containers", "vpcAccess", "volumes")}  # fmt: skip
        template["revision"] = new["name"].rsplit("/", 1)[-1]
        service["template"] = template
    service["traffic"] = copy.deepcopy(traffic)
    return world


def previews(world: dict, count: int, first: int = 44, *, start: float, every: float = 600.0) -> dict:
    """``count`` ``--no-traffic`` previews (0%, untagged), ``every`` seconds apart from ``start``, after 00041."""
    world = copy.deepcopy(world)
    base = like(world, R41)
    world["revisions"] = [r for r in world["revisions"] if not r["name"].endswith((R42, R43))]
    for k in range(count):
        name = f"netra-auth-service-{first + k:05d}-p{k % 97:02d}"
        world["revisions"].append(
            revision(name, start + k * every, like=base, image=f"gcr.io/netra-staging/netra-auth:pr-{k}")
        )
    newest = world["revisions"][-1]
    service = world["services"][0]
    service["latestCreatedRevision"] = service["latestReadyRevision"] = newest["name"]
    service["template"]["containers"] = copy.deepcopy(newest["containers"])
    service["template"]["vpcAccess"] = copy.deepcopy(newest["vpcAccess"])
    service["template"]["revision"] = newest["name"].rsplit("/", 1)[-1]
    return world


def read(world: dict) -> tuple[dict, list[dict]]:
    """(service, revisions newest first) as the watchdog reads them: ``trafficStatuses`` worked out, as Cloud Run
    does once the service settled."""
    service = copy.deepcopy(world["services"][0])
    service["trafficStatuses"] = statuses(service)
    return service, newest_first(copy.deepcopy(world["revisions"]))


def record_of(service: dict) -> ledger.Record | None:
    return ledger.find(service.get("annotations"), INCIDENT)


def memory(service: dict) -> dict:
    return json.loads((service.get("annotations") or {}).get(ledger.MEMORY_KEY, "{}"))
