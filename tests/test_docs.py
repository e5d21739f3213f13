"""The READMEs point at things that exist: links, files, functions and settings.

README.md and terraform/'s README.md and DESIGN.md name code by path (``watchdog/core/decision.py``),
rules by function (``_target()``) and settings by variable. When code moves or a
setting is added, these tests name the line of the docs that went stale.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import ROOT
from watchdog.config import ENV_VARS

DOCS = tuple(
    sorted(
        {"README.md", "CHANGELOG.md", "terraform/README.md", "terraform/DESIGN.md"}
        | {str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")}
    )
)
README_LIMIT = 12_500  # bytes: a front page; everything else lives in docs/

# Backticked tokens that name a file or folder of this repository.
REPO_PATH = re.compile(r"`((?:watchdog|tests|terraform|docs|examples|\.ci)/[\w./-]*|main\.py)`")
# Made by `make test` (gitignored), so absent from a fresh clone.
GENERATED = {"tests/terraform/.schema"}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# `decide()` or `rollback_target.choose()`: a function, optionally with its core module.
FUNCTION = re.compile(r"`((?:[a-z_]+\.)?[A-Za-z_]\w*)\(\)`")


def text(doc: str) -> str:
    return (ROOT / doc).read_text()


def outside_code_blocks(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", outside_code_blocks(markdown), re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def defined_names(path: Path) -> set[str]:
    return set(re.findall(r"^\s*(?:def|class) (\w+)", path.read_text(), re.M))


def source_files() -> list[Path]:
    return [ROOT / "main.py", *sorted((ROOT / "watchdog").rglob("*.py"))]


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_resolves(doc):
    markdown = text(doc)
    here = (ROOT / doc).parent
    broken = []
    for target in LINK.findall(outside_code_blocks(markdown)):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        if path:
            resolved = (here / path).resolve()
            if not resolved.is_relative_to(ROOT.resolve()) or not resolved.exists():
                broken.append(target)  # outside the repository: broken in a clone
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
                broken.append(target)  # the file is there, the section is not
        elif anchor not in anchors(markdown):
            broken.append(target)
    assert broken == [], f"{doc}: links that resolve to nothing"


@pytest.mark.parametrize("doc", DOCS)
def test_every_repository_path_named_exists(doc):
    here = (ROOT / doc).parent
    missing = sorted(
        {
            path
            for path in REPO_PATH.findall(text(doc))
            if path.rstrip("/") not in GENERATED and not (ROOT / path).exists() and not (here / path).exists()
        }
    )
    assert missing == [], f"{doc}: paths that do not exist"


@pytest.mark.parametrize("doc", DOCS)
def test_every_function_a_doc_names_is_defined(doc):
    everywhere = set().union(*(defined_names(p) for p in source_files()))
    named = {name.rsplit(".", 1)[-1] for name in FUNCTION.findall(outside_code_blocks(text(doc)))}
    assert sorted(named - everywhere) == []


def test_the_readme_is_a_front_page_that_leads_into_every_doc():
    readme = text("README.md")
    assert len(readme.encode()) <= README_LIMIT, "README.md is a front page: move the detail into docs/"
    linked = {target.partition("#")[0] for target in LINK.findall(readme)}
    pages = {d for d in DOCS if d.startswith("docs/")} - {"docs/incident-timeline.md"}
    assert sorted(pages - linked) == [], "docs nobody is sent to from the README"
    for command in ("make demo", "make test"):
        assert f"`{command}`" in readme


def test_the_rules_for_an_alert_point_into_the_decision_module():
    readme = text("docs/how-it-decides.md")
    section = readme.split("## The rules for an alert", 1)[1].split("\n## ", 1)[0]
    named = set(FUNCTION.findall(section))
    assert {"decide", "rollback_target.choose", "guards.holding_back"} <= named

    def home(name: str) -> Path:
        module = name.rsplit(".", 1)[0] if "." in name else "decision"
        return ROOT / "watchdog" / "core" / f"{module}.py"

    assert sorted(n for n in named if n.rsplit(".", 1)[-1] not in defined_names(home(n))) == []


def test_the_settings_table_lists_every_environment_variable_and_only_those():
    readme = text("docs/reference.md")
    table = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", table, re.M))
    source = "\n".join(p.read_text() for p in source_files())
    # ENV_VARS is the function's list; the tools also read a few through click options or their libraries.
    read_elsewhere = set(re.findall(r"""envvar="([A-Z][A-Z0-9_]+)\"""", source))
    read_elsewhere |= set(re.findall(r"""environ\.get\("([A-Z][A-Z0-9_]+)\"""", source))
    assert sorted(set(ENV_VARS) - documented) == [], "settings missing from the README"
    assert sorted(documented - set(ENV_VARS) - read_elsewhere) == [], "documented variables nothing reads"


def test_the_layout_table_lists_every_module_of_each_subpackage():
    readme = text("docs/architecture.md")
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    for package in ("core", "edges", "flows", "tools"):
        row = re.search(rf"^\| `watchdog/{package}/` \|.*$", table, re.M)
        assert row, package
        listed = set(re.findall(r"`([a-z_]+)`", row.group(0).rsplit("|", 2)[1]))
        modules = {p.stem for p in (ROOT / "watchdog" / package).glob("*.py") if p.stem != "__init__"}
        assert listed == modules, package
