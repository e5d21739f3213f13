"""The deploy-time promise is the alert path's decision (issue 18).

What the warning says the watchdog will do ("will roll back to …", "will pin traffic back to …", "will revert the
egress on a new revision …", "will only report: …") is :func:`watchdog.core.decision.decide` run on the state the
deploy creates, and ``hold`` holds exactly when that decision rolls back and the deploy introduces a blocking rule.
Each row is checked twice: the verdict as the warning states it, and the same promise against the alert path
itself, run once the deploy really took the traffic (its revision created a moment after the entry, traffic as it
routes it) for the alert the hold would raise: the warning names nothing the alert path would not choose.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests import deploy_worlds as w
from tests import histories
from tests.support import fixture
from watchdog.config import Config, ServiceScope
from watchdog.core import decision, ledger, sentinel
from watchdog.core.deploys import DeployEvent
from watchdog.core.intake import parse, rfc3339

CHECKOUT = "projects/netra-staging/locations/us-central1/services/checkout"
CONNECTOR = "projects/netra-staging/locations/us-central1/connectors/staging-connector"


def terraform(service: str, template: dict, at: float) -> DeployEvent:
    """A terraform apply of ``template`` (v2 RevisionTemplate JSON) with traffic LATEST 100, logged at ``at``."""
    entry = copy.deepcopy(fixture("deploys/v2_UpdateService_terraform_first_entry.INFERRED.json"))
    name = service.rsplit("/", 1)[-1]
    entry["resource"]["labels"]["service_name"] = name
    entry["protoPayload"]["resourceName"] = service
    entry["protoPayload"]["request"]["service"]["name"] = service
    entry["protoPayload"]["request"]["service"]["template"] = template
    entry["insertId"] = f"e-{name}-{int(at)}"
    entry["operation"]["id"] = f"projects/netra-staging/locations/us-central1/operations/{name}-{int(at)}"
    entry["timestamp"] = w.stamp(at)
    parsed = parse(entry)
    assert isinstance(parsed, DeployEvent), parsed
    return parsed


def template_of(revision: dict, **changes) -> dict:
    keep = ("containers", "volumes", "vpcAccess", "serviceAccount", "scaling", "timeout", "executionEnvironment")
    template = {k: copy.deepcopy(v) for k, v in revision.items() if k in keep}
    for key, value in changes.items():
        template[key] = value
    return template


# --- the worlds: (world as the deploy finds it, the deploy) ---------------------------------------------


World = tuple[dict, DeployEvent, dict]  # the world as the deploy finds it, the deploy, the revision it makes


def sixty_days_of_all_traffic() -> World:
    """1 private (60 d) → 2 all-traffic (50 d) → 29 daily code deploys on all-traffic with Cloud SQL (the team added
    Cloud NAT), 31 serving; today's code deploy 32 keeps all-traffic."""
    world = histories.load("old_flip_29_deploys_on_top").seed()
    newest = max(world["revisions"], key=lambda r: r["createTime"])
    template = template_of(newest)
    template["containers"][0]["image"] = "gcr.io/netra-staging/checkout:v32"
    return world, terraform(CHECKOUT, template, histories.NOW - 60), {**copy.deepcopy(newest), **template}


def incident_flip() -> World:
    """The staging incident's breaking deploy, as gcloud sent it (00041's template with egress all-traffic);
    00041 (private-ranges-only) serves."""
    world = w.auth()
    world["revisions"] = [r for r in world["revisions"] if r["name"].endswith(w.R41)]
    service = world["services"][0]
    service["latestCreatedRevision"] = service["latestReadyRevision"] = f"{w.AUTH}/revisions/{w.R41}"
    entry = parse(fixture("deploys/v1_ReplaceService_gcloud_egress_all_traffic.INFERRED.json"))
    made = copy.deepcopy(w.like(world, w.R41))
    made["vpcAccess"]["egress"] = "ALL_TRAFFIC"
    return world, entry, made


