"""Several hosts: which one to try next, and whether a server's role suits (no I/O).

``Failover`` is the configuration (the hosts, the role wanted, how long a host that
failed is tried last); ``HostMemory`` is what the connections of one ``connect()`` or
``creator()`` remember about the hosts. Neither sleeps, reads the clock or touches a
socket: the connector passes ``now`` in and opens the connections.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Failover", "Host", "HostMemory", "HostProbe", "Role", "Target", "parse_hosts"]


class Role(enum.Enum):
    """What a server serves, as it says when asked."""

    WRITABLE = "writable"
    READ_ONLY = "read-only"
    NOT_READY = "not ready"
    """Nothing, for now: a Galera node outside the primary component, not Synced, or
    drained (``wsrep_reject_queries``). No target checked at connect accepts it
    (``target="any"`` asks nothing; a refusal still moves the connection on)."""


class Target(enum.Enum):
    """The role a host must have to be used."""

    PRIMARY = "primary"
    """Writable: ``@@read_only = 0`` (PostgreSQL: not in recovery, not read-only)."""
    REPLICA = "replica"
    """Read-only."""
    ANY = "any"
    """Either: the role is not checked."""

    def accepts(self, role: Role) -> bool:
        if role is Role.NOT_READY:
            return False
        if self is Target.ANY:
            return True
        return (role is Role.READ_ONLY) is (self is Target.REPLICA)


@dataclass(frozen=True, slots=True)
class Host:
    """One server's address; ``port`` None means the driver's default."""

    host: str
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _port(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"hosts: {where} has port {value!r}; a port is an int from 1 to 65535")
    return value


def _parse_one(item: object) -> Host:
    if isinstance(item, Host):
        return item
    if isinstance(item, tuple | list):
        if len(item) != 2 or not isinstance(item[0], str) or not item[0]:
            raise ValueError(
                f"hosts: {item!r} is not a (host, port) pair; allowed: ('db1', 3306), "
                "'db1:3306' or 'db1'"
            )
        return Host(item[0], _port(item[1], repr(item)))
    if not isinstance(item, str) or not item.strip():
        raise ValueError(
            f"hosts: {item!r} is not a host; allowed: ('db1', 3306), 'db1:3306' or 'db1'"
        )
    text = item.strip()
    if text.startswith("["):  # [IPv6]:port
        end = text.find("]")
        if end < 0:
            raise ValueError(f"hosts: {item!r} opens '[' without closing it")
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"hosts: {item!r}: after ']' only ':port' may follow")
        return Host(text[1:end], _port(rest[1:] or None, repr(item)))
    if text.count(":") == 1:
        host, port = text.split(":")
        if not host:
            raise ValueError(f"hosts: {item!r} has no host name before ':'")
        return Host(host, _port(port, repr(item)))
    return Host(text)  # a name, or a bare IPv6 address


def parse_hosts(hosts: object) -> tuple[Host, ...]:
    """``hosts`` as given to ``connect()``: a list of ``(host, port)`` pairs or
    ``"host[:port]"`` strings, or one comma-separated string."""
    if isinstance(hosts, str):
        items: Iterable[object] = [part for part in hosts.split(",") if part.strip()]
    elif isinstance(hosts, list | tuple):
        items = hosts
    else:
        raise TypeError(
            "hosts must be a list of (host, port) pairs or 'host:port' strings, or a "
            f"comma-separated string, got {type(hosts).__name__}"
        )
    parsed = tuple(_parse_one(item) for item in items)
    if not parsed:
        raise ValueError("hosts: the list is empty; give at least one host")
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"hosts: {', '.join(map(str, parsed))} names a host twice")
    return parsed


@dataclass(frozen=True, slots=True)
class HostProbe:
    """Opt-in background probing of the hosts of one ``connect()``/``creator()`` (with
    ``hosts=``): while any of its connections is open, one thread connects to each host
    every ``interval`` seconds (the driver's connect timeout set to ``timeout``, rounded
    up to whole seconds) and closes again; a host it cannot reach, or whose greeting does
    not come in time (a frozen server), is marked in the creator's health view, so idle
    connections on it leave before sending. Nothing is sent; each probe is one login."""

    interval: float = 1.0
    timeout: float = 2.0

    def __post_init__(self) -> None:
        for name, low, high in (("interval", 0.1, 3600.0), ("timeout", 0.001, 60.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"HostProbe: {name} must be a number of seconds, got {value!r}")
            if not low <= value <= high:
                raise ValueError(
                    f"HostProbe: {name} must be from {low:g} to {high:g} seconds, got {value!r}"
                )


@dataclass(frozen=True, slots=True)
class Failover:
    """Connect to the first suitable host of ``hosts``.

    A host that refused a connection, had the wrong role, or turned read-only under a
    connection is tried after the others for ``quarantine`` seconds. While a round over
    the hosts found one up but with the wrong role (a failover under way: waiting for a
    promotion), the next round comes after at most ``role_poll`` seconds, whatever the
    retry policy's backoff: the servers are up, and a promotion should be seen at once.
    """

    hosts: tuple[Host, ...]
    target: Target = Target.PRIMARY
    quarantine: float = 10.0
    role_poll: float = 0.25

    def between_rounds(self, wait: float, saw_wrong_role: bool) -> float:
        """The wait before the next round, given the retry policy's ``wait``."""
        return min(wait, self.role_poll) if saw_wrong_role else wait

    @classmethod
    def of(cls, hosts: object, target: object = None, quarantine: object = 10.0) -> Failover:
        """Check and build from ``connect()``'s ``hosts=`` and ``target=`` arguments."""
        if target is None:
            target = Target.PRIMARY
        elif isinstance(target, str):
            try:
                target = Target(target)
            except ValueError:
                raise ValueError(
                    f"target must be 'primary', 'replica' or 'any', got {target!r}"
                ) from None
        if not isinstance(target, Target):
            raise TypeError(f"target must be 'primary', 'replica' or 'any', got {target!r}")
        allowed = "a number of seconds >= 0 and <= 86400 (one day)"
        if isinstance(quarantine, bool) or not isinstance(quarantine, int | float):
            raise TypeError(f"quarantine must be {allowed}, got {quarantine!r}")
        # Compared, not math.isfinite(): that overflows on an int too big for a float.
        if not 0 <= quarantine <= 86400:
            shown = (  # a huge int by its size: its digits would fill the message
                f"an int of {quarantine.bit_length()} bits"
                if isinstance(quarantine, int) and quarantine.bit_length() > 64
                else repr(quarantine)
            )
            raise ValueError(f"quarantine must be {allowed}, got {shown}")
        return cls(parse_hosts(hosts), target, float(quarantine))


