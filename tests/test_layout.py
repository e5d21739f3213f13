"""The architecture, enforced: the core is pure, and no layer reaches up into the one that uses it.

Layers of ``watchdog/``, each importing only what is listed:

- ``config.py``: the standard library;
- ``core/``: the standard library (but not its network and process clients), ``watchdog.config``,
  other ``watchdog.core`` modules and Slack's Block Kit models (``slack_sdk.models``); never a
  client: no ``google.*``, ``grpc``, ``requests``, ``urllib.request``, Slack's Web or webhook
  clients, ``watchdog.edges``, ``watchdog.flows`` or ``watchdog.tools``;
- ``edges/``: anything but ``watchdog.flows`` and ``watchdog.tools``;
- ``flows/``: anything but ``watchdog.tools``.

Checked twice. Statically: every import statement in every module (function-level ones
included, relative ones resolved, ``importlib.import_module``/``__import__`` with a literal name).
At run time: each core module imported alone in a fresh interpreter, and no client module may
have been loaded by it. The second check is why ``slack_sdk.models`` is only imported inside the
function that builds the card's buttons: importing any ``slack_sdk`` submodule runs
``slack_sdk/__init__.py``, which imports ``WebClient`` and ``WebhookClient``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PYTHON, ROOT

PACKAGE = ROOT / "watchdog"

# Standard-library modules that talk to the network or start processes: I/O, so never in the core.
STDLIB_IO = ("urllib.request", "http", "socket", "ssl", "smtplib", "ftplib", "imaplib", "poplib", "xmlrpc",
             "subprocess", "asyncio")  # fmt: skip

# The clock, the environment, randomness and threads: passed in or kept in the shells, never read by a rule.
STDLIB_AMBIENT = ("time", "os", "random", "threading", "sys")

# What importing a core module must never load (beyond what the interpreter loads at start-up).
CLIENTS = ("google", "grpc", "requests", "urllib3", "urllib.request", "http.client", "socket", "slack_sdk",
           "watchdog.edges", "watchdog.flows", "watchdog.tools")  # fmt: skip


def within(name: str, *packages: str) -> bool:
    """``name`` is one of ``packages`` or inside one."""
    return any(name == p or name.startswith(p + ".") for p in packages)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module name ``source`` imports, with its line: ``from a import b`` names ``a.b``.

    ``module`` (its dotted name) resolves relative imports. A dynamic import whose name is not a
    literal is reported as ``<dynamic>``: nothing can say what it loads.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base == "__future__":
                continue
            found += [(node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base) for alias in node.names]
        elif isinstance(node, ast.Call) and _dynamic_import(node.func):
            first = node.args[0] if node.args else None
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
            found.append((node.lineno, first.value if literal else "<dynamic>"))
    return sorted(found)


def _dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names


def core_offence(name: str) -> str:
    """Why a core module may not import ``name``; "" when it may."""
    if name == "<dynamic>":
        return "a dynamic import whose module cannot be read"
    if within(name, *STDLIB_IO):
        return "standard-library I/O (network or processes) belongs in watchdog/edges"
    if within(name, *STDLIB_AMBIENT):
        return "the clock, the environment and threads are passed in (the caller reads them), not read by the core"
    if _stdlib(name) or within(name, "watchdog.config", "watchdog.core", "slack_sdk.models"):
        return ""
    if within(name, "watchdog.edges", "watchdog.flows", "watchdog.tools"):
        return "the core never imports the layers that use it"
    if within(name, "slack_sdk"):
        return "a Slack client; the core may use only the Block Kit models (slack_sdk.models)"
    return "not the standard library, watchdog.config, watchdog.core or slack_sdk.models"


def config_offence(name: str) -> str:
    return "" if _stdlib(name) else "watchdog/config.py imports the standard library only"


def below(layer: str, *uppers: str):
    """The rule for a layer that may import anything but the layers above it."""

    def offence(name: str) -> str:
        upper = next((u for u in uppers if within(name, u)), "")
        return f"watchdog/{layer} may not import {upper}, a layer that uses it" if upper else ""

    return offence


RULES = {
    "config": config_offence,
    "core": core_offence,
    "edges": below("edges", "watchdog.flows", "watchdog.tools"),
    "flows": below("flows", "watchdog.tools"),
}


def offences(path: Path, rule) -> list[str]:
    name = module_name(path)
    found = imports(path.read_text(), name, path.name == "__init__.py")
    return [f"{name} (line {line}) imports {imported}: {why}" for line, imported in found if (why := rule(imported))]


def layered(layer: str) -> list[Path]:
    return [PACKAGE / "config.py"] if layer == "config" else modules(layer)


CASES = [pytest.param(layer, path, id=module_name(path)) for layer in RULES for path in layered(layer)]


@pytest.mark.parametrize(("layer", "path"), CASES)
def test_each_module_imports_only_what_its_layer_may(layer, path):
    found = offences(path, RULES[layer])
    assert not found, "\n".join(found)


CORE = [module_name(p) for p in modules("core")]


@pytest.mark.parametrize("module", CORE)
def test_importing_a_core_module_loads_no_client(module):
    script = (
        "import importlib, json, sys\n"
        "before = set(sys.modules)\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    loaded = json.loads(subprocess.check_output([PYTHON, "-c", script], cwd=ROOT, text=True))
    clients = [m for m in loaded if within(m, *CLIENTS)]
    roots = [m for m in clients if m.rpartition(".")[0] not in clients]  # requests, not its 90 submodules
    hint = " (slack_sdk.models at module level runs slack_sdk/__init__.py: import it inside the function)"
    assert not roots, f"importing {module} loads {', '.join(roots)}" + (hint if "slack_sdk" in roots else "")


def test_the_layers_are_all_there():
    """Each layer's modules are found, so the checks above check something."""
    assert {"watchdog.core.decision", "watchdog.core.rollback_target", "watchdog.core.traffic"} <= set(CORE)
    assert modules("edges")
    assert modules("flows")


