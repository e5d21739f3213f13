"""Pictures of every card state as Slack would show it, and how tall its first screen is on a phone.

    python -m tests.card_picture                  every picture: docs/cards/*.png and docs/card.png (the README's)
    python -m tests.card_picture --measure        each scene's first-screen height at phone width, from Chromium's
                                                  layout, recorded in docs/cards/first-screen.json; exits 1 when
                                                  one is taller than a phone's first screen
    python -m tests.card_picture --list           the scenes
    python -m tests.card_picture SCENE [--phone] [-o out.png]   one scene

A scene is a message the watchdog posts, built by the watchdog's own code from the incident's auth
rollback as tests/test_card_states.py builds it: every named state and report of its tables (the
incident's id, policy and link as in the staging incident), and the 403 that
watchdog/flows/acknowledged.py words. :func:`page` turns the Block Kit blocks into an HTML
approximation of Slack's rendering, and headless Chromium (Debian's ``chromium`` package, not a
requirement of ``make test``: CI has no browser) lays it out, measures it and photographs it.

The phone, as assumed (Slack documents none of it): a 360×740 CSS-pixel viewport, of which Slack's
own chrome (status bar, channel header, message composer) leaves :data:`FIRST_SCREEN` = 640 px to
the message list; 16 px margins and a 36 px avatar beside the text leave the card a 284 px text
column; section fields stack in one column; code blocks wrap (a block that scrolled sideways
instead would only make the card shorter). The first screen of a card is its header, the
status/cause/next-step section, the command under it and the buttons (:func:`first_screen`),
measured from the top of the message (the sender's name) to the bottom of the buttons. The
figures are recorded with a fingerprint of what was measured, and tests/test_card_picture.py
fails, without a browser, when a first screen is too tall or changed since it was measured.

Needs Debian's ``chromium``, ``fonts-lato`` (Slack's typeface) and ``fonts-noto-color-emoji``.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tests import test_card_states as table
from tests.support import ROOT
from tests.test_decision import alert, config, decide, state
from watchdog.config import ServiceScope
from watchdog.core import card, report
from watchdog.core.slack_text import Message, pin_command, split_text

DESKTOP = 852  # the viewport: a message row 820 px wide with 16 px margins, as the README's picture always was
PHONE = 360  # a phone's CSS width (most Android phones; an iPhone SE is 375)
PHONE_HEIGHT = 740
FIRST_SCREEN = 640  # px of PHONE_HEIGHT left to messages under Slack's status bar, channel header and composer
PHONE_WORDS = (f"{PHONE}x{PHONE_HEIGHT} CSS px; {FIRST_SCREEN} px of it left to the message under Slack's own chrome; "
               "16 px margins and a 36 px avatar leave a 284 px text column; fields in one column")  # fmt: skip
FIGURES = ROOT / "docs" / "cards" / "first-screen.json"  # the heights as last measured, per scene

# Slack's emoji codes the watchdog writes, as the characters Slack shows (tests/test_card_picture.py checks that every
# code in watchdog/ is here). A code Slack does not know stays text, as in Slack ("netra-staging:us-central1:db").
EMOJI = {
    "arrow_forward": "▶️", "double_vertical_bar": "⏸️", "eyes": "👀", "hourglass_flowing_sand": "⏳",
    "information_source": "ℹ️", "leftwards_arrow_with_hook": "↩️", "no_entry": "⛔", "pushpin": "📌",
    "repeat": "🔁", "rotating_light": "🚨", "warning": "⚠️", "white_check_mark": "✅", "wrench": "🔧",
}  # fmt: skip
EMOJI_CODE = re.compile(r":([a-z][a-z0-9_+-]*):")


# --- Slack mrkdwn → HTML -----------------------------------------------------------------------------------------


def emoji(text: str) -> str:
    return EMOJI_CODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def _entity(inner: str) -> str:
    """``<!here>``, ``<@U…>``, ``<#C…|name>``, ``<url|label>``, ``<url>``: Slack's only markup in angle brackets."""
    if inner.startswith("!"):
        return f"<span class=mention>@{html.escape(inner[1:].split('|')[-1])}</span>"
    if inner.startswith("@"):
        return f"<span class=mention>@{html.escape(inner[1:])}</span>"
    if inner.startswith("#"):
        return f"<span class=mention>#{html.escape(inner.split('|')[-1].lstrip('#'))}</span>"
    url, _, label = inner.partition("|")
    # the URL and label are already escaped for Slack (&amp; &lt; &gt;); a quote must not end the attribute
    return f'<a href="{url.replace(chr(34), "%22")}">{_inline(label or url)}</a>'


