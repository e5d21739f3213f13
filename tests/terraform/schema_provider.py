"""Schema-only Terraform providers: the real google/google-beta/archive/time schemas, no cloud.

Each provider is a gRPC server speaking the Terraform plugin protocol 6 (tfplugin6, the
descriptor compiled in the PyPI package `tf`) on a unix socket. It answers GetProviderSchema
with the schema extracted by provider_schema.py. Like the real SDKv2 provider,
ValidateResourceConfig / ValidateDataResourceConfig refuse a known value outside an attribute's
allowed values (`Possible values: [...]` in the schema) and any value for a computed-only
attribute; everything else they accept. It implements nothing that would plan or apply. Terraform attaches to it through
TF_REATTACH_PROVIDERS, so `terraform init` installs nothing and `terraform validate` checks the
configuration against the providers' real schemas: argument and block names, required
arguments, types, computed-only attributes, references and allowed values.

    with serve() as reattach:           # {"registry.terraform.io/hashicorp/google": {...}, ...}
        os.environ["TF_REATTACH_PROVIDERS"] = json.dumps(reattach)

Run it by hand with `python tests/terraform/schema_provider.py`: it prints the export line
and serves until interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import provider_schema  # noqa: E402

NESTING_LIST = 2  # tfplugin6.Schema.NestedBlock.NestingMode.LIST


class Protocol:
    """Message classes of tfplugin6, built from the serialized descriptor."""

    def __init__(self, descriptor: bytes) -> None:
        fdp = descriptor_pb2.FileDescriptorProto.FromString(descriptor)
        self.pool = descriptor_pool.DescriptorPool()
        self.pool.Add(fdp)
        self.service = self.pool.FindServiceByName("tfplugin6.Provider")

    def message(self, full_name: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))


def _block(proto: Protocol, spec: dict[str, Any]) -> Any:
    block = proto.message("tfplugin6.Schema.Block")()
    for name in sorted(spec["attributes"]):
        attr = spec["attributes"][name]
        block.attributes.add(
            name=name,
            type=json.dumps(attr["type"]).encode(),
            description=attr.get("description", ""),
            required=bool(attr.get("required")),
            optional=bool(attr.get("optional")),
            computed=bool(attr.get("computed")),
        )
    for name in sorted(spec["blocks"]):
        nested = spec["blocks"][name]
        nb = block.block_types.add(
            type_name=name,
            nesting=NESTING_LIST,
            min_items=nested.get("min_items", 0),
            max_items=nested.get("max_items", 0),
        )
        nb.block.CopyFrom(_block(proto, nested["block"]))
    return block


def schema_response(proto: Protocol, schema: dict[str, Any]) -> bytes:
    """A serialized GetProviderSchema.Response for one provider's compact schema."""
    resp = proto.message("tfplugin6.GetProviderSchema.Response")()
    resp.provider.block.CopyFrom(_block(proto, schema["provider"]))
    for name, spec in schema["resources"].items():
        resp.resource_schemas[name].block.CopyFrom(_block(proto, spec))
    for name, spec in schema["data_sources"].items():
        resp.data_source_schemas[name].block.CopyFrom(_block(proto, spec))
    return resp.SerializeToString()


# ---------------------------------------------------------------------------
# Allowed values: the configuration arrives as msgpack (cty's encoding)
# ---------------------------------------------------------------------------


class Unknown:
    """A value Terraform does not know yet (msgpack extension): never judged."""


def unpack(data: bytes) -> Any:
    """The subset of msgpack that cty writes: nil, bool, ints, floats, str, bin, array, map, ext."""
    value, end = _unpack(memoryview(data), 0)
    if end != len(data):
        raise ValueError(f"trailing bytes after msgpack value ({end} of {len(data)})")
    return value


