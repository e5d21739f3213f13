"""Wiring: configuration, clients and the watchdog, built once per process."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from watchdog import __version__
from watchdog.config import Config, ConfigError
from watchdog.edges import logs
from watchdog.edges.cloudrun import CloudRun
from watchdog.edges.slack import notifier, remaining_until
from watchdog.flows.delivery import Watchdog

_lock = threading.Lock()
_instance: Watchdog | None = None


def build(config: Config) -> Watchdog:
    from watchdog.flows.extras import after_decision, related

    cloud_run = CloudRun(config.cloud_run_endpoint)
    return Watchdog(
        config,
        cloud_run,
        lambda deadline: notifier(config.slack, remaining_until(deadline)),
        after_decision=after_decision(config),
        related=related(config, cloud_run),
    )


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
    notifier(settings, remaining_until(time.monotonic() + 10)).post(Message(text, loud=True))


def reset() -> None:
    global _instance, _config_error_reported
    with _lock:
        _instance = None
        _config_error_reported = False
