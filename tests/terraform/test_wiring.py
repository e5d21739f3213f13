"""The wiring of terraform/, read from the HCL itself (python-hcl2; no provider, no plan).

`terraform validate/plan` cannot run offline (no provider download), so these
tests pin what a plan would otherwise show: who publishes where, what the
function receives, which alerts the watchdog can act on, and that every grant
is as narrow as the issue asks.
"""

from __future__ import annotations

import ast
import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "terraform"
EXAMPLE = MODULE / "examples" / "basic"

# Environment variable names the Python code reads (watchdog/config.py ENV_VARS).
ALLOWED_ENV = {
    "WATCHDOG_SERVICES",
    "WATCHDOG_DRY_RUN",
    "WATCHDOG_ROLLBACK_ON",
    "WATCHDOG_COOLDOWN_SECONDS",
    "WATCHDOG_DEADLINE_SECONDS",
    "WATCHDOG_PROJECTS",
    "WATCHDOG_PAUSED",
    "WATCHDOG_METRICS_PROJECT",
    "WATCHDOG_MAX_ALERT_AGE_SECONDS",
    "WATCHDOG_SENTINEL",
    "WATCHDOG_SERVICE_ACCOUNT",
    "WATCHDOG_SLACK_TEAM",
    "WATCHDOG_VERIFY_MINUTES",
    "WATCHDOG_MAX_CHANGE_AGE_HOURS",
    "WATCHDOG_FIELD_REVERT",
    "WATCHDOG_SHOW_ENV",
    "WATCHDOG_POLICIES",
    "WATCHDOG_SIGNAL_METRICS",
    "SLACK_CHANNEL",
}
ALLOWED_SECRET_ENV = {"SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL"}

# What each custom role may do. tests/test_iam_census.py proves each permission is one a flow uses, and that
# the flows need nothing more; these pin the roles' text.
OPERATOR_PERMISSIONS = {"run.services.get", "run.services.update"}
# Project-level: run.operations.get because operations are children of the location, so no per-service grant can
# authorise polling them; run.revisions.get because a per-service grant is not documented to cover its revisions.
READER_PERMISSIONS = {"run.services.list", "run.revisions.list", "run.revisions.get", "run.operations.get"}
# The decision metric, in metrics_project only.
METRICS_PERMISSIONS = {"monitoring.timeSeries.create"}

# terraform/verify.tf: reading the restored revision's time series (tests/terraform/test_verify_tf.py).
VERIFIER_PERMISSIONS = {"monitoring.timeSeries.list"}

GROUP_BY = {"resource.label.service_name", "resource.label.revision_name", "resource.label.location"}


# ---------------------------------------------------------------------------
# Loading: python-hcl2 keeps string quotes and marks blocks; strip both.
# ---------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            _unquote(k): _clean(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


@cache
def _load(directory: Path) -> dict[str, list]:
    merged: dict[str, list] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as fh:
            doc = _clean(hcl2.load(fh))
        for key, items in doc.items():
            merged.setdefault(key, []).extend(items)
    return merged


def module() -> dict[str, list]:
    return _load(MODULE)


