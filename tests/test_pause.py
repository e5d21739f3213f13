"""The pause switch: an annotation-only update that turns actions into reports."""

from __future__ import annotations

import dataclasses

from tests.conftest import BACKEND
from tests.standins.cloudrun import Fault
from tests.support import deliver, fixture, pubsub_body
from watchdog.config import ServiceRef
from watchdog.core import ledger
from watchdog.edges.cloudrun import CloudRun
from watchdog.tools.pause import set_paused

REF = ServiceRef("netra-staging", "us-central1", "netra-backend-staging")


def test_pausing_writes_only_the_annotation_and_creates_no_revision(cloud_run):
    revisions_before = len(cloud_run.state.revisions[BACKEND])
    template_before = cloud_run.state.services[BACKEND]["template"]
    assert set_paused(CloudRun(cloud_run.url), REF, True)
    patches = [r for r in cloud_run.state.requests if r["method"] == "PATCH"]
    assert [p["query"]["updateMask"] for p in patches] == ["annotations"]
    written = patches[0]["body"]["annotations"]
    assert set(written) == {ledger.PAUSED_KEY, ledger.PAUSE_INFO_KEY}  # the switch, and who/when/why beside it
    assert written[ledger.PAUSED_KEY] == "true"
    assert "template" not in patches[0]["body"]
    assert len(cloud_run.state.revisions[BACKEND]) == revisions_before
    assert cloud_run.state.services[BACKEND]["template"] == template_before
    assert not set_paused(CloudRun(cloud_run.url), REF, True)  # already paused: no write


def test_resume_keeps_the_ledger_and_records_who_resumed(cloud_run):
    record = ledger.Record("0.x", "a", "b", 1.0, reported=True)
    cloud_run.state.services[BACKEND]["annotations"] = ledger.with_record({ledger.PAUSED_KEY: "true"}, record)
    assert set_paused(CloudRun(cloud_run.url), REF, False, by="carol")
    annotations = cloud_run.state.services[BACKEND]["annotations"]
    assert ledger.PAUSED_KEY not in annotations
    kept = ledger.find(annotations, "0.x")
    assert dataclasses.replace(kept, events=()) == record
    assert [e[:2] for e in kept.events] == [("resume_service", "carol")]  # the card's history; lifts an undo's hold


def test_resume_lifts_the_hold_an_undo_put_on_its_revision_even_when_not_paused(cloud_run):
    undone = ledger.Record("0.x", "a", "b", 1.0, reported=True, events=(("undo_rollback", "U1", 2.0, "1.1"),))
    cloud_run.state.services[BACKEND]["annotations"] = ledger.with_record({}, undone)
    assert set_paused(CloudRun(cloud_run.url), REF, False, by="carol")
    events = ledger.find(cloud_run.state.services[BACKEND]["annotations"], "0.x").events
    assert [e[0] for e in events] == ["undo_rollback", "resume_service"]


def test_pause_survives_a_concurrent_deploy(cloud_run):
    cloud_run.state.faults.append(Fault(kind="deploy", method="PATCH"))
    assert set_paused(CloudRun(cloud_run.url), REF, True)
    assert ledger.paused(cloud_run.state.services[BACKEND]["annotations"])
    assert cloud_run.state.revisions[BACKEND][0]["name"].endswith("-dep")


def test_paused_service_gets_a_report_not_a_rollback(start_stack):
    stack = start_stack()
    assert set_paused(CloudRun(stack.cloud_run.url), REF, True)
    assert (
        deliver(stack.function.url, pubsub_body(fixture("alerts/incident_backend_startup_metric_threshold.json")))[0]
        == 200
    )
    assert stack.traffic_updates() == []
    assert "paused" in stack.messages[0]["text"]


def test_cli_pause_and_resume(cloud_run):
    from click.testing import CliRunner

    from watchdog.tools.cli import cli

    where = ["--project", "netra-staging", "--region", "us-central1", "--service", "netra-backend-staging"]
    env = {"CLOUD_RUN_API_ENDPOINT": cloud_run.url}
    paused = CliRunner().invoke(cli, ["pause", *where], env=env)
    assert paused.exit_code == 0, paused.output
    assert "watchdog paused" in paused.stdout
    assert ledger.paused(cloud_run.state.services[BACKEND]["annotations"])
    again = CliRunner().invoke(cli, ["pause", *where], env=env)
    assert "(no change)" in again.stdout
    resumed = CliRunner().invoke(cli, ["resume", *where], env=env)
    assert resumed.exit_code == 0
    assert not ledger.paused(cloud_run.state.services[BACKEND]["annotations"])
    assert all(r["query"]["updateMask"] == "annotations" for r in cloud_run.state.requests if r["method"] == "PATCH")
    missing = CliRunner().invoke(cli, ["pause", *where[:-1], "nope"], env=env)
    assert missing.exit_code == 2
