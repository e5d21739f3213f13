"""A local stand-in for the Slack Web API (``chat.postMessage``) and incoming webhooks.

The real ``slack-sdk`` clients talk to it over HTTP (``SLACK_API_URL`` /
``SLACK_WEBHOOK_URL``). It records every message, can print each one as it
arrives (the demo), and answers scripted faults: ``ok:false`` errors, 429 with
Retry-After, 5xx, delays and dropped connections.

It is also Slack's side of the card's buttons: with the app's interactivity
``request_url`` and ``signing_secret`` set, ``POST /_control/click``
(``{"action": "undo_rollback", "user": "U0ONCALL", "ts": ""}``: the newest card
with buttons unless ``ts`` names one) sends the ``block_actions`` payload Slack
sends for that click, form-encoded and signed, to the Request URL, and answers
with the function's status, what the user was told and the card after.

The token's scopes are enforced as Slack enforces them: the bot has exactly
the scopes of the app as installed (by default those of the app manifest,
``docs/slack-app-manifest.json``), and a method they do not cover answers HTTP
200 ``{"ok": false, "error": "missing_scope", "needed", "provided"}``.
``conversations.history`` takes a conversation ID (``C…``, ``G…``, ``D…``);
a ``#name`` or a bare name is ``channel_not_found``, and a private channel
(``G…``, or one listed in ``private_channels``) needs ``groups:history``.

Run it alone: ``python -m tests.standins.slack --port 8086 --print``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.standins.loopback import Server, StandIn

TOKEN = "xoxb-standin-token"
MANIFEST = Path(__file__).resolve().parents[2] / "docs" / "slack-app-manifest.json"

# The bot scope each Web API method served here needs, as Slack's method reference states it (each
# method's "Facts: Scopes"; the scope pages list the same methods as compatible). conversations.history
# needs the one scope of the kind of conversation read: HISTORY_SCOPES.
METHOD_SCOPES: dict[str, str | None] = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "users.info": "users:read",
    "usergroups.users.list": "usergroups:read",
    "conversations.history": "",
    "auth.test": None,  # any valid token: no scope
}
HISTORY_SCOPES = {"public": "channels:history", "private": "groups:history", "im": "im:history"}
# A conversation ID: C (public channel), G (private channel, the older kind), D (direct message).
CONVERSATION_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def manifest_scopes(path: Path = MANIFEST) -> frozenset[str]:
    """The bot scopes the app manifest asks for: what a workspace grants when it installs the app."""
    return frozenset(json.loads(path.read_text())["oauth_config"]["scopes"]["bot"])


@dataclass
class SlackFault:
    """kind: ``error`` (HTTP 200 ok:false ``error``), ``status`` (HTTP ``status``,
    with Retry-After when set), ``delay`` (sleep ``seconds``, then answer), ``reset``, ``slow_answer``
    (accept the post at once, answer only after ``seconds``: a slow Slack that did take the message)."""

    kind: str = "error"
    error: str = "channel_not_found"
    status: int = 429
    retry_after: str = ""
    seconds: float = 0.0
    times: int = 1
    path: str = ""  # regex on the request path


class SlackState:
    def __init__(self, token: str = TOKEN, echo: bool = False, scopes: frozenset[str] | None = None) -> None:
        self.lock = threading.Lock()
        self.token = token
        self.echo = echo
        # the token's scopes, as installed: the manifest's unless a test installs the app with others
        self.installed_scopes = frozenset(manifest_scopes() if scopes is None else scopes)
        self.scopes = self.installed_scopes
        self.private_channels: set[str] = set()  # channel IDs Slack knows as private (besides every G…)
        # {"method", "needed"}: every missing_scope answered; kept across reset() for the test's teardown
        self.scope_refusals: list[dict] = []
        self.messages: list[dict] = []  # accepted posts
        self.requests: list[dict] = []  # every request, accepted or not
        # posts refused for their blocks ({"problem", "blocks"}); kept across reset() for the test's teardown
        self.invalid: list[dict] = []
        self.faults: list[SlackFault] = []
        self.ephemeral: list[dict] = []  # chat.postEphemeral: what one user was told
        # users.info and usergroups.users.list, as a workspace would answer them
        self.users: dict[str, dict] = {}
        self.usergroups: dict[str, list[str]] = {}
        self._ts = 0.0
        self.on_served: Callable[[dict], None] | None = None  # after a message is accepted, before the answer
        # the app's Interactivity Request URL and Signing Secret (api.slack.com → the app's settings)
        self.request_url = ""
        self.signing_secret = ""
        self.on_click: Callable[[dict], None] | None = None  # after a click was delivered, with what click() answers

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.requests.clear()
            self.faults.clear()
            self.ephemeral.clear()
            self.users.clear()
            self.usergroups.clear()
            self.on_served = None
            self.scopes = self.installed_scopes
            self.private_channels.clear()

    def take_fault(self, path: str) -> SlackFault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and re.search(fault.path, path):
                    fault.times -= 1
                    return fault
        return None

    def conversation_kind(self, channel: str) -> str:
        """``public``, ``private`` or ``im`` for a conversation ID; "" for anything else (a name, ``#name``)."""
        if not CONVERSATION_ID.match(channel or ""):
            return ""
        if channel[0] == "G" or channel in self.private_channels:
            return "private"
        return "im" if channel[0] == "D" else "public"

    def refusal(self, method: str, payload: dict) -> dict | None:
        """What Slack answers instead of serving ``method`` with these scopes, or None to serve it.

        conversations.history first needs a conversation ID (``channel_not_found`` otherwise), then the
        scope of that kind of conversation; every other method its one scope.
        """
        needed = METHOD_SCOPES[method]
        if method == "conversations.history":
            kind = self.conversation_kind(str(payload.get("channel", "")))
            if not kind:
                return {"ok": False, "error": "channel_not_found"}
            needed = HISTORY_SCOPES[kind]
        if needed is None or needed in self.scopes:
            return None
        with self.lock:
            self.scope_refusals.append({"method": method, "needed": needed})
        return {"ok": False, "error": "missing_scope", "needed": needed, "provided": ",".join(sorted(self.scopes))}

    def accept(self, kind: str, payload: dict) -> dict:
        with self.lock:
            self._ts = max(self._ts + 0.0001, time.time())  # like Slack: the post's epoch time, unique
            ts = f"{self._ts:.6f}"
            message = {"kind": kind, "ts": ts, **payload}
            self.messages.append(message)
        if self.echo:
            print_message(message)
        if self.on_served is not None:
            self.on_served(message)
        return message

    def click(self, action: str, user_id: str, ts: str = "", team: str = "", timeout: float = 10.0) -> dict:
        """What Slack does when ``user_id`` clicks the button ``action`` of a card: POST the signed
        ``block_actions`` payload to the Request URL. The card is the newest message with buttons, or the one
        posted at ``ts``; ``team`` defaults to the user's (users.info). Slack gives up after 3 s: ``seconds``
        says how long the function took, so a slower answer shows."""
        if not self.request_url or not self.signing_secret:
            return {"ok": False, "error": "no interactivity Request URL and signing secret set"}
        with self.lock:
            cards = [m for m in self.messages if _actions(m) and (not ts or m["ts"] == ts)]
            card = copy.deepcopy(cards[-1]) if cards else None
            team = team or (self.users.get(user_id) or {}).get("team_id", "")
            told = len(self.ephemeral)
        if card is None:
            return {"ok": False, "error": f"no card with buttons{' at ' + ts if ts else ''}"}
        try:
            payload = block_actions(card, action, user_id, team)
        except LookupError:
            return {"ok": False, "error": f"the card {card['ts']} has no {action} button (any more)", "card": card}
        body, headers = interaction(self.signing_secret, payload)
        request = urllib.request.Request(self.request_url, data=body, headers=headers, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text = response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode(errors="replace")
        except OSError as error:
            status, text = 0, f"{type(error).__name__}: {error}"
        seconds = round(time.monotonic() - started, 2)
        with self.lock:
            now = next((copy.deepcopy(m) for m in self.messages if m["ts"] == card["ts"]), card)
            replies = [e.get("text", "") for e in self.ephemeral[told:] if e.get("user") == user_id]
        answer = {"ok": True, "action": action, "user": user_id, "status": status, "body": text,
                  "seconds": seconds, "told": replies, "card": now}  # fmt: skip
        if self.on_click is not None:
            self.on_click(answer)
        return answer


def _actions(message: dict) -> dict | None:
    """The message's actions block (the card's buttons), if it has one."""
    blocks = message.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return next((b for b in blocks if isinstance(b, dict) and b.get("type") == "actions"), None)


def block_actions(card: dict, action: str, user_id: str, team: str, action_ts: str = "") -> dict:
    """The ``block_actions`` payload Slack sends when ``user_id`` clicks the button ``action`` of ``card``
    (a message as the stand-in holds it). LookupError when the card has no such button."""
    blocks = card.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    block = _actions(card) or {}
    button = next((e for e in block.get("elements", []) if e.get("action_id") == action), None)
    if button is None:
        raise LookupError(f"no {action} button on the card {card.get('ts')}")
    return {
        "type": "block_actions",
        "team": {"id": team},
        "user": {"id": user_id, "team_id": team},
        "channel": {"id": card["channel"]},
        "container": {"type": "message", "message_ts": card["ts"], "channel_id": card["channel"]},
        "message": {"ts": card["ts"], "blocks": blocks},
        "actions": [
            {
                "action_id": action,
                "block_id": block.get("block_id", ""),
                "value": button["value"],
                "action_ts": action_ts or f"{time.time():.6f}",
            }
        ],
    }


def interaction(secret: str, payload: dict, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of Slack's POST to the Request URL: ``payload=JSON``, form-encoded, signed."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, {"Content-Type": "application/x-www-form-urlencoded", **signed(secret, body, timestamp)}


def print_message(message: dict, note: str = "") -> None:
    """Show a message roughly as Slack would: header, sections, fields, context."""
    bar = "─" * 78
    lines = [
        bar,
        f"SLACK {message.get('channel', 'webhook')}"
        + (f" (thread {message['thread_ts']})" if message.get("thread_ts") else "")
        + (f" ({note})" if note else ""),
    ]
    blocks = message.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not blocks:
        lines.append(str(message.get("text", "")))
    for block in blocks:
        if block.get("type") == "header":
            lines.append("▌ " + block["text"]["text"])
        elif block.get("type") == "section":
            if "text" in block:
                lines.append(block["text"]["text"])
            for item in block.get("fields", []):
                lines.append("  " + item["text"].replace("\n", ": "))
        elif block.get("type") == "context":
            lines.append("  · " + " ".join(e.get("text", "") for e in block.get("elements", [])))
    lines.append(bar)
    text = "\n".join(lines).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    print(text, flush=True)


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        if self.path.startswith("/_control/messages"):
            with state.lock:
                return self._json(200, {"messages": state.messages, "requests": state.requests})
        self._json(404, {"ok": False, "error": "unknown_method"})
        return None

    def do_POST(self) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path == "/_control/faults":
            with state.lock:
                state.faults.extend(SlackFault(**f) for f in json.loads(raw).get("faults", []))
            return self._json(200, {"ok": True})
        if path == "/_control/reset":
            state.reset()
            return self._json(200, {"ok": True})
        if path == "/_control/click":
            asked = json.loads(raw or b"{}")
            answer = state.click(asked.get("action", ""), asked.get("user", ""), asked.get("ts", ""),
                                 asked.get("team", ""))  # fmt: skip
            return self._json(200 if answer["ok"] else 400, answer)
        payload = _payload(raw, self.headers.get("Content-Type", ""))
        with state.lock:
            state.requests.append(
                {
                    "path": path,
                    "payload": payload,
                    "time": time.monotonic(),
                    "authorization": bool(self.headers.get("Authorization")),
                }
            )
        fault = state.take_fault(path)
        if fault is not None:
            if fault.kind == "reset":
                self.close_connection = True
                self.connection.close()
                return None
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            elif fault.kind == "slow_answer" and path.endswith("/chat.postMessage"):
                self._post_message(payload, answer_after=fault.seconds)
                return None
            elif fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                body = {"ok": False, "error": "ratelimited" if fault.status == 429 else "internal_error"}
                return self._json(fault.status, body, headers)
            elif fault.kind == "error":
                return self._json(200, {"ok": False, "error": fault.error})
        method = path.rsplit("/", 1)[-1]
        if path.startswith("/api/") and method in METHOD_SCOPES:
            if method == "chat.postMessage":
                return self._post_message(payload)
            refused = self._refused(method, payload)
            if refused is not None:
                return self._json(200, refused)
            return self._json(200, getattr(self, "_" + method.replace(".", "_"))(payload))
        if path.startswith("/webhook/"):
            problem = _block_problem(payload.get("blocks"))
            if problem:
                with state.lock:
                    state.invalid.append({"problem": problem, "blocks": payload.get("blocks")})
                return self._text(400, "invalid_blocks")
            state.accept("webhook", payload)
            return self._text(200, "ok")
        return self._json(404, {"ok": False, "error": "unknown_method"})

    def _refused(self, method: str, payload: dict) -> dict | None:
        """Slack's answer for a bad token (``invalid_auth``) or scopes that do not cover ``method``; else None."""
        if self.headers.get("Authorization", "") != f"Bearer {self.server.state.token}":
            return {"ok": False, "error": "invalid_auth"}
        return self.server.state.refusal(method, payload)

    def _post_message(self, payload: dict, answer_after: float = 0.0) -> None:
        state = self.server.state
        refused = self._refused("chat.postMessage", payload)
        if refused is not None:
            return self._json(200, refused)
        if not payload.get("channel"):
            return self._json(200, {"ok": False, "error": "channel_not_found"})
        if not payload.get("text") and not payload.get("blocks"):
            return self._json(200, {"ok": False, "error": "no_text"})
        problem = _block_problem(payload.get("blocks"))
        if problem:
            with state.lock:
                state.invalid.append({"problem": problem, "blocks": payload.get("blocks")})
            return self._json(
                200, {"ok": False, "error": "invalid_blocks", "response_metadata": {"messages": [problem]}}
            )
        message = state.accept("chat.postMessage", payload)
        if answer_after:
            time.sleep(answer_after)  # the message is in the channel; the answer is late
        return self._json(
            200,
            {
                "ok": True,
                "channel": payload["channel"],
                "ts": message["ts"],
                "message": {
                    "type": "message",
                    "subtype": "bot_message",
                    "text": payload.get("text", ""),
                    "ts": message["ts"],
                },
            },
        )

    def _chat_update(self, payload: dict) -> dict:
        """chat.update: the message must exist in that channel; its text and blocks are replaced in place."""
        state = self.server.state
        problem = _block_problem(payload.get("blocks"))
        if problem:
            with state.lock:
                state.invalid.append({"problem": problem, "blocks": payload.get("blocks")})
            return {"ok": False, "error": "invalid_blocks", "response_metadata": {"messages": [problem]}}
        with state.lock:
            found = next(
                (
                    m
                    for m in state.messages
                    if m.get("ts") == payload.get("ts") and m.get("channel") == payload.get("channel")
                ),
                None,
            )
            if found is None:
                return {"ok": False, "error": "message_not_found"}
            for key in ("text", "blocks"):
                if key in payload:
                    found[key] = payload[key]
            found.setdefault("updates", []).append({k: payload.get(k) for k in ("text", "blocks")})
        if state.echo:
            print_message(found, note=f"card {found['ts']} updated in place")
        return {"ok": True, "channel": payload["channel"], "ts": payload["ts"], "text": payload.get("text", "")}

    def _chat_postEphemeral(self, payload: dict) -> dict:
        state = self.server.state
        with state.lock:
            state.ephemeral.append(dict(payload))
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    def _conversations_history(self, payload: dict) -> dict:
        """Newest first, between ``oldest`` and ``latest`` (``latest`` itself only with ``inclusive``), blocks
        included as Slack holds them; message metadata only with ``include_all_metadata``."""
        state = self.server.state
        oldest = float(payload.get("oldest") or 0)
        latest = float(payload.get("latest") or "inf")
        inclusive = str(payload.get("inclusive", "")).lower() in ("1", "true")
        with_metadata = str(payload.get("include_all_metadata", "")).lower() in ("1", "true")
        with state.lock:
            found = [
                m for m in state.messages
                if m.get("channel") == payload.get("channel") and oldest <= float(m["ts"])
                and (float(m["ts"]) < latest or (inclusive and float(m["ts"]) == latest))
            ]  # fmt: skip
        messages = []
        for message in reversed(found[-int(payload.get("limit") or 100) :]):
            shown = {"type": "message", "ts": message["ts"], "text": message.get("text", "")}
            if message.get("blocks"):
                blocks = message["blocks"]
                shown["blocks"] = json.loads(blocks) if isinstance(blocks, str) else blocks
            if with_metadata and message.get("metadata"):
                metadata = message["metadata"]
                shown["metadata"] = json.loads(metadata) if isinstance(metadata, str) else metadata
            messages.append(shown)
        return {"ok": True, "messages": messages, "has_more": False}

    def _users_info(self, payload: dict) -> dict:
        user = self.server.state.users.get(payload.get("user", ""))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _usergroups_users_list(self, payload: dict) -> dict:
        users = self.server.state.usergroups.get(payload.get("usergroup", ""))
        return {"ok": True, "users": users} if users is not None else {"ok": False, "error": "no_such_subteam"}

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        if self.path.startswith("/api/"):  # every Web API answer names the token's scopes, as Slack's do
            headers = {"x-oauth-scopes": ",".join(sorted(self.server.state.scopes)), **(headers or {})}
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

    def _auth_test(self, payload: dict) -> dict:
        return {"ok": True, "url": "https://netra.slack.com/", "team": "Netra", "user": "rollback-watchdog",
                "team_id": "T0NETRA", "user_id": "U0BOT", "bot_id": "B0BOT"}  # fmt: skip

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain", None)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _payload(raw: bytes, content_type: str) -> dict:
    if "json" in content_type:
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}
    return {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}


def _block_problem(blocks: Any) -> str:
    """Hold every message to Block Kit as slack-sdk's own models define it, plus the limits Slack states.

    Each block must parse (``slack_sdk.models.blocks.Block.parse``) into a known
    block type, pass ``validate_json()`` (lengths, required fields, element
    counts), and come back from ``to_dict()`` unchanged, so a misspelled or
    invented key fails instead of being dropped. Header text must be
    ``plain_text`` (Block Kit reference, header block), which the model does not
    check. Answers like Slack's ``invalid_blocks`` (gcp-wire-formats.md section 4).
    """
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.blocks import Block

    if blocks is None:
        return ""
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if len(blocks) > 50:
        return "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
    for i, block in enumerate(blocks):
        parsed = Block.parse(block) if isinstance(block, dict) else None
        if parsed is None or type(parsed) is Block:
            return f"[ERROR] unknown block type {block.get('type')!r} [json-pointer:/blocks/{i}/type]"
        try:
            parsed.validate_json()
        except SlackObjectFormationError as error:
            return f"[ERROR] {error} [json-pointer:/blocks/{i}]"
        if parsed.to_dict() != block:
            return f"[ERROR] unknown or malformed field [json-pointer:/blocks/{i}]"
        if block.get("type") == "header" and (block.get("text") or {}).get("type") != "plain_text":
            return f"[ERROR] must be a plain_text object [json-pointer:/blocks/{i}/text]"
        text = (block.get("text") or {}).get("text", "")
        limit = 150 if block.get("type") == "header" else 3000
        if len(text) > limit:
            return f"[ERROR] must be less than {limit + 1} characters [json-pointer:/blocks/{i}/text/text]"
        fields = block.get("fields") or []
        if len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields):
            return f"[ERROR] fields over the limit [json-pointer:/blocks/{i}/fields]"
    return ""


def user(user_id: str, team: str = "T0WATCH", **flags: bool) -> dict:
    """A users.info ``user`` object (``is_restricted``: guest, ``is_ultra_restricted``: single-channel guest,
    ``is_stranger``: external, ``deleted``: deactivated)."""
    base = {"is_restricted": False, "is_ultra_restricted": False, "deleted": False, "is_bot": False}
    return {"id": user_id, "team_id": team, "name": user_id.lower(), **base, **flags}


def signed(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack signs an interactivity request with: ``v0=HMAC-SHA256(secret, "v0:ts:body")``."""
    import hashlib
    import hmac

    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


class SlackStandIn(StandIn):
    """In-process server: ``with SlackStandIn() as slack: slack.api_url``."""

    handler = _Handler

    def __init__(
        self, port: int = 0, token: str = TOKEN, echo: bool = False, scopes: frozenset[str] | None = None
    ) -> None:
        super().__init__(SlackState(token, echo, scopes), port)

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    @property
    def webhook_url(self) -> str:
        return self.url + "/webhook/T000/B000/standin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8086)
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--print", action="store_true", help="print each message as it arrives")
    args = parser.parse_args()
    server = SlackStandIn(args.port, args.token, echo=args.print)
    server.serve_until_interrupted(f"slack stand-in listening on {server.url} (Web API base {server.api_url})")


if __name__ == "__main__":
    main()
