"""The decision, as a table of named cases over the incident's revisions (tests/fixtures/cloudrun)."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from tests.support import fixture
from watchdog.config import Config, ServiceRef, ServiceScope
from watchdog.core import ledger
from watchdog.core.changes import template_changes
from watchdog.core.decision import (
    IN_PROGRESS,
    NEED_MORE,
    NOTHING,
    REPORT,
    RESEND_REPORT,
    ROLLBACK,
    decide,
)
from watchdog.core.intake import Alert
from watchdog.core.traffic import traffic_split

AUTH = "netra-auth-service"
K43_NAME = f"{AUTH}-00043-nul"
NOW = 1758044554.0 + 3600  # an hour after the symptoms appeared
SEED = fixture("cloudrun/incident_seed.json")


def state(name: str = AUTH) -> tuple[dict, list[dict]]:
    full = f"projects/netra-staging/locations/us-central1/services/{name}"
    service = copy.deepcopy(next(s for s in SEED["services"] if s["name"] == full))
    revisions = [copy.deepcopy(r) for r in SEED["revisions"] if r["service"] == full]
    revisions.sort(key=lambda r: r["createTime"], reverse=True)
    service["trafficStatuses"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100,
                                   "revision": revisions[0]["name"].rsplit("/", 1)[-1]}]  # fmt: skip
    return service, revisions


def alert(revision: str = f"{AUTH}-00043-nul", service: str = AUTH, **kw) -> Alert:
    return Alert(incident_id=kw.pop("incident_id", "0.inc-1"), state="open",
                 service=ServiceRef("netra-staging", "us-central1", service), revision=revision, **kw)  # fmt: skip


def config(**kw) -> Config:
    kw.setdefault("services", ServiceScope.parse("*"))
    return Config(**kw)


def record(incident="0.old", frm=f"{AUTH}-00043-nul", to=f"{AUTH}-00041-kip", at=NOW - 7200, reported=True):
    return ledger.Record(incident, frm, to, at, reported=reported)


def undone(rec: ledger.Record, latest: str = K43_NAME, resumed_at: float | None = None) -> ledger.Record:
    """``rec`` undone from the card an hour after it, when ``latest`` was the newest revision."""
    events = [("undo_rollback", "U0ONCALL", rec.at + 3600, "1.1")]
    if resumed_at is not None:
        events.append(("resume_service", "U0ONCALL", resumed_at, "1.2"))
    return dataclasses.replace(rec, latest=latest, events=tuple(events))


# --- mutations applied to the stored incident state -------------------------------------------


def annotate(*records, paused=False):
    def apply(service, revisions):
        annotations = {}
        for r in records:
            annotations = ledger.with_record(annotations, r)
        if paused:
            annotations[ledger.PAUSED_KEY] = "true"
        service["annotations"] = annotations

    return apply


def not_ready(short):
    def apply(service, revisions):
        for r in revisions:
            if r["name"].endswith(short):
                r["conditions"] = [{"type": "Ready", "state": "CONDITION_FAILED"}]

    return apply


def set_egress_everywhere(value):
    def apply(service, revisions):
        for r in revisions:
            r["vpcAccess"]["egress"] = value

    return apply


def change_connector(short, connector):
    def apply(service, revisions):
        for r in revisions:
            if r["name"].rsplit("/", 1)[-1] >= short:
                r["vpcAccess"]["connector"] = connector

    return apply


def change_sql(short, instance):
    def apply(service, revisions):
        for r in revisions:
            if r["name"].rsplit("/", 1)[-1] >= short:
                r["volumes"][0]["cloudSqlInstance"]["instances"] = [instance]

    return apply


def traffic_on(short):
    def apply(service, revisions):
        service["trafficStatuses"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": short,
                                       "percent": 100}]  # fmt: skip

    return apply


def age_everything(days):
    def apply(service, revisions):
        for r in revisions:
            r["createTime"] = r["createTime"].replace("2025", str(2025 - days // 365))

    return apply


PRIVATE_EVERYWHERE = set_egress_everywhere("PRIVATE_RANGES_ONLY")
K41, K42, K43 = f"{AUTH}-00041-kip", f"{AUTH}-00042-vex", f"{AUTH}-00043-nul"

# name, mutations, alert kwargs, config kwargs, expected (action, reason, target, extra checks)
CASES = [
    ("the incident: egress flip two revisions back", [], {}, {},
     (ROLLBACK, "rollback", K41, {"breaking": K42, "skipped": (K42,)})),
    ("failing revision taken from traffic when the alert names none", [], {"revision": ""}, {},
     (ROLLBACK, "rollback", K41, {"failing": K43})),
    ("a change older than the window is a suspect: reported, traffic left alone", [age_everything(400)], {}, {},
     (REPORT, "change_too_old", K41, {"breaking": K42, "followed": 1, "would_roll_back": False})),
    ("a window widened past the change's age acts on it", [age_everything(400)], {},
     {"max_change_age_hours": 24 * 370}, (ROLLBACK, "rollback", K41, {})),
    ("the window counts from the incident's start, not from now", [], {"started_at": NOW - 30 * 86400}, {},
     (ROLLBACK, "rollback", K41, {})),
    ("no egress change: report the diff, leave traffic alone", [PRIVATE_EVERYWHERE], {}, {},
     (REPORT, "no_matching_change", "", {})),
    ("rollback_on=any acts on the env change of the newest revision", [PRIVATE_EVERYWHERE], {},
     {"rollback_on": "any"}, (ROLLBACK, "rollback", K42, {"breaking": K43})),
    ("connector change: egress mode ignores it",
     [PRIVATE_EVERYWHERE, change_connector(K43, "projects/netra-staging/locations/us-central1/connectors/other")],
     {}, {}, (REPORT, "no_matching_change", "", {})),
    ("connector change: network mode acts",
     [PRIVATE_EVERYWHERE, change_connector(K43, "projects/netra-staging/locations/us-central1/connectors/other")],
     {}, {"rollback_on": "network"}, (ROLLBACK, "rollback", K42, {})),
    ("Cloud SQL instance change: network mode acts",
     [PRIVATE_EVERYWHERE, change_sql(K42, "netra-staging:us-central1:new-db")], {}, {"rollback_on": "network"},
     (ROLLBACK, "rollback", K41, {"breaking": K42})),
    ("unspecified egress equals the default: no change",
     [PRIVATE_EVERYWHERE, lambda s, r: r[1]["vpcAccess"].update(egress="VPC_EGRESS_UNSPECIFIED")], {}, {},
     (REPORT, "no_matching_change", "", {})),
    ("the only older revision never became Ready: neither cause nor baseline", [not_ready(K41)], {}, {},
     (REPORT, "no_matching_change", "", {})),
    ("failing revision serves no traffic: nothing to do", [traffic_on(K41)], {}, {},
     (NOTHING, "not_serving", "", {})),
    ("unknown revision", [], {"revision": f"{AUTH}-00099-zzz"}, {}, (NOTHING, "not_serving", "", {})),
    ("already rolled back and reported: silent", [annotate(record("0.inc-1"))], {}, {},
     (NOTHING, "already_handled", K41, {})),
    ("already rolled back, report missing: resend", [annotate(record("0.inc-1", reported=False))], {}, {},
     (RESEND_REPORT, "already_handled", K41, {})),
    ("the card did not follow within the report lease: resend on the first redelivery",
     [annotate(record("0.inc-1", at=NOW - 10, reported=False))], {}, {}, (RESEND_REPORT, "already_handled", K41, {})),
    ("another delivery is mid-rollback: ask for redelivery", [annotate(record("0.inc-1", at=NOW - 5, reported=False))],
     {}, {}, (IN_PROGRESS, "already_handled", K41, {})),
    ("already handled wins over out of scope", [annotate(record("0.inc-1"))], {},
     {"services": ServiceScope.parse("other")}, (NOTHING, "already_handled", K41, {})),
    ("service not in WATCHDOG_SERVICES: report only", [], {}, {"services": ServiceScope.parse("other")},
     (REPORT, "out_of_scope", K41, {"would_roll_back": True})),
    ("empty WATCHDOG_SERVICES: report only", [], {}, {"services": ServiceScope()},
     (REPORT, "out_of_scope", K41, {})),
    ("out of scope wins over dry run", [], {}, {"services": ServiceScope.parse("other"), "dry_run": True},
     (REPORT, "out_of_scope", K41, {})),
    ("project not in WATCHDOG_PROJECTS", [], {}, {"projects": frozenset({"prod"})},
     (REPORT, "project_not_allowed", K41, {})),
    ("paused by annotation", [annotate(paused=True)], {}, {}, (REPORT, "paused", K41, {})),
    ("paused globally", [], {}, {"paused": True}, (REPORT, "paused", K41, {})),
    ("cooldown after another incident's rollback",
     [annotate(record("0.other", frm="x", to="y", at=NOW - 600))], {}, {}, (REPORT, "cooldown", K41, {})),
    ("cooldown over: acts again", [annotate(record("0.other", frm="x", to="y", at=NOW - 7200))], {}, {},
     (ROLLBACK, "rollback", K41, {})),
    ("never back to a revision it rolled away from", [annotate(record("0.other", frm=K41, to="y", at=NOW - 7200))],
     {}, {}, (REPORT, "no_known_good_target", "", {})),
    ("dry run", [], {}, {"dry_run": True}, (REPORT, "dry_run", K41, {"would_roll_back": True})),
    ("on-call undid a rollback of this revision: theirs to decide, reported",
     [annotate(undone(record("0.old", at=NOW - 7200)))], {}, {},
     (REPORT, "undone", K41, {"would_roll_back": True})),
    ("undone, then a new deploy: the watchdog may act on what it brings",
     [annotate(undone(record("0.old", at=NOW - 7200), latest=K41))], {}, {}, (ROLLBACK, "rollback", K41, {})),
    ("undone, then resumed: acts again",
     [annotate(undone(record("0.old", at=NOW - 7200), resumed_at=NOW - 60))], {}, {}, (ROLLBACK, "rollback", K41, {})),
    ("a deploy-time hold: the deploy is the change, what served before it the target, whatever lies between",
     [traffic_on(K43)], {"served_before": K41, "started_at": NOW}, {},
     (ROLLBACK, "rollback", K41, {"breaking": K43, "trust": "served before the deploy"})),
    ("an alert on the watchdog's field-revert revision: that rollback did not fix it",
     [annotate(dataclasses.replace(record("0.old", frm="x", to=K41, at=NOW - 7200), revert=K43,
                                   revert_state="serving"))],
     {}, {}, (REPORT, "rollback_did_not_fix", "", {"loud": True})),
    ("an undo of another revision's rollback does not hold this one",
     [annotate(undone(record("0.old", frm=K42, at=NOW - 7200)))], {}, {}, (ROLLBACK, "rollback", K41, {})),
    ("drill is a dry run", [], {"drill": True}, {}, (REPORT, "dry_run", K41, {})),
    ("live drill acts", [], {"drill": True, "drill_live": True}, {}, (ROLLBACK, "rollback", K41, {})),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutations", "alert_kw", "config_kw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decision_case(mutations, alert_kw, config_kw, expected):
    service, revisions = state()
    for mutate in mutations:
        mutate(service, revisions)
    decided = decide(alert(**alert_kw), service, revisions, config(**config_kw), NOW)
    action, reason, target, extra = expected
    assert (decided.action, decided.reason, decided.target) == (action, reason, target), decided.detail
    for key, value in extra.items():
        assert getattr(decided, key) == value, key
    assert decided.detail


def test_incident_names_the_egress_change_first():
    service, revisions = state()
    decided = decide(alert(), service, revisions, config(), NOW)
    assert [str(c) for c in decided.trigger_changes] == ["vpc egress: private-ranges-only → all-traffic"]
    assert decided.changes[0].field == "vpc egress"
    assert {c.field for c in decided.changes} >= {"container.image", "container.env.DB_CONNECT_TIMEOUT_SECONDS"}


def test_backend_rolls_back_one_revision():
    service, revisions = state("netra-backend-staging")
    decided = decide(alert("", "netra-backend-staging"), service, revisions, config(), NOW)
    assert decided.action == ROLLBACK
    assert (decided.failing, decided.target) == ("netra-backend-staging-00119-qor", "netra-backend-staging-00118-paz")
    assert decided.skipped == ()


class TestPartialHistory:
    """Reading stops as soon as the target is known; until then the answer is 'read more'."""

    def test_needs_more_when_the_change_is_beyond_the_first_page(self):
        service, revisions = state()
        decided = decide(alert(), service, revisions[:2], config(), NOW, history_complete=False)
        assert decided.action == NEED_MORE

    def test_decides_without_the_rest_once_the_value_before_the_target_is_known(self):
        """The revert check needs the revision before the target's run; nothing older."""
        service, revisions = state()
        older = copy.deepcopy(revisions[-1])
        older["name"] = older["name"].replace("00041-kip", "00040-old")
        older["createTime"] = "2025-01-01T00:00:00Z"
        older["vpcAccess"]["connector"] = "projects/netra-staging/locations/us-central1/connectors/older"
        decided = decide(alert(), service, [*revisions, older], config(rollback_on="network"), NOW,
                         history_complete=False)  # fmt: skip
        assert decided.action == ROLLBACK
        assert decided.target == K41

    def test_needs_more_while_the_target_run_may_hide_a_revert(self):
        service, revisions = state()
        decided = decide(alert(), service, revisions, config(), NOW, history_complete=False)
        assert decided.action == NEED_MORE

    def test_missing_failing_revision_needs_more(self):
        service, revisions = state()
        decided = decide(alert(), service, revisions[1:], config(), NOW, history_complete=False)
        assert decided.action == NEED_MORE


