"""checkov finds no failed check in terraform/ (its IaC checks and its secrets scan), and every skip says why.

checkov runs from its own virtualenv (.venv-checkov, created by
tests/terraform/setup.sh), because its bc-python-hcl2 dependency clashes with
python-hcl2 in the main environment. It runs offline: --skip-download, and no
Bridgecrew/Prisma API key is passed on.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = Path(os.environ.get("CHECKOV_BIN", ROOT / ".venv-checkov" / "bin" / "checkov"))


@pytest.fixture(scope="module")
def reports() -> list[dict]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov not found at {CHECKOV}; run `bash tests/terraform/setup.sh` first")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    env["CHECKOV_RUN_SCA_PACKAGE_SCAN_V2"] = "false"
    proc = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(ROOT / "terraform"),
            "--framework",
            "terraform",
            "secrets",
            "--skip-download",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(
            f"checkov did not produce a JSON report (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return data if isinstance(data, list) else [data]


@pytest.fixture(scope="module")
def report(reports: list[dict]) -> dict:
    terraform = [r for r in reports if r.get("check_type") == "terraform"]
    assert terraform, f"checkov produced no terraform report: {reports!r:.500}"
    return terraform[0]


def test_checkov_scanned_the_module(report: dict) -> None:
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] > 20, summary
    assert summary["passed"] > 0, summary


def test_checkov_finds_no_failed_check(reports: list[dict]) -> None:
    """Neither an IaC check nor the secrets scan (e.g. CKV_SECRET_6 on a literal that looks like a credential)."""
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): {c['check_name']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)


def test_every_skip_is_justified(reports: list[dict]) -> None:
    unjustified = [
        f"{c['check_id']} {c['resource']}"
        for r in reports
        for c in r.get("results", {}).get("skipped_checks", [])
        if len((c.get("check_result") or {}).get("suppress_comment", "").strip()) < 20
    ]
    assert not unjustified, "skips without a reason (# checkov:skip=ID: reason):\n" + "\n".join(unjustified)
