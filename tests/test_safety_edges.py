"""Safety at the edges, judged by a real MariaDB: statements that commit where a plain
write would not, and outcomes the caller must acknowledge. Each claim the proxy makes
("rolled back", "outcome unknown") is checked against what the server really kept."""

from __future__ import annotations

from typing import Any

import aiomysql
import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import OutcomeUnknownError, TransactionLostError, aio
from resilient_dbapi.testing import FaultProxy

from .conftest import kill, rows
from .test_aio import aio_kwargs, run

pytestmark = pytest.mark.server


def _via(proxy: FaultProxy, db: dict[str, Any]) -> dict[str, Any]:
    return {**db, "host": "127.0.0.1", "port": proxy.port}


def _count(server: Any, db: dict[str, Any], uid: str) -> int:
    return int(rows(server, db, "SELECT COUNT(*) FROM t WHERE uid = %s", (uid,))[0][0])


# -- statements that commit: lost after send, the outcome is unknown, never "rolled back"


@pytest.mark.parametrize(
    "text",
    ["COMMIT AND CHAIN", "COMMIT WORK AND NO CHAIN", "COMMIT RELEASE"],
)
def test_a_commit_form_lost_after_send_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy, text: str
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('chained')")
    proxy.cut_after(text.encode())
    with pytest.raises(OutcomeUnknownError):
        cur.execute(text)
    assert _count(server, db, "chained") == 1  # committed: "rolled back" would be a lie
    conn.rollback()
    conn.close()


@pytest.mark.parametrize(
    "text",
    [
        "SET autocommit = 'ON'",
        "SET autocommit = DEFAULT",
        "SET autocommit = 2-1",
        "SET sql_mode = '', autocommit = 'on'",
    ],
)
def test_autocommit_turned_on_in_any_spelling_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy, text: str
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))  # autocommit off
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('spelt')")
    proxy.cut_after(b"autocommit")
    with pytest.raises(OutcomeUnknownError):
        cur.execute(text)
    assert _count(server, db, "spelt") == 1
    conn.rollback()
    conn.close()


def test_ddl_alone_in_its_transaction_lost_after_send_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """With autocommit off and nothing written yet, DDL is durable once run."""
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    proxy.cut_after(b"CREATE TABLE")
    with pytest.raises(OutcomeUnknownError):
        conn.cursor().execute("CREATE TABLE made_anyway (a INT)")
    tables = rows(server, db, "SHOW TABLES LIKE 'made_anyway'")
    assert tables == [("made_anyway",)]  # it exists: TransactionLostError would lie
    conn.close()


def test_a_write_lost_inside_a_transaction_is_still_rolled_back(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    """The counterpart: plain DML that cannot commit keeps the stronger, proven claim."""
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('first')")
    proxy.cut_after(b"second")
    with pytest.raises(TransactionLostError):
        cur.execute("INSERT INTO t (uid) VALUES ('second')")
    assert rows(server, db, "SELECT COUNT(*) FROM t") == [(0,)]
    conn.rollback()
    conn.close()


# -- XA: a prepared branch outlives its session


@pytest.mark.parametrize("autocommit", [True, False])
def test_xa_commit_one_phase_lost_after_send_is_outcome_unknown(
    server: Any, db: dict[str, Any], proxy: FaultProxy, autocommit: bool
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db), autocommit=autocommit)
    cur = conn.cursor()
    cur.execute("XA START 'one'")
    cur.execute("INSERT INTO t (uid) VALUES ('xa-one')")
    cur.execute("XA END 'one'")
    proxy.cut_after(b"ONE PHASE")
    with pytest.raises(OutcomeUnknownError):
        cur.execute("XA COMMIT 'one' ONE PHASE")
    assert _count(server, db, "xa-one") == 1
    conn.rollback()
    conn.close()


def _recovered(server: Any, db: dict[str, Any]) -> list[str]:
    return sorted(str(r[3], "utf-8") for r in rows(server, db, "XA RECOVER"))


def test_a_prepared_xa_branch_lost_with_its_session_is_outcome_unknown(
    server: Any, db: dict[str, Any]
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=True)
    cur = conn.cursor()
    cur.execute("XA START 'kept'")
    cur.execute("INSERT INTO t (uid) VALUES ('xa-kept')")
    cur.execute("XA END 'kept'")
    cur.execute("XA PREPARE 'kept'")
    kill(server, conn.thread_id())
    try:
        with pytest.raises(OutcomeUnknownError):  # never "rolled back": it is still there
            cur.execute("XA COMMIT 'kept'")
        assert "kept" in _recovered(server, db)
        with pytest.raises(OutcomeUnknownError):  # until acknowledged
            cur.execute("SELECT 1")
        conn.rollback()
        cur.execute("SELECT 1")
    finally:
        rows(server, db, "XA COMMIT 'kept'")  # what the coordinator does next
    assert _count(server, db, "xa-kept") == 1
    conn.close()


# -- an unknown outcome is acknowledged before anything goes on


def test_a_commit_of_unknown_outcome_is_never_reported_done_when_tried_again(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    conn = resilient_dbapi.connect(pymysql.connect, **_via(proxy, db))
    cur = conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES ('pending')")
    proxy.close_all()  # the COMMIT goes nowhere, but the driver cannot prove it
    with pytest.raises(OutcomeUnknownError):
        conn.commit()
    with pytest.raises(OutcomeUnknownError):
        conn.commit()  # reporting success here would claim a commit of nothing
    with pytest.raises(OutcomeUnknownError):
        cur.execute("SELECT 1")
    assert _count(server, db, "pending") == 0
    conn.rollback()  # acknowledged: the connection goes on
    cur.execute("INSERT INTO t (uid) VALUES ('after')")
    conn.commit()
    assert _count(server, db, "after") == 1
    conn.close()


def test_a_commit_of_unknown_outcome_is_never_reported_done_when_tried_again_aio(
    server: Any, db: dict[str, Any], proxy: FaultProxy
) -> None:
    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, **aio_kwargs(_via(proxy, db)))
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (uid) VALUES ('pending')")
        proxy.close_all()
        with pytest.raises(OutcomeUnknownError):
            await conn.commit()
        with pytest.raises(OutcomeUnknownError):
            await conn.commit()
        assert _count(server, db, "pending") == 0
        await conn.rollback()
        await cur.execute("INSERT INTO t (uid) VALUES ('after')")
        await conn.commit()
        assert _count(server, db, "after") == 1
        conn.close()

    run(main())
