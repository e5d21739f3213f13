"""The sentinel: a deploy event, read against the service it changes → a :class:`DeployVerdict`.

Pure code. The service and its revisions may be read before the deploy took
effect or after it (an audit entry reaches the watchdog seconds to minutes
late), so every rule below reconstructs the deploy as it really is:

- **its new revision** (:func:`own_revision`): named by the request, else the
  oldest revision created from :data:`TOLERANCE` seconds before the entry on
  with the requested template (a v1 entry is written after its revision was
  created), else the only one created since; "pending" only while none exists;
- **what existed before it**: every other revision created no later than the
  entry. The template is compared with the newest of them: equal means no
  revision comes of the write (gcloud's ``update-traffic`` sends the whole
  service back unchanged);
- **where its traffic goes** (:func:`after_split`): the request's traffic
  (deploys.requested_traffic), else the service's after it; LATEST is the new
  revision;
- **what served before it** (:func:`served_before`): the baseline remembered
  when the deploy was first judged; else the watchdog's own remedy (its pin, or
  its field-revert revision) when that served and this deploy is what moved
  traffic off it; else what serves now without the deploy's own revision,
  read by name when it is not on the first page (the shell reads it).

The promise is the alert path's decision (:func:`promise`):
:func:`watchdog.core.decision.decide` itself, run on the state the deploy
creates (the requested template as a Ready revision created at the entry's
time, serving as the deploy routes traffic) for an alert that names that
revision, with ``served_before`` the baseline and ``started_at`` the entry's
time. The warning names what that decision would do and nothing else: a
rollback target, a field revert, or "will only report: <why>" (a guard, a
change too old, a revert, no matching change). ``hold`` holds exactly when that
decision would roll back and a blocking rule (:data:`BLOCKING`) is introduced
by this deploy: one the serving revision already has is warned about as
"already the case", never held.

Verdicts, first match wins:

1. ``sentinel_off``: ``WATCHDOG_SENTINEL=off``.
2. ``own_write``: the watchdog's own service account wrote it.
3. ``own_revision``: the template is the watchdog's field-revert revision
   (label ``rollback-watchdog=field-revert`` and the name only it gives,
   ``<service>-revert-<6 hex>``: the label alone is inherited by a later
   ``gcloud run deploy``, which sends the service's template back).
4. ``already_warned``: this deploy was warned about (copies of its entries);
   under ``hold`` it is judged again, to hold it once it serves.
5. ``no_template_change``: no revision comes of it, and it does not move
   traffic off the watchdog's remedy.
6. With the watchdog's remedy serving before the deploy:

   - ``pinned``: the new revision gets no traffic from it (0%, or a tag at
     0%): a note in the incident's thread, naming the revision and whether it
     undoes the breaking change;
   - ``releases_pin`` (loud): it moves traffic off the remedy and keeps the
     value the watchdog rolled away from, or puts a rolled-away revision back
     (a drift fix: terraform restoring the old template and LATEST 100%);
   - ``releases_pin_fixed``: it moves traffic off the remedy with a fix (the
     rollback target's value): a note in the thread.

7. ``risky``: a precheck rule fails (:func:`watchdog.core.precheck.evaluate`,
   the rules of ``rollback-watchdog check``).
8. ``no_risky_change``: nothing to say.

A write without a template change that releases the remedy is held only when
it comes from a declarative tool restoring its recorded state
(:data:`DECLARATIVE`: terraform). Any other such write (``gcloud run services
update-traffic``, the console's traffic page) is a human's decision: warned,
never held.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime

from watchdog.config import Config
from watchdog.core import decision, field_revert, guards, ledger, precheck
from watchdog.core.changes import Change, egress, template_changes
from watchdog.core.deploys import DeployEvent, comparable
from watchdog.core.intake import Alert, rfc3339
from watchdog.core.report import Message, code, escape
from watchdog.core.traffic import LATEST_TYPE, is_ready, short_name, traffic_split, was_ready

WARN = "warn"
NOTE = "note"  # a message in the pinned incident's thread
NOTHING = "nothing"
# Rules that WATCHDOG_SENTINEL=hold acts on: the staging incident's combination, and a connector removed.
BLOCKING = ("all-traffic-cloud-sql", "connector-removed")
HOLD_WAIT = 900.0  # seconds after the deploy to wait for its revision to take traffic, then give up
# Seconds between a deploy request and the creation of its revision, either way: a v1 entry is written once
# the request is done, after its revision was created (seconds); a v2 entry when the operation starts.
TOLERANCE = 30.0
# A write without a template change that releases the watchdog's remedy is held only from these tools: they
# restore their recorded state (a drift fix), while gcloud update-traffic or the console is a human's move.
DECLARATIVE = ("terraform",)
PENDING = "the new revision"  # its name while it does not exist (names have no spaces)
RELEASED_EVENT = "deploy_released"  # ledger record event: a deploy moved traffic off the watchdog's remedy
# The warning for a deploy: already posted, being posted by another delivery, claimed long ago (that delivery
# died), or not yet claimed (watchdog/flows/deploy_events.py).
POSTED, CLAIMED, STALE, FREE = "posted", "claimed", "stale", "free"


@dataclass(frozen=True)
class Remedy:
    """The watchdog's rollback whose revision served before the deploy."""

    record: ledger.Record
    split: dict[str, int]  # what it set serving
    pinned: bool  # traffic pinned by revision (a field revert that follows LATEST again is not)


