"""Slack delivery: one narrow interface, one class per backend, a no-op when unconfigured.

A call never raises and never outlives the handling deadline: slack-sdk's own
retry handlers retry 429 (honouring Retry-After only while it fits in the time
left), 500/503 and dropped connections; whatever still fails comes back as a
:class:`Posted` with ``ok=False`` and the handler carries on. slack-sdk is
imported only when a message is sent, after any traffic update. Every text
and block goes through :func:`watchdog.core.redact.redact` on its way out.

The card's buttons (watchdog/flows/slack_actions.py) reuse one :class:`SlackBot`
per instance across clicks, giving it each click's deadline (:meth:`SlackBot.until`);
their calls (``users.info``, ``usergroups.users.list``, ``chat.postEphemeral``,
the card's ``chat.update``) go through it like every post.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from watchdog.config import SlackSettings
from watchdog.core.redact import redact, redact_json
from watchdog.core.report import Message
from watchdog.edges import logs

POST_TIMEOUT = 5.0
CARD_EVENT = "rollback_watchdog_card"  # Slack message metadata event_type of the incident card


# ok:false errors that a later attempt may get past; every other code is permanent.
_RETRYABLE_CODES = {
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}


CLICK_CALL_TIMEOUT = 1.0  # seconds for one call of a button click: Slack wants the click answered within 3 s
MIN_CLICK_CALL = 0.2  # a click's call is not started with less time than this left


@dataclass(frozen=True)
class Read:
    """What a read answered (``value``), or why not (``error``: Slack's error code, or how it failed)."""

    ok: bool
    value: Any = None
    error: str = ""


@dataclass(frozen=True)
class Posted:
    ok: bool
    thread: str = ""  # "channel:ts" in bot mode, for replies
    error: str = ""
    retryable: bool = False  # a later delivery may succeed (429, 5xx, timeout, connection)


class Notifier(Protocol):
    def post(self, message: Message, thread: str = "") -> Posted: ...

    def update(self, message: Message, posted: str) -> Posted:
        """Replace the message ``posted`` ("channel:ts") in place; where that cannot be done, post anew."""
        ...

    def find(self, card: str, since: float) -> str:
        """The message already posted for the incident card ``card``, or ""."""
        ...


class NoSlack:
    """Slack is not configured: the structured log line is the report."""

    def post(self, message: Message, thread: str = "") -> Posted:
        return Posted(True)

    def update(self, message: Message, posted: str) -> Posted:
        return Posted(True)

    def find(self, card: str, since: float) -> str:
        return ""


class SlackBot:
    """chat.postMessage with a bot token; replies thread under the first message."""

    def __init__(self, settings: SlackSettings, remaining: Callable[[], float]) -> None:
        from slack_sdk import WebClient

        self._remaining = remaining
        self._client = WebClient(
            token=settings.bot_token,
            timeout=int(POST_TIMEOUT),
            # no blind retry of a post whose answer was lost: it may have been accepted (find() looks first);
            # the handlers read the deadline of the call under way (until() moves it)
            retry_handlers=_retry_handlers(lambda: self._remaining(), connection_errors=False),
            **({"base_url": settings.api_url} if settings.api_url else {}),  # type: ignore[arg-type]
        )
        self._channel = settings.channel

    def until(self, remaining: Callable[[], float]) -> SlackBot:
        """Give this client the deadline of the work under way (a click reuses the instance's client).

        One piece of work at a time: the client's timeout and retry handlers are shared."""
        self._remaining = remaining
        return self

    def post(self, message: Message, thread: str = "") -> Posted:
        from slack_sdk.errors import SlackApiError

        channel, _, ts = thread.partition(":") if thread else (self._channel, "", "")
        text = redact(("<!here> " if message.loud else "") + message.text)
        if self._remaining() < 1:
            return Posted(False, error="no time left to post", retryable=True)
        try:
            self._client.timeout = max(1, int(min(POST_TIMEOUT, self._remaining())))
            extra: dict[str, Any] = (
                {"metadata": {"event_type": CARD_EVENT, "event_payload": {"card": message.card}}}
                if message.card
                else {}
            )
            if ts and message.loud:
                # a mention in a thread reply pages nobody outside the thread: broadcast it to the channel
                extra["reply_broadcast"] = True
            response = self._client.chat_postMessage(
                channel=channel or self._channel,
                text=text,
                blocks=redact_json(_blocks(message)) or None,
                thread_ts=ts or None,
                unfurl_links=False,
                unfurl_media=False,
                **extra,
            )
        except SlackApiError as error:
            code = str(error.response.get("error", "")) if error.response is not None else ""
            if code in ("invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long") and message.blocks:
                return self.post(Message(message.text, [], message.loud), thread)
            status = error.response.status_code if error.response is not None else 0
            return Posted(
                False,
                error=f"slack error: {code or error}",
                retryable=code in _RETRYABLE_CODES or status == 429 or status >= 500,
            )
        except Exception as error:  # noqa: BLE001 - a failed post must never stop the watchdog
            return Posted(False, error=f"slack unreachable: {type(error).__name__}: {error}", retryable=True)
        return Posted(True, thread=f"{response.get('channel', channel)}:{response.get('ts', '')}")

    def find(self, card: str, since: float) -> str:
        """The card ("channel:ts") posted for ``card`` since ``since`` (epoch s), found by its metadata; "" if none.

        A post whose answer was lost (a slow Slack that accepted after the client gave up, a crash right
        after posting) is found here, so a retry updates that card instead of posting another.
        """
        if not card or self._remaining() < 1:
            return ""
        try:
            self._client.timeout = max(1, int(min(POST_TIMEOUT, self._remaining())))
            history = self._client.conversations_history(
                channel=self._channel, oldest=f"{max(0.0, since):.6f}", include_all_metadata=True, limit=100
            )
        except Exception as error:  # noqa: BLE001 - not found is the safe answer: a second card, never none
            logs.warning(f"could not look for the incident card: {error}")
            return ""
        for found in history.get("messages") or []:
            metadata = found.get("metadata") or {}
            if metadata.get("event_type") == CARD_EVENT and (metadata.get("event_payload") or {}).get("card") == card:
                return f"{self._channel}:{found.get('ts', '')}"
        return ""

    def update(self, message: Message, posted: str) -> Posted:
        """chat.update of the card. A mention added by an update notifies nobody, so loud news is also posted."""
        from slack_sdk.errors import SlackApiError

        channel, _, ts = posted.partition(":")
        if not ts or self._remaining() < 1:
            return self.post(message)
        try:
            self._client.timeout = max(1, int(min(POST_TIMEOUT, self._remaining())))
            self._client.chat_update(
                channel=channel, ts=ts, text=redact(message.text), blocks=redact_json(_blocks(message)) or None
            )
        except SlackApiError as error:
            code = str(error.response.get("error", "")) if error.response is not None else ""
            if code in ("message_not_found", "cant_update_message", "edit_window_closed"):
                return self.post(message)
            status = error.response.status_code if error.response is not None else 0
            return Posted(
                False, error=f"slack error: {code or error}", retryable=code in _RETRYABLE_CODES or status >= 429
            )
        except Exception as error:  # noqa: BLE001 - a failed update must never stop the watchdog
            return Posted(False, error=f"slack unreachable: {type(error).__name__}: {error}", retryable=True)
        return Posted(True, thread=posted)

    # --- a button click's calls: short deadlines, errors as values ---

    def _click_call(self, call: Callable[[], Any]) -> Read:
        from slack_sdk.errors import SlackApiError

        left = self._remaining()
        if left < MIN_CLICK_CALL:
            return Read(False, error="no time left")
        self._client.timeout = min(CLICK_CALL_TIMEOUT, left)  # type: ignore[assignment]  # urllib takes a float
        try:
            return Read(True, call())
        except SlackApiError as error:
            response = error.response
            code = str(response.get("error", "")) if response is not None else ""
            needed = str(response.get("needed", "")) if response is not None and code == "missing_scope" else ""
            return Read(False, error=f"slack error: {code or error}" + (f" (needs {needed})" if needed else ""))
        except Exception as error:  # noqa: BLE001 - a click is answered whatever Slack does
            return Read(False, error=f"slack unreachable: {type(error).__name__}")

    def scopes(self) -> Read:
        """The bot token's scopes, as Slack states them on every Web API answer (the ``x-oauth-scopes`` header),
        read with ``auth.test`` (which needs no scope); or why they could not be read."""

        def call() -> frozenset[str]:
            headers = {k.lower(): v for k, v in self._client.auth_test().headers.items()}
            listed = headers.get("x-oauth-scopes", "")
            listed = listed[0] if isinstance(listed, list) and listed else listed
            return frozenset(s.strip() for s in str(listed).split(",") if s.strip())

        return self._click_call(call)

    def user_info(self, user: str) -> Read:
        """users.info's ``user`` object (guest, external and deactivated flags), or why it could not be read."""
        read = self._click_call(lambda: self._client.users_info(user=user).get("user"))
        return read if not read.ok or isinstance(read.value, dict) else Read(False, error="users.info: no user object")

    def group_members(self, group: str) -> Read:
        """The user IDs of a user group (usergroups.users.list), or why they could not be read."""
        read = self._click_call(lambda: self._client.usergroups_users_list(usergroup=group).get("users"))
        if read.ok and not (isinstance(read.value, list) and all(isinstance(u, str) for u in read.value)):
            return Read(False, error="usergroups.users.list: no list of users")
        return read

    def ephemeral(self, channel: str, user: str, text: str) -> Posted:
        """A message only ``user`` sees, in ``channel`` (chat.postEphemeral)."""
        read = self._click_call(lambda: self._client.chat_postEphemeral(channel=channel, user=user, text=redact(text)))
        return Posted(read.ok, error=read.error)

    def replace(self, channel: str, ts: str, blocks: list[dict], text: str) -> Posted:
        """chat.update of the message at ``ts``: its blocks and text replaced; nothing posted when it cannot be."""
        read = self._click_call(
            lambda: self._client.chat_update(channel=channel, ts=ts, text=redact(text), blocks=redact_json(blocks))
        )
        return Posted(read.ok, thread=f"{channel}:{ts}" if read.ok else "", error=read.error)


class SlackWebhook:
    """An incoming webhook: no threads, success is HTTP 200 ``ok``."""

    def __init__(self, settings: SlackSettings, remaining: Callable[[], float]) -> None:
        from slack_sdk.webhook import WebhookClient

        self._client = WebhookClient(
            settings.webhook_url, timeout=int(POST_TIMEOUT), retry_handlers=_retry_handlers(remaining)
        )
        self._remaining = remaining

    def post(self, message: Message, thread: str = "") -> Posted:
        if self._remaining() < 1:
            return Posted(False, error="no time left to post", retryable=True)
        text = redact(("<!here> " if message.loud else "") + message.text)
        try:
            self._client.timeout = max(1, int(min(POST_TIMEOUT, self._remaining())))
            response = self._client.send(text=text, blocks=redact_json(_blocks(message)) or None)
        except Exception as error:  # noqa: BLE001 - a failed post must never stop the watchdog
            return Posted(False, error=f"slack unreachable: {type(error).__name__}", retryable=True)
        if response.status_code != 200:
            return Posted(
                False,
                error=f"slack webhook HTTP {response.status_code}: {str(response.body)[:100]}",
                retryable=response.status_code == 429 or response.status_code >= 500,
            )
        return Posted(True)

    def update(self, message: Message, posted: str) -> Posted:
        return self.post(message)  # a webhook cannot edit: the new state is a new message

    def find(self, card: str, since: float) -> str:
        return ""  # a webhook cannot read the channel


def _blocks(message: Message) -> list[dict]:
    """The blocks as sent: a loud message carries ``<!here>`` in its first section too.

    Slack shows the blocks, not ``text``, when both are given, and notifies from
    what is shown: a mention only in the fallback text would not ping anyone.
    """
    if not message.loud or not message.blocks:
        return message.blocks
    blocks = [dict(b) for b in message.blocks]
    for block in blocks:
        if block.get("type") == "section" and (block.get("text") or {}).get("type") == "mrkdwn":
            text = block["text"]["text"]
            if text.startswith("<!here>"):  # the report put it there already
                return blocks
            block["text"] = {**block["text"], "text": ("<!here> " + text)[:3000]}
            return blocks
    return [{"type": "section", "text": {"type": "mrkdwn", "text": "<!here>"}}, *blocks]


def notifier(settings: SlackSettings, remaining: Callable[[], float]) -> Notifier:
    if settings.mode == "bot":
        return SlackBot(settings, remaining)
    if settings.mode == "webhook":
        return SlackWebhook(settings, remaining)
    return NoSlack()


def _retry_handlers(remaining: Callable[[], float], connection_errors: bool = True) -> list:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    class DeadlineAwareRateLimit(RateLimitErrorRetryHandler):
        """Retry a 429 only when Retry-After fits in the time left."""

        def _can_retry(self, *, state, request, response=None, error=None) -> bool:
            if not super()._can_retry(state=state, request=request, response=response, error=error):
                return False
            wait = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
            try:
                seconds = float(wait[0] if isinstance(wait, list) else wait)
            except ValueError:
                return False
            return seconds + 2 < remaining()

    handlers = [DeadlineAwareRateLimit(max_retry_count=2), ServerErrorRetryHandler(max_retry_count=1)]
    return [*handlers, ConnectionErrorRetryHandler(max_retry_count=1)] if connection_errors else handlers


def remaining_until(deadline: float) -> Callable[[], float]:
    return lambda: deadline - time.monotonic()


def notifier_until(settings: SlackSettings, deadline: float) -> Notifier:
    """A notifier whose calls give up by ``deadline`` (time.monotonic)."""
    return notifier(settings, remaining_until(deadline))


def notifiers(settings: SlackSettings) -> Callable[[float], Notifier]:
    """deadline → notifier, as the flows call it for each message (built lazily, after the update)."""
    return functools.partial(notifier_until, settings)
