"""Render the incident card as Slack would show it (an HTML approximation of Block Kit) and screenshot it.

``python -m tests.card_picture [out.png]``: the card of the staging incident's auth rollback (verified, with
buttons), drawn from the same blocks the watchdog posts, then photographed by headless Chromium (Debian's
``chromium`` package). The picture in the README is made this way.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from tests.test_decision import alert, config, decide, state
from watchdog.core import ledger
from watchdog.core.report import ROLLED_BACK, Action, render
from watchdog.core.traffic import traffic_before

EMOJI = {":white_check_mark:": "✅", ":rotating_light:": "🚨", ":hourglass_flowing_sand:": "⏳", ":warning:": "⚠️",
         ":repeat:": "🔁", ":double_vertical_bar:": "⏸", ":leftwards_arrow_with_hook:": "↩️", ":eyes:": "👀"}  # fmt: skip


def mrkdwn(text: str) -> str:
    """Slack mrkdwn → HTML: code blocks, code, bold, italics, links, emoji; the text is already escaped."""
    for name, char in EMOJI.items():
        text = text.replace(name, char)
    text = re.sub(r"```(.*?)```\n?", lambda m: f"<pre>{m.group(1)}</pre>", text, flags=re.S)  # a block ends its line
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r'<a href="\1">\2</a>', text)
    text = text.replace("&lt;!here&gt;", '<span class="mention">@here</span>')
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*", r"<b>\1</b>", text)
    text = re.sub(r"(?<![\w_])_([^_\n]+)_", r"<i>\1</i>", text)
    return text.replace("\n", "<br>")


def page(blocks: list[dict]) -> str:
    parts = []
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            parts.append(f"<h1>{mrkdwn(html.escape(block['text']['text']))}</h1>")
        elif kind == "section" and "text" in block:
            parts.append(f"<div class=section>{mrkdwn(block['text']['text'])}</div>")
        elif kind == "section":
            cells = "".join(f"<div>{mrkdwn(f['text'])}</div>" for f in block["fields"])
            parts.append(f"<div class=fields>{cells}</div>")
        elif kind == "actions":
            buttons = "".join(
                f"<button class={e.get('style', 'plain')}>{html.escape(e['text']['text'])}</button>"
                for e in block["elements"]
            )
            parts.append(f"<div class=actions>{buttons}</div>")
        elif kind == "context":
            parts.append("<div class=context>" + " ".join(mrkdwn(e["text"]) for e in block["elements"]) + "</div>")
    style = """
    body{font-family:Lato,'DejaVu Sans',sans-serif;font-size:15px;color:#1d1c1d;background:#fff;margin:0;padding:16px;width:820px}
    .msg{display:flex;gap:10px}.avatar{width:36px;height:36px;border-radius:6px;background:#4a154b;color:#fff;
    font-weight:bold;display:flex;align-items:center;justify-content:center}.name{font-weight:900}.app{font-size:11px;
    background:#ddd;border-radius:3px;padding:1px 4px;margin-left:4px;color:#555}.time{color:#616061;font-size:12px;margin-left:6px}
    h1{font-size:18px;margin:6px 0}.section{margin:6px 0;line-height:1.45}.fields{display:grid;grid-template-columns:1fr 1fr;
    gap:6px;margin:6px 0}code{font-family:Monaco,'DejaVu Sans Mono',monospace;font-size:12px;color:#e01e5a;background:#f6f6f6;
    border:1px solid #ddd;border-radius:3px;padding:0 3px}pre{font-family:Monaco,'DejaVu Sans Mono',monospace;font-size:12px;
    background:#f8f8f8;border:1px solid #ddd;border-radius:4px;padding:6px;margin:3px 0;white-space:pre-wrap}a{color:#1264a3;
    text-decoration:none}.context{color:#616061;font-size:12px;margin-top:8px}.actions{margin:8px 0}button{font-size:14px;
    font-weight:bold;border-radius:4px;padding:6px 12px;margin-right:8px;border:1px solid #bbb;background:#fff}
    button.danger{background:#e01e5a;color:#fff;border-color:#e01e5a}button.primary{background:#007a5a;color:#fff;
    border-color:#007a5a}.mention{background:#fff3c2;color:#1264a3;border-radius:3px;padding:0 2px}"""
    return (f"<html><head><meta charset=utf-8><style>{style}</style></head><body><div class=msg><div class=avatar>RW</div>"
            f"<div><span class=name>Rollback watchdog</span><span class=app>APP</span><span class=time>17:43</span>"
            f"{''.join(parts)}</div></div></body></html>")  # fmt: skip


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/card.png").resolve()
    now = 1758044554.0
    service, revisions = state()
    revisions[1]["creator"] = "deployer@netra-staging.iam.gserviceaccount.com"
    incident = alert(incident_id="0.auth-db-timeout-1", started_at=now,
                     policy_name="Database connection validation timeout",
                     url="https://console.cloud.google.com/monitoring/alerting/incidents/0.auth-db-timeout-1")  # fmt: skip
    decided = decide(incident, service, revisions, config(), now)
    decided = replace(decided, record=ledger.Record("0.auth-db-timeout-1", decided.failing, decided.target, now,
                                                    before=traffic_before(service)))  # fmt: skip
    message = render(incident, decided, Action(ROLLED_BACK, seconds=0.21), buttons=True)
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "card.html"
        page_path.write_text(page(message.blocks))
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp}/profile", "--hide-scrollbars", "--window-size=860,970",
             f"--screenshot={out}", page_path.as_uri()],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    print(out)


if __name__ == "__main__":
    main()