@dataclass(frozen=True)
class DeployVerdict:
    action: str  # WARN, NOTE or NOTHING
    reason: str
    detail: str
    baseline: str = ""  # the revision serving before the deploy
    findings: tuple[precheck.Finding, ...] = ()
    changes: tuple[Change, ...] = ()
    would: str = ""  # what the watchdog does if the deploy's symptoms alert (from the promise)
    pinned: ledger.Record | None = None  # the watchdog's rollback whose revision served before the deploy
    undoes: bool | None = None  # remedy: the deploy puts the rollback target's value back
    hold: bool = False  # WATCHDOG_SENTINEL=hold: pin traffic back once the deploy serves (through the alert path)
    repeat: bool = False  # already warned: a redelivery that only checks the hold
    unread: bool = False  # not in WATCHDOG_SERVICES, so not read (the function may not): the request alone was judged
    promise: decision.Decision | None = None  # the alert path's decision on the state the deploy creates
    revision: str = ""  # the deploy's new revision, once it exists
    serves: str = ""  # the revision the deploy puts traffic on (its own, or one put back); "" for none yet
    route: str = ""  # where the deploy sends traffic, in words
    loud: bool = False  # page: it releases the watchdog's remedy with the value rolled away from
    releases: bool = False  # it moves traffic off the watchdog's remedy
    keeps: bool = False  # it keeps the value the watchdog rolled away from
    put_back: str = ""  # a revision the watchdog rolled away from that serves again because of it
    creates: bool = True  # a revision comes of it (its template differs from the newest before it)
    need_more: bool = False  # the promise needs older revisions: read the next page and judge again


