"""``DIR/lab.json``: everything a client of a running lab needs to know about it.

It holds the lab's random secrets (:mod:`lab.lab_secrets`), so it is written readable by
its owner only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab import topology
from lab.configs import env_vars
from lab.lab_secrets import LabSecrets, generate, write_private
from lab.namespace import nsenter_argv

LAB_JSON = "lab.json"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Principal:
    """A Kerberos principal of the lab and the keytab holding its key."""

    principal: str  # e.g. "svc-dnsproxy@EXAMPLE.TEST"
    keytab: str  # absolute path
    aliases: tuple[str, ...] = ()  # further principals in the same keytab


@dataclass(frozen=True, slots=True)
class LabInfo:
    """Description of one lab directory (written by ``up``, read by clients and tests).

    ``principals`` keys: ``dns``, ``ldap``, ``svc`` (the proxy's service account),
    ``dhcp1`` .. ``dhcp3`` and ``http`` (``HTTP/proxy.example.test``). ``secrets``: the
    inbound HMAC keys and the HTTP token of this lab (random, see :mod:`lab.lab_secrets`).
    """

    dir: Path
    realm: str
    domain: str
    base_dn: str
    addresses: dict[str, str]  # ns, kdc, ldap, proxy -> 127.0.1.x
    hostnames: dict[str, str]  # ns, kdc, ldap, proxy -> <role>.example.test
    dns_server: str  # host name of BIND (its principal is DNS/<dns_server>)
    dns_server_ip: str
    zones: tuple[str, ...]
    principals: dict[str, Principal]
    service_account: str  # principal of the proxy's service account
    ldap_url: str
    ldap_host: str  # SASL/GSSAPI target host (ldap/<ldap_host>)
    group_dn: str  # DnsUpdateProxy
    rootdn: str
    rootpw: str
    holder_pid: int
    nsenter: tuple[str, ...]  # prefix: nsenter -t PID -n -m --
    env: dict[str, str]
    memberof: str = "overlay"
    pid_files: dict[str, str] = field(default_factory=dict)
    flavour: str = "mit"  # "mit" (lab.mit) or "samba" (lab.samba)
    tls_ca: str | None = None  # CA of the directory's TLS certificate (Samba: LDAPS/StartTLS)
    secrets: LabSecrets = field(default_factory=generate)  # inbound keys, HTTP token

    # ----- convenience -----
    @property
    def svc(self) -> Principal:
        """The proxy's service account ``svc-dnsproxy@EXAMPLE.TEST``."""
        return self.principals["svc"]

    @property
    def http(self) -> Principal:
        """``HTTP/proxy.example.test@EXAMPLE.TEST`` (the proxy's HTTP acceptor)."""
        return self.principals["http"]

    def keytab(self, key: str) -> Path:
        """Keytab path of principal ``key`` (``svc``, ``dhcp1``, ...)."""
        return Path(self.principals[key].keytab)

    @property
    def proxy_ip(self) -> str:
        """Where the proxy listens inside the lab (127.0.1.10)."""
        return self.addresses["proxy"]

    @property
    def krb5_config(self) -> Path:
        """The lab's krb5.conf."""
        return Path(self.env["KRB5_CONFIG"])

    # ----- (de)serialisation -----
    def to_json(self) -> dict[str, Any]:
        """JSON-compatible dict (the content of lab.json)."""
        data = asdict(self)
        data["dir"] = str(self.dir)
        data["zones"] = list(self.zones)
        data["nsenter"] = list(self.nsenter)
        data["nsenter_command"] = " ".join(self.nsenter)
        data["secrets"] = self.secrets.to_json()
        data["principals"] = {
            k: {"principal": p.principal, "keytab": p.keytab, "aliases": list(p.aliases)}
            for k, p in self.principals.items()
        }
        data["version"] = FORMAT_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabInfo:
        """Inverse of :meth:`to_json` (unknown keys are ignored)."""
        return cls(
            dir=Path(data["dir"]),
            realm=data["realm"],
            domain=data["domain"],
            base_dn=data["base_dn"],
            addresses=dict(data["addresses"]),
            hostnames=dict(data["hostnames"]),
            dns_server=data["dns_server"],
            dns_server_ip=data["dns_server_ip"],
            zones=tuple(data["zones"]),
            principals={
                k: Principal(p["principal"], p["keytab"], tuple(p.get("aliases", ())))
                for k, p in data["principals"].items()
            },
            service_account=data["service_account"],
            ldap_url=data["ldap_url"],
            ldap_host=data["ldap_host"],
            group_dn=data["group_dn"],
            rootdn=data["rootdn"],
            rootpw=data["rootpw"],
            holder_pid=int(data["holder_pid"]),
            nsenter=tuple(data["nsenter"]),
            env=dict(data["env"]),
            memberof=data.get("memberof", "overlay"),
            pid_files=dict(data.get("pid_files", {})),
            flavour=data.get("flavour", "mit"),
            tls_ca=data.get("tls_ca"),
            secrets=LabSecrets.from_json(data["secrets"]),
        )

    def save(self) -> Path:
        """Write ``DIR/lab.json`` (mode 0600: it holds secrets) and return its path."""
        return write_private(self.dir / LAB_JSON, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, lab_dir: Path | str) -> LabInfo:
        """Read ``DIR/lab.json``."""
        return cls.from_json(json.loads((Path(lab_dir) / LAB_JSON).read_text()))

    @classmethod
    def build(cls, lab_dir: Path, holder_pid: int, memberof: str = "overlay") -> LabInfo:
        """Describe the lab in ``lab_dir`` (absolute), namespace holder ``holder_pid``,
        with new random secrets."""
        realm = topology.REALM
        principals = {
            spec.key: Principal(
                spec.principal,
                str(lab_dir / "keytabs" / spec.keytab),
                tuple(f"{n}@{spec.realm}" for n in spec.names[1:]),
            )
            for spec in topology.PRINCIPALS
        }
        run = lab_dir / "run"
        return cls(
            dir=lab_dir,
            realm=realm,
            domain=topology.DOMAIN,
            base_dn=topology.BASE_DN,
            addresses=dict(topology.ADDRESSES),
            hostnames=dict(topology.HOSTNAMES),
            dns_server=topology.NS_HOST,
            dns_server_ip=topology.NS_IP,
            zones=topology.ZONES,
            principals=principals,
            service_account=principals["svc"].principal,
            ldap_url=topology.LDAP_URL,
            ldap_host=topology.LDAP_HOST,
            group_dn=topology.GROUP_DN,
            rootdn=topology.ROOT_DN,
            rootpw=topology.ROOT_PW,
            holder_pid=holder_pid,
            nsenter=tuple(nsenter_argv(holder_pid)),
            env=env_vars(lab_dir),
            memberof=memberof,
            pid_files={
                name: str(run / f"{name}.pid") for name in ("holder", "krb5kdc", "slapd", "named")
            },
        )
