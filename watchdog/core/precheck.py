"""The pre-deploy gate: is moving traffic from one revision to another risky?

Pure code: the revision serving now (``baseline``) and the one about to take
its traffic (``candidate``) in, a :class:`Verdict` with its findings out.
``rollback-watchdog check`` reads the revisions and prints the verdict.

Rules (``rule`` ids can be acknowledged with ``check --allow RULE``):

- ``egress-flip``: the VPC egress setting changes (the staging incident:
  ``private-ranges-only`` → ``all-traffic``);
- ``all-traffic-cloud-sql``: the candidate sends all egress through the VPC
  *and* mounts Cloud SQL unix sockets. The socket's connection to the
  instance then leaves through the VPC and times out unless the VPC has a
  route to it (Cloud NAT, private IP). Fails even when the baseline had it
  too, because the combination is the one known to have broken staging;
- ``connector-added``, ``connector-removed``, ``connector-changed``: the
  Serverless VPC Access connector;
- ``network-interfaces-added``, ``network-interfaces-removed``,
  ``network-interfaces-changed``: Direct VPC egress.

A change of Cloud SQL instances is a warning; everything else (image, env,
scaling, ...) is listed as harmless and passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from watchdog.core.changes import (
    Change,
    cloud_sql_instances,
    connector,
    egress,
    network_interfaces,
    template_changes,
    uses_cloud_sql,
)

FAIL = "fail"
WARN = "warn"

RULES = (
    "egress-flip",
    "all-traffic-cloud-sql",
    "connector-added",
    "connector-removed",
    "connector-changed",
    "network-interfaces-added",
    "network-interfaces-removed",
    "network-interfaces-changed",
    "cloud-sql-instances-changed",
)


# What to do about each rule, in the words on-call reads in `check`, the deploy warning and the report.
FIXES = {
    "egress-flip": (
        "if the service reaches Cloud SQL through the unix socket, keep private-ranges-only and add Cloud NAT "
        "for public destinations; otherwise make sure the VPC routes every destination the service calls"
    ),
    "all-traffic-cloud-sql": (
        "keep private-ranges-only and add Cloud NAT for public destinations, or connect to Cloud SQL over its "
        "private IP (with all traffic through the VPC, Cloud SQL's docs ask for a private IP)"
    ),
    "connector-added": "check that the connector's VPC routes to everything the service calls",
    "connector-removed": (
        "private destinations (Redis, internal services, Cloud SQL private IP) become unreachable; "
        "keep the connector or use Direct VPC egress"
    ),
    "connector-changed": "check that the new connector's network reaches the same destinations as the old one",
    "network-interfaces-added": "check that the subnet routes to everything the service calls",
    "network-interfaces-removed": "private destinations become unreachable; keep Direct VPC egress or add a connector",
    "network-interfaces-changed": "check that the new network and subnet reach the same destinations",
    "cloud-sql-instances-changed": (
        "check the new instance names and that the service account has roles/cloudsql.client on them"
    ),
}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # FAIL or WARN
    message: str
    allowed: bool = False  # acknowledged with --allow: reported, does not fail

    @property
    def fix(self) -> str:
        return FIXES.get(self.rule, "")

    def as_dict(self) -> dict:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "allowed": self.allowed,
        }


@dataclass(frozen=True)
class Verdict:
    findings: tuple[Finding, ...]
    changes: tuple[Change, ...] = field(default=())  # baseline → candidate, egress first

    @property
    def ok(self) -> bool:
        return not any(f.severity == FAIL and not f.allowed for f in self.findings)

    @property
    def harmless(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == "other")


def evaluate(baseline: dict | None, candidate: dict, allow: Iterable[str] = ()) -> Verdict:
    """The verdict for moving traffic from ``baseline`` to ``candidate`` (v2 REST revision dicts).

    ``baseline`` None means there is nothing to compare with (a first deploy):
    only the candidate's own configuration is judged.
    """
    allowed = set(allow)
    findings: list[Finding] = []
    new_egress = egress(candidate)
    if baseline is not None:
        old_egress = egress(baseline)
        if old_egress != new_egress:
            findings.append(
                Finding(
                    "egress-flip",
                    FAIL,
                    f"VPC egress changes {old_egress} → {new_egress}: every outbound connection takes a new route"
                    + (" (all of it through the VPC)" if new_egress == "all-traffic" else ""),
                )
            )
    if new_egress == "all-traffic" and uses_cloud_sql(candidate):
        had_it = baseline is not None and egress(baseline) == "all-traffic" and uses_cloud_sql(baseline)
        findings.append(
            Finding(
                "all-traffic-cloud-sql",
                FAIL,
                "egress all-traffic together with Cloud SQL unix sockets "
                f"({', '.join(cloud_sql_instances(candidate))}): the socket connections then go through the VPC "
                "and time out unless it reaches the instance (Cloud NAT or private IP)"
                + (" — already the case in the serving revision" if had_it else ""),
            )
        )
    if baseline is not None:
        findings += _added_removed(
            "connector", "Serverless VPC Access connector", connector(baseline), connector(candidate)
        )
        old_nics, new_nics = network_interfaces(baseline), network_interfaces(candidate)
        findings += _added_removed(
            "network-interfaces", "Direct VPC network interfaces", ", ".join(old_nics), ", ".join(new_nics)
        )
        old_sql, new_sql = cloud_sql_instances(baseline), cloud_sql_instances(candidate)
        if old_sql != new_sql:
            findings.append(
                Finding(
                    "cloud-sql-instances-changed",
                    WARN,
                    f"Cloud SQL instances change {', '.join(old_sql) or 'none'} → {', '.join(new_sql) or 'none'}",
                )
            )
    findings = [
        Finding(f.rule, f.severity, f.message, allowed=f.rule in allowed) if f.rule in allowed else f for f in findings
    ]
    changes = tuple(template_changes(baseline, candidate)) if baseline is not None else ()
    return Verdict(tuple(findings), changes)


def _added_removed(rule: str, what: str, old: str, new: str) -> list[Finding]:
    if old == new:
        return []
    if not old:
        return [Finding(f"{rule}-added", FAIL, f"{what} added: {new}")]
    if not new:
        return [Finding(f"{rule}-removed", FAIL, f"{what} removed (was {old})")]
    return [Finding(f"{rule}-changed", FAIL, f"{what} change {old} → {new}")]