def judge(
    event: DeployEvent,
    service: dict,
    revisions: list[dict],
    config: Config,
    now: float = 0.0,
    *,
    complete: bool = True,
    memo: dict | None = None,
) -> DeployVerdict:
    """The sentinel's verdict for one deploy event; ``revisions`` newest first (those read so far, plus any read
    by name: :func:`wanted`), ``complete`` when no page is left, ``now`` the clock (the alert path's guards)."""
    if config.sentinel == "off":
        return DeployVerdict(NOTHING, "sentinel_off", "WATCHDOG_SENTINEL=off")
    if config.own_principal and event.principal == config.own_principal:
        return DeployVerdict(NOTHING, "own_write", f"written by the watchdog itself ({event.principal})")
    if _own_field_revert(event):
        return DeployVerdict(NOTHING, "own_revision", f"the watchdog's own field-revert revision {event.revision}")
    read = ledger.read(service.get("annotations"))
    memory = read if isinstance(read, ledger.Ledger) else ledger.Ledger()
    repeat = event.key in memory.warned
    if repeat and config.sentinel != "hold":
        return DeployVerdict(NOTHING, "already_warned", f"deploy {event.key} was already warned about")
    deploy = read_deploy(event, service, revisions, memory)
    if not deploy.creates and not (deploy.releases and deploy.serves):
        name = short_name(deploy.previous.get("name", "")) if deploy.previous else ""
        return DeployVerdict(NOTHING, "no_template_change", f"the requested template equals {name}'s",
                             baseline=deploy.baseline, repeat=repeat, creates=False)  # fmt: skip
    by_name = {short_name(r.get("name", "")): r for r in revisions}
    at = rfc3339(event.at)
    moment = at if at is not None else now
    candidate = (
        _hypothetical(event, deploy.previous, deploy.own, deploy.new, moment)
        if deploy.creates
        else by_name.get(deploy.serves)
    )
    base = by_name.get(deploy.baseline)
    verdict = precheck.evaluate(base, candidate) if candidate is not None else precheck.Verdict(())
    keeps, undoes = _against_rollback(deploy.remedy, candidate, by_name, decision.KINDS_FOR[config.rollback_on])
    put_back = deploy.serves if deploy.remedy and not deploy.creates and deploy.serves in memory.rolled_away else ""
    chosen = promise(event, service, deploy.earlier, config, moment, now,
                     new=candidate if deploy.creates else None, failing=deploy.serves or deploy.new,
                     baseline=deploy.baseline, routing=deploy.routing, complete=complete, memo=memo)  # fmt: skip
    if chosen.action == decision.NEED_MORE:
        return DeployVerdict(NOTHING, "need_more_revisions", chosen.detail, need_more=True)
    hold = holds(config, chosen, verdict, base, event, deploy.creates)
    loud = bool(deploy.releases and (keeps or put_back))
    remedy, releases, serves = deploy.remedy, deploy.releases, deploy.serves
    route = describe_route(event, deploy.after, deploy.new, serves, deploy.creates, remedy, releases, deploy.routing)
    found = {
        "baseline": deploy.baseline,
        "findings": verdict.findings,
        "changes": verdict.changes,
        "pinned": remedy.record if remedy else None,
        "undoes": undoes,
        "hold": hold,
        "repeat": repeat,
        "promise": chosen,
        "revision": short_name(deploy.own["name"]) if deploy.own and deploy.creates else "",
        "serves": "" if serves == PENDING else serves,
        "route": route,
        "loud": loud,
        "releases": releases,
        "keeps": bool(keeps),
        "put_back": put_back,
        "creates": deploy.creates,
        "would": _would(chosen, hold, serves if serves and serves != PENDING else "the new revision"),
    }
    where = f"{event.service.service} {route}"
    if remedy is not None and not releases:
        return DeployVerdict(NOTE, "pinned", f"{where} while the watchdog keeps traffic on its rollback", **found)
    if loud:
        what = f"puts {put_back} back" if put_back else "keeps the value the watchdog rolled away from"
        return DeployVerdict(WARN, "releases_pin", f"{where}: it {what}", **found)
    if releases and undoes:
        return DeployVerdict(NOTE, "releases_pin_fixed", f"{where}, with the rollback target's value", **found)
    if not verdict.ok:
        first = next((f for f in verdict.findings if f.severity == precheck.FAIL and not f.allowed), None)
        return DeployVerdict(
            WARN, "risky", f"{event.service.service}: {first.message if first else 'risky configuration'}", **found
        )
    return DeployVerdict(NOTHING, "no_risky_change", "no precheck rule fails", **found)


# --- the deploy as it really is ------------------------------------------------------------------------


@dataclass(frozen=True)
class Deploy:
    """One deploy, reconstructed from the reads (before or after it took effect)."""

    own: dict | None  # its revision, once it exists
    earlier: list[dict]  # the revisions that existed before it, newest first
    previous: dict | None  # the newest of them
    creates: bool  # a revision comes of it
    new: str  # its revision's name (PENDING while it does not exist); "" when it creates none
    routing: tuple[dict, ...] | list[dict]  # its traffic entries (the request's, else the service's after it)
    after: dict[str, int]  # percent per revision once its traffic applies
    remedy: Remedy | None  # the watchdog's remedy, when that is what served before it
    before: dict[str, int]  # percent per revision before it
    baseline: str  # the revision that served before it
    serves: str  # the revision it puts traffic on (its own, or one it puts back); "" for none
    releases: bool  # it moves traffic off the watchdog's remedy


