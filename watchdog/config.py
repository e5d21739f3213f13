"""Configuration, read once from the environment and validated.

Every setting has one environment variable; the CLI options read the same
names, so the function and the operator tools share one configuration.
A bad value raises :class:`ConfigError` naming the variable and the value.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

ROLLBACK_KINDS = ("egress", "network", "any")
SENTINEL_MODES = ("off", "warn", "hold")
FIELD_REVERT_MODES = ("auto", "offer", "off")

# Names of every environment variable the watchdog reads. terraform/ and the
# tests check against this list, so add new settings here.
ENV_VARS = (
    "WATCHDOG_SERVICES",
    "WATCHDOG_DRY_RUN",
    "WATCHDOG_ROLLBACK_ON",
    "WATCHDOG_COOLDOWN_SECONDS",
    "WATCHDOG_DEADLINE_SECONDS",
    "WATCHDOG_MAX_ALERT_AGE_SECONDS",
    "WATCHDOG_MAX_CHANGE_AGE_HOURS",
    "WATCHDOG_FIELD_REVERT",
    "WATCHDOG_PROJECTS",
    "WATCHDOG_PAUSED",
    "WATCHDOG_METRICS_PROJECT",
    "WATCHDOG_SENTINEL",
    "WATCHDOG_SERVICE_ACCOUNT",
    "WATCHDOG_VERIFY_MINUTES",
    "WATCHDOG_SHOW_ENV",  # env var names whose values reports may show (default: only harmless shapes)
    "WATCHDOG_POLICIES",  # alert policies (display names or ids) that may roll back; empty: any
    "WATCHDOG_SIGNAL_METRICS",
    "CLOUD_RUN_API_ENDPOINT",
    "MONITORING_API_ENDPOINT",
    "SLACK_BOT_TOKEN",
    "SLACK_CHANNEL",
    "SLACK_WEBHOOK_URL",
    "SLACK_API_URL",
    "SLACK_SIGNING_SECRET",  # slack_actions only: verifies the card's button clicks
    "WATCHDOG_SLACK_APPROVERS",  # slack_actions only: user and user-group IDs allowed to click
    "WATCHDOG_SLACK_TEAM",  # slack_actions only: the workspace (team id) the buttons answer
    "WATCHDOG_TOPIC",  # operator tools only (drill, doctor): projects/P/topics/T
    "WATCHDOG_FUNCTION",  # operator tools only (status, doctor): the deployed alert function's name
    "WATCHDOG_ID_TOKEN",  # operator tools only (drill --url): identity token
)

# A Slack channel ID, as conversations.history requires: C… (a channel, public or private) or G… (a
# private channel of the older kind); capitals and digits. The app's scopes read only channels.
SLACK_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")

_TRUE = {"1", "true", "yes", "on"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_FALSE = {"", "0", "false", "no", "off"}


class ConfigError(ValueError):
    """A setting is invalid; the message names the variable and the value."""


@dataclass(frozen=True)
class ServiceRef:
    """One Cloud Run service: ``projects/P/locations/R/services/S``."""

    project: str
    region: str
    service: str

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/services/{self.service}"

    def __str__(self) -> str:
        return f"{self.project}/{self.region}/{self.service}"


@dataclass(frozen=True)
class ServiceScope:
    """Which services the watchdog may change (``WATCHDOG_SERVICES``).

    Entries are ``SERVICE``, ``REGION/SERVICE`` or ``PROJECT/REGION/SERVICE``;
    ``*`` matches every service. An empty scope matches nothing: the watchdog
    then reports but never changes traffic.
    """

    entries: tuple[tuple[str, ...], ...] = ()
    everything: bool = False

    @classmethod
    def parse(cls, text: str) -> ServiceScope:
        entries: list[tuple[str, ...]] = []
        everything = False
        for raw in (text or "").split(","):
            item = raw.strip()
            if not item:
                continue
            if item == "*":
                everything = True
                continue
            parts = tuple(p.strip() for p in item.split("/"))
            if len(parts) > 3 or any(not p for p in parts):
                raise ConfigError(
                    f"WATCHDOG_SERVICES: entry {item!r} is not SERVICE, REGION/SERVICE or PROJECT/REGION/SERVICE"
                )
            entries.append(parts)
        return cls(tuple(entries), everything)

    def __contains__(self, ref: ServiceRef) -> bool:
        if self.everything:
            return True
        full = (ref.project, ref.region, ref.service)
        return any(full[-len(entry) :] == entry for entry in self.entries)

    def __bool__(self) -> bool:
        return self.everything or bool(self.entries)

    def describe(self) -> str:
        if self.everything:
            return "*"
        return ",".join("/".join(e) for e in self.entries) or "(none)"


@dataclass(frozen=True)
class SlackSettings:
    bot_token: str = field(default="", repr=False)
    channel: str = ""
    webhook_url: str = field(default="", repr=False)
    api_url: str = ""
    signing_secret: str = field(default="", repr=False)

    @property
    def mode(self) -> str:
        if self.bot_token and self.channel:
            return "bot"
        if self.webhook_url:
            return "webhook"
        return "none"


@dataclass(frozen=True)
class Config:
    services: ServiceScope = ServiceScope()
    dry_run: bool = False
    rollback_on: str = "egress"
    cooldown_seconds: int = 1800
    deadline_seconds: float = 60.0
    max_alert_age_seconds: int = 6 * 3600  # 0: no limit
    # A change older than this before the alert is a suspect, never acted on automatically: the staging
    # incident surfaced 37 h after its deploy, so a week leaves room; months of deploys on top of a change
    # are evidence that the change is not what broke today (watchdog/core/decision.py, rule 9).
    max_change_age_hours: float = 168.0
    # What a rollback does when pinning the known-good revision would take later deploys out of service:
    # "auto" reverts only the trigger fields on a new revision with the failing revision's code,
    # "offer" pins and offers that on the card, "off" pins (watchdog/core/field_revert.py).
    field_revert: str = "auto"
    projects: frozenset[str] = frozenset()
    paused: bool = False
    metrics_project: str = ""
    sentinel: str = "warn"  # deploy events: off, warn on risky configuration, or hold (warn, then pin back)
    own_principal: str = ""  # the watchdog's own service account: its writes are not deploys
    verify_minutes: float = (
        10.0  # quiet time after a rollback before it is called recovered (watchdog/core/verification.py)
    )
    # (policy user label ``signal``, log-based counter metric type): what verification reads for a log-match
    # alert, whose notification names no metric (terraform writes it; watchdog/core/verification.py)
    signal_metrics: tuple[tuple[str, str], ...] = ()
    cloud_run_endpoint: str = ""
    monitoring_endpoint: str = ""
    slack: SlackSettings = SlackSettings()
    slack_team: str = ""
    slack_approvers: tuple[str, ...] = ()
    show_env: frozenset[str] = frozenset()  # env var names whose values may be shown (WATCHDOG_SHOW_ENV)
    policies: frozenset[str] = frozenset()  # policies that may roll back (WATCHDOG_POLICIES); empty: any

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        rollback_on = env.get("WATCHDOG_ROLLBACK_ON", "egress").strip().lower() or "egress"
        if rollback_on not in ROLLBACK_KINDS:
            raise ConfigError(f"WATCHDOG_ROLLBACK_ON: {rollback_on!r} is not one of {', '.join(ROLLBACK_KINDS)}")
        sentinel = env.get("WATCHDOG_SENTINEL", "warn").strip().lower() or "warn"
        if sentinel not in SENTINEL_MODES:
            raise ConfigError(f"WATCHDOG_SENTINEL: {sentinel!r} is not one of {', '.join(SENTINEL_MODES)}")
        field_revert = env.get("WATCHDOG_FIELD_REVERT", "auto").strip().lower() or "auto"
        if field_revert not in FIELD_REVERT_MODES:
            raise ConfigError(f"WATCHDOG_FIELD_REVERT: {field_revert!r} is not one of {', '.join(FIELD_REVERT_MODES)}")
        slack = SlackSettings(
            bot_token=env.get("SLACK_BOT_TOKEN", "").strip(),
            channel=env.get("SLACK_CHANNEL", "").strip(),
            webhook_url=env.get("SLACK_WEBHOOK_URL", "").strip(),
            api_url=env.get("SLACK_API_URL", "").strip(),
            signing_secret=env.get("SLACK_SIGNING_SECRET", "").strip(),
        )
        approvers = tuple(a.strip() for a in env.get("WATCHDOG_SLACK_APPROVERS", "").split(",") if a.strip())
        for approver in approvers:
            if approver[:1] not in ("U", "W", "S") or not approver.isalnum():
                raise ConfigError(
                    f"WATCHDOG_SLACK_APPROVERS: {approver[:30]!r} is not a Slack user (U…/W…) or user group (S…) ID"
                )
        if slack.bot_token and not slack.channel and not slack.webhook_url:
            raise ConfigError("SLACK_CHANNEL: required when SLACK_BOT_TOKEN is set")
        show_env = frozenset(n.strip() for n in env.get("WATCHDOG_SHOW_ENV", "").split(",") if n.strip())
        for name in show_env:
            if not _ENV_NAME.fullmatch(name):
                raise ConfigError(f"WATCHDOG_SHOW_ENV: {name[:40]!r} is not an environment variable name")
        if slack.channel and not SLACK_CHANNEL_ID.match(slack.channel):
            # Slack finds a lost post again (conversations.history) only by the channel's ID: with a name,
            # posting works but the search fails, and every retried post becomes a second card
            raise ConfigError(
                f"SLACK_CHANNEL: {slack.channel[:40]!r} is not a channel ID. Use the ID (C… for a public "
                "channel, G… for some private ones, capitals and digits), not the #name: in Slack, open the "
                "channel's details (click its name); the ID is at the bottom of the About tab"
            )
        endpoint = env.get("CLOUD_RUN_API_ENDPOINT", "").strip()
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"CLOUD_RUN_API_ENDPOINT: {endpoint!r} must be an http:// or https:// URL")
        return cls(
            services=ServiceScope.parse(env.get("WATCHDOG_SERVICES", "")),
            dry_run=_flag(env, "WATCHDOG_DRY_RUN"),
            rollback_on=rollback_on,
            cooldown_seconds=int(_number(env, "WATCHDOG_COOLDOWN_SECONDS", 1800, minimum=0, maximum=7 * 86400)),
            # a Cloud Function handling an event runs for at most 540 s
            deadline_seconds=_number(env, "WATCHDOG_DEADLINE_SECONDS", 60, minimum=5, maximum=540),
            # Pub/Sub keeps a message (and a dead letter) for at most 31 days
            max_alert_age_seconds=int(
                _number(env, "WATCHDOG_MAX_ALERT_AGE_SECONDS", 6 * 3600, minimum=0, maximum=31 * 86400)
            ),
            # at least a day (the incident's symptom came 37 h late), at most the 1,000 revisions' worth of a year
            max_change_age_hours=_number(env, "WATCHDOG_MAX_CHANGE_AGE_HOURS", 168, minimum=24, maximum=366 * 24),
            field_revert=field_revert,
            projects=frozenset(p.strip() for p in env.get("WATCHDOG_PROJECTS", "").split(",") if p.strip()),
            paused=_flag(env, "WATCHDOG_PAUSED"),
            metrics_project=env.get("WATCHDOG_METRICS_PROJECT", "").strip(),
            sentinel=sentinel,
            own_principal=env.get("WATCHDOG_SERVICE_ACCOUNT", "").strip(),
            # fractions allowed (tests, drills); a day at most: a verdict later than that helps nobody
            verify_minutes=_number(env, "WATCHDOG_VERIFY_MINUTES", 10, minimum=0.05, maximum=1440),
            signal_metrics=_signal_metrics(env.get("WATCHDOG_SIGNAL_METRICS", "")),
            cloud_run_endpoint=endpoint,
            monitoring_endpoint=env.get("MONITORING_API_ENDPOINT", "").strip(),
            slack=slack,
            slack_team=env.get("WATCHDOG_SLACK_TEAM", "").strip(),
            slack_approvers=approvers,
            show_env=show_env,
            # comma-separated display names or ids (a display name with a comma in it: name it by its id)
            policies=frozenset(p.strip() for p in env.get("WATCHDOG_POLICIES", "").split(",") if p.strip()),
        )


_SIGNAL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")  # an alert policy user label value (AlertPolicy.user_labels)
_LOG_COUNTER = re.compile(r"^logging\.googleapis\.com/user/[A-Za-z0-9_./-]{1,100}$")  # LogMetric.name's characters


def _signal_metrics(text: str) -> tuple[tuple[str, str], ...]:
    """``SIGNAL=METRIC,…``: the log-based counter that counts what a log-match policy with user label
    ``signal=SIGNAL`` matches. The metric goes into a Monitoring filter, so only a metric name's characters."""
    pairs = []
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        signal, _, metric = (part.strip() for part in item.partition("="))
        if not _SIGNAL.match(signal) or not _LOG_COUNTER.match(metric):
            raise ConfigError(
                f"WATCHDOG_SIGNAL_METRICS: {item[:120]!r} is not SIGNAL=logging.googleapis.com/user/METRIC "
                "(SIGNAL: an alert policy's user label value)"
            )
        pairs.append((signal, metric))
    return tuple(pairs)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}: {value!r} is not true or false")


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float) -> float:
    """A finite number within [minimum, maximum]; ``inf``, ``nan`` and ``1e400`` are errors, not values."""
    raw = env.get(name, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}: {raw[:40]!r} is not a finite number")
    if value < minimum:
        raise ConfigError(f"{name}: {raw!r} is below the minimum of {minimum:g}")
    if value > maximum:
        raise ConfigError(f"{name}: {raw!r} is above the maximum of {maximum:g}")
    return value