def _inline(text: str) -> str:
    """Bold, italics and strike, then emoji, on text that holds no code and no entity."""
    text = re.sub(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])", r"<b>\1</b>", text)
    text = re.sub(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])", r"<i>\1</i>", text)
    text = re.sub(r"(?<![\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])", r"<s>\1</s>", text)
    return emoji(text)


def mrkdwn(text: str) -> str:
    """Slack mrkdwn (already escaped: ``&amp; &lt; &gt;``) → HTML. Code blocks and code are literal, as in Slack:
    no bold, link or emoji inside them; a code block is a block of its own, so the line breaks around it go."""
    kept: list[str] = []

    def keep(fragment: str) -> str:
        kept.append(fragment)
        return f"\x00{len(kept) - 1}\x00"

    text = re.sub(r"\n?```(.*?)```\n?", lambda m: keep(f"<pre>{m.group(1).strip(chr(10))}</pre>"), text, flags=re.S)
    text = re.sub(r"`([^`\n]+)`", lambda m: keep(f"<code>{m.group(1)}</code>"), text)
    text = re.sub(r"<([^<>\n]+)>", lambda m: keep(_entity(m.group(1))), text)
    text = _inline(text).replace("\n", "<br>")
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)


# --- Block Kit → HTML --------------------------------------------------------------------------------------------


def first_screen(blocks: list[dict]) -> int:
    """How many blocks, from the top, a phone must show at once: through the buttons on a card; on a report (no
    buttons) the header, the status/cause/next-step section and the code blocks right under it (its commands)."""
    kinds = [b["type"] for b in blocks]
    if "actions" in kinds:
        return kinds.index("actions") + 1
    count = 2
    while count < len(blocks) and blocks[count].get("text", {}).get("text", "").startswith("```"):
        count += 1
    return min(count, len(blocks))


def text_html(obj: dict) -> str:
    """A text object: mrkdwn parsed; plain text shown as written, its emoji codes drawn (Slack's ``emoji: true``)."""
    if obj["type"] == "mrkdwn":
        return mrkdwn(obj["text"])
    return emoji(html.escape(obj["text"])) if obj.get("emoji", True) else html.escape(obj["text"])


def block_html(block: dict) -> str:
    """One block as HTML. What this cannot draw is an error, never left out: a picture shows all Slack shows."""
    kind = block["type"]
    if kind == "header":
        return f"<h1>{text_html(block['text'])}</h1>"
    if kind == "section" and "accessory" not in block:  # text, then fields under it, as Slack lays them out
        cells = "".join(f"<div>{text_html(f)}</div>" for f in block.get("fields", ()))
        fields = f"<div class=fields>{cells}</div>" if cells else ""
        return f"<div class=section>{text_html(block['text'])}{fields}</div>" if "text" in block else fields
    if kind == "actions" and all(e["type"] == "button" for e in block["elements"]):
        buttons = "".join(f"<button class={e.get('style', 'plain')}>{text_html(e['text'])}</button>"
                          for e in block["elements"])  # fmt: skip
        return f"<div class=actions>{buttons}</div>"
    if kind == "context" and all(e["type"] in ("mrkdwn", "plain_text") for e in block["elements"]):
        return "<div class=context>" + " ".join(text_html(e) for e in block["elements"]) + "</div>"
    if kind == "divider":
        return "<hr>"
    raise ValueError(f"no HTML for this {kind!r} block: draw it here before picturing it")