def connector_removed() -> World:
    """00041 serves (private-ranges-only through the connector); the deploy drops the connector, egress unchanged."""
    world, flip, _ = incident_flip()
    r41 = w.like(world, w.R41)
    template = template_of(r41, vpcAccess={"egress": "PRIVATE_RANGES_ONLY"})
    return world, terraform(w.AUTH, template, rfc3339(flip.at)), {**copy.deepcopy(r41), **template}


def connector_changed_on_all_traffic() -> World:
    """00043 serves all-traffic with Cloud SQL (as 00042 did); the deploy moves it to another connector."""
    world = w.auth()
    r43 = w.like(world, w.R43)
    template = template_of(r43, vpcAccess={"egress": "ALL_TRAFFIC", "connector": CONNECTOR + "-2"})
    deploy = terraform(w.AUTH, template, w.created(world, w.R43) + 3600)
    return world, deploy, {**copy.deepcopy(r43), **template}


def paused(build: Callable[[], World]) -> Callable[[], World]:
    def world() -> World:
        found, deploy, made = build()
        found["services"][0]["annotations"] = {ledger.PAUSED_KEY: "true"}
        return found, deploy, made

    return world


@dataclass(frozen=True)
class Row:
    world: Callable[[], World]
    config: dict
    promise: tuple[str, str, str]  # the decision: action, reason, target
    hold: bool
    would: str  # how the warning's promise begins
    text: tuple[str, ...] = ()  # in the warning
    services: str = "*"
    extra: dict = field(default_factory=dict)  # more DeployVerdict fields, exactly


ROWS = {
    "60 days of all-traffic + Cloud SQL: a code deploy is warned as already the case, never held": Row(
        sixty_days_of_all_traffic, {"sentinel": "hold"}, ("report", "change_too_old", "checkout-00001-h01"), False,
        "will only report: checkout-00002-h02 changed vpc egress",
        ("already the case in the serving revision", "beyond WATCHDOG_MAX_CHANGE_AGE_HOURS"),
        extra={"action": sentinel.WARN, "reason": "risky", "baseline": "checkout-00031-h31"},
    ),
    "the same in warn mode promises no rollback either": Row(
        sixty_days_of_all_traffic, {}, ("report", "change_too_old", "checkout-00001-h01"), False,
        "will only report:",
    ),
    "a connector removed under WATCHDOG_ROLLBACK_ON=egress: a report, nothing held": Row(
        connector_removed, {"sentinel": "hold", "rollback_on": "egress"}, ("report", "no_matching_change", ""), False,
        "will only report: no egress change", ("connector-removed",),
    ),
    "a connector removed under WATCHDOG_ROLLBACK_ON=network: held, back to 00041": Row(
        connector_removed, {"sentinel": "hold", "rollback_on": "network"}, ("rollback", "rollback", w.R41), True,
        f"will pin traffic back to {w.R41} as soon as the new revision serves", ("connector-removed",),
    ),
    "a connector change on a service already all-traffic with Cloud SQL (network): a rollback, never held": Row(
        connector_changed_on_all_traffic, {"sentinel": "hold", "rollback_on": "network"},
        ("rollback", "rollback", w.R43), False, f"will roll back to {w.R43} if its symptoms alert",
        ("connector-changed", "already the case in the serving revision"),
    ),
    "the incident's flip, warn: will roll back to the revision serving before": Row(
        incident_flip, {}, ("rollback", "rollback", w.R41), False, f"will roll back to {w.R41} if its symptoms alert",
        ("egress-flip", "all-traffic-cloud-sql"),
    ),
    "the incident's flip, hold: holds, pinning the revision serving before": Row(
        incident_flip, {"sentinel": "hold"}, ("rollback", "rollback", w.R41), True,
        f"will pin traffic back to {w.R41} as soon as the new revision serves (WATCHDOG_SENTINEL=hold)",
    ),
    "the incident's flip on a paused service: only a report": Row(
        paused(incident_flip), {"sentinel": "hold"}, ("report", "paused", w.R41), False,
        "will only report:", ("the service is paused",),
    ),
    "the incident's flip in a dry run: only a report": Row(
        incident_flip, {"sentinel": "hold", "dry_run": True}, ("report", "dry_run", w.R41), False,
        "will only report:", ("this is a dry run",),
    ),
    "the incident's flip on a service out of scope: only a report, never read": Row(
        incident_flip, {"sentinel": "hold"}, ("report", "out_of_scope", ""), False,
        "will only report: netra-auth-service is not in WATCHDOG_SERVICES", services="netra-backend-staging",
    ),
}  # fmt: skip