def _unpack(b: memoryview, i: int) -> tuple[Any, int]:
    import struct

    c = b[i]
    i += 1
    if c <= 0x7F:
        return c, i
    if c >= 0xE0:
        return c - 0x100, i
    if 0xA0 <= c <= 0xBF:
        n = c & 0x1F
        return bytes(b[i : i + n]).decode(), i + n
    if 0x90 <= c <= 0x9F:
        return _array(b, i, c & 0x0F)
    if 0x80 <= c <= 0x8F:
        return _map(b, i, c & 0x0F)
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if c in fixed:
        return fixed[c], i
    sized = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    sized |= {0xCA: ">f", 0xCB: ">d"}
    if c in sized:
        fmt = sized[c]
        return struct.unpack_from(fmt, b, i)[0], i + struct.calcsize(fmt)
    lengths = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}
    if c in lengths:
        fmt = lengths[c]
        n = struct.unpack_from(fmt, b, i)[0]
        i += struct.calcsize(fmt)
        raw = bytes(b[i : i + n])
        return (raw.decode() if c >= 0xD9 else raw), i + n
    if c in (0xDC, 0xDD, 0xDE, 0xDF):
        fmt = ">H" if c in (0xDC, 0xDE) else ">I"
        n = struct.unpack_from(fmt, b, i)[0]
        i += struct.calcsize(fmt)
        return _array(b, i, n) if c in (0xDC, 0xDD) else _map(b, i, n)
    ext = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
    if c in ext:
        return Unknown(), i + 1 + ext[c]
    if c in (0xC7, 0xC8, 0xC9):
        fmt = {0xC7: ">B", 0xC8: ">H", 0xC9: ">I"}[c]
        n = struct.unpack_from(fmt, b, i)[0]
        return Unknown(), i + struct.calcsize(fmt) + 1 + n
    raise ValueError(f"unsupported msgpack byte 0x{c:02x}")


def _array(b: memoryview, i: int, n: int) -> tuple[list, int]:
    out = []
    for _ in range(n):
        v, i = _unpack(b, i)
        out.append(v)
    return out, i


def _map(b: memoryview, i: int, n: int) -> tuple[dict, int]:
    out = {}
    for _ in range(n):
        k, i = _unpack(b, i)
        v, i = _unpack(b, i)
        out[k] = v
    return out, i


def config_errors(spec: dict[str, Any], config: Any, path: tuple = ()) -> list[tuple[tuple, str, str]]:
    """(attribute path, summary, detail) for what the real provider's validation refuses.

    - a value for a computed-only attribute (SDKv2: "Value for unconfigurable attribute");
    - a known string outside the attribute's allowed values (SDKv2's StringInSlice message).
    """
    if not isinstance(config, dict):
        return []
    errors: list[tuple[tuple, str, str]] = []
    for name, attr in spec["attributes"].items():
        value = config.get(name)
        if attr.get("computed") and not (attr.get("optional") or attr.get("required")) and value is not None:
            detail = f'Can\'t configure a value for "{name}": its value will be decided automatically based on the result of applying this configuration.'
            errors.append(((*path, name), "Value for unconfigurable attribute", detail))
            continue
        allowed = attr.get("enum")
        if not allowed or value is None or isinstance(value, Unknown):
            continue
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if isinstance(item, str) and item not in allowed:
                at = (*path, name) if index is None else (*path, name, index)
                quoted = ", ".join(f'"{a}"' for a in allowed)
                errors.append((at, "Invalid value", f"expected {name} to be one of [{quoted}], got {item}"))
    for name, nested in spec["blocks"].items():
        value = config.get(name)
        if isinstance(value, list):
            for index, item in enumerate(value):
                errors.extend(config_errors(nested["block"], item, (*path, name, index)))
    return errors