def read_deploy(event: DeployEvent, service: dict, revisions: list[dict], memory: ledger.Ledger) -> Deploy:
    """The deploy as it really is, from a read of the service before or after it took effect."""
    at = rfc3339(event.at)
    own = own_revision(event, service, revisions)
    earlier = [r for r in revisions if r is not own and _existed_before(r, at)]
    previous = earlier[0] if earlier else None
    # a template naming a revision that existed before is that revision's: Cloud Run creates none (or refuses)
    named = (
        bool(event.revision) and own is None and any(short_name(r.get("name", "")) == event.revision for r in earlier)
    )
    creates = not named and (previous is None or comparable(previous) != comparable(event.template))
    new = (short_name(own["name"]) if own else event.revision or PENDING) if creates else ""
    ready = creates and not (own is not None and _failed(own))
    routing = event.traffic if event.traffic is not None else _spec_traffic(service)
    after = after_split(routing, service, new if ready else "")
    remedy = remedy_before(memory, event, at)
    before, baseline = served_before(memory, event, service, earlier, after, remedy, own)
    remedy = remedy if remedy is not None and before == remedy.split else None
    if creates:
        serves = new if after.get(new, 0) > 0 else ""
    else:
        gained = {
            name: percent - before.get(name, 0) for name, percent in after.items() if percent > before.get(name, 0)
        }
        serves = max(gained, key=lambda n: (gained[n], n)) if gained else ""
    releases = remedy is not None and any(after.get(n, 0) < p for n, p in remedy.split.items())
    return Deploy(own, earlier, previous, creates, new, routing, after, remedy, before, baseline, serves, releases)


def holds(
    config: Config, chosen: decision.Decision, verdict: precheck.Verdict, base: dict | None, event: DeployEvent,
    creates: bool,
) -> bool:  # fmt: skip
    """WATCHDOG_SENTINEL=hold holds exactly when the alert path would roll back and the deploy introduces a
    blocking rule: one the serving revision already has is not the deploy's doing. A write without a template
    change is held only from a declarative tool (a drift fix); any other is a human's traffic move."""
    failed = {f.rule for f in verdict.findings if f.severity == precheck.FAIL and not f.allowed}
    introduced = failed - already(base)
    deliberate = not creates and event.user_agent not in DECLARATIVE
    return (
        config.sentinel == "hold"
        and chosen.action == decision.ROLLBACK
        and bool(introduced & set(BLOCKING))
        and not deliberate
    )


def _against_rollback(
    remedy: Remedy | None, candidate: dict | None, by_name: dict[str, dict], kinds: set[str]
) -> tuple[bool, bool | None]:
    """(it keeps the value the watchdog rolled away from, it puts the rollback target's value back)."""
    if remedy is None or candidate is None:
        return False, None
    rolled = by_name.get(remedy.record.from_revision)
    keeps = rolled is not None and _same(rolled, candidate, kinds)
    target = by_name.get(remedy.record.to_revision)
    return keeps, target is not None and _same(target, candidate, kinds) and not keeps


def own_revision(event: DeployEvent, service: dict, revisions: list[dict]) -> dict | None:
    """The revision the deploy created, once it exists: named by the request, else the oldest created from
    :data:`TOLERANCE` seconds before the entry on with the requested template, else the service's latest
    created revision when it is the only one created since; None while there is none."""
    at = rfc3339(event.at)
    if event.revision:
        found = next((r for r in revisions if short_name(r.get("name", "")) == event.revision), None)
        created = rfc3339(found.get("createTime")) if found else None
        return found if found is not None and (at is None or created is None or created >= at - TOLERANCE) else None
    if at is None:
        return None
    recent = [r for r in revisions if (rfc3339(r.get("createTime")) or 0.0) >= at - TOLERANCE]  # newest first
    wanted_template = comparable(event.template)
    matching = [r for r in recent if comparable(r) == wanted_template]
    if matching:
        return matching[-1]
    latest = short_name(service.get("latestCreatedRevision", ""))
    if len(recent) == 1 and short_name(recent[0].get("name", "")) == latest:
        return recent[0]
    return None


def after_split(routing: tuple[dict, ...] | list[dict], service: dict, new: str) -> dict[str, int]:
    """Percent per revision once the deploy's traffic applies: LATEST is ``new`` (the deploy's revision, Ready)
    or, without one, the service's latest Ready revision; no traffic at all is 100% LATEST."""
    latest = new or short_name(service.get("latestReadyRevision", ""))
    split: dict[str, int] = {}
    for entry in routing or ({"type": LATEST_TYPE, "percent": 100},):
        revision = short_name(entry.get("revision", "")) if entry.get("type") != LATEST_TYPE else latest
        if revision:
            split[revision] = split.get(revision, 0) + int(entry.get("percent") or 0)
    return split