def resources(rtype: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for item in module().get("resource", []):
        for t, named in item.items():
            if t == rtype:
                found.update(named)
    return found


def all_resources() -> list[tuple[str, str, dict]]:
    return [
        (t, name, body)
        for item in module().get("resource", [])
        for t, named in item.items()
        for name, body in named.items()
    ]


def resource(rtype: str, name: str) -> dict:
    found = resources(rtype)
    assert name in found, f"{rtype}.{name} is missing (have: {sorted(found)})"
    return found[name]


def block(body: dict, *path: str) -> dict:
    """Single nested block, e.g. block(fn, "service_config")."""
    for key in path:
        value = body[key]
        body = value[0] if isinstance(value, list) else value
    return body


def locals_() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for item in module().get("locals", []):
        merged.update(item)
    return merged


def variables() -> dict[str, dict]:
    merged: dict[str, dict] = {}
    for item in module().get("variable", []):
        merged.update(item)
    return merged


def function_specs() -> dict[str, dict]:
    """local.function_specs (function.tf): one entry per function, by key."""
    return locals_()["function_specs"]


def function_spec(key: str) -> dict:
    specs = function_specs()
    assert key in specs, f"local.function_specs has no entry {key!r} (have: {sorted(specs)})"
    return specs[key]


def functions() -> dict:
    """The one function definition, google_cloudfunctions2_function.watchdog (an instance per entry)."""
    return resource("google_cloudfunctions2_function", "watchdog")


def policies() -> dict[str, dict]:
    return resources("google_monitoring_alert_policy")


def conditions(policy: dict) -> list[dict]:
    return policy["conditions"]


def strategy(policy: dict) -> dict:
    return block(policy, "alert_strategy")


def is_log_match(policy: dict) -> bool:
    return any("condition_matched_log" in c for c in conditions(policy))


def module_text() -> str:
    return "\n".join(p.read_text() for p in sorted(MODULE.rglob("*.tf")))


# ---------------------------------------------------------------------------
# Pub/Sub: channel -> topic -> push subscription -> function, dead letters
# ---------------------------------------------------------------------------

CHANNEL = "google_monitoring_notification_channel.pubsub"
PUSH = "google_pubsub_subscription.push"
DLQ_SUB = "google_pubsub_subscription.dead_letter"
MON_AGENT = "google_pubsub_topic_iam_member.monitoring_publishes_alerts"
PS_AGENT_DLQ = "google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters"
PS_AGENT_ACK = "google_pubsub_subscription_iam_member.pubsub_agent_acks_dead_letters"
INVOKER = "google_cloud_run_v2_service_iam_member.trigger_invokes"
# the function a push subscription (or grant) of one fed function is for: its own entry, by key
FED_URI = "${google_cloudfunctions2_function.watchdog[each.key].service_config[0].uri}"
FED_SERVICE = "${google_cloudfunctions2_function.watchdog[each.key].service_config[0].service}"

# name: (resource address, attribute path, expected HCL value)
PUBSUB_WIRING = {
    "channel is of type pubsub": (CHANNEL, "type", "pubsub"),
    "channel points at the alert topic": (CHANNEL, "labels.topic", "${google_pubsub_topic.alerts.id}"),
    "one push subscription per fed function": (PUSH, "for_each", "${local.pushed_functions}"),
    "named after its topic": (PUSH, "name", "${var.name_prefix}-${each.value.topic}-push"),
    "push subscription reads its function's topic": (PUSH, "topic", "${local.delivery_topics[each.value.topic]}"),
    "push goes to its function's URL": (PUSH, "push_config.push_endpoint", FED_URI),
    "push is authenticated as the trigger SA": (
        PUSH,
        "push_config.oidc_token.service_account_email",
        "${google_service_account.trigger.email}",
    ),
    "OIDC audience is its function's URL": (PUSH, "push_config.oidc_token.audience", FED_URI),
    "failed deliveries go to the dead-letter topic": (
        PUSH,
        "dead_letter_policy.dead_letter_topic",
        "${google_pubsub_topic.dead_letter.id}",
    ),
    "push ack deadline is its function's timeout": (PUSH, "ack_deadline_seconds", "${each.value.timeout_seconds}"),
    "retries back off from 10 s": (PUSH, "retry_policy.minimum_backoff", "10s"),
    "dead letters are kept by their own subscription": (DLQ_SUB, "topic", "${google_pubsub_topic.dead_letter.id}"),
    "dead-letter subscription never expires": (DLQ_SUB, "expiration_policy.ttl", ""),
    "Monitoring agent may publish to the alert topic": (MON_AGENT, "topic", "${google_pubsub_topic.alerts.name}"),
    "Monitoring agent gets publisher": (MON_AGENT, "role", "roles/pubsub.publisher"),
    "Monitoring agent identity": (MON_AGENT, "member", "${local.monitoring_notification_agent}"),
    "Pub/Sub agent may publish dead letters": (PS_AGENT_DLQ, "topic", "${google_pubsub_topic.dead_letter.name}"),
    "Pub/Sub agent gets publisher on the DLQ": (PS_AGENT_DLQ, "role", "roles/pubsub.publisher"),
    "Pub/Sub agent identity (DLQ)": (PS_AGENT_DLQ, "member", "${local.pubsub_service_agent}"),
    "Pub/Sub agent may ack on every push subscription": (PS_AGENT_ACK, "for_each", "${local.pushed_functions}"),
    "Pub/Sub agent acks on that function's subscription": (
        PS_AGENT_ACK,
        "subscription",
        "${google_pubsub_subscription.push[each.key].name}",
    ),
    "Pub/Sub agent gets subscriber": (PS_AGENT_ACK, "role", "roles/pubsub.subscriber"),
    "trigger SA may invoke every fed function": (INVOKER, "for_each", "${local.pushed_functions}"),
    "trigger SA may invoke that function only": (INVOKER, "name", FED_SERVICE),
    "trigger SA gets run.invoker": (INVOKER, "role", "roles/run.invoker"),
    "invoker is the trigger SA": (INVOKER, "member", "serviceAccount:${google_service_account.trigger.email}"),
}


@pytest.mark.parametrize(("address", "path", "expected"), PUBSUB_WIRING.values(), ids=PUBSUB_WIRING.keys())
def test_pubsub_wiring(address: str, path: str, expected: str) -> None:
    rtype, name = address.split(".")
    *outer, leaf = path.split(".")
    assert block(resource(rtype, name), *outer)[leaf] == expected


# function entry: the topic whose push subscription feeds it (deploy events and ticks apart from alerts)
FED = {"alert": "alerts", "events": "events", "drill": None, "actions": None}


@pytest.mark.parametrize(("key", "topic"), FED.items(), ids=FED.keys())
def test_each_function_is_fed_by_its_own_topic(key: str, topic: str | None) -> None:
    assert function_spec(key)["topic"] == topic
    assert locals_()["pushed_functions"] == "${{for k, f in local.functions : k => f if f.topic != null}}"
    assert locals_()["delivery_topics"] == {
        "alerts": "${google_pubsub_topic.alerts.id}",
        "events": "${google_pubsub_topic.events.id}",
    }


def test_service_agents_are_the_documented_identities() -> None:
    loc = locals_()
    assert loc["monitoring_notification_agent"] == (
        "serviceAccount:service-${local.project_number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
    )
    assert loc["pubsub_service_agent"] == (
        "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    assert loc["project_number"] == "${data.google_project.this.number}"


def test_policies_for_the_watchdog_notify_its_pubsub_channel() -> None:
    assert locals_()["watchdog_channels"] == ["${google_monitoring_notification_channel.pubsub.name}"]


# ---------------------------------------------------------------------------
# The functions
# ---------------------------------------------------------------------------

FUNCTIONS = [("alert", "handle_alert"), ("events", "handle_events"), ("drill", "drill"), ("actions", "slack_actions")]


def _main_functions() -> set[str]:
    main = ROOT / "main.py"
    assert main.exists(), "main.py (the functions' entry module) is missing"
    tree = ast.parse(main.read_text(), filename=str(main))
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_one_definition_deploys_every_switched_on_entry() -> None:
    assert set(resources("google_cloudfunctions2_function")) == {"watchdog"}
    assert functions()["for_each"] == "${local.functions}"
    assert locals_()["functions"] == "${{for k, f in local.function_specs : k => f if f.enabled}}"
    assert set(function_specs()) == {key for key, _ in FUNCTIONS}
    # the buttons' function only with var.slack_actions; the others always
    assert {k: f["enabled"] for k, f in function_specs().items()} == {
        "alert": True,
        "events": True,
        "drill": True,
        "actions": "${var.slack_actions != null}",
    }


@pytest.mark.parametrize(("key", "entry_point"), FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_entry_point_exists_in_main_py(key: str, entry_point: str) -> None:
    build = block(functions(), "build_config")
    assert build["entry_point"] == "${each.value.entry_point}"
    assert build["runtime"] == "python312"
    assert function_spec(key)["entry_point"] == entry_point
    assert entry_point in _main_functions(), f"main.py defines no top-level function {entry_point}()"


def test_functions_share_the_hashed_source_object() -> None:
    source = block(functions(), "build_config", "source", "storage_source")
    assert source["bucket"] == "${google_storage_bucket.source.name}"
    assert source["object"] == "${google_storage_bucket_object.source.name}"


def test_source_object_name_carries_the_archive_hash() -> None:
    obj = resource("google_storage_bucket_object", "source")
    assert re.search(r"\$\{data\.archive_file\.source\.output_(sha256|md5|base64sha256)\}", obj["name"])
    assert obj["source"] == "${data.archive_file.source.output_path}"


def test_source_bucket_is_private_and_versioned() -> None:
    bucket = resource("google_storage_bucket", "source")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert block(bucket, "versioning")["enabled"] is True


ARCHIVE_CASES = [
    ("main.py is shipped", "main.py", True),
    ("requirements.txt is shipped", "requirements.txt", True),
    ("watchdog package is shipped", "watchdog/config.py", True),
    ("nested watchdog module is shipped", "watchdog/sub/x.py", True),
    ("bytecode caches are not", "watchdog/__pycache__/config.cpython-312.pyc", False),
    ("stray .pyc files are not", "watchdog/config.pyc", False),
    ("tests are not", "tests/terraform/test_wiring.py", False),
    ("terraform is not", "terraform/main.tf", False),
    ("virtualenvs are not", ".venv/lib/site.py", False),
]


def _archive_includes(path: str) -> bool:
    """Python mirror of local.source_files (asserted against the HCL below)."""
    if path in ("main.py", "requirements.txt"):
        return True
    return path.startswith("watchdog/") and "__pycache__" not in path and not path.endswith(".pyc")


def test_archive_is_an_allow_list() -> None:
    data = {}
    for item in module().get("data", []):
        data.update(item.get("archive_file", {}))
    src = data["source"]
    assert "source_dir" not in src, "archive_file must not zip a whole directory"
    assert "excludes" not in src
    dyn = src["dynamic"][0]["source"]
    assert dyn["for_each"] == "${local.source_files}"
    files = locals_()["source_files"]
    assert '["main.py", "requirements.txt"]' in files
    assert 'fileset(local.source_root, "watchdog/**")' in files
    assert '!strcontains(f, "__pycache__")' in files
    assert '!endswith(f, ".pyc")' in files
    # No other fileset() may widen the allow-list.
    assert files.count("fileset(") == 1


@pytest.mark.parametrize(("path", "shipped"), [c[1:] for c in ARCHIVE_CASES], ids=[c[0] for c in ARCHIVE_CASES])
def test_archive_contents(path: str, shipped: bool) -> None:
    assert _archive_includes(path) is shipped


def test_no_event_trigger_because_the_push_subscription_owns_delivery() -> None:
    # An event_trigger would add an Eventarc subscription without the DLQ.
    for name, fn in resources("google_cloudfunctions2_function").items():
        assert "event_trigger" not in fn, name


# the one definition's service_config: each from the entry, or the same for every function
SERVICE_CONFIG = {
    "max_instance_count": "${each.value.max_instances}",
    "min_instance_count": "${each.value.min_instances}",
    "max_instance_request_concurrency": 1,
    "available_memory": "${var.function_memory}",
    "timeout_seconds": "${each.value.timeout_seconds}",
    "ingress_settings": "${each.value.ingress}",
    "all_traffic_on_latest_revision": True,
    "service_account_email": "${local.function_accounts[each.value.runs_as]}",
    "environment_variables": "${merge(local.function_env, each.value.env)}",
}


@pytest.mark.parametrize(("key", "expected"), SERVICE_CONFIG.items(), ids=SERVICE_CONFIG.keys())
def test_service_config(key: str, expected: Any) -> None:
    assert block(functions(), "service_config")[key] == expected


def test_function_accounts_are_the_functions_and_the_buttons_own() -> None:
    assert locals_()["function_accounts"] == (
        "${merge({function = google_service_account.function.email}, "
        "{for k, a in google_service_account.actions : k => a.email})}"
    )


# (entry, attribute, expected): what differs between the functions
ENTRIES = [
    ("alert", "name", "${var.name_prefix}"),
    ("alert", "ingress", "ALLOW_INTERNAL_ONLY"),
    ("alert", "max_instances", "${var.max_instance_count}"),
    ("alert", "timeout_seconds", "${var.function_timeout_seconds}"),
    ("alert", "runs_as", "function"),
    ("alert", "env", {}),
    ("events", "name", "${var.name_prefix}-events"),
    ("events", "ingress", "ALLOW_INTERNAL_ONLY"),
    ("events", "max_instances", "${var.max_instance_count}"),
    ("events", "timeout_seconds", "${var.function_timeout_seconds}"),
    ("events", "runs_as", "function"),
    ("events", "env", {}),
    ("drill", "name", "${var.name_prefix}-drill"),
    ("drill", "ingress", "${var.drill_ingress}"),
    ("drill", "max_instances", 1),
    ("drill", "runs_as", "function"),
    ("drill", "env", {}),
    ("actions", "name", "${var.name_prefix}-slack-actions"),
    ("actions", "ingress", "ALLOW_ALL"),  # Slack's servers call it; each request is signature-checked
    ("actions", "max_instances", 3),
    ("actions", "min_instances", "${local.buttons.min_instances}"),
    ("actions", "timeout_seconds", 10),
    ("actions", "runs_as", "actions"),
    ("actions", "env", {"WATCHDOG_SLACK_APPROVERS": '${join(",", local.buttons.approvers)}'}),
]


@pytest.mark.parametrize(("key", "attribute", "expected"), ENTRIES, ids=[f"{e[0]}.{e[1]}" for e in ENTRIES])
def test_function_entry(key: str, attribute: str, expected: Any) -> None:
    assert function_spec(key)[attribute] == expected


def test_only_the_buttons_function_is_reachable_from_the_internet() -> None:
    """The checkov skip of CKV_GCP_124 on the one definition is for this entry alone."""
    public = {
        k for k, f in function_specs().items() if f["ingress"] not in ("ALLOW_INTERNAL_ONLY", "${var.drill_ingress}")
    }
    assert public == {"actions"}
    assert "ALLOW_ALL" not in variables()["drill_ingress"]["validation"][0]["condition"]


VARIABLE_DEFAULTS = [
    ("max_instance_count", 1),
    ("function_timeout_seconds", 60),
    ("deadline_seconds", 60),
    ("cooldown_seconds", 1800),
    ("dry_run", True),
    ("paused", False),
    ("rollback_on", "egress"),
    ("slow_db_connect_threshold_seconds", 5),
    ("max_alert_age_seconds", 21600),
    ("dead_letter_retention", "604800s"),
    ("startup_failure_window", "60s"),
    ("log_match_rate_limit", "300s"),
    ("log_metric_propagation_wait", "600s"),  # the API: a new log-based metric takes up to 10 minutes
    ("scheduler_region", None),
    ("max_change_age_hours", 168),  # a week: the incident's deploy was 37 h old when its symptom came
    ("field_revert", "auto"),
    ("show_env", []),
    ("rollback_policies", []),  # any policy that notifies the watchdog's channel
]


@pytest.mark.parametrize(("name", "default"), VARIABLE_DEFAULTS, ids=[v[0] for v in VARIABLE_DEFAULTS])
def test_variable_defaults(name: str, default: Any) -> None:
    assert variables()[name]["default"] == default


def test_deadline_fits_in_the_timeout() -> None:
    v = variables()
    assert v["deadline_seconds"]["default"] <= v["function_timeout_seconds"]["default"]
    pre = block(functions(), "lifecycle")["precondition"]
    assert "${var.deadline_seconds <= var.function_timeout_seconds}" in [p["condition"] for p in pre]


def test_variables_are_typed_and_described() -> None:
    for name, var in variables().items():
        assert var.get("type"), f"variable {name} has no type"
        assert len(var.get("description", "")) > 20, f"variable {name} has no useful description"
        for rule in var.get("validation", []):
            assert rule["error_message"].rstrip().endswith((".", ")")), f"{name}: {rule['error_message']!r}"


# ---------------------------------------------------------------------------
# Environment and secrets
# ---------------------------------------------------------------------------


def test_secrets_reach_the_functions_as_secret_environment_variables() -> None:
    """By secret ID, version latest, from secret_project; an entry's null secret is left out."""
    config = block(functions(), "service_config")
    assert "secret_environment_variables" not in config  # only the dynamic block below
    [dynamic] = config["dynamic"]
    secret = dynamic["secret_environment_variables"]
    assert secret["for_each"] == "${{for key, secret in each.value.secrets : key => secret if secret != null}}"
    assert secret["content"][0] == {
        "key": "${secret_environment_variables.key}",
        "project_id": "${local.secret_project}",
        "secret": "${secret_environment_variables.value}",
        "version": "latest",
    }


def test_env_var_names_are_the_ones_the_code_reads() -> None:
    from watchdog.config import ENV_VARS

    assert set(ENV_VARS) >= ALLOWED_ENV | ALLOWED_SECRET_ENV
    names = set(locals_()["function_env"])
    unknown = names - ALLOWED_ENV
    assert not unknown, f"environment variables the watchdog does not read: {sorted(unknown)}"
    assert names == ALLOWED_ENV, f"missing: {sorted(ALLOWED_ENV - names)}"


# ENV_VARS that terraform does not set in function_env, and why
NOT_IN_FUNCTION_ENV = {
    "CLOUD_RUN_API_ENDPOINT": "tests and the playground only: the real APIs by default",
    "MONITORING_API_ENDPOINT": "tests and the playground only",
    "SLACK_API_URL": "tests and the playground only",
    "SLACK_BOT_TOKEN": "a secret: secret_environment_variables",
    "SLACK_WEBHOOK_URL": "a secret: secret_environment_variables",
    "SLACK_SIGNING_SECRET": "a secret, the buttons' only",
    "WATCHDOG_SLACK_APPROVERS": "the buttons' only: their entry's env",
    "WATCHDOG_TOPIC": "operator tools only",
    "WATCHDOG_FUNCTION": "operator tools only",
    "WATCHDOG_ID_TOKEN": "operator tools only",
}


def test_every_setting_the_functions_read_is_a_terraform_input() -> None:
    """A new setting in watchdog/config.py fails here until terraform sets it (or this table says why not)."""
    from watchdog.config import ENV_VARS

    assert set(ENV_VARS) - set(NOT_IN_FUNCTION_ENV) == set(locals_()["function_env"])
    assert function_spec("actions")["env"].keys() == {"WATCHDOG_SLACK_APPROVERS"}
    assert "SLACK_SIGNING_SECRET" in function_spec("actions")["secrets"]


# function_env entry: the variable it comes from (what test_settings.py renders with Terraform)
SETTING_VARIABLES = {
    "WATCHDOG_MAX_CHANGE_AGE_HOURS": "${tostring(var.max_change_age_hours)}",
    "WATCHDOG_FIELD_REVERT": "${var.field_revert}",
    "WATCHDOG_SHOW_ENV": '${join(",", var.show_env)}',
    "WATCHDOG_POLICIES": '${join(",", var.rollback_policies)}',
}


@pytest.mark.parametrize(("env", "expression"), SETTING_VARIABLES.items(), ids=SETTING_VARIABLES.keys())
def test_the_newer_settings_come_from_their_variables(env: str, expression: str) -> None:
    assert locals_()["function_env"][env] == expression
    # every function gets function_env: merge(local.function_env, each.value.env)
    assert (
        block(functions(), "service_config")["environment_variables"] == "${merge(local.function_env, each.value.env)}"
    )


@pytest.mark.parametrize("name", sorted(ALLOWED_ENV | ALLOWED_SECRET_ENV))
def test_env_var_is_declared_in_watchdog_config(name: str) -> None:
    config = ROOT / "watchdog" / "config.py"
    assert config.exists(), "watchdog/config.py is missing"
    assert re.search(rf"[\"']{name}[\"']", config.read_text()), f"{name} does not appear in watchdog/config.py"


@pytest.mark.parametrize("key", [f[0] for f in FUNCTIONS])
def test_slack_token_is_only_a_secret(key: str) -> None:
    for env in (locals_()["function_env"], function_spec(key)["env"]):
        assert not set(env) & (ALLOWED_SECRET_ENV | {"SLACK_SIGNING_SECRET"})
    secrets = function_spec(key)["secrets"]
    if key == "actions":  # the buttons: the bot token and the app's signing secret
        assert secrets == {
            "SLACK_BOT_TOKEN": "${var.slack_bot_token_secret}",
            "SLACK_SIGNING_SECRET": "${local.buttons.signing_secret}",
        }
        return
    assert secrets == "${local.slack_secrets}"
    assert locals_()["slack_secrets"] == {
        "SLACK_BOT_TOKEN": "${var.slack_bot_token_secret}",
        "SLACK_WEBHOOK_URL": "${var.slack_webhook_url_secret}",
    }


def test_no_variable_carries_a_slack_credential() -> None:
    for name in variables():
        assert not re.search(r"token|webhook", name) or name.endswith("_secret"), (
            f"variable {name} looks like it takes a credential; only Secret Manager IDs are allowed"
        )
    assert "xoxb-" not in module_text()
    assert "hooks.slack.com/services/T" not in module_text()


def test_function_reads_only_the_slack_secrets() -> None:
    grants = resources("google_secret_manager_secret_iam_member")
    function = {
        n: g for n, g in grants.items() if g["member"] == "serviceAccount:${google_service_account.function.email}"
    }
    assert {g["secret_id"] for g in function.values()} == {
        "${var.slack_bot_token_secret}",
        "${var.slack_webhook_url_secret}",
    }
    # the Slack actions function (slack_actions.tf): the bot token and the app's signing secret, nothing else
    actions = {n: g for n, g in grants.items() if n not in function}
    assert {g["secret_id"] for g in actions.values()} == {
        "${var.slack_bot_token_secret}",
        "${each.value.signing_secret}",
    }
    for g in actions.values():
        assert g["member"] == 'serviceAccount:${google_service_account.actions["actions"].email}'
    for g in grants.values():
        assert g["role"] == "roles/secretmanager.secretAccessor"


# ---------------------------------------------------------------------------
# Alert policies
# ---------------------------------------------------------------------------


def _policy_ids(pred) -> list[str]:
    return sorted(name for name, p in policies().items() if pred(p))


def metric_threshold_entries() -> dict[str, dict]:
    """local.metric_threshold_policies (alerts.tf): one entry per metric-threshold policy."""
    return locals_()["metric_threshold_policies"]


def log_match_signals() -> dict[str, dict]:
    """local.log_match_signals (alerts.tf): one entry per signal, one log-match policy per watched service."""
    return locals_()["log_match_signals"]


def log_match_call() -> dict:
    """The module call that makes the per-service log-match policies, once per signal."""
    calls = {name: body for item in module().get("module", []) for name, body in item.items()}
    assert "log_match" in calls, f"module.log_match is missing (have: {sorted(calls)})"
    return calls["log_match"]


def log_match_policy() -> dict:
    """The one log-match policy definition, in modules/log_match_policies."""
    found: dict[str, dict] = {}
    for item in _load(MODULE / "modules" / "log_match_policies").get("resource", []):
        found.update(item.get("google_monitoring_alert_policy", {}))
    assert set(found) == {"per_service"}, sorted(found)
    return found["per_service"]


def detection_policies() -> dict[str, dict]:
    """Each detection policy as its one definition writes it for its entry: the metric-threshold definition with
    an entry of local.metric_threshold_policies, the log-match definition (modules/log_match_policies) with a
    signal of local.log_match_signals, for any one service (its filter's service scope left as
    ``${local.service_scope[k]}``). For tests that read a policy by name, as other code sees it."""
    out = {}
    definition = policies()["metric_threshold"]
    group_by = locals_()["revision_group_by"]
    for name, entry in metric_threshold_entries().items():
        body = copy.deepcopy(definition)
        body.pop("for_each")
        body.update(display_name=entry["display_name"], severity=entry["severity"])
        body["user_labels"] = {**body["user_labels"], "signal": entry["signal"]}
        condition = conditions(body)[0]
        condition["display_name"] = entry["condition"]
        threshold = block(condition, "condition_threshold")
        assert "each.value.metric" in threshold["filter"]
        threshold["filter"] = threshold["filter"].replace("each.value.metric", f'"{entry["metric"]}"')
        threshold["threshold_value"] = entry["threshold"]
        block(threshold, "aggregations").update(
            alignment_period=entry["window"],
            per_series_aligner=entry["aligner"],
            cross_series_reducer=entry["reducer"],
            group_by_fields=group_by,
        )
        out[name] = body
    definition, call = log_match_policy(), log_match_call()
    scope = re.search(r'filter = "(.*)"\}\}\}$', call["services"])
    assert scope, call["services"]
    for name, entry in log_match_signals().items():
        body = copy.deepcopy(definition)
        body.pop("for_each")
        body.update(severity=entry["severity"], notification_channels=call["notification_channels"])
        body["user_labels"] = {**body["user_labels"], "signal": entry["signal"]}
        match = entry["match"]
        log = block(conditions(body)[0], "condition_matched_log")
        log["filter"] = scope.group(1).replace("${each.value.match}", match)
        out[name] = body
    return out


METRIC_THRESHOLD = {"startup_failures", "db_timeouts", "slow_db_connect"}
LOG_MATCH = {"startup_failure_lines", "db_timeout"}
SELF_MONITORING = {"watchdog_errors", "watchdog_failed_decisions", "dead_letters"}


def test_expected_policies_exist() -> None:
    """Detection: one definition per kind, one entry per policy or signal; self-monitoring: one each."""
    assert set(metric_threshold_entries()) == METRIC_THRESHOLD
    assert set(log_match_signals()) == LOG_MATCH
    assert set(policies()) == {"metric_threshold"} | SELF_MONITORING
    assert policies()["metric_threshold"]["for_each"] == (
        "${{for k, p in local.metric_threshold_policies : k => p if local.detect}}"
    )
    assert log_match_call()["for_each"] == "${local.log_match_signals}"
    assert log_match_call()["source"] == "./modules/log_match_policies"
    assert log_match_policy()["for_each"] == "${var.services}"


@pytest.mark.parametrize("name", _policy_ids(lambda p: True))
def test_every_policy_carries_the_watchdog_label(name: str) -> None:
    policy = policies()[name]
    label = policy["user_labels"]["rollback_watchdog"]
    if policy["notification_channels"] == "${local.watchdog_channels}":
        assert label == "true"
    else:
        # Self-monitoring goes to people, never to the watchdog's own channel.
        assert policy["notification_channels"] in ONCALL_CHANNELS
        assert label == "self"


def test_detection_policies_notify_the_watchdog() -> None:
    assert policies()["metric_threshold"]["notification_channels"] == "${local.watchdog_channels}"
    assert log_match_call()["notification_channels"] == "${local.watchdog_channels}"
    assert log_match_policy()["notification_channels"] == "${var.notification_channels}"
    assert log_match_policy()["user_labels"]["rollback_watchdog"] == "true"


ONCALL_CHANNELS = ("${var.watchdog_oncall_channels}", "${local.failed_decision_channels}")


@pytest.mark.parametrize("name", sorted(SELF_MONITORING))
def test_self_monitoring_goes_to_oncall_not_to_the_watchdog(name: str) -> None:
    assert policies()[name]["notification_channels"] in ONCALL_CHANNELS


def test_failed_decisions_notify_channels_of_the_metrics_project() -> None:
    """The policy lives in metrics_project; a policy may only notify channels of its own project."""
    policy = policies()["watchdog_failed_decisions"]
    assert policy["project"] == "${local.metrics_project}"
    assert policy["notification_channels"] == "${local.failed_decision_channels}"
    choice = locals_()["failed_decision_channels"]
    assert choice == (
        "${local.metrics_project == var.project_id ? var.watchdog_oncall_channels : var.metrics_project_oncall_channels}"
    )
    conditions_ = [p["condition"] for p in block(policy, "lifecycle")["precondition"]]
    assert "${local.failed_decision_channels_in_project}" in conditions_
    assert "local.metrics_prefixes" in locals_()["failed_decision_channels_in_project"]


@pytest.mark.parametrize("name", ["watchdog_errors", "dead_letters"])
def test_project_policies_notify_channels_of_project_id(name: str) -> None:
    policy = policies()[name]
    assert policy["project"] == "${var.project_id}"
    conditions_ = [p["condition"] for p in block(policy, "lifecycle")["precondition"]]
    assert "${local.oncall_in_project}" in conditions_
    assert locals_()["oncall_prefixes"] == [
        "projects/${var.project_id}/",
        "projects/${local.project_number}/",
    ]


def test_cloud_run_threshold_conditions_group_by_service() -> None:
    """Every metric-threshold policy on Cloud Run keeps service, revision and location after aggregation."""
    threshold = block(conditions(policies()["metric_threshold"])[0], "condition_threshold")
    assert 'resource.type=\\"cloud_run_revision\\"' in threshold["filter"]
    assert block(threshold, "aggregations")["group_by_fields"] == "${local.revision_group_by}"
    assert set(locals_()["revision_group_by"]) == GROUP_BY


@pytest.mark.parametrize(
    ("fast", "closing", "window"),
    [
        ("startup_failure_lines", "startup_failures", "startup_failure_window"),
        ("db_timeout", "db_timeouts", "db_timeout_window"),
    ],
)
def test_each_signal_opens_fast_and_closes_for_the_recovery_follow_up(fast: str, closing: str, window: str) -> None:
    """The log-match policy opens on the first line; the metric policy on the same lines sends CLOSED."""
    assert is_log_match(log_match_policy())
    assert not is_log_match(policies()["metric_threshold"])
    assert strategy(policies()["metric_threshold"])["notification_prompts"] == ["OPENED", "CLOSED"]
    assert metric_threshold_entries()[closing]["window"] == f"${{var.{window}}}"
    assert variables()[window]["default"] == "60s"
    # the log-match notification names the policy whose closing sends the follow-up
    assert metric_threshold_entries()[closing]["display_name"].startswith(log_match_signals()[fast]["closing"])
    aggregations = block(conditions(policies()["metric_threshold"])[0], "condition_threshold", "aggregations")
    assert aggregations["alignment_period"] == "${each.value.window}"


def test_log_match_policies_rate_limit_and_only_open() -> None:
    for name, policy in [("per_service", log_match_policy())] + [(n, policies()[n]) for n in _policy_ids(is_log_match)]:
        strat = strategy(policy)
        assert block(strat, "notification_rate_limit")["period"], name
        assert strat.get("notification_prompts", ["OPENED"]) == ["OPENED"], name
    assert block(strategy(log_match_policy()), "notification_rate_limit")["period"] == "${var.rate_limit}"
    assert log_match_call()["rate_limit"] == "${var.log_match_rate_limit}"


@pytest.mark.parametrize("name", _policy_ids(lambda p: not is_log_match(p)))
def test_metric_policies_auto_close_and_send_closed(name: str) -> None:
    strat = strategy(policies()[name])
    assert strat["auto_close"], name
    assert strat["notification_prompts"] == ["OPENED", "CLOSED"], name


def test_log_match_policies_name_the_service_in_their_labels() -> None:
    policy = log_match_policy()
    assert policy["user_labels"]["cloud_run_service"] == "${each.value.name}"
    assert policy["user_labels"]["cloud_run_region"] == "${each.value.region}"
    assert block(conditions(policy)[0], "condition_matched_log")["filter"] == "${each.value.filter}"
    # one policy per watched service in project_id, named and located as the service
    services = log_match_call()["services"]
    assert services.startswith("${{for k, s in local.watched_here : k => {name = s.name, region = s.region, ")
    assert 'filter = "${local.service_scope[k]} AND (${each.value.match})"' in services
    scope = locals_()["service_scope"]
    for part in ("cloud_run_revision", "${s.name}", "${s.region}"):
        assert part in scope, part
    assert "local.revision_scope" in scope
    assert variables()["db_timeout_event"]["default"] == "db_connect_timeout"


REVISION_SCOPE = 'resource.labels.revision_name:* AND NOT resource.labels.revision_name=\\"\\"'


def test_filters_exclude_service_level_lines_without_a_revision() -> None:
    """Ready-condition lines of the Service carry an empty revision_name: an alert on one names no revision."""
    assert locals_()["revision_scope"] == REVISION_SCOPE
    assert "${local.revision_scope}" in locals_()["cloud_run_scope"]
    for name in ("startup_failures", "db_timeouts", "db_connect_seconds"):
        assert resource("google_logging_metric", name)["filter"].startswith("${local.cloud_run_scope} AND "), name
    assert "${local.service_scope[k]} AND " in log_match_call()["services"]


def test_every_log_match_signal_names_its_counter_for_verification() -> None:
    """A log-match notification names no metric; WATCHDOG_SIGNAL_METRICS maps its signal label to the counter on
    the same lines (watchdog/config.py): a new log-match signal without a counter would be verified blind."""
    mapping = locals_()["function_env"]["WATCHDOG_SIGNAL_METRICS"]
    for name, entry in log_match_signals().items():
        assert f'"{entry["signal"]}=logging.googleapis.com/user/${{m.name}}"' in mapping, name


@pytest.mark.parametrize("name", sorted(METRIC_THRESHOLD | LOG_MATCH))
def test_each_detection_policy_is_its_definition_with_its_entry(name: str) -> None:
    policy = detection_policies()[name]
    assert policy["user_labels"]["rollback_watchdog"] == "true"
    assert policy["notification_channels"] == "${local.watchdog_channels}"
    # what the condition matches is the entry's, whole: only display names still name the service
    condition = conditions(policy)[0]
    assert "each.value" not in str(condition.get("condition_threshold", condition.get("condition_matched_log")))


def test_startup_failures_have_a_log_match_fast_path_per_service() -> None:
    assert log_match_signals()["startup_failure_lines"]["match"] == "${local.startup_failure_match}"
    assert log_match_signals()["db_timeout"]["match"] == "${local.db_timeout_match}"
    log = block(conditions(log_match_policy())[0], "condition_matched_log")
    assert log["label_extractors"]["revision_name"] == "EXTRACT(resource.labels.revision_name)"


def test_policies_on_log_metrics_wait_for_the_metrics() -> None:
    """Provider issue #11102: a policy on a brand-new log-based metric fails; the filter goes through time_sleep."""
    sleep = resource("time_sleep", "log_metrics")
    assert sleep["create_duration"] == "${var.log_metric_propagation_wait}"
    pairs = {
        "startup_failures": "startup_failures",
        "db_timeouts": "db_timeouts",
        "slow_db_connect": "db_connect_seconds",
    }
    assert {k: e["metric"] for k, e in metric_threshold_entries().items()} == pairs
    for metric in pairs.values():
        assert sleep["triggers"][metric] == f"${{google_logging_metric.{metric}[0].name}}"
    threshold = block(conditions(policies()["metric_threshold"])[0], "condition_threshold")
    assert "time_sleep.log_metrics[0].triggers[each.value.metric]" in threshold["filter"], threshold["filter"]
    assert "google_logging_metric." not in threshold["filter"], "the policy must not bypass the wait"


def test_startup_failure_filter_matches_cloud_run_startup_messages() -> None:
    match = locals_()["startup_failure_match"]
    for phrase in ("STARTUP TCP probe failed", "Container called exit(", "failed to start and listen on the port"):
        assert phrase in match
    assert 'resource.type=\\"cloud_run_revision\\"' in locals_()["cloud_run_scope"]


def test_slow_db_connect_metric_is_a_distribution_from_variables() -> None:
    metric = resource("google_logging_metric", "db_connect_seconds")
    assert block(metric, "metric_descriptor")["value_type"] == "DISTRIBUTION"
    assert metric["value_extractor"] == "${var.slow_db_connect_value_extractor}"
    assert "${var.slow_db_connect_log_filter}" in metric["filter"]
    entry = metric_threshold_entries()["slow_db_connect"]
    assert entry["threshold"] == "${var.slow_db_connect_threshold_seconds}"
    assert (entry["aligner"], entry["reducer"]) == ("ALIGN_PERCENTILE_99", "REDUCE_MAX")  # a percentile, not a count
    threshold = block(conditions(policies()["metric_threshold"])[0], "condition_threshold")
    assert threshold["threshold_value"] == "${each.value.threshold}"


def _decision_metric_contract() -> tuple[str, set[str]]:
    """METRIC_TYPE and the label keys decision_labels() returns, read from watchdog/edges/monitoring.py."""
    path = ROOT / "watchdog" / "edges" / "monitoring.py"
    assert path.exists(), "watchdog/edges/monitoring.py (the decision metric writer) is missing"
    tree = ast.parse(path.read_text())
    metric_type, labels = "", set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "METRIC_TYPE" for t in node.targets):
            metric_type = ast.literal_eval(node.value)
        if isinstance(node, ast.FunctionDef) and node.name == "decision_labels":
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                    labels |= {ast.literal_eval(k) for k in ret.value.keys if k is not None}
    return metric_type, labels


def test_decision_metric_descriptor_matches_the_code() -> None:
    """A label the code writes but the descriptor lacks would make every write fail."""
    metric_type, labels = _decision_metric_contract()
    descriptor = resource("google_monitoring_metric_descriptor", "decisions")
    assert descriptor["type"] == metric_type
    assert descriptor["metric_kind"] == "GAUGE"
    assert descriptor["value_type"] == "INT64"
    assert labels, "decision_labels() returned no literal label keys"
    assert labels <= set(variables()["decision_metric_labels"]["default"])


def test_failed_decisions_alert_watches_the_watchdog_metric() -> None:
    descriptor = resource("google_monitoring_metric_descriptor", "decisions")
    assert descriptor["type"] == "custom.googleapis.com/rollback_watchdog/decisions"
    threshold = block(conditions(policies()["watchdog_failed_decisions"])[0], "condition_threshold")
    assert "${google_monitoring_metric_descriptor.decisions.type}" in threshold["filter"]
    assert 'metric.label.outcome=\\"failed\\"' in threshold["filter"]


# ---------------------------------------------------------------------------
# IAM
# ---------------------------------------------------------------------------

PUBLIC = ("allUsers", "allAuthenticatedUsers")


def _members(body: dict) -> list[str]:
    out = []
    for key in ("member", "members"):
        value = body.get(key)
        if isinstance(value, list):
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


# The one public endpoint: Slack's interactivity URL, authenticated by each request's Slack signature.
PUBLIC_ON_PURPOSE = ("google_cloud_run_v2_service_iam_member", "slack_invokes_actions")


def test_no_public_member_anywhere_but_the_signed_slack_endpoint() -> None:
    iam = [(t, n, b) for t, n, b in all_resources() if re.search(r"_iam_(member|binding|policy)$", t)]
    assert iam
    for t, n, b in iam:
        assert not t.endswith(("_iam_binding", "_iam_policy")), f"{t}.{n}: authoritative IAM clobbers others' grants"
        if (t, n) == PUBLIC_ON_PURPOSE:
            assert (b["role"], _members(b)) == ("roles/run.invoker", ["allUsers"])
            assert b["name"] == '${google_cloudfunctions2_function.watchdog["actions"].service_config[0].service}'
            continue
        for m in _members(b):
            assert not any(p in m for p in PUBLIC), f"{t}.{n} grants to {m}"
    # Outside comments, error messages and that one grant, the words do not occur at all.
    code = "\n".join(
        line for line in module_text().splitlines()
        if not line.strip().startswith("#") and "error_message" not in line and line.strip() != 'member   = "allUsers"'
    )  # fmt: skip
    assert not any(p in code for p in PUBLIC)
    assert module_text().count('"allUsers"') == 1


DRILL_INVOKER_REGEX = r"^(user|group|serviceAccount):[^\s]+$"


@pytest.mark.parametrize(
    ("member", "accepted"),
    [
        ("group:oncall@example.com", True),
        ("user:alice@example.com", True),
        ("allUsers", False),
        ("allAuthenticatedUsers", False),
        ("oncall@example.com", False),
        ("domain:example.com", False),
    ],
)
def test_drill_invokers_validation(member: str, accepted: bool) -> None:
    rule = variables()["drill_invokers"]["validation"][0]["condition"]
    assert DRILL_INVOKER_REGEX.replace("\\", "\\\\") in rule
    assert bool(re.match(DRILL_INVOKER_REGEX, member)) is accepted


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("operator", OPERATOR_PERMISSIONS), ("reader", READER_PERMISSIONS), ("metrics", METRICS_PERMISSIONS)],
)
def test_custom_roles_grant_only_the_listed_permissions(role: str, allowed: set[str]) -> None:
    body = resource("google_project_iam_custom_role", role)
    assert set(body["permissions"]) == allowed


