"""A proxy in front (HAProxy in TCP mode, two independent MariaDB servers behind it):
the client sees one address whose server changes under it when the first one dies.
Writers through ``creator()`` with the ``behind_proxy`` profile go on with nothing lost
or doubled; plain PyMySQL is left with a dead connection."""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
from typing import Any

import pymysql
import pymysql.cursors
import pytest

import resilient_dbapi
from resilient_dbapi.testing import haproxy
from resilient_dbapi.testing.haproxy import ProxiedPair, proxy_drill
from resilient_dbapi.testing.servers import free_port


@pytest.fixture
def proxied(proxied_pair: ProxiedPair) -> ProxiedPair:
    return proxied_pair  # the plugin's


def test_writers_behind_a_proxy_follow_it_to_the_backup_server(proxied: ProxiedPair) -> None:
    plain = proxied.connect(autocommit=True)
    make = resilient_dbapi.creator(
        pymysql.connect,
        host="127.0.0.1",
        port=proxied.port,
        policies="behind_proxy",
        **proxied.app_kwargs(autocommit=True, read_timeout=5),
    )
    drill = proxy_drill(proxied, make, writers=4, before=100, after=30)
    assert drill.check.ok, drill  # its trail: what each wrong id went through
    assert drill.check.stored >= 100 + 4 * 30
    assert drill.every_writer < 10.0
    # Plain PyMySQL: HAProxy ended its session with the dead server; it stays dead.
    for _ in range(2):
        with pytest.raises(pymysql.err.MySQLError), plain.cursor() as cur:
            cur.execute("SELECT 1")
    plain.close()


class _TwiceCursor(pymysql.cursors.Cursor):
    """A client that writes everything twice."""

    def execute(self, query: Any, args: Any = None) -> int:
        super().execute(query, args)
        return super().execute(query, args)


def test_the_drill_shows_what_each_doubled_write_went_through(proxied: ProxiedPair) -> None:
    """The drill's own check: a client that sends each INSERT twice is caught, and its
    trail names, for each doubled id, what the client heard and where the copies are."""
    make = functools.partial(
        resilient_dbapi.connect,
        pymysql.connect,
        host="127.0.0.1",
        port=proxied.port,
        policies="behind_proxy",
        cursorclass=_TwiceCursor,
        **proxied.app_kwargs(autocommit=True, read_timeout=5),
    )
    drill = proxy_drill(proxied, make, writers=2, before=10, after=5)
    assert not drill.check.ok
    assert drill.check.duplicates and set(drill.trail) == set(drill.check.duplicates)
    for uid, trail in drill.trail.items():
        assert "acknowledged" in trail or any(t.startswith("raised") for t in trail), trail
        copies = [int(t.split()[-1].rstrip("x")) for t in trail if t.startswith("server ")]
        assert sum(copies) == drill.check.duplicates[uid] == 2, trail


def test_a_proxy_never_shares_its_port_with_another(
    proxied: ProxiedPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another proxy listening on the port chosen (SO_REUSEPORT, as HAProxy binds by
    default) would share the connections of both: the rig's HAProxy refuses to bind it
    and takes another port."""
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1], free_port()])
    monkeypatch.setattr(haproxy, "free_port", lambda: next(ports))
    other = ProxiedPair()
    other.servers = proxied.servers  # a second proxy before the same two servers
    try:
        other._start_haproxy()
        assert other.port != taken.getsockname()[1]
        with contextlib.closing(other.connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchall() == ((1,),)
        assert "cannot bind" in (other.basedir / "haproxy.log").read_text()
    finally:
        taken.close()
        if other.process is not None:
            other.process.kill()
            other.process.wait(10)
        shutil.rmtree(other.basedir, ignore_errors=True)