STYLE = """
body{font-family:Lato,'Noto Color Emoji',sans-serif;font-size:15px;color:#1d1c1d;background:#fff;margin:0;padding:16px}
.msg{display:flex;gap:8px}.avatar{flex:none;width:36px;height:36px;border-radius:6px;background:#4a154b;color:#fff;
font-weight:bold;display:flex;align-items:center;justify-content:center}.body{flex:1;min-width:0}
.name{font-weight:900}.app{font-size:11px;background:#ddd;border-radius:3px;padding:1px 4px;margin-left:4px;color:#555}
.time{color:#616061;font-size:12px;margin-left:6px}
h1{font-size:18px;line-height:1.35;margin:6px 0;font-weight:900}.section{margin:6px 0;line-height:1.45;
overflow-wrap:break-word}.fields{display:grid;grid-template-columns:1fr 1fr;gap:6px 16px;margin:6px 0;line-height:1.4;
overflow-wrap:anywhere}
code{font-family:Monaco,'DejaVu Sans Mono',monospace;font-size:12px;color:#e01e5a;background:#f6f6f6;
border:1px solid #ddd;border-radius:3px;padding:0 3px;overflow-wrap:anywhere}
pre{font-family:Monaco,'DejaVu Sans Mono',monospace;font-size:12px;line-height:1.5;background:#f8f8f8;
border:1px solid #ddd;border-radius:4px;padding:6px 8px;margin:4px 0;white-space:pre-wrap;overflow-wrap:anywhere}
a{color:#1264a3;text-decoration:none}.mention{background:#fff3c2;color:#1264a3;border-radius:3px;padding:0 2px}
.context{color:#616061;font-size:12px;line-height:1.4;margin-top:8px}
.actions{margin:8px 0;display:flex;flex-wrap:wrap;gap:8px}button{font:bold 14px Lato,sans-serif;border-radius:4px;
padding:0 12px;height:32px;border:1px solid #bbb;background:#fff;color:#1d1c1d}
button.danger{background:#e01e5a;color:#fff;border-color:#e01e5a}button.primary{background:#007a5a;color:#fff;
border-color:#007a5a}hr{border:0;border-top:1px solid #ddd}
.fold{position:absolute;left:0;right:0;border-top:2px dashed #e01e5a}.fold span{position:absolute;left:4px;top:4px;
width:48px;font-size:10px;line-height:1.2;color:#e01e5a}
"""
# A phone: fields in one column, as Slack's mobile apps show them; buttons as tall as a touch target.
PHONE_STYLE = ".fields{grid-template-columns:1fr}button{height:36px}"

# Run in the page once laid out: the first screen's height (from the message's top to the bottom of its last
# first-screen block), each of those blocks' heights, and the whole page's (the body's bottom: the document is never
# shorter than the window), written where --dump-dom shows them.
MEASURE = """
<script>(() => {
const start = document.querySelector('.msg').getBoundingClientRect().top;
const first = [...document.querySelectorAll('[data-first]')].map(e => e.getBoundingClientRect());
const out = {first: Math.ceil(Math.max(...first.map(r => r.bottom)) - start),
             blocks: first.map(r => Math.round(r.height)),
             total: Math.ceil(document.body.getBoundingClientRect().bottom),
             width: Math.round(document.body.getBoundingClientRect().width)};
document.getElementById('measured').textContent = JSON.stringify(out);
})();</script>"""


def page(blocks: list[dict], *, phone: bool = False, fold: bool = False) -> str:
    """The message as an HTML page: the sender line, then every block, the first screen's marked ``data-first``.
    ``fold``: a dashed line where a phone's first screen ends (for the phone pictures; not part of the card)."""
    shown = first_screen(blocks)
    parts = []
    for n, block in enumerate(blocks):
        part = block_html(block)
        parts.append(part.replace(">", " data-first>", 1) if n < shown else part)
    # The page's width is set here, not left to the window: headless Chromium lays a --dump-dom page out in a
    # window at least 500 px wide, whatever --window-size asks.
    width = f"body{{width:{(PHONE if phone else DESKTOP) - 32}px}}"
    marker = f'<div class=fold style="top:{16 + FIRST_SCREEN}px"><span>end of the first screen</span></div>'
    marker = marker if fold else ""
    return (
        f"<!doctype html><html><head><meta charset=utf-8><style>{STYLE}{PHONE_STYLE if phone else ''}{width}</style></head>"
        "<body><div class=msg><div class=avatar>RW</div><div class=body><span class=name>Rollback watchdog</span>"
        f"<span class=app>APP</span><span class=time>17:43</span>{''.join(parts)}</div></div>{marker}"
        f"<pre id=measured hidden></pre>{MEASURE}</body></html>"
    )


# --- the scenes: the watchdog's own messages, built as tests/test_card_states.py builds them ----------------------

INCIDENT = {"incident_id": "0.auth-db-timeout-1", "policy_name": "Database connection validation timeout",
            "url": "https://console.cloud.google.com/monitoring/alerting/incidents/0.auth-db-timeout-1"}  # fmt: skip


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _card(card_state: card.CardState, config_kw: dict) -> Callable[[], Message]:
    def build() -> Message:
        failing, decided = table.incident(**config_kw)
        if card_state.revert:  # the ledger records the field revert's revision with the state (the undo reads it)
            decided = replace(decided, record=replace(decided.record, revert=card_state.revert))
        return card.render(replace(failing, **INCIDENT), decided, card_state, buttons=True)

    return build


