"""The assembled interface: health, readiness, metrics endpoint, headers, serving, TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import unused_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.audit import AuditStore
from proxy.http import HttpConfig, Metrics, build_app, start_http
from proxy.http.app import SECURITY_HEADERS, Readiness
from tests.unit.test_audit_store import synthetic_request
from tests.unit.test_http_api import serve, store

__all__ = ["store"]  # the fixture

OPEN = HttpConfig(anonymous=True)


def ready_sync() -> tuple[bool, dict]:
    return True, {"credentials": "valid", "upstream": "usable"}


async def not_ready_async() -> tuple[bool, dict]:
    await asyncio.sleep(0)
    return False, {"directory": "unreachable for 130 s (grace 120 s)"}


def broken() -> tuple[bool, dict]:
    raise RuntimeError("boom")


@pytest.mark.parametrize(("readiness", "status", "body"), [
    (ready_sync, 200, {"ready": True, "checks": {"credentials": "valid", "upstream": "usable"}}),
    (not_ready_async, 503,
     {"ready": False, "checks": {"directory": "unreachable for 130 s (grace 120 s)"}}),
    (broken, 503, {"ready": False, "checks": {"readiness": "check failed: RuntimeError('boom')"}}),
])
async def test_health_and_readiness(store: AuditStore, readiness: Readiness, status: int,
                                    body: dict) -> None:
    async with serve(build_app(OPEN, store.db, Metrics(), readiness)) as client:
        health = await client.get("/healthz")
        assert health.status == 200 and await health.text() == "ok\n"
        ready = await client.get("/readyz")
        assert ready.status == status
        assert await ready.json() == body


async def test_metrics_endpoint_includes_the_audit_queue(store: AuditStore) -> None:
    metrics = Metrics()
    metrics.track_audit(store)
    metrics.track_audit(store)  # idempotent
    metrics.observe(synthetic_request(0))
    async with serve(build_app(OPEN, store.db, metrics, ready_sync)) as client:
        response = await client.get("/metrics")
        text = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert 'dnsproxy_requests_total{outcome="forwarded-ok"} 1.0' in text
    assert "dnsproxy_audit_queue_rows 0.0" in text
    assert 'dnsproxy_audit_dropped_rows_total{reason="queue-full"} 0.0' in text


async def test_security_headers_on_every_answer(store: AuditStore) -> None:
    async with serve(build_app(HttpConfig(), store.db, Metrics(), ready_sync)) as client:
        for path in ("/audit", "/nope"):
            response = await client.get(path)
            assert response.status == 401
            for name, value in SECURITY_HEADERS.items():
                assert response.headers[name] == value
    async with serve(build_app(OPEN, store.db, Metrics(), ready_sync)) as client:
        response = await client.get("/static/audit.css")
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


def self_signed(directory: Path) -> tuple[str, str]:
    """A certificate and key for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_start_http_serves_https_and_stops(store: AuditStore, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = unused_port()
    config = HttpConfig(port=port, tls_cert=cert, tls_key=key, open_health=True)
    runner = await start_http(config, store, Metrics(), ready_sync)
    try:
        context = ssl.create_default_context(cafile=cert)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/healthz", ssl=context) as response:
                assert response.status == 200
            with pytest.raises(aiohttp.ClientError):
                await session.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await runner.cleanup()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"https://127.0.0.1:{port}/healthz", ssl=context)


async def test_a_busy_port_is_one_clear_error(store: AuditStore) -> None:
    port = unused_port()
    config = HttpConfig(port=port, anonymous=True)
    first = await start_http(config, store, Metrics(), ready_sync)
    try:
        with pytest.raises(RuntimeError, match=rf"cannot listen on 127.0.0.1 port {port} .*"
                                               "free the port or change http.listen/http.port"):
            await start_http(config, store, Metrics(), ready_sync)
    finally:
        await first.cleanup()