def test_custom_role_ids_are_per_instance() -> None:
    """Two instances in one project must not collide (role IDs are per project and soft-deleted for weeks)."""
    assert (
        resource("google_project_iam_custom_role", "operator")["role_id"]
        == "rollbackWatchdogOperator_${local.role_suffix}"
    )
    assert (
        resource("google_project_iam_custom_role", "reader")["role_id"] == "rollbackWatchdogReader_${local.role_suffix}"
    )
    # Per instance (the prefix) and per creation (a deleted role's ID stays unusable for up to 37 days).
    assert locals_()["role_suffix"] == (
        '${replace(var.name_prefix, "-", "_")}_${substr(google_service_account.function.unique_id, -8, -1)}'
    )
    # role_id allows [a-zA-Z0-9_.]{3,64}: the longest prefix still fits.
    assert len("rollbackWatchdogOperator_" + "x" * 20 + "_" + "1" * 8) <= 64


def test_no_custom_role_outside_the_allowed_set() -> None:
    for name, body in resources("google_project_iam_custom_role").items():
        allowed = OPERATOR_PERMISSIONS | READER_PERMISSIONS | METRICS_PERMISSIONS | VERIFIER_PERMISSIONS
        assert set(body["permissions"]) <= allowed, name


def test_operator_role_is_bound_per_watched_service() -> None:
    grant = resource("google_cloud_run_v2_service_iam_member", "function_operates_watched")
    assert grant["for_each"] == "${local.watched}"
    assert grant["name"] == "${each.value.name}"
    assert grant["location"] == "${each.value.region}"
    assert grant["role"] == "${google_project_iam_custom_role.operator[each.value.project].name}"
    assert grant["member"] == "serviceAccount:${google_service_account.function.email}"


