"""Static check of Terraform configurations against the real provider schemas (no provider binary).

What it reports, each finding naming the file, the line and the resource address:

- unknown resource / data source types, unknown arguments and nested blocks;
- arguments the schema marks computed-only (a plan would refuse them);
- missing required arguments and required nested blocks (`min_items`), too many blocks (`max_items`);
- literal values outside the provider's allowed values (`Possible values: [...]` in the schema), written in
  the resource or in the entry of a map the resource is built from (``for_each = local.X`` where X is an
  object literal of entries, or ``{for k, e in local.X : k => e if ...}`` over one, and the argument is
  ``each.value.NAME``);
- references: to an attribute the type does not have, to a counted/for_each resource without an
  instance key (`google_x.y.attr` where `google_x.y[0].attr` is meant), an instance key on a
  single resource, a list block or list attribute without its index;
- `count`/`for_each` that depend on values only known after apply (computed attributes of managed
  resources, or data sources that are deferred because they depend on managed resources);
- module calls: unknown arguments, missing required variables, references to missing outputs.

The schemas come from tests/terraform/provider_schema.py (the CDKTF assemblies of the pinned
providers). Usage:

    python tests/terraform/tf_schema_check.py DIR [DIR ...]    # exit 1 when anything is found
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import provider_schema  # noqa: E402

META_ARGS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
MODULE_META = {"source", "version", "providers", "depends_on", "count", "for_each"}
# Provider local name -> schema file (tests/terraform/.schema/<name>.json).
PROVIDERS = {"google": "google", "google-beta": "google-beta", "archive": "archive", "time": "time"}

_REF = re.compile(
    r"(?<![\w.\-\"/])(data\.)?((?:google|archive|time)_[a-z0-9_]+)\.([a-z0-9_\-]+)((?:\[[^\[\]]*\]|\.[a-z_][a-z0-9_]*)*)"
)
_MODULE_REF = re.compile(r"(?<![\w.])module\.([a-z0-9_\-]+)\.([a-z_][a-z0-9_]*)")
_STEP = re.compile(r"\[[^\[\]]*\]|\.[a-z_][a-z0-9_]*")
_LOCAL_REF = re.compile(r"(?<![\w.])local\.([a-z_][a-z0-9_]*)")
_ENTRY_FILTER = re.compile(r"\$\{\{for (\w+), (\w+) in local\.([a-z_][a-z0-9_]*) : \1 => \2(?: if [^{}]*)?\}\}")
_FOR = re.compile(
    r"\bfor\s+([a-z_][a-z0-9_]*)\s*(?:,\s*([a-z_][a-z0-9_]*))?\s+in\s+(data\.)?((?:google|archive|time)_[a-z0-9_]+)\.([a-z0-9_\-]+)\s*:"
)


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    address: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.address}: {self.message}"


@cache
def schema(provider: str) -> dict[str, Any]:
    return provider_schema.load(PROVIDERS[provider])


# ---------------------------------------------------------------------------
# Reading HCL: python-hcl2 keeps literal strings quoted and expressions as ${...}
# ---------------------------------------------------------------------------


def _uq(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def _literal(value: Any) -> str | None:
    """The value of a plain string literal (no interpolation), else None."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' and "${" not in value:
        return value[1:-1]
    return None


def _text(value: Any) -> str:
    """Every expression inside a value, as one string (for reference scanning)."""
    if isinstance(value, dict):
        return " ".join(_text(v) for k, v in value.items() if not k.startswith("__"))
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return str(value)


@dataclass
class Block:
    kind: str  # resource | data | module | provider | output | variable | local
    type: str
    name: str
    body: dict
    file: Path
    line: int

    @property
    def address(self) -> str:
        if self.kind == "resource":
            return f"{self.type}.{self.name}"
        if self.kind == "data":
            return f"data.{self.type}.{self.name}"
        return f"{self.kind}.{self.name}" if self.name else self.kind


def _line_of(text: str, kind: str, *labels: str) -> int:
    pattern = r"^[ \t]*" + re.escape(kind) + "".join(rf'\s+"?{re.escape(label)}"?' for label in labels) + r"\s*\{"
    m = re.search(pattern, text, re.M)
    return text[: m.start()].count("\n") + 1 if m else 1


def read_config(directory: Path) -> list[Block]:
    blocks: list[Block] = []
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text()
        doc = hcl2.loads(text)
        for kind in ("resource", "data"):
            for item in doc.get(kind, []):
                for rtype, named in item.items():
                    for name, body in named.items():
                        t, n = _uq(rtype), _uq(name)
                        blocks.append(Block(kind, t, n, body, path, _line_of(text, kind, t, n)))
        for kind in ("module", "provider", "variable", "output"):
            for item in doc.get(kind, []):
                for name, body in item.items():
                    n = _uq(name)
                    blocks.append(Block(kind, n, n, body, path, _line_of(text, kind, n)))
        for item in doc.get("locals", []):
            for name, value in item.items():
                if name.startswith("__"):
                    continue
                m = re.search(rf"^[ \t]*{re.escape(name)}\s*=", text, re.M)
                line = text[: m.start()].count("\n") + 1 if m else _line_of(text, "locals")
                blocks.append(Block("local", name, name, {"value": value}, path, line))
    return blocks


# ---------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------


class Checker:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.blocks = read_config(directory)
        self.findings: list[Finding] = []
        self.by_address = {b.address: b for b in self.blocks if b.kind in ("resource", "data")}
        self.locals = {b.name: _text(b.body) for b in self.blocks if b.kind == "local"}
        self.raw_locals = {b.name: b.body["value"] for b in self.blocks if b.kind == "local"}

    def report(self, block: Block, message: str) -> None:
        try:
            rel = str(block.file.relative_to(ROOT))
        except ValueError:
            rel = str(block.file)
        self.findings.append(Finding(rel, block.line, block.address, message))

    def provider_of(self, block: Block) -> str:
        explicit = block.body.get("provider")
        if isinstance(explicit, str):
            local = explicit.strip("${}").split(".")[0]
            if local in PROVIDERS:
                return local
        prefix = block.type.split("_")[0]
        return prefix if prefix in PROVIDERS else "google"

    def type_schema(self, block: Block) -> dict | None:
        table = "resources" if block.kind == "resource" else "data_sources"
        return schema(self.provider_of(block))[table].get(block.type)

    def run(self) -> list[Finding]:
        for b in self.blocks:
            if b.kind in ("resource", "data"):
                s = self.type_schema(b)
                if s is None:
                    kind = "resource type" if b.kind == "resource" else "data source"
                    self.report(b, f"{kind} {b.type} does not exist in provider {self.provider_of(b)}")
                    continue
                self.check_body(b, s, b.body, path=[], top=True, entries=self.entries(b))
                self.check_repetition(b)
            elif b.kind == "provider":
                if b.name in PROVIDERS:
                    self.check_body(b, schema(b.name)["provider"], b.body, path=[], top=False, provider=True)
            elif b.kind == "module":
                self.check_module_call(b)
        for b in self.blocks:
            self.check_references(b)
        return sorted(set(self.findings))

    # -- arguments and blocks ------------------------------------------------

    def entries(self, b: Block) -> dict[str, dict]:
        """The entries of the map ``b`` is built from (its for_each), when that map is written out as an object
        literal in a local; else {}."""
        value, seen = b.body.get("for_each"), set()
        while isinstance(value, str):
            # local.X, or a filter over its entries: {for k, e in local.X : k => e if ...}
            found = re.fullmatch(r"\$\{local\.([a-z_][a-z0-9_]*)\}", value) or _ENTRY_FILTER.fullmatch(value)
            local = found and found.group(found.re.groups)  # the last group names the local
            if not local or local in seen:
                return {}
            seen.add(local)
            value = self.raw_locals.get(local)
        if isinstance(value, dict):
            return {_uq(k): v for k, v in value.items() if isinstance(v, dict) and not k.startswith("__")}
        return {}

    def check_body(
        self,
        b: Block,
        s: dict,
        body: dict,
        path: list[str],
        *,
        top: bool,
        provider: bool = False,
        entries: dict[str, dict] | None = None,
    ) -> None:
        attrs, blocks = s["attributes"], s["blocks"]
        where = ".".join(path)
        prefix = f"{where}: " if where else ""
        present_blocks: dict[str, int] = {}
        dynamic: set[str] = set()  # generated blocks: how many is only known at plan time
        for key, value in body.items():
            if key.startswith("__"):
                continue
            if top and key in META_ARGS:
                continue
            if provider and key == "alias":
                continue
            if key == "dynamic":
                for dyn in value:
                    for dname, dbody in dyn.items():
                        name = _uq(dname)
                        if name not in blocks:
                            self.report(b, f"{prefix}unknown block type {name!r} (dynamic)")
                            continue
                        dynamic.add(name)
                        for content in dbody.get("content", []):
                            self.check_body(
                                b, blocks[name]["block"], content, [*path, name], top=False, entries=entries
                            )
                continue
            if key in blocks and _is_block(value):
                present_blocks[key] = present_blocks.get(key, 0) + len(value)
                for item in value:
                    self.check_body(b, blocks[key]["block"], item, [*path, key], top=False, entries=entries)
                continue
            if key in blocks:
                self.report(b, f"{prefix}{key} is a block: write `{key} {{ ... }}`, not `{key} = ...`")
                continue
            if key not in attrs:
                self.report(b, f"{prefix}unsupported argument {key!r}")
                continue
            attr = attrs[key]
            if attr.get("computed") and not (attr.get("optional") or attr.get("required")):
                self.report(b, f"{prefix}{key} is computed by the provider and cannot be set")
                continue
            if _is_block(value):
                self.report(b, f"{prefix}{key} is an argument: write `{key} = ...`, not a block")
                continue
            self.check_enum(b, prefix, key, attr, value, entries or {})
        for key, attr in attrs.items():
            if attr.get("required") and key not in body:
                self.report(b, f"{prefix}missing required argument {key!r}")
        for key, nested in blocks.items():
            if key in dynamic:
                continue
            n = present_blocks.get(key, 0)
            if nested.get("min_items", 0) > n:
                self.report(b, f"{prefix}missing required block {key!r} (at least {nested['min_items']})")
            if nested.get("max_items") and n > nested["max_items"]:
                self.report(b, f"{prefix}too many {key!r} blocks (at most {nested['max_items']})")

    def check_enum(self, b: Block, prefix: str, key: str, attr: dict, value: Any, entries: dict[str, dict]) -> None:
        allowed = attr.get("enum")
        if not allowed:
            return
        values = value if isinstance(value, list) else [value]
        for v in values:
            lit = _literal(v)
            if lit is not None and lit not in allowed:
                self.report(b, f"{prefix}{key} = {lit!r} is not an allowed value; expected one of {allowed}")
            from_entry = re.fullmatch(r"\$\{each\.value\.([a-z_][a-z0-9_]*)\}", v) if isinstance(v, str) else None
            for name, entry in entries.items() if from_entry else ():
                lit = _literal(entry.get(from_entry.group(1)))
                if lit is not None and lit not in allowed:
                    self.report(
                        b,
                        f"{prefix}{key} = {lit!r} (entry {name!r}) is not an allowed value; expected one of {allowed}",
                    )

    def check_repetition(self, b: Block) -> None:
        for meta in ("count", "for_each"):
            expr = b.body.get(meta)
            if expr is None:
                continue
            for ref, why in self.unknown_until_apply(_text(expr)):
                self.report(b, f"{meta} depends on {ref}, which is unknown until apply ({why})")

    def expand_locals(self, text: str, seen: frozenset[str] = frozenset()) -> str:
        """The text with the text of every local it uses (recursively) appended."""
        parts = [text]
        for name in sorted(set(_LOCAL_REF.findall(text)) - seen):
            if name in self.locals:
                parts.append(self.expand_locals(self.locals[name], seen | {name}))
        return " ".join(parts)

    def unknown_until_apply(self, text: str) -> list[tuple[str, str]]:
        out = []
        for m in _REF.finditer(self.expand_locals(text)):
            data, rtype, name, rest = m.groups()
            address = f"{'data.' if data else ''}{rtype}.{name}"
            target = self.by_address.get(address)
            if target is None:
                continue
            if data:
                deferred = self.data_is_deferred(target)
                if deferred:
                    out.append((m.group(0), deferred))
                continue
            attr = self.first_attribute(target, rest)
            if attr is None:
                continue
            s = self.type_schema(target)
            spec = (s or {}).get("attributes", {}).get(attr, {})
            if spec.get("computed") and attr not in target.body:
                out.append((m.group(0), f"{attr} is computed by the provider"))
        return out

    def data_is_deferred(self, data: Block) -> str | None:
        """Why a data source is read only during apply (it depends on a managed resource)."""
        deps = _text(data.body.get("depends_on", ""))
        body = _text({k: v for k, v in data.body.items() if k != "depends_on"})
        for m in _REF.finditer(deps + " " + body):
            if not m.group(1) and f"{m.group(2)}.{m.group(3)}" in self.by_address:
                return f"it depends on managed resource {m.group(2)}.{m.group(3)}"
        return None

    @staticmethod
    def first_attribute(target: Block, rest: str) -> str | None:
        steps = _STEP.findall(rest)
        repeated = "count" in target.body or "for_each" in target.body
        if repeated and steps and steps[0].startswith("["):
            steps = steps[1:]
        return steps[0][1:] if steps and steps[0].startswith(".") else None

    # -- references ----------------------------------------------------------

    def check_references(self, b: Block) -> None:
        text = _text(b.body)
        for m in _REF.finditer(text):
            data, rtype, name, rest = m.groups()
            address = f"{'data.' if data else ''}{rtype}.{name}"
            if rest == "" and not data and name in ("value", "key"):
                continue  # each.value-like iterator of a dynamic block named like a type
            target = self.by_address.get(address)
            if target is None:
                self.report(b, f"reference to undeclared {address}")
                continue
            s = self.type_schema(target)
            if s is None:
                continue
            self.check_traversal(b, m.group(0), target, s, _STEP.findall(rest))
        self.check_iterators(b, text)
        modules = {x.name: x for x in self.blocks if x.kind == "module"}
        for m in _MODULE_REF.finditer(text):
            call = modules.get(m.group(1))
            if call is None:
                self.report(b, f"reference to undeclared module.{m.group(1)}")
                continue
            outputs = self.module_interface(call)[1]
            if outputs is not None and m.group(2) not in outputs:
                self.report(b, f"module.{m.group(1)} has no output {m.group(2)!r}")

    def check_iterators(self, b: Block, text: str) -> None:
        """`for k, s in data.x.y : s.attr` — s is one instance: check s's traversals against the schema."""
        for m in _FOR.finditer(text):
            first, second, data, rtype, name = m.groups()
            var = second or first
            target = self.by_address.get(f"{'data.' if data else ''}{rtype}.{name}")
            if target is None or not ("count" in target.body or "for_each" in target.body):
                continue
            s = self.type_schema(target)
            if s is None:
                continue
            scope = text[m.end() :]
            for ref in re.finditer(rf"(?<![\w.]){re.escape(var)}((?:\[[^\[\]]*\]|\.[a-z_][a-z0-9_]*)+)", scope):
                steps = _STEP.findall(ref.group(1))
                self.walk(
                    b, f"{var}{ref.group(1)} (an instance of {target.address})", target.address, {"block": s}, steps
                )

    def check_traversal(self, b: Block, ref: str, target: Block, s: dict, steps: list[str]) -> None:
        repeated = "count" in target.body or "for_each" in target.body
        if not steps:
            return  # the whole resource (or all its instances), e.g. in a for expression
        if repeated:
            if not steps[0].startswith("["):
                kind = "count" if "count" in target.body else "for_each"
                key = "[0]" if kind == "count" else '["KEY"]'
                self.report(
                    b, f"{ref}: {target.address} has {kind}, so it needs an instance key ({target.address}{key}.…)"
                )
                return
            steps = steps[1:]
        elif steps[0].startswith("["):
            self.report(b, f"{ref}: {target.address} has no count or for_each, so it takes no instance key")
            return
        self.walk(b, ref, target.address, {"block": s}, steps)

    def walk(self, b: Block, ref: str, where: str, node: dict, steps: list[str]) -> None:
        """Follow .attr / [i] steps through blocks and attribute types."""
        current: Any = node  # {"block": schema} | {"nested": nested-block} | {"type": cty}
        for step in steps:
            if "block" in current:
                blk = current["block"]
                if step.startswith("["):
                    self.report(b, f"{ref}: {where} cannot be indexed here")
                    return
                name = step[1:]
                if name in blk["attributes"]:
                    current = {"type": blk["attributes"][name]["type"]}
                elif name in blk["blocks"]:
                    current = {"nested": blk["blocks"][name]}
                else:
                    self.report(b, f"{ref}: {where} has no attribute {name!r}")
                    return
                where = f"{where}.{name}"
            elif "nested" in current:
                if not step.startswith("["):
                    self.report(
                        b, f"{ref}: block {where} is a list, so it must be indexed ({where}[0]{step}) before {step}"
                    )
                    return
                current = {"block": current["nested"]["block"]}
                where = f"{where}{step}"
            else:
                typ = current["type"]
                if typ == "dynamic" or (isinstance(typ, list) and typ[0] == "map"):
                    return  # maps take any key; dynamic is unknown
                if isinstance(typ, list) and typ[0] in ("list", "set"):
                    if not step.startswith("["):
                        self.report(b, f"{ref}: {where} is a list, so it must be indexed ({where}[0]{step})")
                        return
                    current = {"type": typ[1]}
                    where = f"{where}{step}"
                elif isinstance(typ, list) and typ[0] == "object":
                    name = step[1:]
                    if step.startswith("[") or name not in typ[1]:
                        self.report(b, f"{ref}: {where} has no attribute {name!r}")
                        return
                    current = {"type": typ[1][name]}
                    where = f"{where}.{name}"
                else:
                    self.report(b, f"{ref}: {where} is a {typ}, it has no {step}")
                    return

    # -- modules -------------------------------------------------------------

    def module_interface(self, call: Block) -> tuple[dict[str, bool], set[str] | None]:
        """({variable: required}, outputs) of a local module, or ({}, None) when it is not local."""
        source = _literal(call.body.get("source", ""))
        if not source or not source.startswith("."):
            return {}, None
        blocks = _module_blocks((self.directory / source).resolve())
        variables = {x.name: "default" not in x.body for x in blocks if x.kind == "variable"}
        outputs = {x.name for x in blocks if x.kind == "output"}
        return variables, outputs

    def check_module_call(self, call: Block) -> None:
        variables, outputs = self.module_interface(call)
        if outputs is None:
            return
        for key in call.body:
            if key.startswith("__") or key in MODULE_META:
                continue
            if key not in variables:
                self.report(call, f"unsupported argument {key!r}: the module declares no such variable")
        for name, required in variables.items():
            if required and name not in call.body:
                self.report(call, f"missing required argument {name!r} (a variable without default)")


@cache
def _module_blocks(directory: Path) -> list[Block]:
    return read_config(directory)


def check(directory: Path) -> list[Finding]:
    return Checker(Path(directory).resolve()).run()


def main(argv: list[str] | None = None) -> int:
    dirs = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or [
        ROOT / "terraform",
        ROOT / "terraform" / "examples" / "basic",
    ]
    status = 0
    for d in dirs:
        findings = check(d)
        for f in findings:
            print(f)
        status = status or int(bool(findings))
        print(f"{d}: {len(findings)} finding(s)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