def judge(row: Row) -> tuple[DeployEvent, sentinel.DeployVerdict, dict, Config]:
    world, deploy, _ = row.world()
    config = Config(services=ServiceScope.parse(row.services), **row.config)
    service, revisions = w.read(world)
    now = rfc3339(deploy.at) + 20
    if deploy.service not in config.services:  # the shell never reads such a service: the request alone
        return deploy, sentinel.judge(deploy, {}, [], config, now), world, config
    return deploy, sentinel.judge(deploy, service, revisions, config, now), world, config


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_the_promise_is_the_alert_paths_decision(row: Row):
    deploy, verdict, _world, _config = judge(row)
    chosen = verdict.promise
    assert (chosen.action, chosen.reason, chosen.target) == row.promise, chosen.detail
    assert verdict.hold is row.hold
    assert verdict.would.startswith(row.would), verdict.would
    text = sentinel.render(deploy, verdict).text
    assert f"The watchdog {verdict.would}" in text.replace("&gt;", ">")
    for words in row.text:
        assert words in text.replace("&gt;", ">")
    assert {key: getattr(verdict, key) for key in row.extra} == row.extra
    if chosen.action != decision.ROLLBACK:  # the alert path's own words may say what a guard held back; never "will"
        assert verdict.would.startswith("will only report: ")
        assert "will roll back" not in text
        assert "will pin traffic back" not in text
        assert "will revert" not in text


@pytest.mark.parametrize("row", [r for r in ROWS.values() if r.services == "*"], ids=[
    k for k, r in ROWS.items() if r.services == "*"])  # fmt: skip
def test_the_alert_path_decides_the_same_once_the_deploy_serves(row: Row):
    """The deploy goes ahead: its revision is created 1.5 s after the entry and takes the traffic as routed; the
    alert the hold raises is decided by the alert path on that state, as the shell hands it over."""
    deploy, verdict, world, config = judge(row)
    _, _, made = row.world()
    name = f"{deploy.service.service}-00099-new"
    real = w.revision(name, rfc3339(deploy.at) + 1.5, like=made)
    after = w.deployed(world, real, list(deploy.traffic or w.LATEST_100))
    service, revisions = w.read(after)
    alert = sentinel.hold_alert(deploy, name, verdict.baseline, rfc3339(deploy.at))
    decided = decision.decide(alert, service, revisions, config, rfc3339(deploy.at) + 20)
    promised = verdict.promise
    assert (decided.action, decided.reason, decided.target, decided.remedy) == (
        promised.action,
        promised.reason,
        promised.target,
        promised.remedy,
    ), decided.detail


def test_a_blocking_rule_the_serving_revision_already_has_is_not_introduced():
    world, _, _ = sixty_days_of_all_traffic()
    _service, revisions = w.read(world)
    serving = next(r for r in revisions if r["name"].endswith("checkout-00031-h31"))
    assert sentinel.already(serving) == {"all-traffic-cloud-sql"}
    assert sentinel.already(next(r for r in revisions if r["name"].endswith("checkout-00001-h01"))) == set()
    assert sentinel.already(None) == set()