def test_only_the_reader_and_build_roles_are_granted_on_a_project() -> None:
    grants = resources("google_project_iam_member")
    # function_verifies: verify.tf; actions_read_revisions: the buttons render the card from the revisions
    assert set(grants) == {"function_reads", "function_writes_metric", "build_builds", "function_verifies",
                           "actions_read_revisions"}  # fmt: skip
    revisions = grants["actions_read_revisions"]
    assert revisions["role"] == "${google_project_iam_custom_role.actions_revisions[each.value].name}"
    assert revisions["member"] == 'serviceAccount:${google_service_account.actions["actions"].email}'
    assert resource("google_project_iam_custom_role", "actions_revisions")["permissions"] == [
        "run.revisions.get", "run.revisions.list"]  # fmt: skip
    assert grants["function_reads"]["role"] == "${google_project_iam_custom_role.reader[each.value].name}"
    assert grants["function_reads"]["member"] == "serviceAccount:${google_service_account.function.email}"
    # the reader only where watched services are; the metric only where its descriptor and policy are
    assert grants["function_reads"]["for_each"] == "${local.watched_projects}"
    assert grants["function_writes_metric"]["project"] == "${local.metrics_project}"
    assert resource("google_project_iam_custom_role", "metrics")["project"] == "${local.metrics_project}"


