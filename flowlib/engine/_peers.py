"""Waiting for the lower-index processes of a cluster to listen, before timely connects to them.

In a timely cluster, process ``i`` listens on its own address and connects to every process
``j < i``. A refused connection is retried after a fixed one-second sleep, so a process that
reaches the connection step a few milliseconds before its peer has bound its port loses a whole
second (each ``flowlib run -p 2`` did). The peer's LISTEN socket is visible to the kernel's
socket-diagnostics interface (netlink ``SOCK_DIAG``, what ``ss -l`` asks) the moment it listens.
Asking it, unlike a probing connection, consumes none of the peer's ``accept`` calls (timely
would read a probe as a malformed handshake and fail), and a query for LISTEN sockets only walks
the kernel's table of listening sockets: tens of microseconds. Where netlink is unavailable, the
same sockets are read from ``/proc/net/tcp`` (``tcp6``), which the kernel prints by walking its
whole table of connections: about 4 ms per file on a machine with a large hash table.

Only loopback addresses (a literal one, or ``localhost``) are watched: both sources show the
sockets of this process's own network namespace, which is where a loopback connection goes. A
host's own non-loopback IP may be forwarded elsewhere (a container's published port), so it and
any other address are left to timely's own retry, as before.
"""

from __future__ import annotations

import ipaddress
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import socket

__all__ = [
    "LocalEndpoint", "listening", "local_endpoint", "netlink_listeners", "parse_listeners",
    "wait_for_listeners",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_TABLES: Final = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_LISTEN: Final = "0A"  # TCP_LISTEN in the kernel's st column
_V4_ANY: Final = ipaddress.IPv4Address("0.0.0.0")
_V6_ANY: Final = ipaddress.IPv6Address("::")


@dataclass(frozen=True, slots=True)
class LocalEndpoint:
    """A ``host:port`` of this machine: any of ``ips`` listening on ``port`` serves it."""

    ips: frozenset[IPAddress]
    port: int


def _split(address: str) -> tuple[str, int] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def local_endpoint(address: str) -> LocalEndpoint | None:
    """The endpoint of ``address`` (``host:port``, ``[v6]:port``) when it is a loopback one,
    else ``None`` (a host name or another IP: it cannot be watched reliably from here)."""
    parts = _split(address)
    if parts is None:
        return None
    host, port = parts
    if host.lower() == "localhost":
        return LocalEndpoint(frozenset({ipaddress.ip_address("127.0.0.1"),
                                        ipaddress.ip_address("::1")}), port)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return LocalEndpoint(frozenset({ip}), port) if ip.is_loopback else None


def _decode_ip(hex_ip: str) -> IPAddress:
    # The kernel prints each 32-bit word of the address in host byte order.
    words = [int(hex_ip[i : i + 8], 16) for i in range(0, len(hex_ip), 8)]
    raw = b"".join(struct.pack("=I", w) for w in words)
    return ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw)


def parse_listeners(table: str) -> set[tuple[IPAddress, int]]:
    """The ``(ip, port)`` of every LISTEN socket in the text of a ``/proc/net/tcp[6]`` table."""
    found: set[tuple[IPAddress, int]] = set()
    for line in table.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 4 or cols[3] != _LISTEN:
            continue
        hex_ip, _, hex_port = cols[1].partition(":")
        found.add((_decode_ip(hex_ip), int(hex_port, 16)))
    return found


# Netlink socket diagnostics (linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h).
_NETLINK_SOCK_DIAG: Final = 4
_SOCK_DIAG_BY_FAMILY: Final = 20
_NLM_F_REQUEST_DUMP: Final = 0x0001 | 0x0300  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR: Final = 2
_NLMSG_DONE: Final = 3
_NLMSG_HEADER: Final = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
# inet_diag_req_v2: family, protocol, extensions, padding, state mask, then a zeroed socket id
# (no port filter) of 48 bytes.
_DIAG_REQUEST: Final = struct.Struct("=BBBBI48x")
_TCP_LISTEN_MASK: Final = 1 << 10  # TCP_LISTEN
_TCP_PROTOCOL: Final = 6  # IPPROTO_TCP
_AF_INET: Final = 2
_AF_INET6: Final = 10
# inet_diag_msg: family, state, timer, retransmits, then the socket id (big-endian source port,
# destination port, source address in 16 bytes, of which an IPv4 address takes the first 4).
_DIAG_PORT_OFFSET: Final = 4
_DIAG_ADDRESS_OFFSET: Final = 8


