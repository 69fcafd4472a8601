"""Loopback servers for the EMAIL and PUSH channels, reusable by any test module.

Factories (all async context managers, all on 127.0.0.1 port 0, all closing
what they open):

* :func:`smtp_server` - a real aiosmtpd SMTP server in the test's event loop,
  recording each mail (parsed) in a :class:`SmtpRecorder`; per-recipient
  replies (``550``, ``451``), AUTH with one user, STARTTLS or implicit TLS.
* :func:`push_service` - a Starlette app under uvicorn that speaks the Web
  Push protocol: checks ``Content-Encoding: aes128gcm``, ``TTL``,
  ``Urgency`` and the VAPID ``Authorization: vapid t=<jwt>, k=<key>``
  (signature, ``aud`` = the endpoint's origin, ``exp``, ``sub``), answers
  201 and **decrypts the payload with the subscription's private keys**, as
  the browser would. :meth:`PushService.subscribe` plays the browser: it makes
  the P-256 key pair and auth secret and registers an endpoint with a chosen
  behaviour (accept, 404, 410, 429 + Retry-After, 500, 413).

Plus :func:`self_signed_certificate` (for STARTTLS/TLS tests) and
:class:`FieldsRenderer`, a small real :class:`~tradewire.channels.Renderer`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import html
import ipaddress
import json
import os
import secrets
import socket
import ssl
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

import http_ece
import jwt
import uvicorn
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tradewire.channels import PushSubscription, RenderedMessage
from tradewire.delivery.model import Event

__all__ = [
    "BrowserSubscription",
    "CertFiles",
    "FieldsRenderer",
    "PushBehaviour",
    "PushService",
    "ReceivedMail",
    "ReceivedPush",
    "SmtpRecorder",
    "SmtpServer",
    "push_service",
    "self_signed_certificate",
    "smtp_server",
]

WAIT = 30.0  # generous: the machine is shared; never a timing assertion


class FieldsRenderer:
    """A real :class:`~tradewire.channels.Renderer` that formats the event's own fields."""

    def render(self, event: Event) -> RenderedMessage:
        body = event.payload.decode("utf-8", "replace")
        title = f"Event {event.event_type} for {event.user_id} ({event.priority.name})"
        text = f"{title}\nid: {event.event_id}\n{body}"
        return RenderedMessage(
            title=title,
            text=text,
            html=f"<p><b>{html.escape(title)}</b></p><pre>{html.escape(body)}</pre>",
            telegram_html=f"<b>{html.escape(title)}</b>\n{html.escape(body)}",
            discord_markdown=f"**{title}**\n{body}",
            slack_mrkdwn=f"*{title}*\n{body}",
        )


# --------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class CertFiles:
    """A PEM certificate (also the client's trust anchor) and its key."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed_certificate(directory: Path) -> CertFiles:
    """A fresh self-signed certificate for ``localhost`` and ``127.0.0.1``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = CertFiles(directory / "smtp-cert.pem", directory / "smtp-key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


# -------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    """One mail the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    authenticated_as: str | None
    over_tls: bool


@dataclass
class SmtpRecorder:
    """An aiosmtpd handler: records mail, answers configured replies.

    ``rcpt_replies`` maps a recipient to the reply its ``RCPT TO`` gets
    (``"550 5.1.1 <x@y>: Recipient address rejected"``, ``"451 4.7.1 Try
    later"``); ``data_reply`` replaces the ``DATA`` answer when set.
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    data_delay_s: float = 0.0
    """Wait this long before answering ``DATA`` (a server slower than the client's timeout)."""
    received: list[ReceivedMail] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay_s:
            await asyncio.sleep(self.data_delay_s)
        if self.data_reply is not None:
            return self.data_reply
        content = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(content)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated else None
        self.received.append(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=message,
                authenticated_as=login,
                over_tls=_over_tls(server, session),
            )
        )
        self.arrived.set()
        return "250 Message accepted for delivery"


def _over_tls(server: SMTP, session: Session) -> bool:
    # STARTTLS fills session.ssl; implicit TLS shows only on the transport.
    transport = server.transport
    wrapped = transport is not None and transport.get_extra_info("ssl_object") is not None
    return session.ssl is not None or wrapped


@dataclass(frozen=True)
class SmtpServer:
    """A running loopback SMTP server."""

    host: str
    port: int
    recorder: SmtpRecorder


def _authenticator(username: str, password: str) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == username.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


@asynccontextmanager
async def smtp_server(
    recorder: SmtpRecorder | None = None,
    *,
    starttls: CertFiles | None = None,
    implicit_tls: CertFiles | None = None,
    credentials: tuple[str, str] | None = None,
) -> AsyncIterator[SmtpServer]:
    """An aiosmtpd server on 127.0.0.1:0 in the running loop.

    ``starttls`` offers (and requires) STARTTLS with that certificate;
    ``implicit_tls`` speaks TLS from the first byte; ``credentials``
    requires AUTH (PLAIN/LOGIN) as that user, allowed without TLS on loopback.
    """
    recorder = recorder or SmtpRecorder()
    loop = asyncio.get_running_loop()
    auth: dict[str, Any] = {}
    if credentials is not None:
        auth = {
            "authenticator": _authenticator(*credentials),
            "auth_required": True,
            "auth_require_tls": False,
        }

    def factory() -> SMTP:
        with warnings.catch_warnings():
            # AUTH without TLS is what we want on loopback; aiosmtpd warns about it.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return SMTP(
                recorder,
                hostname="localhost",
                loop=loop,
                tls_context=starttls.server_context() if starttls else None,
                require_starttls=starttls is not None,
                **auth,
            )

    ssl_context = implicit_tls.server_context() if implicit_tls else None
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl_context)
    try:
        port = server.sockets[0].getsockname()[1]
        yield SmtpServer("127.0.0.1", port, recorder)
    finally:
        server.close()
        await server.wait_closed()


