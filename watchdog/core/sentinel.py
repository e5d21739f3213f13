"""The sentinel: a deploy's requested template against the revision serving now → a :class:`DeployVerdict`.

Pure code. The verdict is :func:`watchdog.core.precheck.evaluate`, the same rules
as ``rollback-watchdog check``, so a deploy-time warning and ``check``
always agree. Rules, first match wins:

1. ``sentinel_off``: ``WATCHDOG_SENTINEL=off``.
2. ``own_write``: the watchdog's own service account wrote it.
3. ``already_warned``: this deploy was warned about (copies of its entries).
4. ``no_template_change``: the template equals, in every field both API shapes
   carry, the newest revision created before the entry: no revision will come
   of it (gcloud's traffic updates send the whole service back unchanged).
5. ``pinned``: the watchdog has pinned this service's traffic: the deploy gets
   0%; say whether it undoes the breaking change, and how to route to it.
6. ``risky``: a precheck rule fails: warn, with the rule's fix, who deployed
   it, and what the watchdog will do if symptoms come.
7. ``no_risky_change``: nothing to say.

The baseline is the revision serving now, unless it was created after the
entry (the new revision already took the traffic); then the newest Ready
revision created before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.config import Config
from watchdog.core import ledger, precheck
from watchdog.core.changes import Change, egress
from watchdog.core.deploys import DeployEvent, comparable
from watchdog.core.intake import rfc3339
from watchdog.core.report import Message, code, escape
from watchdog.core.traffic import is_ready, short_name, traffic_split

WARN = "warn"
NOTE = "note"  # a message in the pinned incident's thread
NOTHING = "nothing"
# Rules that WATCHDOG_SENTINEL=hold acts on: the staging incident's combination, and a connector removed.
BLOCKING = ("all-traffic-cloud-sql", "connector-removed")
HOLD_WAIT = 900.0  # seconds after the deploy to wait for its revision to take traffic, then give up


@dataclass(frozen=True)
class DeployVerdict:
    action: str  # WARN, NOTE or NOTHING
    reason: str
    detail: str
    baseline: str = ""  # the revision serving before the deploy
    findings: tuple[precheck.Finding, ...] = ()
    changes: tuple[Change, ...] = ()
    would: str = ""  # what the watchdog does if the deploy's symptoms alert
    pinned: ledger.Record | None = None
    undoes: bool | None = None  # pinned: the deploy puts the target's value back
    hold: bool = False  # WATCHDOG_SENTINEL=hold and a blocking rule: pin traffic back once the deploy serves
    repeat: bool = False  # already warned: a redelivery that only checks the hold
    unread: bool = False  # not in WATCHDOG_SERVICES, so not read (the function may not): the request alone was judged


def judge(event: DeployEvent, service: dict, revisions: list[dict], config: Config) -> DeployVerdict:
    """The sentinel's verdict for one deploy event; ``revisions`` newest first (the first page is enough)."""
    if config.sentinel == "off":
        return DeployVerdict(NOTHING, "sentinel_off", "WATCHDOG_SENTINEL=off")
    if config.own_principal and event.principal == config.own_principal:
        return DeployVerdict(NOTHING, "own_write", f"written by the watchdog itself ({event.principal})")
    memory = ledger.read(service.get("annotations"))
    repeat = isinstance(memory, ledger.Ledger) and event.key in memory.warned
    if repeat and config.sentinel != "hold":
        return DeployVerdict(NOTHING, "already_warned", f"deploy {event.key} was already warned about")
    remembered = memory.baseline_of(event.key) if isinstance(memory, ledger.Ledger) else ""
    baseline = next((r for r in revisions if short_name(r.get("name", "")) == remembered), None)
    baseline = baseline or _baseline(service, revisions, event.at)
    name = short_name(baseline.get("name", "")) if baseline else ""
    previous = next((r for r in revisions if _before(r, event.at)), None)
    if previous is not None and comparable(previous) == comparable(event.template):
        previous_name = short_name(previous.get("name", ""))
        return DeployVerdict(
            NOTHING, "no_template_change", f"the requested template equals {previous_name}'s", baseline=name
        )
    verdict = precheck.evaluate(baseline, event.template)
    changes = verdict.changes
    pinned = _pinned(memory, service)
    if pinned is not None:
        target = next((r for r in revisions if short_name(r.get("name", "")) == pinned.to_revision), None)
        undoes = target is not None and egress(target) == egress(event.template)
        return DeployVerdict(
            NOTE,
            "pinned",
            f"a deploy of {event.service.service} while the watchdog keeps its traffic pinned to "
            f"{pinned.to_revision}: the new revision gets 0% until someone routes traffic to it",
            baseline=name,
            findings=verdict.findings,
            changes=changes,
            pinned=pinned,
            undoes=undoes,
        )
    if verdict.ok:
        return DeployVerdict(NOTHING, "no_risky_change", "no precheck rule fails", baseline=name, changes=changes)
    in_scope = event.service in config.services
    failed = tuple(f for f in verdict.findings if f.severity == precheck.FAIL)
    hold = config.sentinel == "hold" and in_scope and any(f.rule in BLOCKING and not f.allowed for f in failed)
    if hold and name:
        would = f"will pin traffic back to {name} as soon as the new revision serves (WATCHDOG_SENTINEL=hold)"
    elif in_scope and name:
        would = f"will roll back to {name} if startup failures or slow DB connects alert"
    elif in_scope:
        would = "has no serving revision to roll back to"
    else:
        would = f"will only report: {event.service.service} is not in WATCHDOG_SERVICES"
    return DeployVerdict(
        WARN,
        "risky",
        f"{event.service.service}: {failed[0].message if failed else 'risky configuration'}",
        baseline=name,
        findings=verdict.findings,
        changes=changes,
        would=would,
        hold=hold and bool(name),
        repeat=repeat,
    )