def _dump_listeners(sock: socket.socket, family: int) -> set[tuple[IPAddress, int]]:
    request = _DIAG_REQUEST.pack(family, _TCP_PROTOCOL, 0, 0, _TCP_LISTEN_MASK)
    sock.send(_NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY,
                                 _NLM_F_REQUEST_DUMP, 1, 0) + request)
    found: set[tuple[IPAddress, int]] = set()
    size = 4 if family == _AF_INET else 16
    while True:
        data = sock.recv(1 << 16)
        if not data:
            raise OSError("netlink socket closed")
        offset = 0
        while offset + _NLMSG_HEADER.size <= len(data):
            length, kind, _, _, _ = _NLMSG_HEADER.unpack_from(data, offset)
            if kind == _NLMSG_DONE:
                return found
            body = offset + _NLMSG_HEADER.size
            if kind == _NLMSG_ERROR:
                (errno,) = struct.unpack_from("=i", data, body)
                raise OSError(-errno, "netlink socket diagnostics refused the request")
            if kind == _SOCK_DIAG_BY_FAMILY:
                (port,) = struct.unpack_from("!H", data, body + _DIAG_PORT_OFFSET)
                raw = data[body + _DIAG_ADDRESS_OFFSET : body + _DIAG_ADDRESS_OFFSET + size]
                found.add((ipaddress.ip_address(raw), port))
            if length < _NLMSG_HEADER.size:
                raise OSError("malformed netlink message")
            offset += (length + 3) & ~3  # messages are 4-byte aligned


def _netlink_socket() -> socket.socket | None:
    """A ``NETLINK_SOCK_DIAG`` socket, or ``None`` where there is none (not Linux, a sandbox
    without it)."""
    import socket  # here: only a process waiting for its peers needs it

    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        return None
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    except OSError:
        return None
    sock.settimeout(1.0)  # the kernel answers at once; never hang on one that does not
    return sock


def netlink_listeners(sock: socket.socket | None = None) -> set[tuple[IPAddress, int]] | None:
    """The ``(ip, port)`` of every TCP LISTEN socket (IPv4 and IPv6) of this network namespace,
    as netlink socket diagnostics tell them; ``None`` where they cannot be asked.

    ``sock`` is a socket from :func:`_netlink_socket` to reuse across calls (one is opened and
    closed here otherwise); after ``None`` it may hold a partial answer: close it.
    """
    own = sock is None
    if sock is None:
        sock = _netlink_socket()
        if sock is None:
            return None
    try:
        return _dump_listeners(sock, _AF_INET) | _dump_listeners(sock, _AF_INET6)
    except (OSError, struct.error, ValueError):  # refused, or not laid out as expected
        return None
    finally:
        if own:
            sock.close()


class _SystemListeners:
    """The LISTEN sockets of this network namespace, asked of netlink while it answers, else
    read from ``/proc/net/tcp[6]``."""

    def __init__(self) -> None:
        self._sock = _netlink_socket()

    def __call__(self) -> set[tuple[IPAddress, int]] | None:
        if self._sock is not None:
            found = netlink_listeners(self._sock)
            if found is not None:
                return found
            self.close()
        return _read_tables(_TABLES)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _read_tables(tables: Iterable[Path]) -> set[tuple[IPAddress, int]] | None:
    found: set[tuple[IPAddress, int]] = set()
    readable = False
    for path in tables:
        try:
            text = path.read_text()
        except OSError:  # no IPv6, or not Linux
            continue
        readable = True
        found |= parse_listeners(text)
    return found if readable else None


def listening(endpoint: LocalEndpoint, listeners: set[tuple[IPAddress, int]]) -> bool:
    """Whether one of ``listeners`` accepts connections to ``endpoint``."""
    for ip, port in listeners:
        if port != endpoint.port:
            continue
        if ip in endpoint.ips or ip == _V6_ANY:  # "::" also takes IPv4 unless V6ONLY
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped in endpoint.ips:
            return True
        if ip == _V4_ANY and any(t.version == 4 for t in endpoint.ips):
            return True
    return False


def wait_for_listeners(
    addresses: Sequence[str],
    *,
    timeout: float,
    tables: Sequence[Path] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Wait until each address of this machine among ``addresses`` has a listening socket, for
    at most ``timeout`` seconds; return the local ones still not listening (empty: all are).

    The listening sockets are asked of netlink, else read from ``/proc/net/tcp[6]``; ``tables``
    replaces both with files in that format. Addresses of other machines are not waited for,
    nor is anything when neither source can be read (then the caller's own retry applies, as
    without this wait).
    """
    pending = [(a, e) for a in addresses if (e := local_endpoint(a)) is not None]
    if not pending:
        return []
    system = _SystemListeners() if tables is None else None
    start = clock()
    deadline = start + timeout
    try:
        while pending:
            listeners = system() if system is not None else _read_tables(tables or ())
            if listeners is None:
                return []
            pending = [(a, e) for a, e in pending if not listening(e, listeners)]
            now = clock()
            if not pending or now >= deadline:
                break
            # Peers started together bind within tens of milliseconds: look often then (every
            # millisecond of lag delays the whole run), rarely once a peer is clearly late
            # (another machine still starting).
            sleep(0.002 if now - start < 1.0 else 0.02)
    finally:
        if system is not None:
            system.close()
    return [a for a, _ in pending]