# -------------------------------------------------------------------- PUSH

PushBehaviour = Literal["accept", "gone", "not_found", "rate_limited", "error", "too_large", "slow"]
SLOW_PUSH_S = 1.0
"""How long a ``slow`` endpoint takes before it accepts."""
_STATUS: dict[str, int] = {
    "gone": 410,
    "not_found": 404,
    "rate_limited": 429,
    "error": 500,
    "too_large": 413,
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class BrowserSubscription:
    """What a browser keeps: its ECDH private key and auth secret.

    ``subscription`` is what it registers with tradewire (``toJSON()``).
    """

    name: str
    subscription: PushSubscription
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    behaviour: PushBehaviour
    retry_after: str | None

    def decrypt(self, body: bytes) -> bytes:
        """Decrypt an ``aes128gcm`` message body as the browser does."""
        return bytes(
            http_ece.decrypt(
                body,
                private_key=self.private_key,
                auth_secret=self.auth_secret,
                version="aes128gcm",
            )
        )

    def subscription_json(self) -> dict[str, Any]:
        """The ``PushSubscription.toJSON()`` shape a browser posts."""
        s = self.subscription
        return {"endpoint": s.endpoint, "keys": {"p256dh": s.p256dh, "auth": s.auth}}


@dataclass(frozen=True)
class ReceivedPush:
    """A message the service accepted, decrypted."""

    name: str
    payload: dict[str, Any]
    headers: dict[str, str]
    claims: dict[str, Any]


@dataclass
class PushService:
    """A loopback Web Push service (see the module docstring)."""

    application_server_key: str
    """The VAPID public key subscriptions were made with (``k`` must match)."""
    origin: str = ""
    subscriptions: dict[str, BrowserSubscription] = field(default_factory=dict)
    received: list[ReceivedPush] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    """``(name, status, reason)`` for requests the protocol checks refused."""
    hits: dict[str, int] = field(default_factory=dict)

    def subscribe(
        self, behaviour: PushBehaviour = "accept", *, retry_after: str | None = "7"
    ) -> BrowserSubscription:
        """Be a browser: make keys, register an endpoint that behaves as asked."""
        name = secrets.token_urlsafe(12)
        private_key = ec.generate_private_key(ec.SECP256R1())
        public = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        auth_secret = os.urandom(16)
        browser = BrowserSubscription(
            name=name,
            subscription=PushSubscription(
                endpoint=f"{self.origin}/push/{name}",
                p256dh=_b64url(public),
                auth=_b64url(auth_secret),
            ),
            private_key=private_key,
            auth_secret=auth_secret,
            behaviour=behaviour,
            retry_after=retry_after,
        )
        self.subscriptions[name] = browser
        return browser

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        browser = self.subscriptions.get(name)
        if browser is None:
            return Response(status_code=404)
        body = await request.body()
        try:
            claims = self._check(request)
        except _Refused as refusal:
            self.refused.append((name, refusal.status, refusal.reason))
            return Response(refusal.reason, status_code=refusal.status)
        if browser.behaviour == "slow":
            await asyncio.sleep(SLOW_PUSH_S)
        elif browser.behaviour != "accept":
            headers = {}
            if browser.behaviour == "rate_limited" and browser.retry_after is not None:
                headers["Retry-After"] = browser.retry_after
            return Response(status_code=_STATUS[browser.behaviour], headers=headers)
        try:
            payload = json.loads(browser.decrypt(body))
        except Exception as exc:
            self.refused.append((name, 400, f"undecryptable: {exc!r}"))
            return Response("undecryptable", status_code=400)
        self.received.append(ReceivedPush(name, payload, dict(request.headers), claims))
        location = f"{self.origin}/message/{secrets.token_urlsafe(8)}"
        return Response(status_code=201, headers={"Location": location})

    def _check(self, request: Request) -> dict[str, Any]:
        if request.headers.get("content-encoding") != "aes128gcm":
            raise _Refused(415, "Content-Encoding must be aes128gcm")
        if not request.headers.get("ttl", "").isdigit():
            raise _Refused(400, "TTL header missing")
        if request.headers.get("urgency", "normal") not in {"very-low", "low", "normal", "high"}:
            raise _Refused(400, "bad Urgency")
        scheme, _, params = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "vapid":
            raise _Refused(401, "VAPID authorization missing")
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if parts.get("k") != self.application_server_key:
            raise _Refused(403, "k is not the key the subscription was made with")
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), _b64url_decode(parts["k"])
        )
        try:
            claims: dict[str, Any] = jwt.decode(
                parts.get("t", ""),
                key=public,
                algorithms=["ES256"],
                audience=self.origin,
                options={"require": ["aud", "exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise _Refused(401, f"bad VAPID token: {exc}") from None
        now = dt.datetime.now(dt.UTC).timestamp()
        if claims["exp"] > now + 24 * 3600:
            raise _Refused(401, "exp more than 24 hours ahead")
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            raise _Refused(401, "sub is not a contact URL")
        return claims


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@asynccontextmanager
async def push_service(application_server_key: str) -> AsyncIterator[PushService]:
    """A Web Push service on 127.0.0.1:0 (uvicorn + Starlette) in the running loop."""
    service = PushService(application_server_key)
    app = Starlette(routes=[Route("/push/{name}", service.handle, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    service.origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", lifespan="off", ws="none", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield service
    finally:
        server.should_exit = True
        await task
        sock.close()