def test_functions_build_as_a_build_account_with_the_builder_role() -> None:
    """Projects created since mid-2024 have no usable default build identity."""
    grant = resource("google_project_iam_member", "build_builds")
    assert grant["role"] == "roles/cloudbuild.builds.builder"
    assert grant["project"] == "${var.project_id}"
    assert grant["member"] == "serviceAccount:${local.build_service_account_email}"
    assert resource("google_service_account", "build")["count"] == "${var.build_service_account == null ? 1 : 0}"
    assert locals_()["build_service_account_email"] == (
        "${coalesce(var.build_service_account, one(google_service_account.build[*].email))}"
    )
    fn = functions()
    assert block(fn, "build_config")["service_account"] == "${local.build_service_account_name}"
    assert "${google_project_iam_member.build_builds}" in fn["depends_on"]


def test_service_account_user_only_on_the_watched_runtime_accounts() -> None:
    grants = [
        g
        for g in resources("google_service_account_iam_member").values()
        if g["role"] == "roles/iam.serviceAccountUser"
    ]
    assert len(grants) == 2  # the alert function's, and the Slack actions function's (an undo moves traffic)
    function, actions = sorted(grants, key=lambda g: "actions" in g["member"])
    assert function["for_each"] == "${toset(values(local.runtime_service_accounts))}"
    assert function["member"] == "serviceAccount:${google_service_account.function.email}"
    assert (
        actions["for_each"]
        == "${var.slack_actions == null ? toset([]) : toset(values(local.runtime_service_accounts))}"
    )
    assert actions["member"] == 'serviceAccount:${google_service_account.actions["actions"].email}'
    for grant in grants:
        assert grant["service_account_id"] == "projects/-/serviceAccounts/${each.value}"
    assert "roles/iam.serviceAccountUser" not in {g["role"] for g in resources("google_project_iam_member").values()}