def _report(config_kw: dict, alert_kw: dict) -> Callable[[], Message]:
    """A report made instead of a rollback, decided as test_card_states' REPORTS test decides it."""

    def build() -> Message:
        service, revisions = state()
        revisions[1]["creator"] = "anthony@netra.example"
        kw = {**config_kw, "services": ServiceScope.parse("other")} if "services" in config_kw else config_kw
        failing = alert(started_at=table.NOW, **{**INCIDENT, **alert_kw})
        decided = decide(failing, service, revisions, config(**kw), table.NOW + 3600 * 30)  # as the table decides
        return report.render(failing, decided, report.Action())

    return build


def _refused() -> Message:
    """A 403 on the rollback, as watchdog/flows/acknowledged.py words it (its own rule for what to say and fix)."""
    from google.api_core import exceptions as api_exceptions  # the flows' client errors: only for this scene

    from watchdog.flows.acknowledged import _what_to_do

    failing, decided = table.incident()
    failing = replace(failing, **INCIDENT)
    error = api_exceptions.Forbidden(
        "PATCH https://run.googleapis.com/v2/projects/netra-staging/locations/us-central1/services/netra-auth-service"
        "?alt=json: Permission 'run.services.update' denied on resource 'projects/netra-staging/locations/"
        "us-central1/services/netra-auth-service' (or resource may not exist)."
    )
    what, fix, loud = _what_to_do(failing, error, lambda: "rollback-watchdog@netra-staging.iam.gserviceaccount.com")
    return report.render_refused(failing, what, report.cloud_run_said(error), pin_command(failing.service,
                                 decided.split), fix, loud=loud, split=split_text(decided.serving))  # fmt: skip


def scenes() -> dict[str, Callable[[], Message]]:
    """Every card state and every report in tests/test_card_states.py's tables, and the 403 message, by name."""
    # the field revert offered where the table's name says so, as test_card_states renders them
    found = {slug(name): _card(card_state, {"field_revert": "offer"} if "offered" in name else {})
             for name, card_state, *_ in table.STATES}  # fmt: skip
    found |= {
        "held-back-" + slug(name): _report(config_kw, alert_kw) for name, config_kw, alert_kw, *_ in table.REPORTS
    }
    found["refused-403"] = _refused
    return found


@dataclass(frozen=True)
class Picture:
    file: str  # under docs/
    scene: str
    phone: bool = False
    shows: str = ""  # what on-call sees in it (the runbook links it)


PICTURES = [
    Picture("card.png", "rolled-back-confirmed", shows="the README's card: the incident's rollback, verified"),
    Picture("cards/rolled-back.png", "rolled-back-confirmed", shows="rolled back and verified: traffic pinned"),
    Picture("cards/rolled-back-phone.png", "rolled-back-confirmed", phone=True, shows="the same at phone width"),
    Picture("cards/field-reverted.png", "field-reverted", shows="the field set back, the failing code kept"),
    Picture("cards/recovered.png", "recovered", shows="verification saw the restored revision healthy"),
    Picture("cards/not-recovered.png", "not-recovered", shows="still failing after the rollback: a human now"),
    Picture("cards/failed.png", "failed", shows="Cloud Run refused the rollback: traffic NOT moved"),
    Picture("cards/failed-phone.png", "failed", phone=True, shows="the same at phone width"),
    Picture("cards/held-back.png", "held-back-paused", shows="a report: paused, so held back, with the command"),
    Picture("cards/undone.png", "undone", shows="on-call undid the rollback: traffic as before"),
    Picture("cards/paused.png", "paused", shows="the watchdog paused from the card: by whom, when, how to resume"),
    Picture("cards/refused-403.png", "refused-403", shows="the watchdog may not update the service: the IAM fix"),
]


# --- Chromium ----------------------------------------------------------------------------------------------------

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--font-render-hinting=none"]  # fmt: skip


NEEDS = "apt-get install chromium fonts-lato fonts-noto-color-emoji"


def chromium() -> str:
    """The browser, once the fonts are there too: another font lays the card out to other heights, silently."""
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if not found:
        raise SystemExit(f"Chromium is not installed: {NEEDS}")
    fonts = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True, check=False).stdout
    missing = [family for family in ("Lato", "Noto Color Emoji") if family not in fonts]
    if missing:
        raise SystemExit(f"fonts missing ({', '.join(missing)}): {NEEDS}")
    return found


def _run(page_html: str, width: int, height: int, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "card.html"
        path.write_text(page_html)
        done = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={tmp}/profile", f"--window-size={width},{height}", *extra,
             path.as_uri()], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def measure(blocks: list[dict], *, phone: bool) -> dict:
    """{first, blocks, total}: px, as Chromium laid the page out (its DOM after the measuring script ran)."""
    width = PHONE if phone else DESKTOP
    dom = _run(page(blocks, phone=phone), width, PHONE_HEIGHT, "--dump-dom")
    found = re.search(r'<pre id="measured" hidden="">(.*?)</pre>', dom, re.S)
    if not found or not found.group(1):
        raise RuntimeError("the page did not report its measurements")
    sizes = json.loads(html.unescape(found.group(1)))
    if sizes["width"] != width:
        raise RuntimeError(f"the page was laid out {sizes['width']} px wide, not {width}")
    return sizes


