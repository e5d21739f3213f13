"""`make demo`, the README's first command, runs as a new user runs it and tells the incident's whole story."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.e2e


def test_the_demo_replays_the_incident_and_ends_done(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tests.demo"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    # 37 hours before the symptom: the warning, with the promise the alert path keeps
    assert "Risky deploy of `netra-auth-service`" in out
    assert "will revert the egress on a new revision that keeps the deploy's code" in out
    # the alert: auth keeps its code with only the egress set back, backend is pinned
    assert "Field reverted on netra-auth-service: code kept" in out
    assert "Rolled back netra-backend-staging to netra-backend-staging-00118-paz" in out
    assert "duplicates did nothing." in out
    assert "Recovered: netra-auth-service on netra-auth-service-revert-" in out  # verified from Monitoring
    assert "UNEXPECTED" not in out
    assert out.rstrip().splitlines()[-2].startswith("Done.")
