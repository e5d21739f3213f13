"""Schema-only Terraform providers: the real google/google-beta/archive/time schemas, no cloud.

Each provider is a gRPC server speaking the Terraform plugin protocol 6 (tfplugin6, the
descriptor compiled in the PyPI package `tf`) on a unix socket. It answers GetProviderSchema
with the schema extracted by provider_schema.py and accepts every configuration in the
Validate* calls; it implements nothing that would plan or apply. Terraform attaches to
it through TF_REATTACH_PROVIDERS, so `terraform init` installs nothing and `terraform validate`
checks the configuration against the providers' real schemas: argument and block names,
required arguments, types, computed-only attributes and references.

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


def _server(proto: Protocol, schema_bytes: bytes, socket: str) -> grpc.Server:
    def empty(method: str) -> bytes:
        # Every Validate*/Configure/Stop response is valid empty: no diagnostics.
        return proto.message(f"tfplugin6.{method}.Response")().SerializeToString()

    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in proto.service.methods:
        if method.name == "GetProviderSchema":
            payload = schema_bytes
        elif method.name in (
            "GetMetadata",
            "ValidateProviderConfig",
            "ValidateResourceConfig",
            "ValidateDataResourceConfig",
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
            server = _server(proto, schema_response(proto, schema), socket)
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
