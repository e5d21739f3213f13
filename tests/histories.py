"""Service histories as compact JSON (tests/fixtures/histories/*.json), expanded into v2 REST JSON.

A history names its revisions by number, oldest first, and says only what
differs from a plain Ready revision: ``egress`` (``private``/``all``),
``image``, ``connector``, ``sql`` (false, or another instance's name), ``env``,
``ready``, ``deleted``. Revisions are an hour apart, the newest an hour before
``NOW``, unless an entry says when: ``days_ago`` or ``hours_ago``. An entry with
``count`` stands for that many revisions numbered from ``n``, ``every_hours``
apart, ending at its own age (months of daily deploys in one line); ``{n}`` in
its ``image`` is each revision's number. Traffic is the service's spec
``traffic`` list by revision number (``{"latest": true}`` for LATEST), with tags. The same expansion seeds the Cloud Run stand-in for
the end-to-end tests and feeds ``decide()`` directly for the table tests, so
the two see one history.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from tests.cloudrun_seeds import CONNECTOR, PARENT, SQL, stamp
from watchdog.config import Config, ServiceRef, ServiceScope
from watchdog.core import ledger
from watchdog.core.intake import Alert

HISTORIES = Path(__file__).resolve().parent / "fixtures" / "histories"
NOW = 1_760_000_000.0  # 2025-10-09; every history is placed before it
EGRESS = {"private": "PRIVATE_RANGES_ONLY", "all": "ALL_TRAFFIC"}
REVISION_TYPE = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
LATEST_TYPE = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"


def names() -> list[str]:
    return sorted(p.stem for p in HISTORIES.glob("*.json"))


def load(name: str) -> History:
    return History(json.loads((HISTORIES / f"{name}.json").read_text()))


def revision_name(service: str, number: int) -> str:
    return f"{service}-{number:05d}-h{number % 97:02d}"


@dataclass
class History:
    spec: dict

    @property
    def service_name(self) -> str:
        return self.spec.get("service", "checkout")

    @property
    def full_name(self) -> str:
        return f"{PARENT}/services/{self.service_name}"

    def name(self, number: int | None) -> str:
        return revision_name(self.service_name, number) if number else ""

    def revisions(self) -> list[dict]:
        """Newest first, as ListRevisions returns them (deleted ones included, as with showDeleted)."""
        return [
            _revision(self.full_name, self.name(entry["n"]), entry, created) for entry, created in self._expanded()
        ][::-1]

    def _expanded(self) -> list[tuple[dict, float]]:
        """(entry, createTime) per revision, oldest first: ``count`` entries unrolled, ages resolved."""
        entries = self.spec["revisions"]
        out: list[tuple[dict, float]] = []
        for index, entry in enumerate(entries):
            end = NOW - _ago(entry, (len(entries) - index) * 3600.0)
            count = int(entry.get("count", 1))
            every = float(entry.get("every_hours", 24)) * 3600
            for k in range(count):
                one = {key: value for key, value in entry.items() if key not in ("count", "every_hours")}
                one["n"] = entry["n"] + k
                if "{n}" in str(one.get("image", "")):
                    one["image"] = one["image"].replace("{n}", str(one["n"]))
                out.append((one, end - (count - 1 - k) * every))
        return out

    def service(self) -> dict:
        revisions = self.revisions()
        ready = [r for r in revisions if _ready(r) and not r.get("deleteTime")]
        traffic = [self._traffic(t) for t in self.spec.get("traffic", [{"latest": True, "percent": 100}])]
        service = {
            "name": self.full_name,
            "uid": f"uid-{self.service_name}",
            "generation": "9",
            "createTime": stamp(NOW - 400 * 86400),
            "updateTime": stamp(NOW - 3600),
            "creator": "deployer@netra-staging.iam.gserviceaccount.com",
            "lastModifier": "deployer@netra-staging.iam.gserviceaccount.com",
            "launchStage": "GA",
            "ingress": "INGRESS_TRAFFIC_ALL",
            "template": _template(revisions[0]),
            "traffic": traffic,
            "latestCreatedRevision": revisions[0]["name"],
            "latestReadyRevision": ready[0]["name"] if ready else "",
            "reconciling": False,
            "etag": f'"{self.service_name}-9"',
        }
        annotations = self._annotations()
        if annotations:
            service["annotations"] = annotations
        service["trafficStatuses"] = statuses(service)
        service["observedGeneration"] = service["generation"]
        return service

    def seed(self) -> dict:
        service = self.service()
        service.pop("trafficStatuses")  # the stand-in works them out, as Cloud Run does
        return {"services": [service], "revisions": self.revisions()}

    def alert(self, incident_id: str = "0.history-1") -> Alert:
        spec = self.spec.get("alert", {})
        published = spec.get("published_ago")
        return Alert(
            incident_id=spec.get("incident", incident_id),
            state="open",
            service=ServiceRef("netra-staging", "us-central1", self.service_name),
            revision=self.name(spec.get("revision")),
            started_at=NOW - 120,
            published_at=NOW - published if published is not None else NOW - 60,
            drill=spec.get("drill", False),
            drill_live=spec.get("drill_live", False),
        )

    def config(self) -> Config:
        spec = dict(self.spec.get("config", {}))
        services = ServiceScope.parse(spec.pop("services", "*"))
        return Config(services=services, **spec)

    def _traffic(self, entry: dict) -> dict:
        if entry.get("latest"):
            out = {"type": LATEST_TYPE, "percent": entry.get("percent", 0)}
        else:
            out = {"type": REVISION_TYPE, "revision": self.name(entry["revision"]), "percent": entry.get("percent", 0)}
        if entry.get("tag"):
            out["tag"] = entry["tag"]
        return out

    def _annotations(self) -> dict[str, str]:
        spec = self.spec.get("ledger")
        if not spec:
            return {}
        if "raw" in spec:
            return dict(spec["raw"])
        annotations: dict[str, str] = {}
        for r in spec.get("records", []):
            record = ledger.Record(
                incident=r["incident"],
                from_revision=self.name(r["from"]),
                to_revision=self.name(r["to"]),
                at=NOW - r["ago"],
                reported=True,
                before=tuple(
                    (self.name(b[0]) if isinstance(b[0], int) else b[0], b[1], b[2]) for b in r.get("before", [])
                ),
            )
            annotations = ledger.with_record(annotations, record)
        if spec.get("order") == "oldest-last" and ledger.ROLLBACKS_KEY in annotations:
            items = json.loads(annotations[ledger.ROLLBACKS_KEY])
            annotations[ledger.ROLLBACKS_KEY] = json.dumps(sorted(items, key=lambda i: -i["at"]))
        memory = spec.get("memory")
        if memory:
            current = json.loads(annotations.get(ledger.MEMORY_KEY, "{}"))
            for key, values in memory.items():
                current[key] = sorted(
                    {*current.get(key, []), *(self.name(v) if isinstance(v, int) else v for v in values)}
                )
            annotations[ledger.MEMORY_KEY] = json.dumps(current)
        if "paused" in spec:
            annotations[ledger.PAUSED_KEY] = spec["paused"]
        return annotations


def statuses(service: dict) -> list[dict]:
    """trafficStatuses as Cloud Run reports them: LATEST resolved to the latest Ready revision, tags kept."""
    latest = service.get("latestReadyRevision", "").rsplit("/", 1)[-1]
    out = []
    for target in service.get("traffic") or [{"type": LATEST_TYPE, "percent": 100}]:
        status = {"type": target["type"], "percent": target.get("percent", 0),
                  "revision": target.get("revision") or latest}  # fmt: skip
        if target.get("tag"):
            status["tag"] = target["tag"]
        out.append(status)
    return out


def _revision(service: str, name: str, entry: dict, created: float) -> dict:
    container = {
        "image": f"gcr.io/netra-staging/checkout:{entry.get('image', 'v1')}",
        "env": [{"name": k, "value": v} for k, v in sorted(entry.get("env", {}).items())],
        "ports": [{"name": "http1", "containerPort": 8080}],
    }
    revision = {
        "name": f"{service}/revisions/{name}",
        "uid": f"uid-{name}",
        "generation": "1",
        "service": service,
        "createTime": stamp(created),
        "updateTime": stamp(created),
        "creator": entry.get("creator", "deployer@netra-staging.iam.gserviceaccount.com"),
        "launchStage": "GA",
        "serviceAccount": "checkout@netra-staging.iam.gserviceaccount.com",
        "vpcAccess": {"egress": EGRESS[entry.get("egress", "private")]},
        "containers": [container],
        "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
        "maxInstanceRequestConcurrency": 80,
        "timeout": "300s",
        "conditions": [
            {"type": "Ready", "state": "CONDITION_SUCCEEDED" if entry.get("ready", True) else "CONDITION_FAILED"}
        ],
        "observedGeneration": "1",
        "etag": f'"{name}"',
    }
    connector = entry.get("connector", "staging-connector")
    if connector:
        revision["vpcAccess"]["connector"] = CONNECTOR.rsplit("/", 1)[0] + "/" + connector
    sql = entry.get("sql", True)
    if sql:
        instance = SQL if sql is True else SQL.rsplit(":", 1)[0] + ":" + sql
        container["volumeMounts"] = [{"name": "cloudsql", "mountPath": "/cloudsql"}]
        revision["volumes"] = [{"name": "cloudsql", "cloudSqlInstance": {"instances": [instance]}}]
    if entry.get("deleted"):
        revision["deleteTime"] = stamp(created + 1800)
        revision["expireTime"] = stamp(created + 30 * 86400)
    return revision


# RevisionTemplate fields a Revision carries too: the service's template is the newest deploy's.
_TEMPLATE_FIELDS = ("containers", "vpcAccess", "volumes", "serviceAccount", "scaling", "timeout",
                    "maxInstanceRequestConcurrency", "executionEnvironment")  # fmt: skip


def _template(newest: dict) -> dict:
    """The service's ``template`` as Cloud Run shows it: the newest revision's configuration, and its name."""
    template = {k: copy.deepcopy(newest[k]) for k in _TEMPLATE_FIELDS if k in newest}
    template["revision"] = newest["name"].rsplit("/", 1)[-1]
    return template


def _ago(entry: dict, default: float) -> float:
    """Seconds before NOW the entry's (newest) revision was created."""
    if "days_ago" in entry:
        return float(entry["days_ago"]) * 86400
    if "hours_ago" in entry:
        return float(entry["hours_ago"]) * 3600
    return default


def _ready(revision: dict) -> bool:
    return any(c["type"] == "Ready" and c["state"] == "CONDITION_SUCCEEDED" for c in revision["conditions"])
