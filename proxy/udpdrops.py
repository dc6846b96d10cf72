"""Datagrams the kernel dropped at the proxy's UDP sockets: load the proxy never saw.

When datagrams arrive faster than the proxy reads them, the socket's receive buffer
fills and the kernel drops the next ones before the proxy can count them. Linux counts
them per socket: the ``drops`` column of ``/proc/net/udp`` and ``/proc/net/udp6``, on the
line of the socket's inode. Elsewhere (no such files) the count is 0.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

_TABLES = ("/proc/net/udp", "/proc/net/udp6")
_INODE, _DROPS = 9, -1  # columns of a socket's line


def socket_inode(sock: socket.socket) -> int:
    """The inode that names ``sock`` in /proc/net/udp."""
    return os.fstat(sock.fileno()).st_ino


def kernel_drops(inodes: Iterable[int]) -> int:
    """Datagrams the kernel dropped so far at the sockets with these inodes."""
    wanted = {str(i) for i in inodes}
    total = 0
    for table in _TABLES:
        try:
            with open(table) as lines:
                next(lines, None)  # the header
                for line in lines:
                    fields = line.split()
                    if len(fields) > _INODE and fields[_INODE] in wanted:
                        total += int(fields[_DROPS])
        except OSError:
            continue
    return total
