"""Property: in every generated history, a decision never makes things worse.

Histories of 3 to 30 revisions with random egress, connector, Cloud SQL,
image, readiness, deletion and tags; traffic splits including canaries,
LATEST and tag-only entries; alerts with and without a revision; ledgers with
earlier rollbacks. For every decision:

1. the target is Ready, and so is every revision that gains traffic;
2. no revision that gains traffic has the failing revision's trigger value;
3. after a revert, there is no automatic rollback;
4. every tag before the update exists after it, on the same revision (or LATEST);
5. nothing changes when the failing revision serves 0%;
6. when a serving revision other than the failing one is Ready, has the good
   value and was never rolled away from, the target is one of those.

The oracles here are written independently of watchdog/core/decision.py.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.histories import History
from watchdog.core.changes import template_changes
from watchdog.core.decision import KINDS_FOR, NEED_MORE, NOTHING, ROLLBACK, decide
from watchdog.core.traffic import traffic_split


@st.composite
def histories(draw) -> History:
    count = draw(st.integers(3, 30))
    revisions = []
    for n in range(1, count + 1):
        revisions.append(
            {
                "n": n,
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
        "config": {"rollback_on": draw(st.sampled_from(["egress", "network", "any"]))},
    }
    return History(spec)


def same(kinds, a: dict, b: dict) -> bool:
    return not [c for c in template_changes(a, b) if c.kind in kinds]


def was_revert(kinds, revisions_newest_first: list[dict], failing: dict) -> bool:
    """The values of Ready revisions up to the failing one, runs collapsed: … v0, v1, v2 with v2 == v0."""
    names = [r["name"] for r in revisions_newest_first]
    older = [r for r in revisions_newest_first[names.index(failing["name"]) + 1 :][::-1] if _ready(r)]
    runs: list[dict] = []
    for revision in [*older, failing]:
        if not runs or not same(kinds, runs[-1], revision):
            runs.append(revision)
    return len(runs) >= 3 and same(kinds, runs[-3], runs[-1])


def _ready(revision: dict) -> bool:
    return not revision.get("deleteTime") and revision["conditions"][0]["state"] == "CONDITION_SUCCEEDED"


def _tags(traffic: list[dict]) -> list[tuple[str, str]]:
    """Each tag with where it points: its revision, or LATEST."""
    return sorted((e["tag"], e.get("revision") or "LATEST") for e in traffic if e.get("tag"))


@given(histories())
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_a_decision_never_makes_things_worse(history):
    service, revisions, config = history.service(), history.revisions(), history.config()
    kinds = KINDS_FOR[config.rollback_on]
    decided = decide(history.alert(), service, revisions, config, 1_760_000_000.0)
    assert decided.action != NEED_MORE  # the history is complete
    assert decided.detail
    by_name = {r["name"].rsplit("/", 1)[-1]: r for r in revisions}
    serving = traffic_split(service)

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
    assert not was_revert(kinds, revisions, failing)  # 3
    assert _tags(list(decided.traffic)) == _tags(service.get("traffic", []))  # 4
    assert sum(e["percent"] for e in decided.traffic) == 100
    assert sum(decided.split.values()) == 100
    away = {r.from_revision for r in _records(service)}
    good_serving = [
        n for n, p in serving.items()
        if p > 0 and n != decided.failing and n in by_name and _ready(by_name[n])
        and not same(kinds, by_name[n], failing) and n not in away
    ]  # fmt: skip
    if good_serving:
        assert decided.target in good_serving  # 6


def _records(service: dict):
    from watchdog.core import ledger

    return ledger.records(service.get("annotations"))
