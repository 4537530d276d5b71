"""The client side of the Admin service: operator commands to one's own running node.

The node serves ``bcx.v1.Admin.Operate`` to its own certificate only (services.py), so
the client authenticates with the node's key material: whoever can read it can command
the node. An operation is a name and JSON arguments; the answer is JSON. A node that is
not running is named as such; any other refusal carries the node's own reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Self

import grpc

from exchange import pki
from exchange.config import NodeConfig
from exchange.errors import OperationError, PeerError
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc

# Operator commands carry up to 50,000 numbers a call (about 1 MB of JSON); the answer
# of an audit read may be a whole page of leaves.
MAX_ADMIN_MESSAGE_BYTES = 64 * 1024 * 1024


def admin_target(listen: str) -> str:
    """Where to reach a node that listens on ``listen`` from the same machine."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):  # noqa: S104 - reading a listen address
        host = "127.0.0.1"
    return f"{host}:{port}"


class AdminClient:
    """Operator commands to the node of ``config``, over mTLS with the node's own keys."""

    def __init__(self, config: NodeConfig, *, timeout: float = 120.0) -> None:
        ca = pki.load_certificate(config.ca_cert)
        creds = pki.load_node_credentials(config.credentials_dir, ca=ca, now=datetime.now(UTC))
        credentials = grpc.ssl_channel_credentials(
            root_certificates=config.ca_cert.read_bytes(), private_key=creds.tls_key_pem,
            certificate_chain=creds.tls_cert_pem)
        self.node_id = config.node_id
        self.target = admin_target(config.listen)
        self.timeout = timeout
        self.channel = grpc.secure_channel(self.target, credentials, options=[
            ("grpc.ssl_target_name_override", config.node_id),
            ("grpc.max_send_message_length", MAX_ADMIN_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_ADMIN_MESSAGE_BYTES)])
        self.stub = service_pb2_grpc.AdminStub(self.channel)  # type: ignore[no-untyped-call]

    def operate(self, operation: str, arguments: Mapping[str, object]) -> Any:
        """Run ``operation`` with ``arguments`` on the node; its answer, decoded JSON."""
        request = service_pb2.OperateRequest(operation=operation,
                                             arguments_json=json.dumps(arguments).encode())
        try:
            reply = self.stub.Operate(request, timeout=self.timeout)
        except grpc.RpcError as e:
            code = e.code()
            if code is grpc.StatusCode.UNAVAILABLE:
                raise PeerError(f"node {self.node_id} is not running at {self.target} "
                                f"(start it with `bcx node run --config …`): {e.details()}") \
                    from None
            raise OperationError(f"{operation}: {e.details()}") from None
        return json.loads(reply.result_json)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