def _data_sources() -> dict[str, dict]:
    found = {}
    for item in module().get("data", []):
        for t, named in item.items():
            found.update({f"{t}.{n}": b for n, b in named.items()})
    return found


def test_no_data_source_reads_a_cloud_run_service() -> None:
    """A read service (env values included) would land in the Terraform state: the runtime accounts are an input."""
    assert not [a for a in _data_sources() if a.startswith(("google_cloud_run_", "google_cloudfunctions"))]
    assert "google_cloud_run_v2_service" not in "\n".join(
        line for line in module_text().splitlines() if not line.strip().startswith("#")
    ).replace("google_cloud_run_v2_service_iam_member", "")
    # what is read: the project (its number, for the default compute account), nothing else
    assert set(_data_sources()) == {
        "google_project.this",
        "google_project.watched",
        "google_project.metrics",
        "archive_file.source",
    }


def test_runtime_accounts_are_an_input_with_the_default_compute_account_as_fallback() -> None:
    watched = variables()["watched_services"]
    assert "runtime_service_account = optional(string)" in watched["type"].replace("${", "").replace("}", "")
    assert "runtime_service_account" in locals_()["watched"]
    accounts = locals_()["runtime_service_accounts"]
    assert "s.runtime_service_account" in accounts
    # a service that names no account runs as its project's Compute Engine default account
    assert "${data.google_project.watched[s.project].number}-compute@developer.gserviceaccount.com" in accounts
    # no precondition about unreadable services is left: nothing is read
    assert "unreadable" not in module_text()