def _validate_response(proto: Protocol, method: str, specs: dict[str, Any], request: bytes) -> bytes:
    req = proto.message(f"tfplugin6.{method}.Request").FromString(request)
    resp = proto.message(f"tfplugin6.{method}.Response")()
    spec = specs.get(req.type_name)
    if spec is None or not req.config.msgpack:
        return resp.SerializeToString()
    for at, summary, detail in config_errors(spec, unpack(req.config.msgpack)):
        diag = resp.diagnostics.add(severity=1, summary=summary, detail=detail)  # 1 = ERROR
        for step in at:
            if isinstance(step, int):
                diag.attribute.steps.add(element_key_int=step)
            else:
                diag.attribute.steps.add(attribute_name=step)
    return resp.SerializeToString()


def _server(proto: Protocol, schema: dict[str, Any], socket: str) -> grpc.Server:
    schema_bytes = schema_response(proto, schema)

    def empty(method: str) -> bytes:
        # Configure/Stop and the provider's own config: nothing to say.
        return proto.message(f"tfplugin6.{method}.Response")().SerializeToString()

    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in proto.service.methods:
        if method.name in ("ValidateResourceConfig", "ValidateDataResourceConfig"):
            specs = schema["resources" if method.name == "ValidateResourceConfig" else "data_sources"]

            def validate(
                request: bytes, _context: grpc.ServicerContext, m: str = method.name, sp: dict = specs
            ) -> bytes:
                return _validate_response(proto, m, sp, request)

            handlers[method.name] = grpc.unary_unary_rpc_method_handler(validate)
            continue
        if method.name == "GetProviderSchema":
            payload = schema_bytes
        elif method.name in (
            "GetMetadata",
            "ValidateProviderConfig",
            "ConfigureProvider",
            "GetFunctions",
            "StopProvider",
        ):
            payload = empty(method.name)
        else:
            continue  # plan/apply/read: not a real provider, Terraform gets UNIMPLEMENTED

        def unary(_request: bytes, _context: grpc.ServicerContext, payload: bytes = payload) -> bytes:
            return payload

        handlers[method.name] = grpc.unary_unary_rpc_method_handler(unary)

    def stdio(_request: bytes, _context: grpc.ServicerContext) -> Iterator[bytes]:
        return iter(())  # go-plugin's stdout/stderr stream: nothing to forward

    def shutdown(_request: bytes, _context: grpc.ServicerContext) -> bytes:
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler("tfplugin6.Provider", handlers),
            grpc.method_handlers_generic_handler(
                "plugin.GRPCStdio", {"StreamStdio": grpc.unary_stream_rpc_method_handler(stdio)}
            ),
            grpc.method_handlers_generic_handler(
                "plugin.GRPCController", {"Shutdown": grpc.unary_unary_rpc_method_handler(shutdown)}
            ),
        )
    )
    server.add_insecure_port(f"unix://{socket}")
    return server


@contextlib.contextmanager
def serve(providers: tuple[str, ...] = tuple(provider_schema.PACKAGES)) -> Iterator[dict[str, Any]]:
    """Serve the given providers (e.g. "hashicorp/google"); yields the TF_REATTACH_PROVIDERS value."""
    paths = provider_schema.build()
    proto = Protocol(paths["tfplugin6"].read_bytes())
    servers: list[grpc.Server] = []
    reattach: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tf-schema-") as tmp:
        for source in providers:
            schema = json.loads(paths[source].read_text())
            socket = os.path.join(tmp, source.replace("/", "-") + ".sock")
            server = _server(proto, schema, socket)
            server.start()
            servers.append(server)
            reattach[f"registry.terraform.io/{source}"] = {
                "Protocol": "grpc",
                "ProtocolVersion": 6,
                "Pid": os.getpid(),
                "Test": True,  # Terraform must not try to stop or kill this process
                "Addr": {"Network": "unix", "String": socket},
            }
        try:
            yield reattach
        finally:
            for server in servers:
                server.stop(grace=None)


def main() -> int:
    with serve() as reattach:
        print(f"export TF_REATTACH_PROVIDERS='{json.dumps(reattach)}'", flush=True)
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
