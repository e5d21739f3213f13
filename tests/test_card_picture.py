"""The picture tool's Slack approximation is honest, and every card state fits a phone's first screen.

No browser here (CI has none): the HTML that tests/card_picture.py hands to Chromium is checked as
HTML, and the first-screen heights are the ones Chromium measured (``python -m tests.card_picture
--measure`` records them in docs/cards/first-screen.json with a fingerprint of what it measured), so
a change to the top of any card fails here until it is measured again.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from tests import card_picture as picture
from tests.support import ROOT

SCENES = picture.scenes()
MEASURE_AGAIN = (
    "measure again: python -m tests.card_picture --measure (Debian's chromium, fonts-lato, fonts-noto-color-emoji)"
)


# name, Slack mrkdwn as the watchdog sends it (escaped), the HTML Slack's rendering is approximated with
MRKDWN = [
    ("bold", "*Cause:* vpc egress", "<b>Cause:</b> vpc egress"),
    ("italic", "_as set_ here", "<i>as set</i> here"),
    ("strike", "~gone~ now", "<s>gone</s> now"),
    ("an underscore inside a word is no italic", "rollback_on and max_change_age", "rollback_on and max_change_age"),
    ("inline code is literal", "`*not bold* :eyes:`", "<code>*not bold* :eyes:</code>"),
    ("a code block is literal and a block of its own, the line breaks around it gone",
     "Undo:\n```gcloud run *x* \\\n  --to-latest```\n*Pause*",
     "Undo:<pre>gcloud run *x* \\\n  --to-latest</pre><b>Pause</b>"),
    ("a link with its label", "<https://console.cloud.google.com/run?project=p&amp;x=1|the incident>",
     '<a href="https://console.cloud.google.com/run?project=p&amp;x=1">the incident</a>'),
    ("a bare link", "<https://example.com/a>", '<a href="https://example.com/a">https://example.com/a</a>'),
    ("a quote cannot end the link's attribute", '<https://e.example/"onmouseover=x|x>',
     '<a href="https://e.example/%22onmouseover=x">x</a>'),
    ("@here", "<!here> *Traffic NOT moved:*", "<span class=mention>@here</span> <b>Traffic NOT moved:</b>"),
    ("a user", "undone by <@U0ONCALL> at", "undone by <span class=mention>@U0ONCALL</span> at"),
    ("escaped text stays text", "a &lt;script&gt; &amp; b", "a &lt;script&gt; &amp; b"),
    ("emoji", ":white_check_mark: Recovered :rotating_light:", "✅ Recovered 🚨"),
    ("an unknown code stays text, as in Slack", "netra-staging:us-central1:db", "netra-staging:us-central1:db"),
    ("lines", "one\ntwo", "one<br>two"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "shown"), MRKDWN, ids=[m[0] for m in MRKDWN])
def test_mrkdwn_becomes_what_slack_shows(name, text, shown):
    assert picture.mrkdwn(text) == shown


class Blocks(HTMLParser):
    """The page's blocks, in order: (tag, class, first screen?), with all text shown outside code."""

    def __init__(self):
        super().__init__()
        self.blocks, self.text, self.depth, self.in_code = [], [], 0, 0
        self.body = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("class") == "body":
            self.body, self.depth = True, 0
        elif self.body and tag in ("br", "hr"):  # void: no end tag to match
            if self.depth == 0 and tag == "hr":
                self.blocks.append((tag, None, "data-first" in attrs))
        elif self.body:
            self.depth += 1
            if self.depth == 1 and tag != "span":
                self.blocks.append((tag, attrs.get("class"), "data-first" in attrs))
        self.in_code += tag in ("code", "pre")

    def handle_endtag(self, tag):
        self.in_code -= tag in ("code", "pre")
        if self.body:
            self.depth -= 1
            if self.depth < 0:
                self.body = False

    def handle_data(self, data):
        if self.body and not self.in_code:
            self.text.append(data)


def parsed(html_page: str) -> Blocks:
    found = Blocks()
    found.feed(html_page)
    return found


@pytest.mark.parametrize("scene", SCENES)
def test_every_block_of_every_scene_is_on_the_page_in_order_and_the_first_screen_marked(scene):
    blocks = SCENES[scene]().blocks
    page = parsed(picture.page(blocks, phone=True))
    expected = {"header": ("h1", None), "actions": ("div", "actions"), "context": ("div", "context"),
                "divider": ("hr", None)}  # fmt: skip
    kinds = [expected.get(b["type"]) or ("div", "fields" if "fields" in b else "section") for b in blocks]
    assert [(tag, cls) for tag, cls, _ in page.blocks] == kinds
    first = [is_first for *_, is_first in page.blocks]
    count = first.count(True)
    assert first == [True] * count + [False] * (len(blocks) - count)
    if any(b["type"] == "actions" for b in blocks):  # a card: through its buttons
        assert page.blocks[count - 1][1] == "actions"
    else:  # a report: the header, the status/cause/why/next step, and the commands right under it
        assert count >= 3
        assert all(b["text"]["text"].startswith("```") for b in blocks[2:count])


@pytest.mark.parametrize("scene", SCENES)
def test_no_emoji_code_is_shown_as_text(scene):
    page = parsed(picture.page(SCENES[scene]().blocks))
    assert re.findall(r":[a-z_]+:", "".join(page.text)) == []


