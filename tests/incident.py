"""The staging incident's world, shared by ``make demo`` and ``make playground``.

The Cloud Run stand-in seeded with the incident (auth and backend each a
``private-ranges-only`` revision, then an ``all-traffic`` one serving), the Slack
stand-in, the Monitoring stand-in holding the incident's alert policies and the
watchdog's notification channel, and the function's environment pointing at them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.standins.cloudrun import CloudRunStandIn
from tests.standins.monitoring import MonitoringStandIn
from tests.standins.slack import TOKEN, SlackStandIn
from tests.support import fixture, incident_seed_at

PROJECT, REGION = "netra-staging", "us-central1"
PREFIX = f"projects/{PROJECT}/locations/{REGION}/services/"
TOPIC = f"projects/{PROJECT}/topics/rollback-watchdog-alerts"
CHANNEL = "C0ONCALL"
ACTIONS = {"SLACK_SIGNING_SECRET": "demo-signing-secret-0123456789abcd", "WATCHDOG_SLACK_TEAM": "T0NETRA",
           "WATCHDOG_SLACK_APPROVERS": "U0ONCALL"}  # fmt: skip


@dataclass
class Incident:
    cloud_run: CloudRunStandIn
    slack: SlackStandIn
    monitoring: MonitoringStandIn

    def env(self) -> dict[str, str]:
        """The function's settings (watchdog/config.py), pointed at the stand-ins."""
        return {
            "CLOUD_RUN_API_ENDPOINT": self.cloud_run.url,
            "WATCHDOG_SERVICES": "netra-auth-service,netra-backend-staging",
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_CHANNEL": CHANNEL,
            "SLACK_API_URL": self.slack.api_url,
            "MONITORING_API_ENDPOINT": self.monitoring.address,
            **ACTIONS,
        }


@contextmanager
def standins(
    cloud_run: int = 0, slack: int = 0, monitoring: int = 0, *, echo: bool = False, symptoms: float | None = None
) -> Iterator[Incident]:
    """Start the three stand-ins on loopback (port 0: any free one); ``echo`` prints each Slack message.

    ``symptoms`` (epoch seconds) moves the incident in time so that its symptoms begin then: the playground's
    drills are now, and meet the breaking deploy 37 hours old, as on the day. Without it, the incident's dates."""
    seed = incident_seed_at(symptoms) if symptoms else fixture("cloudrun/incident_seed.json")
    with (
        CloudRunStandIn(seed, cloud_run) as api,
        SlackStandIn(slack, echo=echo) as chat,
        MonitoringStandIn(monitoring, seed=fixture("monitoring/incident_policies.json")) as metrics,
    ):
        yield Incident(api, chat, metrics)
