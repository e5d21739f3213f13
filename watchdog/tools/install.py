"""``python -m watchdog.tools.install BIN``: write the ``rollback-watchdog`` command into a virtualenv's ``bin``.

``make setup`` runs it for ``.venv/bin`` (the Makefile's ``$(STAMP)`` target);
point it at any other ``bin`` directory to try it without touching that venv.

Why a launcher and not a ``pip install -e .`` entry point: the PyPI package
``watchdog`` (a file watcher that functions-framework depends on) is installed in
the same venv, and an entry point's ``import watchdog`` finds it in
site-packages before an editable install's path. The launcher puts this
repository first on ``sys.path``, imports ``watchdog``, and refuses to go on
unless the package it got carries ``__rollback_watchdog__`` and lives in this
repository (as main.py and ``python -m watchdog`` do). So it works from any
directory, and says what to do if the repository has moved.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NAME = "rollback-watchdog"
ROOT = Path(__file__).resolve().parents[2]
SHEBANG_LIMIT = 127  # Linux reads at most this much of a #! line

LAUNCHER = """\
# {name}: the operator command of the Cloud Run rollback watchdog in {root}.
# Written by `make setup` (python -m watchdog.tools.install); it runs from any directory.
import os
import sys

ROOT = {root!r}
sys.path.insert(0, ROOT)
for loaded in [n for n in sys.modules if n == "watchdog" or n.startswith("watchdog.")]:
    del sys.modules[loaded]  # the PyPI package of the same name, should anything have imported it
try:
    import watchdog
except ImportError:
    watchdog = None
found = os.path.abspath(getattr(watchdog, "__file__", None) or "nothing")
if not getattr(watchdog, "__rollback_watchdog__", False) or os.path.dirname(os.path.dirname(found)) != ROOT:
    sys.exit(
        f"{name}: the rollback watchdog is not in {{ROOT}} (import watchdog found {{found}}); "
        "was the repository moved? Run `make setup` in the repository again"
    )
from watchdog.tools.cli import main

main(prog_name={name!r})
"""


def launcher(python: str, root: Path = ROOT) -> str:
    """The launcher's text: run by ``python``, importing the ``watchdog`` package of ``root``."""
    body = LAUNCHER.format(name=NAME, root=str(root))
    shebang = f"#!{python}"
    if len(shebang) > SHEBANG_LIMIT or " " in python:
        # too long or with a space for a #! line: /bin/sh finds the interpreter (the trick pip's launchers use)
        shebang = f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''"
    return f"{shebang}\n{body}"


def install(bin_dir: Path, python: str = "", root: Path = ROOT) -> Path:
    """Write ``bin_dir/rollback-watchdog`` (atomically, mode 755); ``python`` defaults to ``bin_dir/python``."""
    bin_dir = Path(os.path.abspath(bin_dir))
    python = python or str(bin_dir / "python")  # not resolved: a venv's python is found through its own path
    path = bin_dir / NAME
    partial = path.with_name(f".{NAME}.partial")
    partial.write_text(launcher(python, root))
    partial.chmod(0o755)
    partial.replace(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m watchdog.tools.install", description=__doc__.split("\n")[0])
    parser.add_argument("bin", type=Path, help="the bin directory to write rollback-watchdog into")
    parser.add_argument("--python", default="", help="the interpreter to run it with (default: BIN/python)")
    args = parser.parse_args(argv)
    path = install(args.bin, args.python)
    sys.stdout.write(f"installed {path} (run `{path} --help` from anywhere)\n")


if __name__ == "__main__":
    main()