def remedy_before(memory: ledger.Ledger, event: DeployEvent, at: float | None) -> Remedy | None:
    """The watchdog's newest rollback, while its revision may still have served when the deploy came: not
    undone, not released by an earlier deploy, not seen moved by verification before the entry."""
    record = memory.newest
    if record is None or record.undone_at() is not None:
        return None
    if at is not None and record.at > at + TOLERANCE:
        return None  # the rollback came after the deploy
    if any(e[0] == RELEASED_EVENT and e[3] != event.key for e in record.events):
        return None  # another deploy released it already
    moved_at = record.verdict_at if record.state == "undone" and record.why == "traffic_moved" else None
    if record.state == "undone" and (moved_at is None or at is None or moved_at < at - TOLERANCE):
        return None  # verification saw traffic moved off it before this deploy
    split = {name: int(percent) for name, percent in record.after if int(percent) > 0} or {record.to_revision: 100}
    follows = record.revert and record.revert_state == ledger.REVERT_SERVING
    pinned = not (follows and any(r == "LATEST" and int(p) > 0 for r, p, _t in record.before))
    return Remedy(record, split, pinned)


def served_before(
    memory: ledger.Ledger,
    event: DeployEvent,
    service: dict,
    earlier: list[dict],
    after: dict[str, int],
    remedy: Remedy | None,
    own: dict | None,
) -> tuple[dict[str, int], str]:
    """(the split serving before the deploy, its main revision).

    A read after the deploy took effect no longer shows what served before it, so, first that applies: the
    baseline remembered when the deploy was first judged; the watchdog's remedy, when it serves now or when
    the deploy's own traffic is what serves now (this deploy moved traffic off it); what serves now without the
    deploy's own revision; else the newest Ready revision before the entry."""
    now = {name: percent for name, percent in traffic_split(service).items() if percent > 0}
    remembered = memory.baseline_of(event.key)
    if remedy is not None:
        explained = now == {name: percent for name, percent in after.items() if percent > 0}
        if (remembered and remembered in remedy.split) or (not remembered and (now == remedy.split or explained)):
            return dict(remedy.split), _main(remedy.split)
    if remembered:
        return {remembered: 100}, remembered
    existed = {short_name(r.get("name", "")) for r in earlier}
    own_name = short_name(own.get("name", "")) if own else ""
    kept = {name: percent for name, percent in now.items() if name != own_name and name in existed}
    if kept:
        return kept, _main(kept)
    fallback = next((r for r in earlier if is_ready(r)), None)
    return {}, short_name(fallback.get("name", "")) if fallback else ""


def wanted(event: DeployEvent, service: dict, revisions: list[dict]) -> tuple[str, ...]:
    """Revisions the verdict needs that the pages read so far do not hold, to read by name: what serves, what
    the deploy routes to, the remembered baseline, and the watchdog's newest rollback (from, to, field revert)."""
    names = [n for n, p in traffic_split(service).items() if p > 0]
    names += [short_name(e.get("revision", "")) for e in (event.traffic or ()) + tuple(_spec_traffic(service))]
    names += [short_name(service.get("latestReadyRevision", ""))]
    read = ledger.read(service.get("annotations"))
    if isinstance(read, ledger.Ledger):
        names.append(read.baseline_of(event.key))
        if read.newest is not None:
            record = read.newest
            names += [record.from_revision, record.to_revision, record.revert, *(n for n, _p in record.after)]
    have = {short_name(r.get("name", "")) for r in revisions}
    return tuple(dict.fromkeys(n for n in names if n and n not in have))


# --- the promise: the alert path's decision on the state the deploy creates ------------------------------


def hold_alert(event: DeployEvent, revision: str, baseline: str, started_at: float | None) -> Alert:
    """The alert the deploy-time hold goes through the alert path with, and the one the promise decides on."""
    return Alert(
        incident_id=f"hold-{event.key}",
        state="open",
        service=event.service,
        revision=revision,
        policy_name="deploy-time hold (WATCHDOG_SENTINEL=hold)",
        condition_kind="sentinel",
        started_at=started_at,
        found_by="the deploy's audit log entry",
        served_before=baseline,
    )


