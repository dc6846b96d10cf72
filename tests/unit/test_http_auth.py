"""Who gets in: bearer tokens, Negotiate (with a stand-in acceptor), open paths, 401/403."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.audit import AuditStore
from proxy.http import HttpConfig, Metrics, TokenConfig, build_app
from proxy.http.auth import NegotiateError, Negotiator
from tests.unit.test_http_api import TOKEN, serve, store

__all__ = ["store"]

GOOD_TICKET = b"ticket-of-alice@EXAMPLE.TEST"
REPLY = b"mutual-auth-reply"


class FakeNegotiator(Negotiator):
    """Accepts ``ticket-of-<principal>`` as that principal; rejects anything else."""

    def __init__(self) -> None:  # no keytab
        self.creds = None

    def accept(self, token: bytes) -> tuple[str, bytes | None]:
        if not token.startswith(b"ticket-of-"):
            raise NegotiateError("defective token detected")
        return token.removeprefix(b"ticket-of-").decode(), REPLY


def negotiate(token: bytes) -> dict[str, str]:
    return {"Authorization": "Negotiate " + base64.b64encode(token).decode()}


@pytest.fixture
async def client(store: AuditStore) -> AsyncIterator[TestClient]:
    config = HttpConfig(tokens=[TokenConfig(name="ci", token=TOKEN)], keytab="unused",
                        allowed_principals=["alice@EXAMPLE.TEST", "@OTHER.TEST"])
    app = build_app(config, store.db, Metrics(), lambda: (True, {}), FakeNegotiator())
    async with serve(app) as c:
        yield c


async def _get(client: TestClient, path: str, **kwargs: Any) -> tuple[int, Any, str]:
    response = await client.get(path, **kwargs)
    return response.status, response.headers, await response.text()


@pytest.mark.parametrize("path", ["/audit", "/api/v1/audit", "/metrics", "/healthz",
                                  "/readyz", "/live", "/api/v1/audit.csv"])
async def test_no_credentials_get_401_with_both_challenges(client: TestClient, path: str) -> None:
    status, headers, text = await _get(client, path)
    assert status == 401
    assert headers.getall("WWW-Authenticate") == [
        "Negotiate", 'Bearer realm="dnsupdate-proxy"',
        'Basic realm="dnsupdate-proxy (password: an access token)"']
    assert text == ("Authentication is required: log in with Kerberos (Negotiate) or a bearer "
                    "token.\n")


async def test_bearer_token(client: TestClient) -> None:
    status, _, _ = await _get(client, "/api/v1/audit", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    status, headers, text = await _get(client, "/api/v1/audit",
                                       headers={"Authorization": f"Bearer {TOKEN}x"})
    assert status == 401 and "bearer token is not valid" in text
    assert "Negotiate" in headers.getall("WWW-Authenticate")


async def test_browser_basic_login_with_token_as_password(client: TestClient) -> None:
    def basic(password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}

    status, _, _ = await _get(client, "/audit", headers=basic(TOKEN))
    assert status == 200
    status, _, text = await _get(client, "/audit", headers=basic("guess"))
    assert status == 401 and "bearer token is not valid" in text
    status, _, _ = await _get(client, "/audit", headers={"Authorization": "Basic !!"})
    assert status == 401


async def test_negotiate_allowed_principal_gets_in_with_mutual_auth_reply(
    client: TestClient,
) -> None:
    status, headers, text = await _get(client, "/audit", headers=negotiate(GOOD_TICKET))
    assert status == 200
    assert headers["WWW-Authenticate"] == "Negotiate " + base64.b64encode(REPLY).decode()
    assert "alice@EXAMPLE.TEST" in text  # shown in the page header


@pytest.mark.parametrize(("principal", "status"), [
    (b"carol@OTHER.TEST", 200),  # '@OTHER.TEST' allows the realm
    (b"carol@OTHER.TEST.EVIL", 403),
    (b"bob@EXAMPLE.TEST", 403),  # only alice is listed there
    (b"EXAMPLE.TEST", 403),
])
async def test_allowed_principals_and_realms(client: TestClient, principal: bytes,
                                             status: int) -> None:
    got, _, _ = await _get(client, "/api/v1/audit", headers=negotiate(b"ticket-of-" + principal))
    assert got == status


async def test_principal_not_allowed_gets_403_with_a_hint(client: TestClient) -> None:
    mallory = negotiate(b"ticket-of-mallory@EXAMPLE.TEST")
    status, _, text = await _get(client, "/audit", headers=mallory)
    assert status == 403
    assert text == ("mallory@EXAMPLE.TEST is not allowed here; ask an administrator to add it "
                    "to http.allowed_principals.\n")


@pytest.mark.parametrize("header", ["Negotiate " + base64.b64encode(b"garbage").decode(),
                                    "Negotiate %%%not-base64%%%", "Negotiate", "Basic YTpi"])
async def test_bad_negotiate_tokens_get_401(client: TestClient, header: str) -> None:
    status, headers, _ = await _get(client, "/audit", headers={"Authorization": header})
    assert status == 401
    assert headers.getall("WWW-Authenticate")[0] == "Negotiate"


async def test_open_health_and_metrics(store: AuditStore) -> None:
    config = HttpConfig(tokens=[TokenConfig(name="ci", token=TOKEN)], open_health=True,
                        open_metrics=True)
    async with serve(build_app(config, store.db, Metrics(), lambda: (True, {}))) as c:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await c.get(path)).status == 200
        assert (await c.get("/api/v1/audit")).status == 401
        assert (await c.get("/audit")).status == 401


async def test_anonymous_opens_everything(store: AuditStore) -> None:
    async with serve(build_app(HttpConfig(anonymous=True), store.db, Metrics(),
                               lambda: (True, {}))) as c:
        assert (await c.get("/api/v1/audit")).status == 200


async def test_no_login_method_says_so(store: AuditStore) -> None:
    async with serve(build_app(HttpConfig(), store.db, Metrics(), lambda: (True, {}))) as c:
        response = await c.get("/audit")
        assert response.status == 401
        assert "no login method is configured" in await response.text()


def test_a_missing_keytab_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"cannot use keytab .*nope.keytab for HTTP Kerberos"):
        Negotiator(str(tmp_path / "nope.keytab"), "HTTP/proxy.example.test@EXAMPLE.TEST")