SNIPPETS = {
    "top-level import": ("import grpc\n", ["grpc"]),
    "dotted import": ("import urllib.request\n", ["urllib.request"]),
    "from-import names the submodule": ("from urllib import request\n", ["urllib.request"]),
    "from-import of a client class": ("from slack_sdk import WebClient\n", ["slack_sdk.WebClient"]),
    "function-level import": ("def f():\n    from google.cloud import run_v2\n", ["google.cloud.run_v2"]),
    "method-level import": ("class C:\n    def m(self):\n        import requests\n", ["requests"]),
    "relative import": ("from ..edges import slack\n", ["watchdog.edges.slack"]),
    "relative sibling": ("from . import ledger\n", ["watchdog.core.ledger"]),
    "import_module literal": ("import importlib\nimportlib.import_module('grpc')\n", ["importlib", "grpc"]),
    "__import__ literal": ("__import__('requests')\n", ["requests"]),
    "dynamic name": ("import importlib\nimportlib.import_module(name)\n", ["importlib", "<dynamic>"]),
    "__future__ is not an import": ("from __future__ import annotations\n", []),
}


@pytest.mark.parametrize(("source", "expected"), SNIPPETS.values(), ids=SNIPPETS.keys())
def test_the_check_reads_every_kind_of_import(source, expected):
    assert [name for _line, name in imports(source, "watchdog.core.example")] == expected


VERDICTS = {
    "standard library": ("dataclasses.dataclass", ""),
    "urllib.parse": ("urllib.parse.quote", ""),
    "config": ("watchdog.config.Config", ""),
    "another core module": ("watchdog.core.ledger", ""),
    "Block Kit models": ("slack_sdk.models.blocks.ActionsBlock", ""),
    "urllib.request": ("urllib.request", "standard-library I/O"),
    "http.client": ("http.client.HTTPSConnection", "standard-library I/O"),
    "google": ("google.cloud.run_v2", "not the standard library"),
    "grpc": ("grpc", "not the standard library"),
    "requests": ("requests", "not the standard library"),
    "Slack Web client": ("slack_sdk.web.WebClient", "a Slack client"),
    "Slack package root": ("slack_sdk.WebClient", "a Slack client"),
    "edges": ("watchdog.edges.cloudrun", "the core never imports"),
    "flows": ("watchdog.flows.alerts", "the core never imports"),
    "tools": ("watchdog.tools.cli", "the core never imports"),
    "the clock": ("time", "the clock, the environment"),
    "the environment": ("os.environ", "the clock, the environment"),
}


@pytest.mark.parametrize(("name", "why"), VERDICTS.values(), ids=VERDICTS.keys())
def test_what_the_core_may_import(name, why):
    offence = core_offence(name)
    assert offence.startswith(why) if why else offence == ""


def test_only_the_entry_points_reach_the_wiring():
    """flows/app.py builds the bundle every flow gets (flows/deps.py): no module of the package imports it, so
    nothing calls back up into the wiring (main.py and the tools' entry points may)."""
    found = [
        f"{module_name(path)} (line {line}) imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if module_name(path) != "watchdog.flows.app" and not within(module_name(path), "watchdog.tools")
        for line, name in imports(path.read_text(), module_name(path), path.name == "__init__.py")
        if within(name, "watchdog.flows.app")
    ]
    assert found == []
