"""Assembles the proxy from its configuration and runs it until SIGTERM/SIGINT.

Contract: :class:`ProxyApp` owns every long-lived part (credentials, upstream
transports and context pools, pipeline, listeners). :meth:`start` binds the
listeners and warms one security context per upstream (failures are logged, not
fatal: the first request retries); :meth:`stop` drains in-flight requests, then
closes everything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Iterable

from kerberos.contexts import ContextPool
from kerberos.credentials import KeytabCredentials
from kerberos.tkey import NegotiatedKey, negotiate
from proxy.config import Config, UpstreamConfig
from proxy.handler import Observer, RequestHandler
from proxy.pipeline import build_pipeline
from proxy.requestlog import log_request
from proxy.server import Server
from proxy.stages.authenticate import AuthenticateStage
from proxy.stages.forward import ForwardStage, Upstream
from proxy.stages.parse import ParseStage
from proxy.stages.serialize import SerializeStage
from proxy.upstream import UpstreamTransport

log = logging.getLogger("dnsupdate_proxy.app")


class ProxyApp:
    """The running proxy; see the module docstring."""

    def __init__(self, config: Config, observers: Iterable[Observer] = ()) -> None:
        self.config = config
        if config.kerberos.krb5_config:
            os.environ["KRB5_CONFIG"] = config.kerberos.krb5_config
        self.credentials = KeytabCredentials(
            config.kerberos.principal, config.kerberos.keytab, config.kerberos.refresh_before
        )
        self.upstreams = [self._upstream(u) for u in config.upstreams]
        keys = config.tsig_keys
        self.serialize = SerializeStage()
        self.pipeline = build_pipeline({
            "parse": ParseStage((k.to_key() for k in keys), config.zones),
            "authenticate": AuthenticateStage(keys, config.senders),
            "serialize": self.serialize,
            "forward": ForwardStage(self.upstreams, config.forward),
        })
        self.handler = RequestHandler(self.pipeline, [log_request, *observers])
        self.server = Server(self.handler, config.listen)

    def _upstream(self, cfg: UpstreamConfig) -> Upstream:
        label = f"{cfg.hostname}({cfg.address}#{cfg.port})"

        async def negotiate_context() -> NegotiatedKey:
            creds = await asyncio.to_thread(self.credentials.get)
            return await negotiate(cfg.address, cfg.hostname, creds, port=cfg.port,
                                   timeout=self.config.forward.tkey_timeout)

        pool = ContextPool(label, negotiate_context, cfg.pool_size,
                           self.config.forward.context_lifetime)
        return Upstream(label, UpstreamTransport(cfg.address, cfg.port), pool)

    async def start(self) -> None:
        """Bind the listeners and warm the context pools."""
        await self.server.start()
        await asyncio.gather(*(self._warm(u) for u in self.upstreams))

    async def _warm(self, upstream: Upstream) -> None:
        try:
            async with upstream.pool.lease():
                pass
            log.info("upstream %s: security context negotiated", upstream.label)
        except Exception as exc:
            log.warning("upstream %s: cannot negotiate a security context yet: %s",
                        upstream.label, exc)

    async def stop(self) -> None:
        """Drain in-flight requests (``listen.drain_timeout``), then close."""
        await self.server.drain(self.config.listen.drain_timeout)
        for upstream in self.upstreams:
            upstream.transport.close()

    async def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then stop."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        log.info("signal received: draining %d requests in flight", self.server.in_flight)
        await self.stop()
        log.info("stopped")