def promise(
    event: DeployEvent,
    service: dict,
    earlier: list[dict],
    config: Config,
    moment: float,
    now: float,
    *,
    new: dict | None,
    failing: str,
    baseline: str,
    routing: tuple[dict, ...] | list[dict],
    complete: bool = True,
    memo: dict | None = None,
) -> decision.Decision:
    """What the alert path decides if the deploy's revision (``new``, created by it; else ``failing``, a
    revision it puts back) alerts right after the deploy: :func:`watchdog.core.decision.decide` on the service
    as the deploy leaves it. A service the watchdog may not change is answered before anything else, as the
    alert path does."""
    alert = hold_alert(event, failing, baseline, moment)
    outside = guards.outside_scope(alert, config)
    if outside:
        return decision.Decision(decision.REPORT, outside[0], outside[1], failing=failing)
    revisions = sorted([new, *earlier] if new is not None else earlier, key=_created, reverse=True)
    state = _after_service(service, routing, new)
    return decision.decide(alert, state, revisions, config, now, history_complete=complete, memo=memo)


def already(baseline: dict | None) -> set[str]:
    """The failing rules the serving revision has by itself (all-traffic with Cloud SQL): already the case."""
    if baseline is None:
        return set()
    return {f.rule for f in precheck.evaluate(None, baseline).findings if f.severity == precheck.FAIL}


def _would(chosen: decision.Decision, hold: bool, serves: str) -> str:
    """What the watchdog does if the deploy's revision alerts: the promise's decision, in words."""
    if chosen.action == decision.ROLLBACK:
        revert = chosen.remedy == field_revert.FIELD_REVERT
        if hold:
            then = ", then revert the egress on a new revision that keeps the deploy's code" if revert else ""
            return f"will pin traffic back to {chosen.target} as soon as {serves} serves{then} (WATCHDOG_SENTINEL=hold)"
        if revert:
            return (
                f"will revert the egress on a new revision that keeps the deploy's code if its symptoms alert "
                f"(traffic pinned to {chosen.target} meanwhile)"
            )
        return f"will roll back to {chosen.target} if its symptoms alert"
    if chosen.reason == "not_serving":
        return "acts on it only once it takes traffic: this deploy gives it none"
    return f"will only report: {chosen.detail}"


def _hypothetical(event: DeployEvent, previous: dict | None, own: dict | None, name: str, created: float) -> dict:
    """The deploy's revision as a Ready revision: the real one once it exists, else the requested template over
    the revision before it (:func:`_over`)."""
    if own is not None:
        revision = copy.deepcopy(own)
    else:
        revision = (
            _over(previous, event.template, v1=event.api == "v1")
            if previous is not None
            else copy.deepcopy(event.template)
        )
        parent = event.service.name
        revision.update(name=f"{parent}/revisions/{name}", service=parent, createTime=_stamp(created))
    revision.pop("deleteTime", None)
    revision["conditions"] = [{"type": "Ready", "state": "CONDITION_SUCCEEDED"}]
    return revision


# RevisionTemplate fields a revision carries. The trigger fields are the request's as it is (a template without
# vpcAccess has no VPC access); the others, when the request leaves them out, are the revision before's: a v1
# request's are not converted (deploys._v1_template), and a v2 one's take server defaults the revision before
# shows. Either way, not a change the remedy (a pin or a field revert) should count.
_TRIGGER_FIELDS = ("vpcAccess", "serviceAccount")
_TEMPLATE_FIELDS = ("containers", "volumes", "vpcAccess", "serviceAccount", "scaling", "timeout",
                    "maxInstanceRequestConcurrency", "executionEnvironment", "sessionAffinity")  # fmt: skip


def _over(previous: dict, requested: dict, *, v1: bool) -> dict:
    revision = {k: copy.deepcopy(previous[k]) for k in _TEMPLATE_FIELDS if k in previous}
    revision.update({k: copy.deepcopy(v) for k, v in requested.items() if k != "containers"})
    for key in _TRIGGER_FIELDS:
        if key not in requested:
            revision.pop(key, None)
    asked = [v for v in requested.get("volumes") or [] if isinstance(v, dict)]
    # v1: only the Cloud SQL volume is converted, the others are the revision before's; v2: the request's list
    others = [v for v in revision.get("volumes") or [] if isinstance(v, dict) and "cloudSqlInstance" not in v]
    revision["volumes"] = (others if v1 else []) + asked
    containers = []
    for index, container in enumerate(requested.get("containers") or []):
        before = (previous.get("containers") or [])[index:index + 1]  # fmt: skip
        merged = copy.deepcopy(before[0]) if before and isinstance(before[0], dict) else {}
        merged.update(copy.deepcopy(container))
        containers.append(merged)
    revision["containers"] = containers
    if not revision["volumes"]:
        revision.pop("volumes")
    return revision


