"""The lab: MIT Kerberos KDC + BIND 9 (GSS-TSIG) + OpenLDAP (AD-lite) in a private namespace.

Entry points: :class:`lab.mit.MitLab` (orchestration), :class:`lab.info.LabInfo`
(``DIR/lab.json``), :func:`lab.namespace.nsenter_self` (join the lab's network
namespace from this process), and the ``dnsupdate-lab`` console script (:mod:`lab.cli`).
"""

from lab.info import LabInfo, Principal
from lab.mit import LabError, MitLab
from lab.namespace import leave_netns, nsenter_self

__all__ = ["LabError", "LabInfo", "MitLab", "Principal", "leave_netns", "nsenter_self"]
