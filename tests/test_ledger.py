"""The ledger's records survive the annotation they are written to, field for field (a card restated from
the record, a report re-sent, an undo and a verdict all read them back)."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from watchdog.core import ledger

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
revision = st.from_regex(r"svc-000[0-9]{2}-[a-z]{3}", fullmatch=True)

records = st.builds(
    ledger.Record,
    incident=st.from_regex(r"0\.[a-z0-9]{6,12}", fullmatch=True),
    from_revision=revision,
    to_revision=revision,
    at=times,
    alert_at=st.none() | times,
    reported=st.booleans(),
    thread=names,
    recovered_at=st.none() | times,
    drill=st.booleans(),
    before=st.lists(st.tuples(revision | st.just("LATEST"), st.integers(0, 100), names), max_size=3).map(tuple),
    after=st.lists(st.tuples(revision, st.integers(1, 100)), max_size=3).map(tuple),
    latest=revision | st.just(""),
    events=st.lists(st.tuples(st.sampled_from(["undo", "pause", "ack"]), names, times, names), max_size=3).map(tuple),
    breaking=revision | st.just(""),
    metric=names,
    state=st.sampled_from(["", "recovered", "escalated", "undone", "unverified"]),
    why=names,
    verdict_at=st.none() | times,
    told_at=st.none() | times,
    policy=names.map(lambda name: name[: ledger.POLICY_CHARS]),
    revert=revision | st.just(""),
    revert_state=st.sampled_from(["", ledger.REVERT_PENDING, ledger.REVERT_SERVING, ledger.REVERT_FAILED]),
    revert_at=st.none() | times,
    threshold=st.none() | st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    percentile=st.none() | st.sampled_from([99, 95, 50, 5]),
    closed_at=st.none() | times,
    note=st.sampled_from(["", "no_traffic"]),
    note_at=st.none() | times,
    note_told_at=st.none() | times,
)


def test_the_record_has_no_field_this_test_leaves_out():
    generated = {"incident", "from_revision", "to_revision", "at", "alert_at", "reported", "thread", "recovered_at",
                 "drill", "before", "after", "latest", "events", "breaking", "metric", "state", "why", "verdict_at",
                 "told_at", "policy", "revert", "revert_state", "revert_at", "threshold", "percentile", "closed_at",
                 "note", "note_at", "note_told_at"}  # fmt: skip
    assert {f.name for f in dataclasses.fields(ledger.Record)} == generated


@given(record=records)
def test_a_record_reads_back_as_it_was_written(record):
    annotations = ledger.with_record({"unrelated": "kept"}, record)
    assert ledger.records(annotations) == [record]
    assert annotations["unrelated"] == "kept"