SERVICE_AGENT_GRANTS = {
    "google_pubsub_topic_iam_member.monitoring_publishes_alerts": "monitoring",
    "google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters": "pubsub",
    "google_pubsub_subscription_iam_member.pubsub_agent_acks_dead_letters": "pubsub",
    "google_service_account_iam_member.pubsub_agent_mints_trigger_tokens": "pubsub",
}


@pytest.mark.parametrize(("address", "agent"), SERVICE_AGENT_GRANTS.items(), ids=SERVICE_AGENT_GRANTS.keys())
def test_service_agents_exist_before_they_are_granted(address: str, agent: str) -> None:
    identity = resource("google_project_service_identity", agent)
    assert identity["provider"] == "google-beta"
    assert identity["service"] == f"{agent}.googleapis.com"
    rtype, name = address.split(".")
    assert f"${{google_project_service_identity.{agent}}}" in resource(rtype, name)["depends_on"]


def test_apis_include_resource_manager_and_service_usage() -> None:
    apis = set(locals_()["apis"])
    assert {"cloudresourcemanager.googleapis.com", "serviceusage.googleapis.com", "cloudbuild.googleapis.com"} <= apis


def test_push_retries_back_off_from_10_seconds() -> None:
    retry = block(resource("google_pubsub_subscription", "push"), "retry_policy")
    assert retry["minimum_backoff"] == "10s"
    assert retry["maximum_backoff"] == "600s"


