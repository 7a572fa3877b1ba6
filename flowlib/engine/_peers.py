"""Waiting for the lower-index processes of a cluster to listen, before timely connects to them.

In a timely cluster, process ``i`` listens on its own address and connects to every process
``j < i``. A refused connection is retried after a fixed one-second sleep, so a process that
reaches the connection step a few milliseconds before its peer has bound its port loses a whole
second (each ``flowlib run -p 2`` did). The peer's LISTEN socket shows in ``/proc/net/tcp``
(``tcp6``) the moment it is bound; polling that table costs microseconds and, unlike a probing
connection, consumes none of the peer's ``accept`` calls (timely would read a probe as a
malformed handshake and fail).

Only loopback addresses (a literal one, or ``localhost``) are watched: the table shows the
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
from typing import Final

__all__ = [
    "LocalEndpoint", "listening", "local_endpoint", "parse_listeners", "wait_for_listeners",
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
    tables: Sequence[Path] = _TABLES,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Wait until each address of this machine among ``addresses`` has a listening socket, for
    at most ``timeout`` seconds; return the local ones still not listening (empty: all are).

    Addresses of other machines are not waited for, nor is anything when the tables cannot be
    read (then the caller's own retry applies, as without this wait).
    """
    pending = [(a, e) for a in addresses if (e := local_endpoint(a)) is not None]
    start = clock()
    deadline = start + timeout
    while pending:
        listeners = _read_tables(tables)
        if listeners is None:
            return []
        pending = [(a, e) for a, e in pending if not listening(e, listeners)]
        now = clock()
        if not pending or now >= deadline:
            break
        # Peers started together bind within tens of milliseconds: look often then (a read of
        # the tables costs microseconds, and every millisecond of lag delays the whole run),
        # rarely once a peer is clearly late (another machine still starting).
        sleep(0.002 if now - start < 1.0 else 0.02)
    return [a for a, _ in pending]