class TestChanges:
    """The field-by-field diff: secrets by reference, credentials hidden, egress first."""

    def test_secret_backed_env_shows_the_reference_only(self):
        _, revisions = state()
        newer = copy.deepcopy(revisions[0])
        newer["containers"][0]["env"][1]["valueSource"]["secretKeyRef"]["version"] = "7"
        changes = template_changes(revisions[0], newer)
        assert [str(c) for c in changes] == [
            "container.env.POSTGRES_PASSWORD: secret:postgres-password-staging:latest → "
            "secret:postgres-password-staging:7"
        ]

    def test_plain_credential_values_are_hidden(self):
        _, revisions = state()
        newer = copy.deepcopy(revisions[0])
        newer["containers"][0]["env"].append({"name": "API_TOKEN", "value": "s3cr3t-value"})
        changes = template_changes(revisions[0], newer)
        assert "s3cr3t-value" not in json.dumps([str(c) for c in changes])
        assert str(changes[0]) == "container.env.API_TOKEN: unset → (value hidden)"

    def test_order_is_egress_network_other(self):
        _, revisions = state()
        newer = copy.deepcopy(revisions[-1])
        newer["vpcAccess"]["egress"] = "ALL_TRAFFIC"
        newer["serviceAccount"] = "other@x.iam.gserviceaccount.com"
        newer["volumes"][0]["cloudSqlInstance"]["instances"] = ["p:r:other"]
        kinds = [c.kind for c in template_changes(revisions[-1], newer)]
        assert kinds == sorted(kinds, key=["egress", "network", "other"].index)
        assert kinds[0] == "egress"

    def test_identical_revisions_have_no_changes(self):
        _, revisions = state()
        twin = copy.deepcopy(revisions[0])
        twin["name"], twin["createTime"], twin["etag"] = "other", "2030-01-01T00:00:00Z", "x"
        assert template_changes(revisions[0], twin) == []


def test_traffic_split_resolves_latest_to_the_latest_ready_revision():
    service = {"latestReadyRevision": "projects/p/locations/l/services/s/revisions/s-2",
               "trafficStatuses": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]}  # fmt: skip
    assert traffic_split(service) == {"s-2": 100}
