"""terraform/README.md lists every input and output of the module, with its type, default and description, and
nothing that does not exist: the tables are the ones tests/terraform/tf_docs.py renders from variables.tf and
outputs.tf (fix with `python tests/terraform/tf_docs.py --write`), and, read back on their own, name exactly the
module's variables and outputs."""

from __future__ import annotations

import re

import pytest
import tf_docs

from tests.terraform.test_wiring import module, variables

README = tf_docs.README.read_text()


@pytest.mark.parametrize("name", sorted(tf_docs.TABLES))
def test_the_readme_table_is_the_generated_one(name: str) -> None:
    assert tf_docs.section(README, name) == tf_docs.TABLES[name][1](), (
        f"the {name} table of terraform/README.md is stale: python tests/terraform/tf_docs.py --write"
    )


def _rows(name: str) -> dict[str, list[str]]:
    """The table's rows, by the name in their first cell, the other cells as written."""
    rows = {}
    for line in tf_docs.section(README, name).splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_every_variable_is_listed_with_its_type_and_default_and_nothing_else() -> None:
    rows = _rows("INPUTS")
    assert set(rows) == set(variables())
    for name, spec in variables().items():
        type_, default, description = rows[name]
        written = re.sub(r"^\$\{(.*)\}$", r"\1", spec["type"]).replace("\\", "")
        assert type_.strip("`").replace(" ", "") == written.replace(" ", ""), name
        assert (default == "`required`") == ("default" not in spec), name
        assert len(description) > 20, name


def test_every_output_is_listed_and_nothing_else() -> None:
    outputs = {name for item in module().get("output", []) for name in item}
    assert set(_rows("OUTPUTS")) == outputs


def test_the_readme_names_the_table_generator() -> None:
    assert "tests/terraform/tf_docs.py --write" in README


# --- the roles a non-Owner needs, against the resources that need them -----------------------------------------

# resource type → the predefined role that lets whoever applies create it (and, for *_iam_member, grant on it)
ROLE_FOR = {
    "google_cloud_run_v2_service_iam_member": "Cloud Run Admin",
    "google_cloud_scheduler_job": "Cloud Scheduler Admin",
    "google_cloudfunctions2_function": "Cloud Functions Admin",
    "google_logging_folder_sink": "Logs Configuration Writer",
    "google_logging_metric": "Logs Configuration Writer",
    "google_logging_project_sink": "Logs Configuration Writer",
    "google_monitoring_alert_policy": "Monitoring Editor",
    "google_monitoring_metric_descriptor": "Monitoring Editor",
    "google_monitoring_notification_channel": "Monitoring Editor",
    "google_project_iam_custom_role": "Role Administrator",
    "google_project_iam_member": "Project IAM Admin",
    "google_project_service": "Service Usage Admin",
    "google_project_service_identity": "Service Usage Admin",
    "google_pubsub_subscription": "Pub/Sub Admin",
    "google_pubsub_subscription_iam_member": "Pub/Sub Admin",
    "google_pubsub_topic": "Pub/Sub Admin",
    "google_pubsub_topic_iam_member": "Pub/Sub Admin",
    "google_secret_manager_secret_iam_member": "Secret Manager Admin",
    "google_service_account": "Service Account Admin",
    "google_service_account_iam_member": "Service Account Admin",
    "google_storage_bucket": "Storage Admin",
    "google_storage_bucket_object": "Storage Admin",
    "time_sleep": None,  # no API
}

# where a resource is created, by its project (or service account) expression → the row of the roles table
WHERE = {
    "${var.project_id}": "`project_id`",
    "${var.project}": "`project_id`",  # modules/log_match_policies, called with project_id
    "${local.secret_project}": "`secret_project`",
    "${local.metrics_project}": "`metrics_project`",
    "${each.value}": "each project with watched services",  # for_each over local.watched_projects
    "${each.value.project}": "each project with watched services",  # for_each over local.watched
    "projects/-/serviceAccounts/${each.value}": "each watched service's runtime account",
    "${google_service_account.trigger.name}": "`project_id`",
}


def _roles_table() -> dict[str, str]:
    section = README.split("## Roles to apply", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 2 and cells[0] not in ("where", "---"):
            rows[cells[0]] = cells[1]
    return rows


def _every_resource() -> list[tuple[str, str, dict]]:
    from tests.terraform.test_wiring import EXAMPLE, MODULE, _load

    found = []
    for directory in (MODULE, MODULE / "modules" / "log_match_policies", EXAMPLE):
        for item in _load(directory).get("resource", []):
            for rtype, named in item.items():
                found += [(rtype, name, body) for name, body in named.items()]
    return found


def test_every_resource_type_has_a_role_to_create_it() -> None:
    """A new resource type fails here until the roles table (and ROLE_FOR) says who may create it."""
    assert {t for t, _, _ in _every_resource()} <= set(ROLE_FOR)


@pytest.mark.parametrize(
    ("rtype", "name", "body"), _every_resource(), ids=[f"{t}.{n}" for t, n, _ in _every_resource()]
)
def test_the_roles_table_lets_a_non_owner_create_every_resource(rtype: str, name: str, body: dict) -> None:
    role = ROLE_FOR[rtype]
    if role is None:
        return
    if rtype == "google_logging_folder_sink":
        where = "the folder, with `sentinel_folder_id`"
    else:
        where_from = body.get("service_account_id") if rtype == "google_service_account_iam_member" else None
        where_from = where_from or body.get("project") or "${var.project_id}"  # no project: the provider's, project_id
        assert where_from in WHERE, f"{rtype}.{name}: created where? {where_from}"
        where = WHERE[where_from]
    rows = _roles_table()
    row = next((roles for label, roles in rows.items() if label.startswith(where)), None)
    assert row is not None, f"the roles table has no row for {where}"
    assert role in row, f"{rtype}.{name} needs {role} in {where}"
