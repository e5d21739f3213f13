"""Slack text, written one way: escaping, clipping, sections, durations and the commands on-call runs. Pure code.

Everything that came from outside (the alert, the service, a revision, a user) is escaped for Slack
mrkdwn *after* it is clipped, so a clip never cuts an entity in half and an alert field can neither
ping ``<!channel>`` nor smuggle a link. Every block stays within Block Kit's limits: a block too long
loses whole lines from its end, never half an entity or a link (:func:`fit`).

The commands (``gcloud run services update-traffic`` for a pin, an undo or a roll forward; the
watchdog's own ``pause``, ``resume``, ``revert-field``) are built here only, so every message
names them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from watchdog.config import ServiceRef

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_CONTEXT = 2000
MAX_TEXT = 3500  # well under chat.postMessage's 40,000: the fallback is a summary


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict] = field(default_factory=list)
    loud: bool = False  # <!here> in the text and in the first section: someone must look now
    card: str = ""  # the incident card's key (the incident id): carried as Slack message metadata, to find it again


def escape(text: object) -> str:
    """Escape for Slack mrkdwn: ``&``, ``<`` and ``>`` (the only control characters)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code(text: object, limit: int = 300) -> str:
    """Inline code: clipped, then escaped; a backtick inside cannot end it."""
    return "`" + escape(clip(str(text), limit)).replace("`", "'") + "`"


def block_code(text: str) -> str:
    """A code block (a command to copy), on its own lines."""
    return "```" + escape(text).replace("```", "'''") + "```"


def link(url: str, label: str) -> str:
    safe = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe}|{escape(label)}>"


def fit(text: str, limit: int = MAX_SECTION) -> str:
    """``text`` within ``limit``: whole lines dropped from the end, so no entity or link is cut."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    while lines and len("\n".join(lines)) + 2 > limit:
        lines.pop()
    return ("\n".join(lines) + "\n…") if lines else "…"


def section(text: str) -> dict:
    """One mrkdwn section block (already escaped text), fitted to Block Kit's limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text)}}


def header(text: str) -> dict:
    """A header block (plain text: Slack does not parse mrkdwn there)."""
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, MAX_HEADER), "emoji": True}}


def context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(text, MAX_CONTEXT)}]}


def fields(items: Iterable[str]) -> dict:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": fit(item, MAX_CONTEXT)} for item in items]}


def duration(seconds: float) -> str:
    """``37h14m``: how long, in the units on-call reads."""
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 72 * 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400} days"


def clock(epoch: float) -> str:
    """``17:43 UTC``: when something happened today-ish."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")


def moment(epoch: float) -> str:
    """``2025-09-15 04:27 UTC``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def split_text(split: dict[str, int]) -> str:
    """``a 90%, b 10%`` (escaped code), largest share first; "nothing" when no revision serves."""
    shown = [f"{code(r)} {p}%" for r, p in sorted(split.items(), key=lambda kv: -kv[1]) if p]
    return ", ".join(shown) or "nothing"


# --- the commands on-call runs -----------------------------------------------------------------------


def _lines(*parts: str) -> str:
    """One argument per line (a trailing backslash): on a phone's 284 px code block (tests/card_picture.py) a line
    holding two options, or the command and the service, wraps mid-line; one argument per line rarely does."""
    return " \\\n  ".join(parts)


def traffic_command(ref: ServiceRef, routing: str) -> str:
    """``gcloud run services update-traffic SERVICE ROUTING --region R --project P`` (keeps the service's tags)."""
    return _lines("gcloud run services update-traffic", ref.service, routing, f"--region {ref.region}",
                  f"--project {ref.project}")  # fmt: skip


def to_revisions(split: dict[str, int]) -> str:
    """``--to-revisions a=90,b=10`` for a split, or ``--to-latest`` for LATEST alone."""
    shares = [(r, p) for r, p in sorted(split.items(), key=lambda kv: -kv[1]) if p]
    if shares == [("LATEST", 100)]:
        return "--to-latest"
    return "--to-revisions " + ",".join(f"{r}={p}" for r, p in shares)


def pin_command(ref: ServiceRef, split: dict[str, int]) -> str:
    """The rollback by hand: the same split the watchdog would set."""
    return traffic_command(ref, to_revisions(split))


def roll_forward_command(ref: ServiceRef) -> str:
    return traffic_command(ref, "--to-latest")


def watchdog_command(verb: str, ref: ServiceRef, *extra: str) -> str:
    """``rollback-watchdog VERB --project P --region R --service S …`` (the installed operator command)."""
    return _lines(f"rollback-watchdog {verb}", f"--project {ref.project}", f"--region {ref.region}",
                  f"--service {ref.service}", *extra)  # fmt: skip


def one_line(command: str) -> str:
    """A command on one line (a plain-text fallback, a log field)."""
    return command.replace(" \\\n  ", " ")
