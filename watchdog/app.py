"""Wiring: configuration, clients and the watchdog, built once per process."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from watchdog import logs
from watchdog.cloudrun import CloudRun
from watchdog.config import Config, ConfigError
from watchdog.handler import Watchdog
from watchdog.notify import notifier, remaining_until

_lock = threading.Lock()
_instance: Watchdog | None = None


def build(config: Config) -> Watchdog:
    from watchdog.extras import after_decision, related

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
                raise
            _instance = build(config)
            logs.info(
                "watchdog configured",
                services=config.services.describe(),
                dry_run=config.dry_run,
                rollback_on=config.rollback_on,
                slack=config.slack.mode,
                paused=config.paused,
            )
        return _instance


def reset() -> None:
    global _instance
    with _lock:
        _instance = None