def new_revision(event: DeployEvent, service: dict, revisions: list[dict]) -> str:
    """The revision the deploy created, once it exists: named by the request, or the newest one created after
    the entry with the requested template; "" while there is none."""
    if event.revision and any(short_name(r.get("name", "")) == event.revision for r in revisions):
        return event.revision
    wanted = comparable(event.template)
    for revision in revisions:  # newest first
        if _before(revision, event.at):
            return ""
        if comparable(revision) == wanted:
            return short_name(revision.get("name", ""))
    return ""


def _baseline(service: dict, revisions: list[dict], at: str) -> dict | None:
    by_name = {short_name(r.get("name", "")): r for r in revisions}
    serving = sorted(traffic_split(service).items(), key=lambda kv: -kv[1])
    for name, percent in serving:
        revision = by_name.get(name)
        if percent > 0 and revision is not None and _before(revision, at):
            return revision
    return next((r for r in revisions if is_ready(r) and _before(r, at)), None)


def _before(revision: dict, at: str) -> bool:
    """Created no later than the audit entry (a revision the deploy itself created comes after it)."""
    created, moment = rfc3339(revision.get("createTime")), rfc3339(at)
    return moment is None or created is None or created <= moment


def _pinned(memory, service: dict) -> ledger.Record | None:
    """The watchdog's newest rollback, while its target still takes all the traffic."""
    if not isinstance(memory, ledger.Ledger) or memory.newest is None:
        return None
    split = {k: v for k, v in traffic_split(service).items() if v}
    return memory.newest if split == {memory.newest.to_revision: 100} else None


def render(event: DeployEvent, warning: DeployVerdict, revision: str = "") -> Message:
    """The Slack message: the warning, or the note in the pinned incident's thread."""
    ref = event.service
    new = code(revision or event.revision or "revision pending")
    who = f"{escape(event.principal or 'unknown')} via {escape(event.user_agent or 'unknown')}"
    if warning.action == NOTE:
        record = warning.pinned
        route = (
            f"gcloud run services update-traffic {ref.service} --to-latest "
            f"--region {ref.region} --project {ref.project}"
        )
        if warning.undoes:
            verdict = f"It puts egress back to {code(egress(event.template))}, undoing the breaking change."
        else:
            verdict = (
                f"It keeps egress {code(egress(event.template))}, the value the watchdog rolled away from; unless "
                "something the watchdog cannot see fixed the route (for example Cloud NAT added outside Cloud Run), "
                "it will fail the same way."
            )
        text = (
            f":pushpin: New deploy of {code(ref.service)} ({new}) by {who} while traffic is pinned to "
            f"{code(record.to_revision)} (incident {escape(record.incident)}): it gets 0%. {verdict}\n"
            f"Route traffic to it when ready: {code(route)}"
        )
        return Message(text, [_section(text)])
    lines = [
        f":warning: *Risky deploy of {code(ref.service)}* ({new}) by {who}"
        + (f" at {escape(event.at)}" if event.at else ""),
    ]
    for finding in warning.findings:
        if finding.severity == precheck.FAIL and not finding.allowed:
            lines.append(f"• *{escape(finding.rule)}*: {escape(finding.message)}")
            if finding.fix:
                lines.append(f"   _Fix:_ {escape(finding.fix)}")
    if warning.unread:
        lines.append("Serving now: not read (the watchdog reads only the services in WATCHDOG_SERVICES), so only the "
                     f"request was judged. The watchdog {escape(warning.would)}.")  # fmt: skip
    else:
        lines.append(f"Serving now: {code(warning.baseline or 'none')}. The watchdog {escape(warning.would)}.")
    check = f"rollback-watchdog check --project {ref.project} --region {ref.region} --service {ref.service}"
    lines.append(f"Check it any time: {code(check)}")
    text = "\n".join(lines)
    return Message(text, [_section(text)])


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2990]}}
