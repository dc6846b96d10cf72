"""Settings that are valid but weaken the proxy: ``check-config`` warns about them.

One line per warning, naming the setting, why it is weak and what to do:

- an inbound key with hmac-md5 or hmac-sha1 (still accepted: dhcpd defaults to hmac-md5),
  or a secret shorter than its hash's output (RFC 8945 section 6);
- a ``[[senders]]`` entry without ``require_tsig``: its DHCP server is known by source
  address only, which anyone on the path can forge over UDP;
- ``http.anonymous`` on a non-loopback address without TLS (tokens there without TLS
  are already an error);
- a secret or token that was published: the fixed values earlier lab versions used on
  every machine (and the captured fixtures' key). Only their SHA-256 digests are kept here.
"""

from __future__ import annotations

import hashlib

from proxy.config import Config, SenderConfig, TsigKeyConfig
from proxy.http.config import HttpConfig

WEAK_ALGORITHMS = frozenset({"hmac-md5", "hmac-sha1"})

#: SHA-256 of published secrets (TSIG: the decoded secret; tokens: the text). They are the
#: old lab's base64(sha256("dnsupdate-lab " + label)) for dhcp1, dhcp2, dhcp3, its HTTP
#: token (that, base64url without padding, label "http-token"), and the fixtures' key.
PUBLISHED_DIGESTS = frozenset({
    "a7363e9310de40ada312f4e8433ecee3b3cd993044adf01b75517bcb2327a765",  # lab dhcp1-key
    "90277fcac5224eff8d0975d01de30fc6b8614ccf3ab648d1db5847e6f5ac280c",  # lab dhcp2-key
    "31199c5b022c881862f0b347014ed61999ae45c782c7d87b159f7d8df591c59a",  # lab dhcp3-key
    "68a9d3c25ba63fde8dcc66f36d4a546ddb7c9f53344128499d2ffe08de6a7319",  # fixtures' key
    "7de92db20abb40845511eccda8db7f4623c26a1cfd14f0e7a80e29324669e9a5",  # lab HTTP token
})


def is_published(secret: bytes) -> bool:
    """Whether ``secret`` is one of the published values (:data:`PUBLISHED_DIGESTS`)."""
    return hashlib.sha256(secret).hexdigest() in PUBLISHED_DIGESTS


def config_warnings(config: Config) -> list[str]:
    """The warnings for a valid ``config`` (one line each), in file order."""
    warnings = [w for i, key in enumerate(config.tsig_keys)
                for w in _key_warnings(f"tsig_keys[{i}]", key)]
    warnings += [w for i, sender in enumerate(config.senders)
                 for w in _sender_warnings(f"senders[{i}]", sender)]
    if config.http is not None:
        warnings += _http_warnings("http", config.http)
    return warnings


def _key_warnings(path: str, key: TsigKeyConfig) -> list[str]:
    warnings = []
    strong = "hmac-sha256" if key.algorithm in WEAK_ALGORITHMS else key.algorithm
    renew = f"make a new one (tsig-keygen -a {strong} {key.name}) and set it on both sides"
    if key.algorithm in WEAK_ALGORITHMS:
        warnings.append(f"{path}.algorithm: {key.algorithm} is a weak hash; use hmac-sha256: "
                        f"{renew}")
    where = f"{path}.{'secret' if key.secret is not None else 'secret_file'}"
    secret = key.secret_bytes()
    size = hashlib.new(key.algorithm.removeprefix("hmac-")).digest_size
    if is_published(secret):
        warnings.append(f"{where}: this secret is published (a dnsupdate-lab default); {renew}")
    elif len(secret) < size:
        warnings.append(f"{where}: the secret has {len(secret)} bytes, fewer than the "
                        f"{size} of {key.algorithm}'s output; {renew}")
    return warnings


def _sender_warnings(path: str, sender: SenderConfig) -> list[str]:
    if sender.require_tsig:
        return []
    who = sender.account or "an allowed sender"
    return [f"{path}.require_tsig: false, so whoever forges a source address in "
            f"{', '.join(sender.networks)} updates as {who}; give that DHCP server a TSIG key "
            "([[tsig_keys]]) and set require_tsig = true"]


def _http_warnings(path: str, http: HttpConfig) -> list[str]:
    warnings = []
    if http.anonymous and not http.loopback_only and http.tls_cert is None:
        warnings.append(f"{path}.anonymous: the audit log is open to anyone on "
                        f"{', '.join(http.listen)}, in clear text; listen on loopback only, "
                        "or configure tls_cert and tls_key and log-ins (keytab, tokens)")
    for i, token in enumerate(http.tokens):
        if is_published(token.value().encode()):
            field = "token" if token.token is not None else "token_file"
            warnings.append(f"{path}.tokens[{i}].{field}: this token is published (a "
                            "dnsupdate-lab default); make a new one (openssl rand -base64 32)")
    return warnings