def photograph(blocks: list[dict], out: Path, *, phone: bool) -> dict:
    """A PNG of the whole message (a phone at 2× pixels, as phones show it, with the first screen's end marked)."""
    sizes = measure(blocks, phone=phone)
    width = PHONE if phone else DESKTOP
    height = max(sizes["total"], FIRST_SCREEN + 40) if phone else sizes["total"]
    scale = "2" if phone else "1"
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(page(blocks, phone=phone, fold=phone), width, height, f"--force-device-scale-factor={scale}",
         f"--screenshot={out}")  # fmt: skip
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.card_picture", description=__doc__.split("\n")[0])
    parser.add_argument("scene", nargs="?", help="one scene (--list shows them); none: every picture in docs/")
    parser.add_argument("--phone", action="store_true", help=f"at phone width ({PHONE} px)")
    parser.add_argument("-o", "--out", type=Path, help="where to write the PNG (one scene)")
    parser.add_argument("--measure", action="store_true", help="print each scene's first-screen height on a phone")
    parser.add_argument("--list", action="store_true", help="list the scenes")
    args = parser.parse_args(argv)
    every = scenes()
    if args.list:
        print("\n".join(every))
        return 0
    if args.scene and args.scene not in every:
        print(f"no scene {args.scene!r}; the scenes: {', '.join(every)}", file=sys.stderr)
        return 2
    if args.measure:
        return _measure_all({args.scene: every[args.scene]} if args.scene else every, every=not args.scene)
    if args.scene:
        out = args.out or Path(f"{args.scene}{'-phone' if args.phone else ''}.png")
        photograph(every[args.scene]().blocks, out.resolve(), phone=args.phone)
        print(out)
        return 0
    for picture in PICTURES:
        out = ROOT / "docs" / picture.file
        sizes = photograph(every[picture.scene]().blocks, out, phone=picture.phone)
        print(f"{picture.file:<30} {picture.scene:<24} {sizes['total']:>5} px tall  {picture.shows}")
    return 0


def fingerprint(blocks: list[dict]) -> str:
    """What a first screen's height depends on: the HTML of its blocks and the page's style at phone width. The
    recorded figures (:data:`FIGURES`) hold it, so tests/test_card_picture.py can tell a stale figure."""
    shown = "".join(block_html(block) for block in blocks[: first_screen(blocks)])
    return hashlib.sha256(f"{PHONE}\n{STYLE}\n{PHONE_STYLE}\n{shown}".encode()).hexdigest()[:16]


def _measure_all(chosen: dict[str, Callable[[], Message]], every: bool) -> int:
    """Print each scene's first-screen height on a phone and record it in FIGURES; 1 when one is too tall."""
    print(f"first screen at {PHONE} px (header, status/cause/next step, command, buttons); limit {FIRST_SCREEN} px")
    print(f"{'scene':<42} {'first':>5}  {'its blocks':<20} {'whole':>5}")
    recorded = {} if every or not FIGURES.exists() else json.loads(FIGURES.read_text())["scenes"]
    over = []
    for name, build in chosen.items():
        blocks = build().blocks
        sizes = measure(blocks, phone=True)
        flag = "  TOO TALL" if sizes["first"] > FIRST_SCREEN else ""
        print(f"{name:<42} {sizes['first']:>5}  {'+'.join(map(str, sizes['blocks'])):<20} {sizes['total']:>5}{flag}")
        recorded[name] = {"first": sizes["first"], "blocks": sizes["blocks"], "whole": sizes["total"],
                          "fingerprint": fingerprint(blocks)}  # fmt: skip
        if flag:
            over.append(name)
    rows = ",\n".join(f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in sorted(recorded.items()))
    FIGURES.write_text(f'{{"measured_by": "python -m tests.card_picture --measure",\n "phone": {json.dumps(PHONE_WORDS)},'
                       f'\n "limit": {FIRST_SCREEN},\n "scenes": {{\n{rows}\n }}\n}}\n')  # fmt: skip
    print(f"recorded in {FIGURES.relative_to(ROOT)}")
    if over:
        print(f"taller than a phone's first screen ({FIRST_SCREEN} px): {', '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
