"""Kerberos (SPNEGO / Negotiate) login to the HTTP interface against the lab's KDC.

The interface listens on proxy.example.test (127.0.1.10, inside the lab's network
namespace) with the lab's ``HTTP/proxy.example.test`` keytab. Clients are python-gssapi
initiators with keytab credentials, as a browser with a Kerberos ticket would be.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import gssapi
import pytest
from aiohttp.test_utils import unused_port
from gss_client import keytab_credentials

from lab import LabInfo
from proxy.audit import AuditConfig, start_audit
from proxy.http import HttpConfig, Metrics, start_http

SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")
KERBEROS = gssapi.OID.from_int_seq("1.2.840.113554.1.2.2")


def initiate(lab: LabInfo, who: str, mech: gssapi.OID = SPNEGO,
             service: str = "HTTP@proxy.example.test") -> tuple[gssapi.SecurityContext, str]:
    """A client context for ``service`` as lab principal ``who``, and its first token."""
    principal = lab.principals[who]
    creds = keytab_credentials(principal.keytab, principal.principal)
    ctx = gssapi.SecurityContext(
        name=gssapi.Name(service, gssapi.NameType.hostbased_service), creds=creds,
        usage="initiate", mech=mech, flags=gssapi.RequirementFlag.mutual_authentication)
    return ctx, base64.b64encode(ctx.step()).decode()


@pytest.fixture
async def site(lab: LabInfo, tmp_path: Path) -> AsyncIterator[str]:
    """The interface on proxy.example.test; only the proxy's service account may log in."""
    store = await start_audit(AuditConfig(sqlite_path=str(tmp_path / "audit.sqlite3")))
    port = unused_port()
    config = HttpConfig(listen=[lab.proxy_ip], port=port, keytab=lab.http.keytab,
                        service_principal=lab.http.principal,
                        allowed_principals=[lab.svc.principal])
    assert os.environ["KRB5_CONFIG"] == str(lab.krb5_config)
    runner = await start_http(config, store, Metrics(), lambda: (True, {}))
    try:
        yield f"http://{lab.proxy_ip}:{port}"
    finally:
        await runner.cleanup()
        await store.close()


async def get(url: str, authorization: str | None = None) -> aiohttp.ClientResponse:
    """GET ``url`` (body read, connection closed)."""
    headers = {"Authorization": authorization} if authorization else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        await r.read()
        return r


async def test_without_credentials_401_asks_for_negotiate(site: str) -> None:
    response = await get(f"{site}/api/v1/audit")
    assert response.status == 401
    assert response.headers.getall("WWW-Authenticate") == ["Negotiate"]


@pytest.mark.parametrize("mech", [SPNEGO, KERBEROS], ids=["spnego", "raw-krb5"])
async def test_kerberos_login_with_mutual_authentication(
    site: str, lab: LabInfo, mech: gssapi.OID
) -> None:
    ctx, token = await asyncio.to_thread(initiate, lab, "svc", mech)
    response = await get(f"{site}/api/v1/audit", f"Negotiate {token}")
    assert response.status == 200
    scheme, _, reply = response.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Negotiate"
    ctx.step(base64.b64decode(reply))  # verifies the server: raises if it is not the keytab's
    assert ctx.complete
    _, token = await asyncio.to_thread(initiate, lab, "svc", mech)
    page = await get(f"{site}/audit", f"Negotiate {token}")
    assert page.status == 200
    assert lab.svc.principal in await page.text()


async def test_bad_tokens_get_401(site: str, lab: LabInfo) -> None:
    garbage = base64.b64encode(os.urandom(200)).decode()
    assert (await get(f"{site}/audit", f"Negotiate {garbage}")).status == 401
    # a real ticket, but for another service (DNS/ns.example.test): not for our key
    _, other = await asyncio.to_thread(initiate, lab, "svc", SPNEGO,
                                       f"DNS@{lab.dns_server}")
    response = await get(f"{site}/audit", f"Negotiate {other}")
    assert response.status == 401
    assert response.headers.getall("WWW-Authenticate") == ["Negotiate"]


async def test_valid_ticket_of_a_principal_not_allowed_gets_403(site: str, lab: LabInfo) -> None:
    _, token = await asyncio.to_thread(initiate, lab, "dhcp3")
    response = await get(f"{site}/audit", f"Negotiate {token}")
    assert response.status == 403
