"""A gRPC stand-in for the two Pub/Sub calls the doctor makes: GetTopic and GetIamPolicy.

Why: the pstest emulator serves Publisher and Subscriber but not
``google.iam.v1.IAMPolicy``, so the real ``PublisherClient.get_iam_policy``
answers UNIMPLEMENTED there. Point ``PUBSUB_EMULATOR_HOST`` at this server to
test the doctor's topic IAM check with the real client and real protobufs.

    with PubSubIamStandIn({"projects/p/topics/t": {"bindings": [...]}}) as standin:
        env["PUBSUB_EMULATOR_HOST"] = standin.address
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any, Self

import grpc
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import json_format
from google.pubsub_v1.types import pubsub


class PubSubIamStandIn:
    def __init__(self, topics: dict[str, dict] | None = None) -> None:
        self.topics = dict(topics or {})  # topic name → IAM policy (proto-JSON)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        topic_pb, get_topic_pb = pubsub.Topic.pb(), pubsub.GetTopicRequest.pb()
        self._server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "google.pubsub.v1.Publisher",
                    {
                        "GetTopic": grpc.unary_unary_rpc_method_handler(
                            lambda request, context: self._get_topic(request, context, topic_pb),
                            request_deserializer=get_topic_pb.FromString,
                            response_serializer=lambda m: m.SerializeToString(),
                        )
                    },
                ),
                grpc.method_handlers_generic_handler(
                    "google.iam.v1.IAMPolicy",
                    {
                        "GetIamPolicy": grpc.unary_unary_rpc_method_handler(
                            self._get_iam_policy,
                            request_deserializer=iam_policy_pb2.GetIamPolicyRequest.FromString,
                            response_serializer=lambda m: m.SerializeToString(),
                        )
                    },
                ),
            ]
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    def _log(self, name: str, request: Any) -> None:
        with self._lock:
            self.requests.append((name, json_format.MessageToDict(request)))

    def _get_topic(self, request: Any, context: grpc.ServicerContext, topic_pb: Any) -> Any:
        self._log("GetTopic", request)
        if request.topic not in self.topics:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Topic not found: {request.topic}")
        return topic_pb(name=request.topic)

    def _get_iam_policy(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._log("GetIamPolicy", request)
        if request.resource not in self.topics:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Topic not found: {request.resource}")
        return json_format.ParseDict(self.topics[request.resource], policy_pb2.Policy())

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None).wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
