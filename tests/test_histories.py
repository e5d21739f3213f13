"""decide() over realistic service histories: one named JSON case per rule (tests/fixtures/histories/).

Each case says what a careful on-call engineer would expect the watchdog to do
in that history (``expect``), and why (``why``).
"""

from __future__ import annotations

import pytest

from tests import histories
from tests.credentials import CREDENTIALS, HARMLESS
from watchdog.core.changes import HIDDEN
from watchdog.core.decision import NEED_MORE, decide


@pytest.mark.parametrize("name", histories.names())
def test_history(name):
    history = histories.load(name)
    expect = history.spec["expect"]
    decided = decide(history.alert(), history.service(), history.revisions(), history.config(), histories.NOW)
    assert decided.action != NEED_MORE
    assert (decided.action, decided.reason) == (expect["action"], expect["reason"]), decided.detail
    assert decided.target == history.name(expect.get("target")), decided.detail
    if "failing" in expect:
        assert decided.failing == history.name(expect["failing"])
    if "breaking" in expect:
        assert decided.breaking == history.name(expect["breaking"])
    if "breaking_deleted" in expect:
        assert decided.breaking_deleted is expect["breaking_deleted"]
    if "split" in expect:
        assert decided.split == {history.name(int(k)): v for k, v in expect["split"].items()} | {
            k: v for k, v in decided.split.items() if v == 0
        }
        assert sum(e["percent"] for e in decided.traffic) == 100
    if "trust" in expect:
        assert decided.trust == expect["trust"]
    if "tags" in expect:
        assert sorted(e["tag"] for e in decided.traffic if e.get("tag")) == sorted(expect["tags"])
    if "tag_on_target" in expect:
        [entry] = [e for e in decided.traffic if e.get("tag") == expect["tag_on_target"]]
        assert (entry["revision"], entry["percent"]) == (decided.target, 100)
    if "remedy" in expect:
        assert decided.remedy == expect["remedy"]
    if "followed" in expect:
        assert decided.followed == expect["followed"]
    if "taken_out" in expect:
        assert [list(t) for t in decided.taken_out] == [[history.name(n), image] for n, image in expect["taken_out"]]
    assert decided.loud is expect.get("loud", False)
    assert decided.detail


def test_every_history_says_why():
    for name in histories.names():
        spec = histories.load(name).spec
        assert spec.get("why"), name
        assert set(spec) <= {"name", "why", "service", "revisions", "traffic", "ledger", "alert", "config", "expect"}


class TestCredentialsStayHidden:
    """Env values of a breaking revision that look like credentials are hidden whatever their name."""

    def test_credential_shapes_are_hidden_and_clues_stay(self):
        from watchdog.core.changes import template_changes

        history = histories.load("incident_egress_flip")
        newest, older = history.revisions()[0], history.revisions()[1]
        newest["containers"][0]["env"] = [{"name": k, "value": v} for k, v in {**CREDENTIALS, **HARMLESS}.items()]
        changes = {c.field.rsplit(".", 1)[-1]: c for c in template_changes(older, newest)}
        for name in CREDENTIALS:
            assert changes[name].new == HIDDEN, name
        assert changes["DB_CONNECT_TIMEOUT_SECONDS"].new == '"15"'
        assert changes["DATABASE_HOST"].new == HIDDEN  # a path is not a known-harmless shape: default deny
        text = " ".join(str(c) for c in changes.values())
        for value in CREDENTIALS.values():
            assert value.split("\n")[0] not in text


# --- how much history a decision reads: pages as watchdog/edges/cloudrun.py lists them (100, then 1,000 at a time)


def _pages_read(name: str):
    """Decide as the alert flow does: the first page of 100, then listings of 1,000, until not NEED_MORE."""
    history = histories.load(name)
    revisions, service, config = history.revisions(), history.service(), history.config()
    loaded, pages, memo = 100, 1, {}
    while True:
        decided = decide(history.alert(), service, revisions[:loaded], config, histories.NOW,
                         history_complete=loaded >= len(revisions), memo=memo)  # fmt: skip
        if decided.action != NEED_MORE:
            return history, decided, pages
        loaded, pages = (1000 if loaded < 1000 else loaded + 1000), pages + 1


@pytest.mark.parametrize(
    ("name", "pages", "why"),
    [
        (
            "recurrence_under_3000_revisions",
            3,
            "the newest revision of the value before the change is 1,999 back: the recurrence rule reads nothing older, "
            "because private-ranges-only held for longer than the window",
        ),
        ("old_flip_29_deploys_on_top", 1, "31 revisions: one page"),
        (
            "old_flip_2000_revisions",
            4,
            "the flip and the revision before it are 2,000 back: every listing is read to name it and its age",
        ),
        ("hotfix_on_top", 1, "the common case: one page"),
    ],
)
def test_a_decision_reads_only_the_pages_it_needs(name, pages, why):
    history, decided, read = _pages_read(name)
    assert read == pages, why
    assert decided.breaking == history.name(history.spec["expect"]["breaking"]), decided.detail
