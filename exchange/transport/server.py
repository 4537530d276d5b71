"""The node's gRPC server: grpc.aio with mutual TLS, an interceptor that maps the peer's
certificate to a directory member before any handler runs, health and reflection."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import grpc
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from exchange import pki
from exchange.errors import (
    CertificateRevokedError,
    ExchangeError,
    PKIError,
    UnknownPeerError,
)
from exchange.identity import Directory, Member
from exchange.transport.status import status_for
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc

log = logging.getLogger(__name__)

# The directory member the current call's mTLS peer was mapped to.
current_peer: contextvars.ContextVar[Member] = contextvars.ContextVar("bcx_peer")

EXCHANGE_SERVICE = "bcx.v1.Exchange"
LEDGER_SERVICE = "bcx.v1.Ledger"
ADMIN_SERVICE = "bcx.v1.Admin"
# Every bcx service authenticates the peer against the directory before any handler runs.
AUTHENTICATED_PREFIXES = tuple(f"/{s}/" for s in (EXCHANGE_SERVICE, LEDGER_SERVICE, ADMIN_SERVICE))


@dataclass(frozen=True, slots=True)
class TLSMaterial:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes


class PeerResolver(Protocol):
    """What the interceptor needs: the directory in force, and the time (a node's
    ``DirectoryHolder``)."""

    def current_directory(self) -> Directory: ...

    def now(self) -> datetime: ...


def peer_identity(context: grpc.aio.ServicerContext[Any, Any], trust_domain: str) -> tuple[
        str, bytes]:
    """The node id named by the peer certificate's SPIFFE SAN, and the certificate's PEM."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert") or []
    uris = auth.get("peer_spiffe_id") or []
    if not pems:
        raise UnknownPeerError("the connection carries no client certificate")
    if not uris:
        raise UnknownPeerError("the client certificate carries no SPIFFE ID")
    uri = uris[0].decode()
    td, node_id = pki.parse_spiffe_uri(uri)
    if td != trust_domain:
        raise UnknownPeerError(f"peer {uri} is of another trust domain than {trust_domain}")
    return node_id, pems[0]


class _CertCache:
    def __init__(self) -> None:
        self._certs: dict[bytes, tuple[str, bytes]] = {}

    def serial_and_fingerprint(self, pem: bytes) -> tuple[str, bytes]:
        hit = self._certs.get(pem)
        if hit is None:
            cert = x509.load_pem_x509_certificate(pem)
            hit = (format(cert.serial_number, "x"), pki.fingerprint(cert))
            if len(self._certs) > 1024:
                self._certs.clear()
            self._certs[pem] = hit
        return hit


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps the mTLS peer to a current directory member before any bcx handler runs.

    Health checking and reflection stay open to any client holding a certificate of
    the exchange CA (the TLS layer has already required one).
    """

    def __init__(self, resolver: PeerResolver) -> None:
        self._resolver = resolver
        self._certs = _CertCache()

    def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> Member:
        directory = self._resolver.current_directory()
        directory.check_current(self._resolver.now())
        node_id, pem = peer_identity(context, directory.trust_domain)
        if not directory.has_member(node_id):
            raise UnknownPeerError(f"peer {node_id!r} is not a member of the directory")
        member = directory.member(node_id)
        serial, fingerprint = self._certs.serial_and_fingerprint(pem)
        if serial in directory.revoked_cert_serials:
            raise CertificateRevokedError(f"certificate serial {serial} of {node_id} is revoked")
        if fingerprint != member.auth_cert_sha256:
            raise PKIError(
                f"certificate of {node_id} is not the one the directory lists for it "
                f"(sha256 {fingerprint.hex()[:16]}…)"
            )
        return member

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(AUTHENTICATED_PREFIXES):
            return handler
        return _wrap(handler, self.authenticate)


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
    code = status_for(error)
    await context.abort(code, str(error) or type(error).__name__)


def _wrap(handler: grpc.RpcMethodHandler,
          authenticate: Callable[[grpc.aio.ServicerContext[Any, Any]], Member]
          ) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                member = authenticate(context)
            except ExchangeError as e:
                log.info("refused %s call: %s", type(e).__name__, e)
                await abort_with(context, e)
            current_peer.set(member)
            return await inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_stream is not None:
        inner_ss = handler.stream_stream

        async def stream_stream(request_iterator: AsyncIterator[Any],
                                context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                member = authenticate(context)
            except ExchangeError as e:
                log.info("refused %s stream: %s", type(e).__name__, e)
                await abort_with(context, e)
            current_peer.set(member)
            async for response in inner_ss(request_iterator, context):
                yield response

        return grpc.stream_stream_rpc_method_handler(
            stream_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    raise TypeError("bcx services use only unary-unary and stream-stream methods")


def build_server(
    *,
    tls: TLSMaterial,
    listen: str,
    resolver: PeerResolver,
    exchange: service_pb2_grpc.ExchangeServicer,
    ledger: service_pb2_grpc.LedgerServicer,
    max_message_bytes: int,
    admin: service_pb2_grpc.AdminServicer | None = None,
    max_concurrent_streams: int = 256,
) -> tuple[grpc.aio.Server, int, health.HealthServicer]:
    """A started-ready (not yet started) server bound to ``listen``; returns it and its port."""
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(resolver)],
        options=[
            # Allow a little framing overhead beyond the envelope limit, so the node's own
            # check answers with a precise message for envelopes just over it.
            ("grpc.max_receive_message_length", max_message_bytes + 64 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_concurrent_streams", max_concurrent_streams),
            ("grpc.so_reuseport", 0),
        ],
    )
    service_pb2_grpc.add_ExchangeServicer_to_server(exchange, server)  # type: ignore[no-untyped-call]
    service_pb2_grpc.add_LedgerServicer_to_server(ledger, server)  # type: ignore[no-untyped-call]
    if admin is not None:
        service_pb2_grpc.add_AdminServicer_to_server(admin, server)  # type: ignore[no-untyped-call]
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        service_pb2.DESCRIPTOR.services_by_name["Exchange"].full_name,
        service_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ) + ((service_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,) if admin else ())
    reflection.enable_server_reflection(names, server)
    credentials = grpc.ssl_server_credentials(
        [(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem, require_client_auth=True
    )
    port = server.add_secure_port(listen, credentials)
    if port == 0:
        raise ExchangeError(f"cannot listen on {listen}")
    return server, port, health_servicer
