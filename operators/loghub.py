"""Parsers for the raw log formats of the LogHub Apache and OpenSSH samples.

Each parser turns one raw line into a frozen record or raises ``ValueError``
naming what is wrong, so a pipeline can route the line to a dead-letter sink.
Messages are stripped of surrounding whitespace, as in LogHub's ``Content``
column, so they can be fed straight to :class:`operators.templates.TemplateMatcher`.
Timestamps in both formats carry no timezone; they are returned as aware
datetimes in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

__all__ = [
    "ApacheLine",
    "HpcLine",
    "OpenSSHLine",
    "ZookeeperLine",
    "parse_apache",
    "parse_hpc",
    "parse_openssh",
    "parse_zookeeper",
]

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EXCERPT = 80

# One C-level regex match per line is about 2.5x faster than splitting and
# validating field by field in Python; the slower step-by-step checks run only
# for lines the regex rejects, to say precisely what is wrong with them.
# re.ASCII: \d must not accept non-ASCII digits that int() would then convert.
_APACHE = re.compile(
    rf"\[((?:{'|'.join(_WEEKDAYS)}) [A-Z][a-z][a-z] \d\d \d\d:\d\d:\d\d \d{{4}})\]"
    r" \[([^\s\]]+)\](\s.*)?",
    re.ASCII | re.DOTALL,
)
# RFC 3164 space-pads single-digit days ("Dec  1"), hence " +" and \d{1,2}.
_SYSLOG = re.compile(
    r"([A-Z][a-z][a-z] +\d{1,2} \d\d:\d\d:\d\d) (\S+) ([^\s\[]+)\[(\d+)\]:(\s.*)?",
    re.ASCII | re.DOTALL,
)
_APACHE_WHAT = "not an Apache error-log line"
_SYSLOG_WHAT = "not an OpenSSH syslog line"


@dataclass(frozen=True, slots=True)
class ApacheLine:
    """One Apache error-log record; `ts` is timezone-aware (UTC)."""

    ts: datetime
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class OpenSSHLine:
    """One sshd syslog record; `host` is the syslog hostname, `process` the tag."""

    ts: datetime
    host: str
    process: str
    pid: int
    message: str


def _excerpt(line: str) -> str:
    return repr(line if len(line) <= _EXCERPT else line[:_EXCERPT] + "...")


def _datetime(what: str, year: int, month_name: str, day: str, clock: str, shown: str) -> datetime:
    """UTC datetime from digit strings already checked by a regex."""
    month = _MONTHS.get(month_name)
    if month is None:
        raise ValueError(f"{what}: bad month {month_name!r} in timestamp {shown!r}")
    try:
        return datetime(
            year, month, int(day), int(clock[:2]), int(clock[3:5]), int(clock[6:]), tzinfo=UTC
        )
    except ValueError as exc:  # e.g. Feb 30 or 25:00:00
        raise ValueError(f"{what}: bad timestamp {shown!r}: {exc}") from None


# Stamps have second resolution and come in bursts (1,216 of the 2,000 Apache
# sample lines repeat the previous one), so caching skips most conversions.
@lru_cache(maxsize=1024)
def _apache_time(stamp: str) -> datetime:
    # Fixed width, as checked by _APACHE: "Sun Dec 04 04:47:44 2005".
    return _datetime(_APACHE_WHAT, int(stamp[20:]), stamp[4:7], stamp[8:10], stamp[11:19], stamp)


@lru_cache(maxsize=1024)
def _syslog_time(stamp: str, year: int) -> datetime:
    month, day, clock = stamp.split()
    return _datetime(_SYSLOG_WHAT, year, month, day, clock, stamp)


def parse_apache(line: str) -> ApacheLine:
    """Parse ``[Sun Dec 04 04:47:44 2005] [notice] message`` (Apache 2.0 error log).

    A trailing ``\\r``/``\\n`` is ignored. The log carries no timezone; the
    naive local time is taken to be UTC.

    >>> parse_apache("[Sun Dec 04 04:47:44 2005] [error] mod_jk child init 1 -2")
    ApacheLine(ts=datetime.datetime(2005, 12, 4, 4, 47, 44, tzinfo=datetime.timezone.utc), \
level='error', message='mod_jk child init 1 -2')
    """
    text = line.rstrip("\r\n")
    found = _APACHE.fullmatch(text)
    if found is None:
        raise _apache_error(text)
    stamp, level, message = found.groups()
    return ApacheLine(_apache_time(stamp), level, message.strip() if message else "")


def _apache_error(text: str) -> ValueError:
    """Explain why `text` is not an Apache error-log line (slow path)."""
    what = _APACHE_WHAT
    close = text.find("]")
    if not text.startswith("[") or close < 0:
        return ValueError(f'{what}: missing "[timestamp]": {_excerpt(text)}')
    if not re.fullmatch(r"\w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4}", text[1:close], re.ASCII):
        return ValueError(
            f"{what}: bad timestamp {text[1:close]!r}, expected like 'Sun Dec 04 04:47:44 2005'"
        )
    if text[1:4] not in _WEEKDAYS:
        return ValueError(f"{what}: bad weekday {text[1:4]!r} in timestamp {text[1:close]!r}")
    if text[5:8] not in _MONTHS:
        return ValueError(f"{what}: bad month {text[5:8]!r} in timestamp {text[1:close]!r}")
    rest = text[close + 1 :]
    level_end = rest.find("]")
    if not rest.startswith(" [") or level_end < 0:
        return ValueError(f'{what}: missing "[level]" after the timestamp: {_excerpt(text)}')
    level = rest[2:level_end]
    if level.split() != [level]:
        return ValueError(f"{what}: bad level {level!r}: {_excerpt(text)}")
    return ValueError(f'{what}: no space after "[{level}]": {_excerpt(text)}')


def parse_openssh(line: str, year: int = 2024) -> OpenSSHLine:
    """Parse ``Dec 10 06:55:46 LabSZ sshd[24200]: message`` (BSD syslog, RFC 3164).

    A trailing ``\\r``/``\\n`` is ignored. Syslog stamps have neither year nor
    timezone: the time is taken as UTC in `year`. LogHub does not record the
    year of its OpenSSH sample (its README only says the full log spans 28+
    days), so the default 2024 is a placeholder, picked as a leap year so that
    ``Feb 29`` lines parse. Callers who know the year should pass it, and handle
    a December-to-January rollover themselves.

    >>> parse_openssh("Dec 10 07:13:56 LabSZ sshd[24227]: Invalid user test9 from 52.80.34.196")
    OpenSSHLine(ts=datetime.datetime(2024, 12, 10, 7, 13, 56, tzinfo=datetime.timezone.utc), \
host='LabSZ', process='sshd', pid=24227, message='Invalid user test9 from 52.80.34.196')
    """
    if not 1 <= year <= 9999:
        raise ValueError(f"year {year} is outside datetime's range 1..9999")
    text = line.rstrip("\r\n")
    found = _SYSLOG.fullmatch(text)
    if found is None:
        raise _openssh_error(text)
    stamp, host, process, pid, message = found.groups()
    ts = _syslog_time(stamp, year)
    return OpenSSHLine(ts, host, process, int(pid), message.strip() if message else "")


def _openssh_error(text: str) -> ValueError:
    """Explain why `text` is not an sshd syslog line (slow path)."""
    what = _SYSLOG_WHAT
    stamp = re.match(r"(\S+) +(\S+) (\S+)", text)
    if stamp is None:
        return ValueError(
            f'{what}: expected "Mon DD HH:MM:SS host process[pid]: message": {_excerpt(text)}'
        )
    if stamp[1] not in _MONTHS:
        return ValueError(f"{what}: bad month {stamp[1]!r} in timestamp {stamp[0]!r}")
    if not re.fullmatch(r"\S+ +\d{1,2} \d\d:\d\d:\d\d", stamp[0], re.ASCII):
        return ValueError(f"{what}: bad timestamp {stamp[0]!r}, expected like 'Dec 10 06:55:46'")
    fields = text[stamp.end() :].split(None, 2)
    if len(fields) < 2 or not text[stamp.end() : stamp.end() + 1].isspace():
        return ValueError(f'{what}: missing "host process[pid]:" after the timestamp')
    if not re.fullmatch(r"[^\s\[]+\[\d+\]:", fields[1], re.ASCII):
        return ValueError(f'{what}: missing "process[pid]:" tag, got {fields[1]!r}')
    return ValueError(
        f'{what}: expected single spaces in "Mon DD HH:MM:SS host process[pid]: message": '
        f"{_excerpt(text)}"
    )


@dataclass(frozen=True, slots=True)
class ZookeeperLine:
    """One ZooKeeper log4j record; `ts` is timezone-aware (UTC), with milliseconds."""

    ts: datetime
    level: str
    thread: str
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class HpcLine:
    """One HPC (LANL) record: `ts` from the epoch-seconds field, `component` like ``unix.hw``."""

    ts: datetime
    log_id: int
    node: str
    component: str
    state: str
    flag: int
    message: str


# The thread name may itself hold brackets ("QuorumPeer[myid=1]/0:..."), so the thread runs
# up to the last "@<line>] - " rather than to the first "]".
_ZOOKEEPER = re.compile(
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3}) - (\w+) +\[(.*)@(\d+)\] - (.*)",
    re.ASCII | re.DOTALL,
)
_HPC = re.compile(r"(\d+) (\S+) (\S+) (\S+) (\d+) (-?\d+) (.*)", re.ASCII | re.DOTALL)


def parse_zookeeper(line: str) -> ZookeeperLine:
    """Parse ``2015-07-29 17:41:44,747 - INFO  [thread@line] - message`` (naive time as UTC).

    >>> parse_zookeeper("2015-07-29 19:04:29,071 - WARN  [SendWorker:1@688] - Send worker leaving")
    ZookeeperLine(ts=datetime.datetime(2015, 7, 29, 19, 4, 29, 71000, \
tzinfo=datetime.timezone.utc), level='WARN', thread='SendWorker:1', line=688, \
message='Send worker leaving')
    """
    text = line.rstrip("\r\n")
    found = _ZOOKEEPER.fullmatch(text)
    if found is None:
        raise ValueError(f"not a ZooKeeper log4j line: {_excerpt(text)}")
    y, mo, d, h, mi, s, ms, level, thread, src_line, message = found.groups()
    try:
        ts = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(ms) * 1000, tzinfo=UTC)
    except ValueError as exc:
        msg = f"not a ZooKeeper log4j line: bad timestamp ({exc}): {_excerpt(text)}"
        raise ValueError(msg) from None
    return ZookeeperLine(ts, level, thread, int(src_line), message.strip())


def parse_hpc(line: str) -> HpcLine:
    """Parse ``LogId node component state epoch-seconds flag message`` (LANL HPC logs).

    >>> parse_hpc("134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component down")
    HpcLine(ts=datetime.datetime(2004, 2, 26, 14, 12, 22, tzinfo=datetime.timezone.utc), \
log_id=134681, node='node-246', component='unix.hw', state='state_change.unavailable', flag=1, \
message='Component down')
    """
    text = line.rstrip("\r\n")
    found = _HPC.fullmatch(text)
    if found is None:
        raise ValueError(f"not an HPC log line (7 fields): {_excerpt(text)}")
    log_id, node, component, state, epoch, flag, message = found.groups()
    ts = datetime.fromtimestamp(int(epoch), UTC)
    return HpcLine(ts, int(log_id), node, component, state, int(flag), message.strip())
