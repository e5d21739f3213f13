"""The rollback target: the known-good revision that takes the failing share, and the split after.

Rule 9 of :mod:`watchdog.core.decision`. Pure code: the service, its :class:`History`, the
ledger and the split serving now in; a :class:`Target` or :class:`NoTarget` out.

The target, first that applies:

- revisions serving now, other than the failing one, Ready and without the
  failing value: they keep their share and take the failing share in
  proportion (a two-way canary: 100% to the stable side). "serving 90% now";
- the newest Ready revision before the breaking one that is not a 0%
  tag-only preview: "served before the breaking deploy";
- a revision the ledger shows serving (an earlier rollback's target, or a
  share in the traffic before one);

never a revision with the failing value, never one the watchdog rolled away
from before. Every traffic entry with a tag stays (tags at 0%, a tag on a
target carries its share), as ``gcloud run services update-traffic`` does
(:func:`watchdog.core.traffic.rollback_traffic`).

Once the target is known, :func:`breaking` names the breaking revision: the
oldest Ready revision after the target with the failing revision's value, or
a deleted one the history still shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.core import ledger
from watchdog.core.history import History
from watchdog.core.traffic import is_ready, tagged_revisions, was_ready


@dataclass(frozen=True)
class Target:
    revision: str  # the revision that takes the most traffic after the rollback
    split: dict[str, int]  # percent per revision after the rollback
    trust: str  # why the target is trusted
    moved_from: tuple[str, ...]  # revisions whose share moves: the failing one and any with its value


@dataclass(frozen=True)
class NoTarget:
    need_more: bool  # the revisions not read yet could still show one


def choose(
    service: dict,
    history: History,
    memory: ledger.Ledger,
    serving: dict[str, int],
    failing: str,
    fi: int,
    breaking_at: int,
    prefer: str = "",
) -> Target | NoTarget:
    """The target for ``failing`` (at index ``fi``), whose value the revision at ``breaking_at`` brought in.

    ``prefer`` (a deploy-time hold: the revision that served before the deploy) wins over the rules
    after the first, when it is good: the hold promised to go back there."""
    failing_rev = history.revisions[fi]
    away = memory.rolled_away

    def good(name: str) -> bool:
        revision = history.get(name)
        return (
            revision is not None
            and name != failing
            and name not in away
            and is_ready(revision)
            and not history.same(revision, failing_rev)
        )

    def same_as_failing(name: str) -> bool:
        revision = history.get(name)
        return revision is not None and bool(revision) and history.same(revision, failing_rev)

    bad = tuple(n for n in serving if serving[n] > 0 and (n == failing or same_as_failing(n)))
    keep = {n: p for n, p in serving.items() if p > 0 and n not in bad}
    candidates = [n for n in keep if good(n)]
    if candidates:
        split = _spread(keep, candidates, sum(serving[n] for n in bad))
        target = max(candidates, key=lambda n: (split[n], str((history.get(n) or {}).get("createTime", ""))))
        return Target(target, split, f"serving {serving[target]}% now", bad)

    if prefer and good(prefer):
        return Target(prefer, _pin(keep, prefer, bad), "served before the deploy", bad)
    tag_only = tagged_revisions(service) - {n for n, p in serving.items() if p > 0}
    for k in history.ready_after(breaking_at):
        name = history.names[k]
        if name in tag_only and name not in memory.rolled_to:
            continue  # a --no-traffic preview never served: the one before it did
        if good(name):
            return Target(name, _pin(keep, name, bad), "served before the breaking deploy", bad)
        break
    evidence = _ledger_evidence(memory)
    shown = sorted(
        (history.index[n] for n in evidence if n in history.index and history.index[n] > fi and good(n)),
    )
    if shown:
        name = history.names[shown[0]]
        return Target(name, _pin(keep, name, bad), evidence[name], bad)
    return NoTarget(need_more=not history.complete and any(n not in history.index for n in evidence))


def breaking(history: History, fi: int, ti: int, walked: int) -> tuple[int, bool]:
    """(index of the breaking revision, whether it is deleted), given the target at index ``ti``.

    ``walked`` is the breaking revision the walk back from ``fi`` found; it stands when the
    target is not older than the failing revision.
    """
    if ti <= fi:
        return walked, False
    revisions, failing_rev = history.revisions, history.revisions[fi]
    ready = max(
        k for k in range(fi, ti) if k == fi or (is_ready(revisions[k]) and history.same(revisions[k], failing_rev))
    )
    deleted = next(
        (k for k in range(ti - 1, ready, -1)
         if revisions[k].get("deleteTime") and was_ready(revisions[k]) and history.same(revisions[k], failing_rev)),
        None,
    )  # fmt: skip
    return (ready, False) if deleted is None else (deleted, True)


def _ledger_evidence(memory: ledger.Ledger) -> dict[str, str]:
    """Revisions the ledger shows serving, with the words that say so."""
    found: dict[str, str] = {}
    for record in sorted(memory.records, key=lambda r: r.at, reverse=True):
        found.setdefault(record.to_revision, f"served after the watchdog's rollback for incident {record.incident}")
        for revision, percent, _tag in record.before:
            if percent > 0 and revision != "LATEST":
                found.setdefault(revision, f"served before the watchdog's rollback for incident {record.incident}")
    return found


def _spread(keep: dict[str, int], takers: list[str], share: int) -> dict[str, int]:
    """``keep`` with ``share`` percent added to ``takers`` in proportion to what they serve (sums to 100)."""
    base = sum(keep[n] for n in takers)
    exact = {n: keep[n] + share * keep[n] / base for n in takers}
    split = dict(keep)
    for n in takers:
        split[n] = int(exact[n])
    leftover = 100 - sum(split.values())
    for n in sorted(takers, key=lambda n: exact[n] - int(exact[n]), reverse=True)[:leftover]:
        split[n] += 1
    return split


def _pin(keep: dict[str, int], target: str, bad: tuple[str, ...]) -> dict[str, int]:
    """The share of ``bad`` revisions moves to ``target``; other serving revisions keep theirs."""
    split = dict(keep)
    split[target] = split.get(target, 0) + 100 - sum(keep.values())
    return split