def _after_service(service: dict, routing: tuple[dict, ...] | list[dict], new: dict | None) -> dict:
    """The service as the deploy leaves it: its traffic, and its new revision as the latest (Ready)."""
    state = dict(service)
    if new is not None:
        state["latestCreatedRevision"] = state["latestReadyRevision"] = new["name"]
    latest = short_name(state.get("latestReadyRevision", ""))
    entries = [dict(e) for e in (routing or ({"type": LATEST_TYPE, "percent": 100},))]
    state["traffic"] = entries
    state["trafficStatuses"] = [
        {**e, "revision": e.get("revision") or latest} if e.get("type") == LATEST_TYPE else e for e in entries
    ]
    return state


# --- the verdict in words --------------------------------------------------------------------------------


def describe_route(
    event: DeployEvent,
    after: dict[str, int],
    new: str,
    serves: str,
    creates: bool,
    remedy: Remedy | None,
    releases: bool,
    routing: tuple[dict, ...] | list[dict],
) -> str:
    """Where the deploy sends traffic: "routes 100% to the new revision and releases the watchdog's pin",
    "gets 0% (pinned)", "tagged `preview` at 0%"."""
    tags = [e["tag"] for e in routing or () if e.get("tag") and short_name(e.get("revision", "")) == new and new]
    if creates and not serves:
        if tags:
            text = f"tagged {code(tags[0])} at 0%"
        elif remedy is not None and remedy.pinned:
            text = "gets 0% (pinned)"
        else:
            kept = ", ".join(f"{code(n)} {p}%" for n, p in sorted(after.items(), key=lambda kv: -kv[1]) if p > 0)
            text = "gets 0%" + (f": traffic stays on {kept}" if kept else "")
    else:
        whom = "the new revision" if creates else code(serves)
        text = f"routes {after.get(serves, 0)}% to {whom}"
        if tags:
            text += f" (tagged {code(tags[0])})"
    if releases and remedy is not None:
        record = remedy.record
        if remedy.pinned:
            text += f" and releases the watchdog's pin on {code(record.restored)}"
        else:
            text += f" and takes over from the watchdog's field-revert revision {code(record.restored)}"
        text += f" (incident {escape(record.incident)})"
    if event.traffic is None:
        text += ", as the service shows after it"
    return text


def render(event: DeployEvent, verdict: DeployVerdict) -> Message:
    """The Slack message: the warning, or the note in the incident's thread. Loud when the deploy releases the
    watchdog's remedy with the value it rolled away from (``<!here>`` in the blocks: edges/slack.py)."""
    ref = event.service
    new = code(verdict.revision or ("revision pending" if verdict.creates else "no new revision"))
    who = f"{escape(event.principal or 'unknown')} via {escape(event.user_agent or 'unknown')}"
    record = verdict.pinned
    if verdict.action == NOTE and record is not None:
        lines = [
            f":pushpin: New deploy of {code(ref.service)} ({new}) by {who} while the watchdog keeps traffic on "
            f"{code(record.restored)} (incident {escape(record.incident)}): it {verdict.route}."
            if verdict.reason == "pinned"
            else f":white_check_mark: Deploy of {code(ref.service)} ({new}) by {who} {verdict.route}.",
            _value_line(event, verdict),
        ]
        if verdict.reason == "pinned":
            route = (
                f"gcloud run services update-traffic {ref.service} --to-latest "
                f"--region {ref.region} --project {ref.project}"
            )
            lines.append(f"Route traffic to it when ready: {code(route)}")
        elif verdict.would:
            lines.append(f"If its symptoms alert, the watchdog {escape(verdict.would)}.")
        return _message(lines, event, loud=False)
    if verdict.reason == "releases_pin":
        if verdict.put_back:
            head = (
                f":rotating_light: *A write to {code(ref.service)} by {who} puts {code(verdict.put_back)} back*, "
                f"a revision the watchdog rolled away from: it {verdict.route}."
            )
            if not verdict.creates:
                head += f" No new revision: the template equals {code(verdict.put_back)}'s."
        else:
            head = f":rotating_light: *Deploy of {code(ref.service)}* ({new}) by {who} {verdict.route}."
        lines = [head, _value_line(event, verdict)]
    else:
        lines = [
            f":warning: *Risky deploy of {code(ref.service)}* ({new}) by {who}"
            + (f" at {escape(event.at)}" if event.at else "")
            + f": it {verdict.route}."
        ]
    for finding in verdict.findings:
        if finding.severity == precheck.FAIL and not finding.allowed:
            lines.append(f"• *{escape(finding.rule)}*: {escape(finding.message)}")
            if finding.fix:
                lines.append(f"   _Fix:_ {escape(finding.fix)}")
    if verdict.unread:
        lines.append("Serving now: not read (the watchdog reads only the services in WATCHDOG_SERVICES), so only the "
                     f"request was judged. The watchdog {escape(verdict.would)}.")  # fmt: skip
    else:
        lines.append(f"Serving before it: {code(verdict.baseline or 'none')}. The watchdog {escape(verdict.would)}.")
    check = f"rollback-watchdog check --project {ref.project} --region {ref.region} --service {ref.service}"
    lines.append(f"Check it any time: {code(check)}")
    return _message(lines, event, loud=verdict.loud)


