"""Property: in every generated history, a decision never makes things worse.

Histories of 3 to 30 revisions with random egress, connector, Cloud SQL,
image, readiness, deletion, tags and ages (an hour to months between
deploys); traffic splits including canaries, LATEST and tag-only entries;
alerts with and without a revision; ledgers with earlier rollbacks. For every
decision:

1. the target is Ready, and so is every revision that gains traffic;
2. no revision that gains traffic has the failing revision's trigger value;
3. after a harmless revert (the value it replaced held for less than the
   window, the restored value held at least as long, and the watchdog never
   rolled it away), there is no automatic rollback; a re-introduction is never
   called a revert;
4. every tag before the update exists after it, on the same revision (or LATEST);
5. nothing changes when the failing revision serves 0%;
6. when a serving revision other than the failing one is Ready, has the good
   value and was never rolled away from, the target is one of those;
7. no automatic action on a change older than the window
   (``WATCHDOG_MAX_CHANGE_AGE_HOURS``);
8. a value the ledger rolled away from is never called a revert;
9. a field revert's revision runs the failing revision's images (by digest)
   with the target's egress and network values, and once it serves, the code
   of every deploy up to the failing one is back in service: the pinned share
   moves to it, and nothing else moves.

The oracles here are written independently of watchdog/core/decision.py.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tests.histories import History
from watchdog.core import field_revert
from watchdog.core.changes import cloud_sql_instances, template_changes
from watchdog.core.decision import KINDS_FOR, NEED_MORE, NOTHING, ROLLBACK, decide
from watchdog.core.intake import rfc3339
from watchdog.core.traffic import traffic_split

GAPS_HOURS = [1, 1, 1, 6, 24, 24, 24 * 10, 24 * 60]  # between deploys: minutes-old fixes to months of quiet


@st.composite
def histories(draw) -> History:
    count = draw(st.integers(3, 30))
    revisions = []
    gaps = [draw(st.sampled_from(GAPS_HOURS)) for _ in range(count)]
    for n in range(1, count + 1):
        revisions.append(
            {
                "n": n,
                "hours_ago": sum(gaps[n - 1 :]),
                "egress": draw(st.sampled_from(["private", "all"])),
                "connector": draw(st.sampled_from(["staging-connector", "staging-connector", "other", None])),
                "sql": draw(st.booleans()),
                "image": draw(st.sampled_from(["v1", "v2", "v3"])),
                "ready": draw(st.integers(0, 5)) > 0,
                "deleted": draw(st.integers(0, 12)) == 0,
            }
        )
    revisions[-1]["deleted"] = False
    live = [r["n"] for r in revisions if r["ready"] and not r["deleted"]]
    assume(live)
    shape = draw(st.sampled_from(["latest", "one", "canary", "three", "latest-canary"]))
    if shape == "latest":
        traffic = [{"latest": True, "percent": 100}]
    elif shape == "one":
        traffic = [{"revision": draw(st.sampled_from(live)), "percent": 100}]
    elif shape == "latest-canary" and len(live) >= 2:
        traffic = [{"latest": True, "percent": 10}, {"revision": draw(st.sampled_from(live[:-1])), "percent": 90}]
    else:
        picked = draw(st.lists(st.sampled_from(live), min_size=2, max_size=3, unique=True)) if len(live) >= 2 else live
        cuts = sorted(
            draw(st.lists(st.integers(1, 99), min_size=len(picked) - 1, max_size=len(picked) - 1, unique=True))
        )
        shares = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
        traffic = [{"revision": n, "percent": p} for n, p in zip(picked, shares, strict=True)]
    for i, n in enumerate(draw(st.lists(st.sampled_from(live), max_size=3, unique=True))):
        traffic.append({"revision": n, "percent": 0, "tag": f"tag{i}"})
    if draw(st.booleans()):
        traffic.append({"latest": True, "percent": 0, "tag": "latest"})
    ledger = {}
    if draw(st.integers(0, 3)) == 0:
        pairs = draw(st.lists(st.tuples(st.sampled_from(live), st.sampled_from(live)), min_size=1, max_size=3))
        ledger["records"] = [
            {"incident": f"0.old-{i}", "from": a, "to": b, "ago": 86400 * (i + 1)} for i, (a, b) in enumerate(pairs)
        ]
    alert_revision = draw(st.one_of(st.none(), st.sampled_from([r["n"] for r in revisions])))
    spec = {
        "revisions": revisions,
        "traffic": traffic,
        "ledger": ledger,
        "alert": {"revision": alert_revision} if alert_revision else {},
        "config": {
            "rollback_on": draw(st.sampled_from(["egress", "network", "any"])),
            "field_revert": draw(st.sampled_from(["auto", "offer", "off"])),
        },
    }
    return History(spec)


def same(kinds, a: dict, b: dict) -> bool:
    return not [c for c in template_changes(a, b) if c.kind in kinds]


def restores_a_value(kinds, revisions_newest_first: list[dict], failing: dict) -> list[list[dict]] | None:
    """The runs (oldest first) of Ready revisions up to the failing one when the last change restored the value
    two runs back (… v0, v1, v2 with v2 == v0); else None."""
    names = [r["name"] for r in revisions_newest_first]
    older = [r for r in revisions_newest_first[names.index(failing["name"]) + 1 :][::-1] if _ready(r)]
    runs: list[list[dict]] = []
    for revision in [*older, failing]:
        if runs and same(kinds, runs[-1][0], revision):
            runs[-1].append(revision)
        else:
            runs.append([revision])
    return runs if len(runs) >= 3 and same(kinds, runs[-3][0], runs[-1][0]) else None


def rolled_away_value(kinds, revisions: list[dict], failing: dict, away: set[str]) -> bool:
    return any(r["name"].rsplit("/", 1)[-1] in away and same(kinds, r, failing) for r in revisions)


def harmless_revert(kinds, revisions: list[dict], failing: dict, away: set[str], window: float) -> bool:
    """A revert the watchdog leaves alone: the value it replaced held for less than the window, the restored
    value held at least as long, and the watchdog never rolled it away."""
    runs = restores_a_value(kinds, revisions, failing)
    if runs is None or rolled_away_value(kinds, revisions, failing, away):
        return False
    first = [rfc3339(run[0]["createTime"]) for run in runs[-3:]]
    restored, replaced = first[1] - first[0], first[2] - first[1]
    return replaced < window and restored >= replaced


def _ready(revision: dict) -> bool:
    return not revision.get("deleteTime") and revision["conditions"][0]["state"] == "CONDITION_SUCCEEDED"


def _tags(traffic: list[dict]) -> list[tuple[str, str]]:
    """Each tag with where it points: its revision, or LATEST."""
    return sorted((e["tag"], e.get("revision") or "LATEST") for e in traffic if e.get("tag"))


@given(histories())
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_a_decision_never_makes_things_worse(history):
    service, revisions, config = history.service(), history.revisions(), history.config()
    kinds = KINDS_FOR[config.rollback_on]
    decided = decide(history.alert(), service, revisions, config, 1_760_000_000.0)
    event(decided.reason)
    event(f"remedy {decided.remedy or None}")
    assert decided.action != NEED_MORE  # the history is complete
    assert decided.detail
    by_name = {r["name"].rsplit("/", 1)[-1]: r for r in revisions}
    serving = traffic_split(service)
    away = {r.from_revision for r in _records(service)} | _memory_away(service)
    if decided.reason == "revert":  # 3, 8
        failing = by_name[decided.failing]
        assert harmless_revert(kinds, revisions, failing, away, config.max_change_age_hours * 3600)
        assert not rolled_away_value(kinds, revisions, failing, away)

    if history.alert().revision and serving.get(history.alert().revision, 0) == 0:  # 5
        assert decided.action == NOTHING
        assert not decided.traffic
        return
    if not (decided.action == ROLLBACK or decided.would_roll_back):
        return  # reports and nothings send no traffic update (the handler acts on ROLLBACK only)

    failing = by_name[decided.failing]
    target = by_name[decided.target]
    assert _ready(target)  # 1
    assert not same(kinds, target, failing)  # 2
    gained = [r for r, p in decided.split.items() if p > serving.get(r, 0)]
    assert decided.target in gained
    for name in gained:
        assert _ready(by_name[name])  # 1
        assert not same(kinds, by_name[name], failing)  # 2
    assert not harmless_revert(kinds, revisions, failing, away, config.max_change_age_hours * 3600)  # 3
    assert _tags(list(decided.traffic)) == _tags(service.get("traffic", []))  # 4
    assert sum(e["percent"] for e in decided.traffic) == 100
    assert sum(decided.split.values()) == 100
    good_serving = [
        n for n, p in serving.items()
        if p > 0 and n != decided.failing and n in by_name and _ready(by_name[n])
        and not same(kinds, by_name[n], failing) and n not in away
    ]  # fmt: skip
    if good_serving:
        assert decided.target in good_serving  # 6
    if decided.action == ROLLBACK:  # 7
        window = config.max_change_age_hours * 3600
        assert rfc3339(by_name[decided.breaking]["createTime"]) >= history.alert().started_at - window
    if decided.remedy == field_revert.FIELD_REVERT:  # 9
        assert decided.action == ROLLBACK or decided.would_roll_back
        _field_revert_keeps_the_code(service, failing, target, decided)


def _field_revert_keeps_the_code(service: dict, failing: dict, target: dict, decided) -> None:
    digests = {str(c.get("name") or i): f"sha256:{abs(hash(c['image'])):064x}"[:71] for i, c in
               enumerate(failing["containers"])}  # fmt: skip
    plan = field_revert.plan(service, failing, target, digests, "0.property")
    assert isinstance(plan, field_revert.Plan)
    new = plan.template
    assert [c["image"] for c in new["containers"]] == [
        field_revert.pin_image(c["image"], digests[str(c.get("name") or i)])
        for i, c in enumerate(failing["containers"])
    ]
    assert new.get("vpcAccess", {}) == target.get("vpcAccess", {})
    assert cloud_sql_instances(new) == cloud_sql_instances(target)
    sql_moved = cloud_sql_instances(failing) != cloud_sql_instances(target)
    for change in template_changes(failing, new):  # nothing else of the failing revision's configuration moved
        mounts = sql_moved and change.field.endswith(".volumeMounts")  # the Cloud SQL socket mount goes with it
        assert change.kind in field_revert.REVERTED_KINDS or change.field.endswith(".image") or mounts, change
    share = decided.split[decided.target]
    moved = field_revert.moved_traffic(list(decided.traffic), decided.target, plan.name)
    assert sum(e["percent"] for e in moved) == 100
    assert {e["revision"]: e["percent"] for e in moved if e.get("percent")} == {plan.name: share}
    assert _tags(moved) == _tags(list(decided.traffic))
    released = field_revert.moved_traffic(list(decided.traffic), decided.target, plan.name, release=True)
    assert [(e.get("revision", "LATEST"), e["percent"]) for e in released if e.get("percent")] == [("LATEST", share)]
    assert _tags(released) == _tags(list(decided.traffic))


def _memory_away(service: dict) -> set[str]:
    from watchdog.core import ledger

    memory = ledger.read(service.get("annotations"))
    return set(memory.away) if isinstance(memory, ledger.Ledger) else set()


def _records(service: dict):
    from watchdog.core import ledger

    return ledger.records(service.get("annotations"))
