"""The real provider schemas, offline: extracted from the prebuilt CDKTF provider packages on PyPI.

`cdktf-cdktf-provider-google` 16.12.1 (and the archive/time packages) are generated from
`terraform providers schema -json` of hashicorp/google 6.50.0 (archive 2.7.1, time 0.13.1). Their
jsii assembly (`_jsii/*.jsii.tgz` in the wheel) keeps every resource's arguments, nested blocks,
required/optional, types and the provider's own descriptions (which carry the allowed values, e.g.
`Possible values: ["ALLOW_ALL", ...]`). This module downloads the wheels pinned with their hashes in
requirements-schema.txt (`pip download --no-deps --require-hashes`; PyPI is the only network it
needs) and turns each assembly into a compact JSON schema:

    {"provider": BLOCK, "resources": {type: BLOCK}, "data_sources": {type: BLOCK}}
    BLOCK = {"attributes": {name: ATTR}, "blocks": {name: NESTED}}
    ATTR  = {"type": cty-type-json, "required"|"optional"|"computed": true, "enum": [...]?,
             "description": "..."}
    NESTED = {"nesting": "list", "min_items": n, "max_items": n (0 = unbounded), "block": BLOCK}

How the assembly maps back to the schema:
- a resource is a class whose base is cdktf.TerraformResource (data source: TerraformDataSource);
  its Terraform type is in the class summary's registry link;
- its arguments are the properties of the `<Class>Config` struct; the snake_case name is the
  anchor of each property's registry link; `optional` absent means required;
- a property whose summary is "`name` block." is a nested block; a struct type means a
  MaxItems=1 list block (SDKv2), an array of structs an unbounded list block;
- computed-only attributes are the class (or OutputReference) getters without an argument of
  that name; complex ones (ComplexList/ComplexObject) become list(object({...})) attributes.

Usage (the Makefile runs this once; the result lives in tests/terraform/.schema/):

    python tests/terraform/provider_schema.py [--dest DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEST = HERE / ".schema"

# provider source -> (PyPI package pinned to the provider version it was generated from)
PACKAGES = {
    "hashicorp/google": ("cdktf-cdktf-provider-google", "16.12.1", "6.50.0"),
    "hashicorp/google-beta": ("cdktf-cdktf-provider-google-beta", "16.12.1", "6.50.0"),
    "hashicorp/archive": ("cdktf-cdktf-provider-archive", "11.0.1", "2.7.1"),
    "hashicorp/time": ("cdktf-cdktf-provider-time", "11.0.1", "0.13.1"),
}
# The Terraform plugin protocol (tfplugin6) as compiled by the PyPI package `tf`.
PROTOCOL_PACKAGE = ("tf", "1.2.0")
REQUIREMENTS = HERE / "requirements-schema.txt"

_LINK = re.compile(
    r"registry\.terraform\.io/providers/hashicorp/([a-z0-9-]+)/([0-9.]+)/docs/(resources|data-sources)/(\S+)"
)
_ANCHOR = re.compile(r"#([a-z0-9_]+) [A-Za-z0-9]+#")
_ENUM = re.compile(r'Possible values: \[((?:"[^"]*"(?:, )?)+)\]')


def _pins() -> dict[str, str]:
    """package -> version, from requirements-schema.txt (which also pins the wheels' hashes)."""
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def download(dest: Path) -> dict[str, Path]:
    """pip download --no-deps --require-hashes every pinned wheel into dest/wheels."""
    wheels = dest / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pins = _pins()
    for package, version, _ in PACKAGES.values():
        if pins.get(package) != version:
            raise RuntimeError(
                f"{REQUIREMENTS.name} pins {package}=={pins.get(package)}, provider_schema wants {version}"
            )
    # pip re-checks the hashes of wheels already there and downloads only what is missing.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "-r",
            str(REQUIREMENTS),
            "-d",
            str(wheels),
        ],
        check=True,
    )
    found: dict[str, Path] = {}
    for package, version in pins.items():
        hits = sorted(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
        if not hits:
            raise RuntimeError(f"pip download left no wheel of {package}=={version} in {wheels}")
        found[package] = hits[0]
    return found


def read_assembly(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(zf.read(name))) as tar:
            member = tar.extractfile("package/.jsii")
            assert member is not None, f"{wheel.name}: no package/.jsii"
            return json.load(member)


def _snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", camel).lower()


class _Assembly:
    def __init__(self, assembly: dict[str, Any]) -> None:
        self.types: dict[str, dict] = assembly["types"]

    def props(self, fqn: str) -> list[dict]:
        """Own and inherited (interface) properties of a type, excluding cdktf's meta-arguments."""
        t = self.types.get(fqn)
        if t is None:
            return []
        out = list(t.get("properties", []))
        for parent in t.get("interfaces", []) or []:
            if parent.startswith("cdktf."):
                continue
            out.extend(self.props(parent))
        return out

    def cty(self, typ: dict) -> Any:
        """cty type JSON of an argument's jsii type."""
        if "primitive" in typ:
            return {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic"}.get(
                typ["primitive"], "dynamic"
            )
        if "union" in typ:
            inner = [t for t in typ["union"]["types"] if t.get("fqn") != "cdktf.IResolvable"]
            return self.cty(inner[0]) if len(inner) == 1 else "dynamic"
        if "collection" in typ:
            col = typ["collection"]
            kind = "map" if col["kind"] == "map" else "list"
            return [kind, self.cty(col["elementtype"])]
        fqn = typ.get("fqn", "")
        simple = {
            "cdktf.IResolvable": "bool",
            "cdktf.StringMap": ["map", "string"],
            "cdktf.NumberMap": ["map", "number"],
            "cdktf.BooleanMap": ["map", "bool"],
            "cdktf.AnyMap": ["map", "dynamic"],
            "cdktf.StringMapList": ["list", ["map", "string"]],
            "cdktf.NumberMapList": ["list", ["map", "number"]],
            "cdktf.BooleanMapList": ["list", ["map", "bool"]],
            "cdktf.AnyMapList": ["list", ["map", "dynamic"]],
            "cdktf.StringListList": ["list", ["list", "string"]],
            "cdktf.NumberListList": ["list", ["list", "number"]],
        }
        if fqn in simple:
            return simple[fqn]
        t = self.types.get(fqn)
        if t is None:
            return "dynamic"
        if t.get("base") == "cdktf.ComplexList":
            getter = next((m for m in t.get("methods", []) if m["name"] == "get"), None)
            if getter is None:
                return ["list", "dynamic"]
            return ["list", self.cty(getter["returns"]["type"])]
        if t.get("base") == "cdktf.ComplexObject":
            attrs = {
                _snake(p["name"]): self.cty(p["type"])
                for p in t.get("properties", [])
                if not p.get("static") and not p["name"].endswith("Input") and p["name"] != "internalValue"
            }
            return ["object", attrs]
        if t.get("kind") == "interface":  # a struct used as an attribute value
            return ["object", {_arg_name(p): self.cty(p["type"]) for p in self.props(fqn)}]
        return "dynamic"

    def block(self, struct_fqn: str, getters_fqn: str | None) -> dict[str, Any]:
        """Schema block of a Config struct (arguments) plus the getters of its class/OutputReference."""
        attributes: dict[str, dict] = {}
        blocks: dict[str, dict] = {}
        for p in self.props(struct_fqn):
            name = _arg_name(p)
            summary = (p.get("docs") or {}).get("summary", "")
            description = _description(p)
            nested = _nested_struct(p["type"])
            if summary == f"{name} block." and nested:
                struct, many = nested
                getter_type = self._getter_type(getters_fqn, p["name"])
                blocks[name] = {
                    "nesting": "list",
                    "min_items": 0 if p.get("optional") else 1,
                    "max_items": 0 if many else 1,
                    "block": self.block(struct, self._element_class(getter_type)),
                }
                continue
            attr: dict[str, Any] = {"type": self.cty(p["type"])}
            attr["optional" if p.get("optional") else "required"] = True
            enum = _ENUM.search(description)
            if enum:
                attr["enum"] = json.loads(f"[{enum.group(1)}]")
            if description:
                attr["description"] = description
            attributes[name] = attr
        if getters_fqn:
            settable = {_camel(n) for n in attributes} | {_camel(n) for n in blocks}
            for p in self.types.get(getters_fqn, {}).get("properties", []):
                pname = p["name"]
                if p.get("static") or pname.endswith("Input") or pname in settable or pname == "internalValue":
                    continue
                if pname in ("fqn", "friendlyUniqueId", "terraformResourceType", "terraformGeneratorMetadata"):
                    continue
                attributes[_snake(pname)] = {"type": self.cty(p["type"]), "computed": True}
        return {"attributes": attributes, "blocks": blocks}

    def _getter_type(self, cls: str | None, name: str) -> str | None:
        if not cls:
            return None
        for p in self.types.get(cls, {}).get("properties", []):
            if p["name"] == name:
                return p["type"].get("fqn")
        return None

    def _element_class(self, fqn: str | None) -> str | None:
        """The OutputReference class of a nested block (through its List class)."""
        t = self.types.get(fqn or "")
        if t is None:
            return None
        if t.get("base") == "cdktf.ComplexList":
            getter = next((m for m in t.get("methods", []) if m["name"] == "get"), None)
            return getter["returns"]["type"].get("fqn") if getter else None
        return fqn


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _arg_name(prop: dict) -> str:
    remarks = (prop.get("docs") or {}).get("remarks", "") + " " + (prop.get("docs") or {}).get("summary", "")
    m = _ANCHOR.search(remarks)
    return m.group(1) if m else _snake(prop["name"])


def _description(prop: dict) -> str:
    docs = prop.get("docs") or {}
    text = " ".join(x for x in (docs.get("summary", ""), docs.get("remarks", "")) if x)
    text = re.sub(r"\s*Docs at Terraform Registry: \{@link [^}]*\}", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _nested_struct(typ: dict) -> tuple[str, bool] | None:
    """(struct fqn, is-a-list) when the argument's type is a struct or an array of structs."""
    if "fqn" in typ and not typ["fqn"].startswith("cdktf."):
        return typ["fqn"], False
    for t in typ.get("union", {}).get("types", []):
        col = t.get("collection")
        if col and col["kind"] == "array" and "fqn" in col["elementtype"]:
            return col["elementtype"]["fqn"], True
    return None


def extract(assembly: dict[str, Any], provider: str) -> dict[str, Any]:
    """The compact schema of one provider's jsii assembly."""
    asm = _Assembly(assembly)
    out: dict[str, Any] = {"provider": None, "resources": {}, "data_sources": {}}
    for fqn, t in asm.types.items():
        base = t.get("base")
        if base not in ("cdktf.TerraformResource", "cdktf.TerraformDataSource", "cdktf.TerraformProvider"):
            continue
        config = t["initializer"]["parameters"][-1]["type"]["fqn"]
        block = asm.block(config, fqn)
        if base == "cdktf.TerraformProvider":
            block["attributes"].pop("alias", None)  # a meta-argument, not part of the schema
            for name in list(block["attributes"]):
                block["attributes"][name].pop("computed", None)
            block["attributes"] = {n: a for n, a in block["attributes"].items() if "computed" not in a}
            out["provider"] = block
            continue
        m = _LINK.search(t["docs"]["summary"])
        if not m or m.group(1) != provider:
            raise ValueError(f"{fqn}: no registry link of {provider} in {t['docs']['summary']!r}")
        # google-beta's types are google_* like google's, and its links name the whole type.
        prefix = provider.removesuffix("-beta")
        tftype = m.group(4) if m.group(4).startswith(f"{prefix}_") else f"{prefix}_{m.group(4)}"
        block["attributes"].setdefault("id", {"type": "string", "optional": True, "computed": True})
        out["resources" if m.group(3) == "resources" else "data_sources"][tftype] = block
    assert out["provider"] is not None
    return out


def build(dest: Path = DEST) -> dict[str, Path]:
    """Write dest/<provider>.json for every provider and dest/tfplugin6.desc; returns the paths.

    Downloads and extracts only what is missing (the Makefile removes the outputs to rebuild).
    """
    written = {source: dest / f"{source.split('/')[1]}.json" for source in PACKAGES}
    written["tfplugin6"] = dest / "tfplugin6.desc"
    if all(p.exists() for p in written.values()):
        return written
    wheels = download(dest)
    for source, (package, _pkg_version, version) in PACKAGES.items():
        path = written[source]
        if not path.exists():
            schema = extract(read_assembly(wheels[package]), source.split("/")[1])
            schema["source"] = source
            schema["version"] = version
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")))
            tmp.replace(path)
    if not written["tfplugin6"].exists():
        written["tfplugin6"].write_bytes(_protocol_descriptor(wheels[PROTOCOL_PACKAGE[0]]))
    return written


def _protocol_descriptor(wheel: Path) -> bytes:
    """The serialized FileDescriptorProto of tfplugin6, taken from the `tf` package's generated code.

    Read as data rather than imported: that generated module pins protobuf 5, while this
    project's venv runs a newer protobuf; the descriptor itself is version-independent.
    """
    import ast

    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("tf/gen/tfplugin_pb2.py").decode()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile":
            return ast.literal_eval(node.args[0])
    raise RuntimeError(f"{wheel.name}: no serialized tfplugin6 descriptor")


def load(provider: str, dest: Path = DEST) -> dict[str, Any]:
    path = dest / f"{provider}.json"
    if not path.exists():
        build(dest)
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEST)
    args = parser.parse_args(argv)
    for source, path in build(args.dest).items():
        print(f"{source}: {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