class HostMemory:
    """Which hosts failed lately, shared by the connections of one ``connect()`` or
    ``creator()``: one connection's discovery spares the others the dead host.

    It also keeps the health view: a host found unreachable or in the wrong role is
    *marked* with when that was found, and each open connection on it that arrived
    before then, at its next checkout, is replaced before anything is sent (see
    :meth:`marked_since`), instead of failing on the host itself (or hanging on a
    blackholed one)."""

    __slots__ = ("_bad_until", "_lock", "_marks", "failover", "generation", "prober")

    def __init__(self, failover: Failover) -> None:
        self.failover = failover
        self._bad_until: dict[Host, float] = {}
        self._lock = threading.Lock()  # connections of one pool connect from many threads
        # Bumped by every mark: a connection compares one number on its hot path.
        self.generation = 0
        self._marks: dict[Host, tuple[float, str]] = {}
        # The creator's background probe when one was asked for (see HostProbe): the
        # connection layer's, kept here because there is one per host memory.
        self.prober: object = None

    def reset_lock(self) -> None:
        """A forked child's fresh lock (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()

    def order(self, current: Host | None, now: float) -> list[Host]:
        """The hosts to try, in order: the current one first, then the others as given;
        those that failed within the quarantine last, the soonest released first."""
        hosts = self.failover.hosts
        if current in hosts:
            i = hosts.index(current)
            hosts = hosts[i:] + hosts[:i]
        with self._lock:
            bad = {h: t for h, t in self._bad_until.items() if t > now}
        good = [h for h in hosts if h not in bad]
        return good + sorted(bad, key=bad.__getitem__)

    def failed(self, host: Host, now: float) -> None:
        """``host`` refused a connection, had the wrong role, or turned read-only."""
        with self._lock:
            self._bad_until[host] = now + self.failover.quarantine

    def succeeded(self, host: Host) -> None:
        with self._lock:
            self._bad_until.pop(host, None)

    def found_bad(self, host: Host, why: str, now: float, since: float) -> None:
        """``host`` is to be tried last from ``now``, and marked (see :meth:`mark`)."""
        self.failed(host, now)
        self.mark(host, why, since)

    def mark(self, host: Host, why: str, since: float) -> None:
        """``host`` was found unreachable or in the wrong role (``why``) by an attempt
        begun at ``since``: the connections that arrived on it before then are to be
        replaced at their next checkout."""
        with self._lock:
            mark = self._marks.get(host)
            if mark is None or since > mark[0]:
                self._marks[host] = (since, why)
            # After the mark is stored: whoever sees the new number finds the mark.
            self.generation += 1

    def marked_since(self, host: Host | None, arrived: float) -> str | None:
        """Why ``host`` was marked by evidence newer than ``arrived`` (when a connection
        arrived on it: it proved the host reachable then), or None."""
        if host is None:
            return None
        mark = self._marks.get(host)
        return mark[1] if mark is not None and mark[0] > arrived else None
