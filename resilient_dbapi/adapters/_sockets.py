"""What the adapters do to a driver's socket: bound how long a silent peer is waited
for, and shut the socket down under a thread blocked on it.

Both work on the driver's socket object when the adapter has it, else on a duplicate of
the descriptor: socket options and a shutdown belong to the socket, not to the
descriptor, and the driver's own socket object is never closed or changed otherwise.
"""

from __future__ import annotations

import contextlib
import os
import socket

__all__ = ["identity", "keepalive_settings", "set_dead_peer_timeout", "shut_down"]

_KEEPCNT = 5
"""Keepalive probes before giving up, where the system has no ``TCP_USER_TIMEOUT``."""
_MAX_KEEP = 32767  # Linux's ceiling for TCP_KEEPIDLE and TCP_KEEPINTVL (seconds)
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def keepalive_settings(seconds: float) -> tuple[int, int, int, int]:
    """``(idle, interval, count, user_timeout_ms)`` so that a silent peer is given up
    after about ``seconds``: idle + count x interval = ``seconds`` (10 s: 5 + 5 x 1)."""
    interval = max(1, min(_MAX_KEEP, int(seconds // 10)))
    idle = max(1, min(_MAX_KEEP, int(seconds) - _KEEPCNT * interval))
    return idle, interval, _KEEPCNT, int(seconds * 1000)


def set_dead_peer_timeout(target: int | socket.socket, seconds: float) -> None:
    """Make the kernel fail the TCP connection on ``target`` (a file descriptor, or the
    driver's own socket object) with ETIMEDOUT, which the driver reports as a lost
    connection, once the peer has been silent for about ``seconds``: sent data
    unacknowledged that long (``TCP_USER_TIMEOUT``), or keepalive probes unanswered
    while a reply is awaited. A live peer's kernel answers both whatever its server is
    doing. Options the system lacks or refuses are skipped (the next statement finds a
    socket already broken); a socket that is not TCP (a unix socket) is left alone."""
    if isinstance(target, int):
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(target)) as sock:
            _set_options(sock, seconds)
    else:
        # The driver's socket object itself: a duplicate costs five more system calls,
        # paid on every reconnect.
        with contextlib.suppress(OSError):
            _set_options(target, seconds)


def _set_options(sock: socket.socket, seconds: float) -> None:
    if sock.family not in _TCP_FAMILIES:
        return
    idle, interval, count, user_timeout = keepalive_settings(seconds)
    tcp = socket.IPPROTO_TCP
    # Named by getattr: each system has its own subset (macOS lacks TCP_USER_TIMEOUT).
    options = (
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (tcp, getattr(socket, "TCP_KEEPIDLE", None), idle),
        (tcp, getattr(socket, "TCP_KEEPINTVL", None), interval),
        (tcp, getattr(socket, "TCP_KEEPCNT", None), count),
        (tcp, getattr(socket, "TCP_USER_TIMEOUT", None), user_timeout),
    )
    for level, option, value in options:
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(level, option, value)


def identity(fd: int) -> int:
    """What tells the socket on ``fd`` from any later file given the same number."""
    return os.fstat(fd).st_ino


def shut_down(fd: int, known: int | None = None) -> None:
    """Shut the socket on ``fd`` down both ways without closing it (closing a descriptor
    another thread is blocked on could hand its number to a new file): the blocked read
    or write returns at once. With ``known`` (its :func:`identity` when it was looked
    up), a number that has meanwhile been closed and given to another file is left
    alone. Never raises."""
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        # The duplicate holds the file it was made from: checked, then shut, race-free.
        if known is None or identity(sock.fileno()) == known:
            sock.shutdown(socket.SHUT_RDWR)
