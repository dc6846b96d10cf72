"""Who may use the HTTP interface.

Order of checks for each request: open paths (``/healthz``, ``/readyz`` with
``open_health``; ``/metrics`` with ``open_metrics``; everything with
``anonymous``) pass; ``Authorization: Bearer`` must name a configured token (so
must the password of ``Authorization: Basic``, which lets a browser use a token);
``Authorization: Negotiate`` must carry a Kerberos (SPNEGO) token for the HTTP
service key whose client is in ``allowed_principals``. Anything else gets
401 with a ``WWW-Authenticate`` challenge for each configured method; a valid
ticket of a principal not allowed gets 403. The authenticated user is
``request[USER]``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable

import gssapi
import gssapi.exceptions
from aiohttp import web
from multidict import CIMultiDict

from proxy.http.config import HttpConfig

log = logging.getLogger("dnsupdate_proxy.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: The authenticated user: a principal, ``token:<name>`` or ``anonymous``.
USER = web.RequestKey("user", str)
#: The server's Kerberos reply token (base64), sent back for mutual authentication.
NEGOTIATE_REPLY = web.RequestKey("negotiate_reply", str)


class NegotiateError(Exception):
    """A Negotiate token was not accepted; the message says why."""


class Negotiator:
    """Accepts Kerberos / SPNEGO initiator tokens with a service key from a keytab."""

    def __init__(self, keytab: str, service_principal: str | None = None) -> None:
        name = (gssapi.Name(service_principal, gssapi.NameType.kerberos_principal)
                if service_principal else None)
        try:
            self.creds = gssapi.Credentials(name=name, usage="accept", store={"keytab": keytab})
        except gssapi.exceptions.GSSError as exc:
            raise RuntimeError(
                f"cannot use keytab {keytab} for HTTP Kerberos login "
                f"({service_principal or 'any principal'}): {exc.gen_message()}; check the "
                "file and that it holds the HTTP/<host> key"
            ) from exc

    def accept(self, token: bytes) -> tuple[str, bytes | None]:
        """The client principal and the reply token (blocking: call it in a thread)."""
        ctx = gssapi.SecurityContext(creds=self.creds, usage="accept")
        try:
            reply = ctx.step(token)
            # a failed SPNEGO step may return a reject token and raise only here
            complete = ctx.complete
            principal = str(ctx.initiator_name) if complete else ""
        except gssapi.exceptions.GSSError as exc:
            raise NegotiateError(exc.gen_message()) from exc
        if not complete:
            raise NegotiateError("the exchange needs more than one round; only Kerberos "
                                 "(one round) is supported")
        return principal, reply


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Access:
    """The authentication middleware; see the module docstring."""

    def __init__(self, config: HttpConfig, negotiator: Negotiator | None) -> None:
        self.negotiator = negotiator
        self.anonymous = config.anonymous
        # looked up by digest: the lookup time does not depend on how much of a guess matches
        self.tokens = {_digest(t.value()): t.name for t in config.tokens}
        self.principals = frozenset(p for p in config.allowed_principals if not p.startswith("@"))
        self.realms = frozenset(p for p in config.allowed_principals if p.startswith("@"))
        self.open_paths = frozenset(
            (["/healthz", "/readyz"] if config.open_health else [])
            + (["/metrics"] if config.open_metrics else [])
        )

    def allowed(self, principal: str) -> bool:
        """Whether a Kerberos principal may come in."""
        _, at, realm = principal.rpartition("@")
        return principal in self.principals or (bool(at) and f"@{realm}" in self.realms)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate ``request`` or answer 401/403."""
        if self.anonymous or request.path in self.open_paths:
            request[USER] = "anonymous"
            return await handler(request)
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self.tokens:
            credentials = _basic_password(credentials)
            scheme = "bearer"
        if scheme == "bearer" and self.tokens:
            name = self.tokens.get(_digest(credentials.strip()))
            if name is None:
                return self._challenge("the bearer token is not valid")
            request[USER] = f"token:{name}"
        elif scheme == "negotiate" and self.negotiator is not None:
            try:
                token = base64.b64decode(credentials.strip(), validate=True)
                if not token:
                    raise NegotiateError("the Authorization header carries no token")
                principal, reply = await asyncio.to_thread(self.negotiator.accept, token)
            except (binascii.Error, NegotiateError) as exc:
                log.info("HTTP %s %s from %s: Kerberos login failed: %s", request.method,
                         request.path, request.remote, exc)
                return self._challenge("the Kerberos (Negotiate) token was not accepted")
            if not self.allowed(principal):
                log.info("HTTP %s %s: %s is not in http.allowed_principals", request.method,
                         request.path, principal)
                return _text(403, f"{principal} is not allowed here; ask an administrator to "
                             "add it to http.allowed_principals.")
            request[USER] = principal
            if reply:
                request[NEGOTIATE_REPLY] = base64.b64encode(reply).decode()
        else:
            return self._challenge("authentication is required")
        return await handler(request)

    def _challenge(self, why: str) -> web.Response:
        headers: CIMultiDict[str] = CIMultiDict()
        for challenge in self._schemes():
            headers.add("WWW-Authenticate", challenge)
        methods = list(self._methods())
        hint = (f"log in with {' or '.join(methods)}" if methods else
                "no login method is configured (set http.keytab or http.tokens)")
        return _text(401, f"{why[0].upper()}{why[1:]}: {hint}.", headers)

    def _schemes(self) -> Iterable[str]:
        if self.negotiator is not None:
            yield "Negotiate"
        if self.tokens:
            yield 'Bearer realm="dnsupdate-proxy"'
            yield 'Basic realm="dnsupdate-proxy (password: an access token)"'

    def _methods(self) -> Iterable[str]:
        if self.negotiator is not None:
            yield "Kerberos (Negotiate)"
        if self.tokens:
            yield "a bearer token"


def _basic_password(credentials: str) -> str:
    """The password part of Basic credentials ('' if they are not well-formed)."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


def _text(status: int, message: str, headers: CIMultiDict[str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


async def add_negotiate_reply(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: send the server's Kerberos reply (mutual auth)."""
    reply = request.get(NEGOTIATE_REPLY)
    if reply:
        response.headers["WWW-Authenticate"] = f"Negotiate {reply}"
