"""Wiring: configuration, clients and the watchdog, built once per process into one bundle (flows/deps.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from watchdog import __version__
from watchdog.config import Config, ConfigError
from watchdog.edges import logs
from watchdog.edges.slack import Notifier, notifier_until
from watchdog.edges.slack import notifiers as slack_notifiers
from watchdog.flows.delivery import Watchdog
from watchdog.flows.deps import CloudRun, Deps, Watched
from watchdog.flows.extras import after_decision, best_effort, best_effort_related, related
from watchdog.flows.reporting import Reporter, Told
from watchdog.flows.turns import Turns

_lock = threading.Lock()
_instance: Watchdog | None = None


def build(
    config: Config,
    *,
    cloud_run: CloudRun | None = None,
    notifiers: Callable[[float], Notifier] | None = None,
    clock: Callable[[], float] = time.time,
    metric: Callable[[Any, Any, float], None] | None = None,
) -> Watchdog:
    """The watchdog and every flow's dependencies, built once. The keywords replace the real clients (tests)."""
    if cloud_run is None:
        from watchdog.edges.cloudrun import CloudRun as CloudRunClient

        cloud_run = CloudRunClient(config.cloud_run_endpoint)
    slack = config.slack
    deps = Deps(
        config=config,
        cloud_run=cloud_run,
        reporter=Reporter(
            notifiers or slack_notifiers(slack),
            bot=slack.mode == "bot",
            buttons=slack.mode == "bot" and bool(config.slack_team),
        ),
        clock=clock,
        metric=best_effort(metric if metric is not None else after_decision(config)),  # after acting
        related=best_effort_related(related(config, cloud_run)),  # blast radius, after the update
        turns=Turns(),
        told=Told(),
        watched=Watched.of(config),
    )
    return Watchdog(deps)


def instance(env: Mapping[str, str] | None = None) -> Watchdog:
    """The process-wide watchdog; raises ConfigError (already logged) on bad settings."""
    global _instance
    with _lock:
        if _instance is None:
            try:
                config = Config.from_env(env)
            except ConfigError as error:
                logs.error(
                    f"invalid configuration, alerts are acknowledged without action: {error}", decision="config_error"
                )
                _report_config_error(error, env)
                raise
            _instance = build(config)
            logs.info(
                f"rollback watchdog {__version__} configured",
                version=__version__,
                services=config.services.describe(),
                dry_run=config.dry_run,
                rollback_on=config.rollback_on,
                slack=config.slack.mode,
                paused=config.paused,
            )
        return _instance


_config_error_reported = False


def _report_config_error(error: ConfigError, env: Mapping[str, str] | None) -> None:
    """Tell on-call once per instance, through whatever Slack settings can be read."""
    global _config_error_reported
    if _config_error_reported:
        return
    _config_error_reported = True
    import os
    import time

    from watchdog.config import SlackSettings
    from watchdog.core.report import Message, escape

    env = os.environ if env is None else env
    settings = SlackSettings(
        bot_token=env.get("SLACK_BOT_TOKEN", "").strip(),
        channel=env.get("SLACK_CHANNEL", "").strip(),
        webhook_url=env.get("SLACK_WEBHOOK_URL", "").strip(),
        api_url=env.get("SLACK_API_URL", "").strip(),
    )
    text = escape(
        f"Rollback watchdog is misconfigured and will not act on alerts: {error}. "
        "Fix the function's environment variables and redeploy."
    )
    notifier_until(settings, time.monotonic() + 10).post(Message(text, loud=True))


def reset() -> None:
    global _instance, _config_error_reported
    with _lock:
        _instance = None
        _config_error_reported = False
