"""Errors of the Kerberos layer, each naming the stage it came from."""

from __future__ import annotations


class KerberosError(Exception):
    """A GSS-API or TKEY failure: ``stage`` says what was being done.

    ``str(err)`` is one sentence, e.g. "acquire credentials for svc@REALM from
    keytab /k: Key table entry not found".
    """

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = detail


def gss_detail(exc: BaseException) -> str:
    """The human part of a gssapi exception (its ``gen_message()`` when it has one)."""
    gen = getattr(exc, "gen_message", None)
    if callable(gen):
        try:
            return " ".join(str(gen()).split())
        except Exception:
            pass
    return " ".join(str(exc).split())