def test_every_emoji_code_the_watchdog_writes_has_its_character():
    roles = {"class", "data", "func", "meth", "mod", "attr", "exc"}  # reST roles in docstrings, not emoji
    written = {
        code
        for path in [ROOT / "main.py", *(ROOT / "watchdog").rglob("*.py")]
        for code in re.findall(r":([a-z][a-z0-9_+-]*):", path.read_text())
        if code not in roles
    }
    assert written
    assert written - set(picture.EMOJI) == set()


def test_fields_are_two_columns_on_a_desktop_and_one_on_a_phone():
    blocks = SCENES["rolled-back-confirmed"]().blocks
    desktop, phone = picture.page(blocks), picture.page(blocks, phone=True)
    assert "grid-template-columns:1fr 1fr" in desktop
    assert picture.PHONE_STYLE not in desktop
    assert ".fields{grid-template-columns:1fr}" in picture.PHONE_STYLE
    assert picture.PHONE_STYLE in phone
    # the page sets its own width: a --dump-dom window is never narrower than 500 px
    assert f"body{{width:{picture.PHONE - 32}px}}" in phone
    assert f"body{{width:{picture.DESKTOP - 32}px}}" in desktop


def test_buttons_keep_their_order_styles_and_words_and_context_is_grey():
    blocks = SCENES["paused"]().blocks
    page = picture.page(blocks)
    assert re.findall(r"<button class=(\w+)>([^<]*)</button>", page) == [
        ("danger", "Undo rollback"),
        ("plain", "Resume watchdog"),
        ("primary", "I&#x27;m on it"),
    ]
    assert "button.danger{background:#e01e5a" in picture.STYLE
    assert "button.primary{background:#007a5a" in picture.STYLE
    assert ".context{color:#616061" in picture.STYLE
    assert "<div class=context>Paused: the watchdog changes nothing on this service.</div>" in page


def test_the_header_is_plain_text_with_its_emoji():
    header = {"type": "header", "text": {"type": "plain_text", "text": ":rotating_light: *x* <b>", "emoji": True}}
    assert picture.block_html(header) == "<h1>🚨 *x* &lt;b&gt;</h1>"


CANNOT_DRAW = [
    ("an image", {"type": "image", "image_url": "https://e.example/a.png", "alt_text": "a"}),
    ("a section's accessory", {"type": "section", "text": {"type": "mrkdwn", "text": "x"},
                               "accessory": {"type": "button", "text": {"type": "plain_text", "text": "b"}}}),
    ("a select among buttons", {"type": "actions", "elements": [{"type": "static_select", "options": []}]}),
    ("an image in a context", {"type": "context", "elements": [{"type": "image", "image_url": "u", "alt_text": "a"}]}),
]  # fmt: skip


@pytest.mark.parametrize("block", [c[1] for c in CANNOT_DRAW], ids=[c[0] for c in CANNOT_DRAW])
def test_what_the_tool_cannot_draw_is_an_error_never_left_out(block):
    with pytest.raises(ValueError, match="no HTML"):
        picture.block_html(block)


def test_a_section_shows_its_text_then_its_fields_in_one_block():
    block = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*a*"},
        "fields": [{"type": "mrkdwn", "text": "b"}, {"type": "plain_text", "text": "<c> :eyes:", "emoji": True}],
    }
    assert picture.block_html(block) == (
        "<div class=section><b>a</b><div class=fields><div>b</div><div>&lt;c&gt; 👀</div></div></div>"
    )  # fmt: skip


def test_the_pictures_the_runbook_links_exist_and_cover_the_main_states():
    files = {p.file for p in picture.PICTURES}
    scenes = {p.scene for p in picture.PICTURES}
    assert {"rolled-back-confirmed", "field-reverted", "recovered", "not-recovered", "failed", "held-back-paused",
            "undone", "paused"} <= scenes  # fmt: skip
    assert {p.scene for p in picture.PICTURES if p.phone} >= {"rolled-back-confirmed", "failed"}
    assert "card.png" in files  # the README's
    for p in picture.PICTURES:
        assert p.scene in SCENES
        assert (ROOT / "docs" / p.file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p.file


FIGURES = json.loads(picture.FIGURES.read_text())


@pytest.mark.parametrize("scene", SCENES)
def test_the_first_screen_fits_a_phone_as_chromium_measured_it(scene):
    """Header, status/cause/next step, its command and the buttons within 640 px of a 360×740 phone, measured by
    Chromium on the card as it is now (the fingerprint of its first screen's HTML and the page's style)."""
    assert FIGURES["limit"] == picture.FIRST_SCREEN
    measured = FIGURES["scenes"].get(scene)
    assert measured is not None, f"{scene} was never measured; {MEASURE_AGAIN}"
    assert measured["fingerprint"] == picture.fingerprint(SCENES[scene]().blocks), (
        f"{scene}: its first screen changed since it was measured; {MEASURE_AGAIN}"
    )
    assert measured["first"] <= picture.FIRST_SCREEN, f"{scene}: {measured['first']} px"


def test_no_figure_is_kept_for_a_scene_that_is_gone():
    assert set(FIGURES["scenes"]) == set(SCENES)