def posting(memory: ledger.Ledger, key: str, now: float, lease: float) -> str:
    """Where the warning for deploy ``key`` stands: POSTED, CLAIMED (another delivery is posting it, since less
    than ``lease`` seconds), STALE (claimed longer ago: that delivery died) or FREE."""
    if key in memory.warned:
        return POSTED
    claimed = memory.claimed_at(key)
    if claimed is None:
        return FREE
    return CLAIMED if now - claimed < lease else STALE


def card_key(event: DeployEvent) -> str:
    """The warning's key in Slack message metadata, to find a post whose answer was lost."""
    return event.incident_id


def _value_line(event: DeployEvent, verdict: DeployVerdict) -> str:
    """What the deploy does to the value the watchdog rolled away from."""
    record = verdict.pinned
    value = egress(event.template) if verdict.creates else "the rolled-away configuration"
    if verdict.put_back:
        return (
            f"It serves again what the watchdog rolled away from (incident {escape(record.incident) if record else ''}"
            "): unless something the watchdog cannot see fixed the route, it will fail the same way."
        )
    if verdict.keeps:
        return (
            f"It keeps egress {code(value)}, the value the watchdog rolled away from ({code(record.from_revision)}): "
            "unless something the watchdog cannot see fixed the route (for example Cloud NAT added outside Cloud "
            "Run), it will fail the same way."
        )
    if verdict.undoes:
        return f"It puts egress back to {code(value)}, undoing the breaking change."
    return f"It sets egress {code(value)}."


def _message(lines: list[str], event: DeployEvent, loud: bool) -> Message:
    text = "\n".join(line for line in lines if line)
    return Message(text, [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2990]}}], loud=loud,
                   card=card_key(event))  # fmt: skip


# --- small helpers ---------------------------------------------------------------------------------------


def _existed_before(revision: dict, at: float | None) -> bool:
    """Created no later than the audit entry (the deploy's own revision is told apart by :func:`own_revision`)."""
    created = rfc3339(revision.get("createTime"))
    return at is None or created is None or created <= at


def _own_field_revert(event: DeployEvent) -> bool:
    """The watchdog's field revert: its label, and the name only it gives (field_revert.revision_name). The label
    alone is not enough: a later ``gcloud run deploy`` sends the service's template back with its labels."""
    prefix = f"{event.service.service[:49]}-revert-"
    suffix = event.revision[len(prefix) :] if event.revision.startswith(prefix) else ""
    named = len(suffix) == 6 and all(c in "0123456789abcdef" for c in suffix)
    return named and event.labels.get(field_revert.LABEL) == field_revert.LABEL_VALUE


def _failed(revision: dict) -> bool:
    return any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("state") == "CONDITION_FAILED"
        for c in revision.get("conditions") or []
    ) and not was_ready(revision)


def _same(a: dict, b: dict, kinds: set[str]) -> bool:
    """The same trigger value (no change of the kinds WATCHDOG_ROLLBACK_ON names), as the decision compares."""
    return not any(c.kind in kinds for c in template_changes(a, b))


def _spec_traffic(service: dict) -> list[dict]:
    found = service.get("traffic")
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def _main(split: dict[str, int]) -> str:
    return max(split, key=lambda n: (split[n], n)) if split else ""


def _created(revision: dict) -> float:
    return rfc3339(revision.get("createTime")) or 0.0


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
