"""A proxy in front (HAProxy in TCP mode, two independent MariaDB servers behind it):
the client sees one address whose server changes under it when the first one dies.
Writers through ``creator()`` with the ``behind_proxy`` profile go on with nothing lost
or doubled; plain PyMySQL is left with a dead connection."""

from __future__ import annotations

import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi.testing.haproxy import ProxiedPair, proxy_drill


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
    assert drill.check.ok, drill.check
    assert drill.check.stored >= 100 + 4 * 30
    assert drill.every_writer < 10.0
    # Plain PyMySQL: HAProxy ended its session with the dead server; it stays dead.
    for _ in range(2):
        with pytest.raises(pymysql.err.MySQLError), plain.cursor() as cur:
            cur.execute("SELECT 1")
    plain.close()