def test_dead_letter_retention_allows_pubsubs_31_day_maximum() -> None:
    var = variables()["dead_letter_retention"]
    assert "<= 2678400" in var["validation"][0]["condition"]
    assert "31 days" in var["description"]
    assert "7 days, the maximum" not in var["description"]
    sub = resource("google_pubsub_subscription", "dead_letter")
    assert sub["message_retention_duration"] == "${var.dead_letter_retention}"


def test_drill_invoker_is_the_oncall_list_on_the_drill_service() -> None:
    grant = resource("google_cloud_run_v2_service_iam_member", "oncall_invokes_drill")
    assert grant["for_each"] == "${toset(var.drill_invokers)}"
    assert grant["name"] == '${google_cloudfunctions2_function.watchdog["drill"].service_config[0].service}'
    assert grant["role"] == "roles/run.invoker"


def test_drill_publishers_publish_to_the_alert_topic_only() -> None:
    grant = resource("google_pubsub_topic_iam_member", "oncall_publishes_drills")
    assert grant["for_each"] == "${toset(var.drill_publishers)}"
    assert grant["topic"] == "${google_pubsub_topic.alerts.name}"
    assert grant["role"] == "roles/pubsub.publisher"


def test_function_account_has_no_pubsub_role() -> None:
    """The drill function runs the drill in-process; it never needs to publish."""
    for t, n, b in all_resources():
        if t.startswith("google_pubsub_"):
            assert "google_service_account.function" not in str(b.get("member", "")), f"{t}.{n}"


def test_no_broad_predefined_roles() -> None:
    broad = {
        "roles/owner",
        "roles/editor",
        "roles/viewer",
        "roles/run.admin",
        "roles/run.developer",
        "roles/iam.serviceAccountAdmin",
        "roles/pubsub.admin",
        "roles/secretmanager.admin",
    }
    for t, n, b in all_resources():
        assert b.get("role") not in broad, f"{t}.{n}"


# ---------------------------------------------------------------------------
# The example calls the module with arguments it declares
# ---------------------------------------------------------------------------


def test_example_uses_only_declared_variables() -> None:
    example = _load(EXAMPLE)
    call = example["module"][0]["rollback_watchdog"]
    assert call["source"] == "../.."
    declared = set(variables())
    args = set(call) - {"source", "version", "providers", "depends_on", "count", "for_each"}
    assert args <= declared, f"undeclared: {sorted(args - declared)}"
    required = {n for n, v in variables().items() if "default" not in v}
    assert required <= args, f"example misses required: {sorted(required - args)}"


def _tfvars_example() -> dict[str, Any]:
    return _clean(hcl2.loads((EXAMPLE / "terraform.tfvars.example").read_text()))


def test_example_applies_with_its_tfvars_alone() -> None:
    """Every variable of examples/basic without a default is set in terraform.tfvars.example, and nothing else."""
    example_vars: dict[str, dict] = {}
    for item in _load(EXAMPLE).get("variable", []):
        example_vars.update(item)
    tfvars = _tfvars_example()
    required = {n for n, v in example_vars.items() if "default" not in v}
    assert required <= set(tfvars), f"not in terraform.tfvars.example: {sorted(required - set(tfvars))}"
    assert set(tfvars) <= set(example_vars), f"undeclared: {sorted(set(tfvars) - set(example_vars))}"
    assert {"watched_services", "slack_secret_id", "drill_invokers", "oncall_email"} <= set(tfvars)


def test_example_hard_codes_no_service_secret_or_group() -> None:
    call = _load(EXAMPLE)["module"][0]["rollback_watchdog"]
    assert call["watched_services"] == "${var.watched_services}"
    assert call["slack_bot_token_secret"] == "${var.slack_secret_id}"
    assert call["drill_invokers"] == "${var.drill_invokers}"
    text = (EXAMPLE / "main.tf").read_text()
    for literal in ("checkout", "rollback-watchdog-slack", "group:", "@example.com"):
        assert literal not in text, f"examples/basic hard-codes {literal!r}; make it a variable"


def test_example_configures_google_beta() -> None:
    """The module's google_project_service_identity resources need a google-beta provider configuration."""
    providers = {name for item in _load(EXAMPLE).get("provider", []) for name in item}
    assert {"google", "google-beta"} <= providers


def test_example_enables_monitoring_before_its_oncall_channel() -> None:
    """On a fresh project the channel would otherwise be created before the module enables the API."""
    example = _load(EXAMPLE)
    resources_ = {f"{t}.{n}": b for item in example["resource"] for t, named in item.items() for n, b in named.items()}
    api = resources_["google_project_service.monitoring"]
    assert api["service"] == "monitoring.googleapis.com"
    assert api["disable_on_destroy"] is False
    channel = resources_["google_monitoring_notification_channel.oncall_email"]
    assert "${google_project_service.monitoring}" in channel["depends_on"]


def test_self_monitoring_covers_every_function_and_every_subscription() -> None:
    """Errors of every deployed function page (the buttons' included); every push subscription dead-letters to the
    one topic whose subscription the dead-letter policy watches."""
    assert locals_()["watchdog_services"] == "${[for k, f in google_cloudfunctions2_function.watchdog : f.name]}"
    errors = block(conditions(policies()["watchdog_errors"])[0], "condition_matched_log")["filter"]
    assert "${local.watchdog_run_services}" in errors
    assert "${local.watchdog_functions}" in errors
    _errors_filter_skips_the_request_log(errors)
    for name in ("watchdog_run_services", "watchdog_functions"):
        assert "[for n in local.watchdog_services :" in locals_()[name]
    assert set(resources("google_pubsub_subscription")) == {"push", "dead_letter"}
    dead = "${google_pubsub_topic.dead_letter.id}"
    assert block(resource("google_pubsub_subscription", "push"), "dead_letter_policy")["dead_letter_topic"] == dead
    watched = resource("google_monitoring_alert_policy", "dead_letters")["conditions"][0]["condition_threshold"][0]
    assert "${google_pubsub_subscription.dead_letter.name}" in watched["filter"]


def _errors_filter_skips_the_request_log(written: str) -> None:
    """The errors alert, evaluated as Logging would: the watchdog's own ERROR line and a crash's pages; the 500 a
    hold answers on purpose (Cloud Run's request log, whatever severity it carries) does not."""
    from tests.hcl_expressions import evaluate
    from tests.logging_query import Query

    names = {"local": {"watchdog_run_services": 'resource.labels.service_name="rollback-watchdog-events"',
                       "watchdog_functions": 'resource.labels.function_name="rollback-watchdog-events"'},
             "var": {"project_id": "p"}}  # fmt: skip
    query = Query(evaluate(written, names))
    resource = {"type": "cloud_run_revision", "labels": {"service_name": "rollback-watchdog-events"}}

    def entry(log: str, severity: str) -> dict:
        return {"logName": f"projects/p/logs/{log}", "severity": severity, "resource": resource}

    assert query.matches(entry("run.googleapis.com%2Fstdout", "ERROR"))  # the watchdog's own ERROR line
    assert query.matches(entry("run.googleapis.com%2Fstderr", "ERROR"))
    assert not query.matches(entry("run.googleapis.com%2Fstdout", "WARNING"))  # a transient error, retried
    assert not query.matches(entry("run.googleapis.com%2Frequests", "ERROR"))  # a 500 answered on purpose
