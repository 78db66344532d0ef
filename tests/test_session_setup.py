"""What a new session costs and means, against a real MariaDB: a reconnect makes as many
round trips as the driver's own connect (the autocommit mode is set in the statement
that turns session tracking on), and the session ends up with the mode asked for."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomysql
import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import aio
from resilient_dbapi.adapters.pymysql import PyMySQLAdapter

from .conftest import kill
from .test_aio import aio_kwargs

pytestmark = pytest.mark.server
MODES = [False, True, None]
QUESTIONS = "SHOW SESSION STATUS LIKE 'Questions'"


def _questions(conn: Any) -> int:
    """Statements the server ran for this session so far (this one included)."""
    cur = conn.cursor()
    cur.execute(QUESTIONS)
    value = int(cur.fetchone()[1])
    cur.close()
    return value


def _autocommit(conn: Any) -> int:
    cur = conn.cursor()
    cur.execute("SELECT @@session.autocommit")
    value = int(cur.fetchone()[0])
    cur.close()
    return value


def _extra(mode: bool | None) -> int:
    """Statements a new session of ours runs beyond the driver's connect: none when the
    driver would change the server's default mode (on) with a round trip of its own."""
    return 0 if mode is False else 1


def _replaced(server: Any, conn: Any) -> None:
    """Kill the session; the next statement gets a new one (a read, sent again)."""
    thread = conn.thread_id()
    kill(server, thread)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    cur.close()
    assert conn.thread_id() != thread


@pytest.mark.parametrize("mode", MODES, ids=["off", "on", "server-default"])
def test_a_new_session_costs_what_a_plain_connect_costs(
    server: Any, db: dict[str, Any], mode: bool | None
) -> None:
    """Before, a new PyMySQL session ran one statement more than the driver's connect
    (the driver's SET AUTOCOMMIT, then the proxy's session tracking), a round trip on
    every reconnect. Judged by the server's own count for the session."""
    plain = pymysql.connect(**db, autocommit=mode)
    conn = resilient_dbapi.connect(pymysql.connect, **db, autocommit=mode)
    try:
        _replaced(server, conn)
        # The replaced session ran SET NAMES, the set-up and the SELECT 1. The driver's
        # own connect runs SET NAMES, and SET AUTOCOMMIT only to change the server's
        # default (on): the set-up turning tracking on is then the one more.
        assert _questions(conn) - 1 == _questions(plain) + _extra(mode)
        assert _autocommit(conn) == _autocommit(plain)
        assert conn.get_autocommit() == plain.get_autocommit()
        assert conn.autocommit_mode == plain.autocommit_mode
    finally:
        plain.close()
        conn.close()


@pytest.mark.parametrize("mode", MODES, ids=["off", "on", "server-default"])
def test_aiomysql_a_new_session_has_the_mode_asked_for(
    server: Any, db: dict[str, Any], mode: bool | None
) -> None:
    async def main() -> None:
        kwargs = aio_kwargs(db, autocommit=mode)
        plain = await aiomysql.connect(**kwargs)
        conn = await aio.connect(aiomysql.connect, **kwargs)
        try:
            thread = conn.thread_id()
            await asyncio.to_thread(kill, server, thread)
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
            assert conn.thread_id() != thread
            values = []
            for c in (plain, conn):
                async with c.cursor() as cur:
                    await cur.execute(QUESTIONS)
                    questions = int((await cur.fetchone())[1])
                    await cur.execute("SELECT @@session.autocommit")
                    values.append((questions, (await cur.fetchone())[0], c.get_autocommit()))
            (plain_q, plain_mode, plain_get), (q, got_mode, got_get) = values
            assert q - 1 == plain_q + _extra(mode)
            assert (got_mode, got_get) == (plain_mode, plain_get)
            assert conn.autocommit_mode == plain.autocommit_mode
        finally:
            plain.close()
            await conn.ensure_closed()

    asyncio.run(main())


def test_a_server_without_tracking_still_gets_the_mode(
    db: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The set-up statement fails on a server that lacks the tracking variable (1193):
    the mode is then set on its own, and no rollback is claimed as proven."""
    monkeypatch.setattr(
        PyMySQLAdapter, "tracking_sql", lambda self, raw: "SET SESSION no_such_variable = 1"
    )
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    try:
        assert _autocommit(conn) == 0
        assert conn.get_autocommit() is False
        assert not conn._engine.tracks
        cur = conn.cursor()
        cur.execute("INSERT INTO t (uid) VALUES ('a')")
        conn.rollback()
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone()[0] == 0  # autocommit really off: the INSERT rolled back
    finally:
        conn.close()


def test_settings_replayed_in_the_set_up_statement(server: Any, db: dict[str, Any]) -> None:
    """Session settings the caller made are made again on a new session: plain ones in
    the statement that sets it up (before, a round trip each), with the values asked."""
    plain = pymysql.connect(**db)
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    try:
        cur = conn.cursor()
        cur.execute("SET time_zone = '+01:00'")
        cur.execute("SET SESSION lock_wait_timeout = 7, @@session.max_sort_length = 2048")
        cur.execute("SET NAMES utf8mb4 COLLATE utf8mb4_bin")  # on its own: names
        cur.execute("SET SESSION innodb_lock_wait_timeout = 9")  # after it: on its own too
        _replaced(server, conn)
        # SET NAMES and the set-up with the first two settings, then the other two.
        assert _questions(conn) - 1 == _questions(plain) + 2
        cur = conn.cursor()
        cur.execute(
            "SELECT @@time_zone, @@lock_wait_timeout, @@max_sort_length, "
            "@@collation_connection, @@innodb_lock_wait_timeout"
        )
        assert cur.fetchone() == ("+01:00", 7, 2048, "utf8mb4_bin", 9)
    finally:
        plain.close()
        conn.close()


def test_a_setting_that_changes_parsing_ends_the_fold(server: Any, db: dict[str, Any]) -> None:
    """The server parses a statement whole: a setting written for PIPES_AS_CONCAT must
    not be sent in one statement with the sql_mode that turns it on (``1 || 0`` is
    10 there, 1 without)."""
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION sql_mode = 'PIPES_AS_CONCAT'")
        cur.execute("SET SESSION lock_wait_timeout = CAST(1 || 0 AS UNSIGNED)")
        cur.execute("SELECT @@lock_wait_timeout")
        assert cur.fetchone() == (10,)
        _replaced(server, conn)
        cur = conn.cursor()
        cur.execute("SELECT @@sql_mode, @@lock_wait_timeout")
        assert cur.fetchone() == ("PIPES_AS_CONCAT", 10)
    finally:
        conn.close()


def test_a_refused_set_up_still_replays_every_setting(
    server: Any, db: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The set-up statement carrying the replayed settings is refused (a server without
    the tracking variable): the set-up, the mode and each setting then run on their own,
    and nothing asked for is lost."""
    monkeypatch.setattr(
        PyMySQLAdapter, "tracking_sql", lambda self, raw: "SET SESSION no_such_variable = 1"
    )
    conn = resilient_dbapi.connect(pymysql.connect, **db)
    try:
        cur = conn.cursor()
        cur.execute("SET time_zone = '+01:00'")
        cur.execute("SET SESSION lock_wait_timeout = 7")
        _replaced(server, conn)
        cur = conn.cursor()
        cur.execute("SELECT @@time_zone, @@lock_wait_timeout, @@autocommit")
        assert cur.fetchone() == ("+01:00", 7, 0)
        assert not conn._engine.tracks
    finally:
        conn.close()
