"""Waiting for cluster peers to listen: /proc/net/tcp parsing, address classification, waiting."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowlib.engine import _peers
from flowlib.engine._peers import (
    _TABLES,
    LocalEndpoint,
    _read_tables,
    listening,
    local_endpoint,
    netlink_listeners,
    parse_listeners,
    wait_for_listeners,
)

linux_only = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp"
)

# Real lines (little-endian host): 127.0.0.1:8080 LISTEN, 0.0.0.0:22 LISTEN, an ESTABLISHED
# connection from 127.0.0.1:8080, and in tcp6 [::]:9000 LISTEN and [::1]:9001 LISTEN.
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 3 1
"""
TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:2328 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000001000000:2329 00000000000000000000000000000000:0000 0A
"""

ip = ipaddress.ip_address


@pytest.mark.skipif(sys.byteorder != "little", reason="sample lines are little-endian")
def test_parse_listeners_keeps_listen_sockets_only() -> None:
    assert parse_listeners(TCP) == {(ip("127.0.0.1"), 8080), (ip("0.0.0.0"), 22)}
    assert parse_listeners(TCP6) == {(ip("::"), 9000), (ip("::1"), 9001)}


def test_listening_matches_the_address_or_a_wildcard_on_the_port() -> None:
    v4 = LocalEndpoint(frozenset({ip("127.0.0.1")}), 8080)
    assert listening(v4, {(ip("127.0.0.1"), 8080)})
    assert listening(v4, {(ip("0.0.0.0"), 8080)})
    assert listening(v4, {(ip("::"), 8080)})
    assert listening(v4, {(ip("::ffff:127.0.0.1"), 8080)})
    assert not listening(v4, {(ip("127.0.0.1"), 8081)})
    assert not listening(v4, {(ip("127.0.0.2"), 8080)})
    v6 = LocalEndpoint(frozenset({ip("::1")}), 8080)
    assert not listening(v6, {(ip("0.0.0.0"), 8080)})
    assert listening(v6, {(ip("::1"), 8080)})


def test_local_endpoint_classifies_addresses() -> None:
    assert local_endpoint("127.0.0.1:2101") == LocalEndpoint(frozenset({ip("127.0.0.1")}), 2101)
    assert local_endpoint("[::1]:2101") == LocalEndpoint(frozenset({ip("::1")}), 2101)
    assert local_endpoint("localhost:5") == LocalEndpoint(
        frozenset({ip("127.0.0.1"), ip("::1")}), 5)
    assert local_endpoint("127.0.0.2:2101") == LocalEndpoint(frozenset({ip("127.0.0.2")}), 2101)
    # A non-loopback IP (even this host's own: it may be forwarded elsewhere), a host name, or
    # no port: left to timely's own retry.
    assert local_endpoint("192.0.2.7:2101") is None  # TEST-NET-1: never assigned to a host
    assert local_endpoint("0.0.0.0:2101") is None
    assert local_endpoint("worker-0.example:2101") is None
    assert local_endpoint("127.0.0.1") is None


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


@linux_only
def test_waits_for_nothing_once_the_peer_listens(listener: socket.socket) -> None:
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    slept: list[float] = []
    assert wait_for_listeners([address], timeout=5.0, sleep=slept.append) == []
    assert slept == []


@linux_only
def test_a_bound_but_not_listening_port_is_waited_for_until_the_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
        now = [0.0]

        def sleep(seconds: float) -> None:  # a fake clock: no real waiting
            now[0] += seconds

        assert wait_for_listeners([address], timeout=1.0, clock=lambda: now[0],
                                  sleep=sleep) == [address]
        assert now[0] >= 1.0


@linux_only
def test_the_wait_ends_when_the_peer_starts_listening() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
        calls: list[float] = []

        def sleep(seconds: float) -> None:  # the peer calls listen() while we wait
            calls.append(seconds)
            if len(calls) == 3:
                s.listen()

        assert wait_for_listeners([address], timeout=60.0, sleep=sleep) == []
        assert len(calls) == 3
        assert calls == sorted(calls)  # backing off


def test_remote_addresses_and_unreadable_tables_are_not_waited_for(tmp_path: Path) -> None:
    def never(_: float) -> None:
        raise AssertionError("should not wait")

    assert wait_for_listeners(["192.0.2.7:2101", "peer.example:1"], timeout=60.0,
                              sleep=never) == []
    missing = [tmp_path / "no-tcp", tmp_path / "no-tcp6"]
    assert wait_for_listeners(["127.0.0.1:1"], timeout=60.0, tables=missing, sleep=never) == []


def test_reads_the_given_tables(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    table.write_text(TCP if sys.byteorder == "little" else TCP.replace("0100007F", "7F000001"))
    assert wait_for_listeners(["127.0.0.1:8080"], timeout=60.0, tables=[table]) == []
    assert wait_for_listeners(["127.0.0.1:8081"], timeout=0.0, tables=[table]) == [
        "127.0.0.1:8081"]


netlink_only = pytest.mark.skipif(
    netlink_listeners() is None, reason="needs netlink socket diagnostics"
)


@netlink_only
def test_netlink_lists_listening_sockets_only(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        found = netlink_listeners()
        assert found is not None
        assert (ip("127.0.0.1"), port) in found
        assert (ip("127.0.0.1"), bound.getsockname()[1]) not in found


@netlink_only
@linux_only
def test_netlink_and_the_proc_tables_show_the_same_listener(listener: socket.socket) -> None:
    entry = (ip("127.0.0.1"), listener.getsockname()[1])
    from_netlink, from_tables = netlink_listeners(), _read_tables(_TABLES)
    assert from_netlink is not None and from_tables is not None
    assert entry in from_netlink and entry in from_tables


@linux_only
def test_without_netlink_the_proc_tables_are_read(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_peers, "_netlink_socket", lambda: None)
    assert netlink_listeners() is None
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    slept: list[float] = []
    assert wait_for_listeners([address], timeout=5.0, sleep=slept.append) == []
    assert slept == []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        late = f"127.0.0.1:{s.getsockname()[1]}"
        assert wait_for_listeners([late], timeout=0.0) == [late]
