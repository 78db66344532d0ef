"""Fresh credentials per reconnect (issue 20): ``credentials=`` is asked before every
physical connect, so a password rotated on the server (or a short-lived token) is used
by the reconnect; with the password given at start the same reconnect is refused (1045).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import aiomysql
import MySQLdb
import pymysql
import pytest

import resilient_dbapi
from resilient_dbapi import aio
from resilient_dbapi._connector import ConnectorBase
from resilient_dbapi.events import Event, Reconnected
from resilient_dbapi.testing import free_port

from .conftest import kill
from .drivers import DRIVERS, Driver

MYSQL_DRIVERS = [d for d in DRIVERS if d.server == "server"]


def _code(exc: BaseException) -> Any:
    """A driver error's MySQL code (mysql-connector keeps it in ``errno``)."""
    return getattr(exc, "errno", None) or exc.args[0]


class Login:
    """A user of its own on the shared server, whose password the test rotates."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.user = f"rot_{secrets.token_hex(4)}"
        self.password = f"pw-{secrets.token_hex(6)}"
        self._admin("CREATE USER '{user}'@'%%' IDENTIFIED BY %s", self.password)

    def rotate(self) -> str:
        self.password = f"pw-{secrets.token_hex(6)}"
        self._admin("ALTER USER '{user}'@'%%' IDENTIFIED BY %s", self.password)
        return self.password

    def kwargs(self, **overrides: Any) -> dict[str, Any]:
        given = {"user": self.user, "password": self.password, **overrides}
        return self.server.connect_kwargs(**given)  # type: ignore[no-any-return]

    def drop(self) -> None:
        self._admin("DROP USER IF EXISTS '{user}'@'%%'")

    def _admin(self, sql: str, *args: Any) -> None:
        admin = self.server.admin()
        try:
            with admin.cursor() as cur:
                cur.execute(sql.format(user=self.user), args or None)
        finally:
            admin.close()


@pytest.fixture
def login(server: Any) -> Iterator[Login]:
    made = Login(server)
    yield made
    made.drop()


class Vault:
    """What a secrets store would do: hand out the current password, counting asks."""

    def __init__(self, login: Login) -> None:
        self.login = login
        self.asked: list[dict[str, Any]] = []

    def __call__(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(dict(arguments))
        arguments["password"] = "changing the copy changes nothing"
        return {"password": self.login.password}


def _current_user(conn: Any) -> str:
    cur = conn.cursor()
    cur.execute("SELECT CURRENT_USER()")
    (who,) = cur.fetchone()
    cur.close()
    return str(who)


@pytest.mark.server
@pytest.mark.parametrize("driver", MYSQL_DRIVERS, ids=[d.name for d in MYSQL_DRIVERS])
def test_a_reconnect_logs_in_with_the_rotated_password(
    server: Any, login: Login, driver: Driver
) -> None:
    vault = Vault(login)
    events: list[Event] = []
    kwargs = driver.translate(login.kwargs(password="given-at-start-and-never-valid"))
    conn = resilient_dbapi.connect(
        driver.connect, **kwargs, credentials=vault, listeners=[events.append]
    )
    # Side by side: the password given at start, as every connection has it today.
    static = resilient_dbapi.connect(driver.connect, **driver.translate(login.kwargs()))
    try:
        first, first_static = driver.session_id(conn), driver.session_id(static)
        login.rotate()
        kill(server, first)
        kill(server, first_static)

        assert _current_user(conn).startswith(login.user)  # reconnected, logged in
        assert driver.session_id(conn) != first
        assert [type(e) for e in events if isinstance(e, Reconnected)] == [Reconnected]
        # Asked before each physical connect, with the arguments about to be passed.
        assert len(vault.asked) == 2
        assert {(a["host"], a["port"], a["user"]) for a in vault.asked} == {
            (kwargs["host"], kwargs["port"], login.user)
        }
        assert [a["password"] for a in vault.asked] == ["given-at-start-and-never-valid"] * 2

        with pytest.raises(driver.error) as refused:
            _current_user(static)
        assert _code(refused.value) == 1045  # access denied: the old password
    finally:
        conn.close()
        static.close()


@pytest.mark.server
def test_plain_pymysql_cannot_log_in_again_after_a_rotation(server: Any, login: Login) -> None:
    """Without resilient_dbapi: a new session with the arguments the application was
    configured with (what a pool or the driver's reconnect does) is refused."""
    configured = login.kwargs()
    conn = pymysql.connect(**configured)
    login.rotate()
    kill(server, conn.thread_id())
    conn.close()
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(**configured)
    assert refused.value.args[0] == 1045


@pytest.mark.server
def test_each_connection_of_a_creator_asks(server: Any, login: Login) -> None:
    vault = Vault(login)
    make = resilient_dbapi.creator(pymysql.connect, **login.kwargs(), credentials=vault)
    conns = [make(), make()]
    try:
        login.rotate()
        for conn in conns:
            kill(server, conn.thread_id())
            assert _current_user(conn).startswith(login.user)
        assert len(vault.asked) == 4
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.server
def test_a_deferred_connection_asks_when_it_connects(login: Login) -> None:
    vault = Vault(login)
    conn = resilient_dbapi.connect(
        pymysql.connect, **login.kwargs(password="wrong"), defer_connect=True, credentials=vault
    )
    try:
        assert vault.asked == []  # nothing was opened yet
        login.rotate()
        conn.connect()
        assert _current_user(conn).startswith(login.user)
        assert len(vault.asked) == 1
    finally:
        conn.close()


@pytest.mark.server
def test_a_session_on_the_callers_socket_asks_when_it_connects(login: Login) -> None:
    """``connect(sock)`` opens the session on the caller's socket: with the password
    credentials gives then, not one from when the connection was made."""
    vault = Vault(login)
    kwargs = login.kwargs(password="wrong")
    conn = resilient_dbapi.connect(pymysql.connect, **kwargs, defer_connect=True, credentials=vault)
    sock = socket.create_connection((kwargs["host"], kwargs["port"]))
    try:
        login.rotate()
        conn.connect(sock)
        assert _current_user(conn).startswith(login.user)
        assert len(vault.asked) == 1
    finally:
        conn.close()


@pytest.mark.server
def test_a_driver_error_raised_by_credentials_is_raised_as_it_is(server: Any, login: Login) -> None:
    """Not a failed connect: not retried, and no host is blamed for it."""
    asked: list[object] = []
    events: list[Event] = []

    def credentials(arguments: dict[str, Any]) -> dict[str, Any]:
        asked.append(arguments)
        raise pymysql.err.OperationalError(2003, "the token service is down")

    kwargs = login.kwargs()
    hosts = [(kwargs.pop("host"), kwargs.pop("port"))]
    for where in ({"hosts": hosts}, {"host": hosts[0][0], "port": hosts[0][1]}):
        asked.clear()
        with pytest.raises(pymysql.err.OperationalError, match="token service") as raised:
            resilient_dbapi.connect(
                pymysql.connect,
                **kwargs,
                **where,
                credentials=credentials,
                listeners=[events.append],
            )
        assert raised.value.__notes__ == ["raised by the credentials callable, before connecting"]
        assert len(asked) == 1
    assert events == []  # no Retrying, no HostPassedOver


@pytest.mark.server
def test_each_host_of_a_round_is_asked_for_with_its_own_address(login: Login) -> None:
    vault = Vault(login)
    nobody = ("127.0.0.1", free_port())
    kwargs = login.kwargs()
    here = (kwargs.pop("host"), kwargs.pop("port"))
    conn = resilient_dbapi.connect(
        pymysql.connect, **kwargs, hosts=[nobody, here], target="any", credentials=vault
    )
    try:
        assert [(a["host"], a["port"]) for a in vault.asked] == [nobody, here]
    finally:
        conn.close()


@pytest.mark.server
def test_a_fresh_password_wins_over_the_drivers_other_name_for_it(login: Login) -> None:
    """mysqlclient takes ``passwd=`` as ``password=``: the stale one given under the
    other name must not win."""
    kwargs = login.kwargs()
    kwargs["passwd"] = kwargs.pop("password") + "-stale"
    conn = resilient_dbapi.connect(
        MySQLdb.connect, **kwargs, credentials=lambda arguments: {"password": login.password}
    )
    try:
        assert _current_user(conn).startswith(login.user)
    finally:
        conn.close()


@pytest.mark.server
def test_asyncio_credentials_may_be_a_coroutine_function(server: Any, login: Login) -> None:
    asked: list[str] = []

    async def token(arguments: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        asked.append(arguments["user"])
        return {"password": login.password}

    async def main() -> None:
        conn = await aio.connect(aiomysql.connect, **login.kwargs(password="x"), credentials=token)
        try:
            first = conn.thread_id()
            login.rotate()
            kill(server, first)
            cur = await conn.cursor()
            await cur.execute("SELECT CURRENT_USER()")
            (who,) = await cur.fetchone()
            assert who.startswith(login.user)
            assert conn.thread_id() != first
            assert asked == [login.user, login.user]
        finally:
            conn.close()

    asyncio.run(main())


@pytest.mark.server
def test_asyncio_credentials_may_be_a_plain_function(login: Login) -> None:
    vault = Vault(login)

    async def main() -> None:
        make = aio.creator(aiomysql.connect, **login.kwargs(password="x"), credentials=vault)
        conn = await make()
        try:
            cur = await conn.cursor()
            await cur.execute("SELECT 1")
            assert len(vault.asked) == 1
        finally:
            conn.close()

    asyncio.run(main())


# -- wrong credentials= -----------------------------------------------------------------


def _never_called(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the driver was called")


def test_credentials_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"credentials must be a callable .* got a str"):
        resilient_dbapi.connect(_never_called, credentials="secret")
    with pytest.raises(TypeError, match="credentials must be a callable"):
        resilient_dbapi.creator(_never_called, credentials={"password": "x"})


@pytest.mark.parametrize(
    ("returned", "error", "match"),
    [
        ("secret", TypeError, "must return a mapping of connect arguments, .* got a str"),
        (None, TypeError, "must return a mapping .* got a NoneType"),
        ({1: "x"}, TypeError, "argument names that are not strings: \\['1'\\]"),
        ({"password": "x", "host": "h"}, ValueError, "returned host: .* not which server"),
        ({"port": 1, "unix_socket": "/s"}, ValueError, "returned port, unix_socket"),
        ({"defer_connect": True}, ValueError, "returned defer_connect: .*user"),
        ({"client_flag": 0, "database": "x"}, ValueError, "returned client_flag, database"),
    ],
)
def test_what_credentials_returns_is_checked(
    returned: object, error: type[Exception], match: str
) -> None:
    asked: list[object] = []

    def credentials(arguments: dict[str, Any]) -> object:
        asked.append(arguments)
        return returned

    with pytest.raises(error, match=match):
        resilient_dbapi.connect(_never_called, host="h", credentials=credentials)
    assert len(asked) == 1  # a wrong answer is not asked again


def test_a_failing_credentials_callable_raises_its_own_error_once() -> None:
    asked: list[object] = []

    def credentials(arguments: dict[str, Any]) -> dict[str, Any]:
        asked.append(arguments)
        raise RuntimeError("the vault is sealed")

    with pytest.raises(RuntimeError, match="the vault is sealed") as raised:
        resilient_dbapi.connect(_never_called, host="h", credentials=credentials)
    assert raised.value.__notes__ == ["raised by the credentials callable, before connecting"]
    assert len(asked) == 1


def test_the_sync_proxy_refuses_a_coroutine_function() -> None:
    async def credentials(arguments: dict[str, Any]) -> dict[str, Any]:
        return {}

    with pytest.raises(
        TypeError, match=r"credentials returned an awaitable: .*resilient_dbapi\.aio\.connect"
    ):
        resilient_dbapi.connect(_never_called, credentials=credentials)


@pytest.mark.server
def test_the_pymysql_drop_in_takes_credentials(server: Any, login: Login) -> None:
    from resilient_dbapi import pymysql as drop_in

    vault = Vault(login)
    conn = drop_in.connect(**login.kwargs(password="x"), credentials=vault)
    try:
        login.rotate()
        kill(server, conn.thread_id())
        assert _current_user(conn).startswith(login.user)
        assert len(vault.asked) == 2
    finally:
        conn.close()


@pytest.mark.server
def test_the_aiomysql_drop_in_pool_takes_credentials(server: Any, login: Login) -> None:
    from resilient_dbapi import aiomysql as drop_in

    vault = Vault(login)

    async def main() -> None:
        kwargs = login.kwargs(password="x")
        pool = drop_in.create_pool(minsize=1, maxsize=1, **kwargs, credentials=vault)
        async with pool as opened, opened.acquire() as conn:
            first = conn.thread_id()
            login.rotate()
            kill(server, first)
            cur = await conn.cursor()
            await cur.execute("SELECT CURRENT_USER()")
            (who,) = await cur.fetchone()
            assert who.startswith(login.user)
            assert conn.thread_id() != first
        assert len(vault.asked) == 2

    asyncio.run(main())


def test_what_the_callable_is_given_is_its_own() -> None:
    """Changing it, nested values included, changes nothing for later connects; what an
    old connection handed over (psycopg's context) is not in it."""
    ssl = {"ca": "/ca.pem"}
    connector = ConnectorBase(_never_called, (), {"user": "u", "ssl": ssl})
    connector.carried = {"context": object()}
    shown = connector.shown(connector.arguments(None))
    assert shown == {"user": "u", "ssl": {"ca": "/ca.pem"}}
    shown["ssl"]["ca"] = "/elsewhere.pem"
    shown["user"] = "v"
    assert connector.kwargs == {"user": "u", "ssl": {"ca": "/ca.pem"}}


def test_no_traceback_local_of_ours_shows_the_password() -> None:
    """Error trackers print the local variables of each frame of a failed connect."""
    import traceback

    secret = f"pw-{secrets.token_hex(8)}"

    def refusing(**kwargs: Any) -> Any:
        raise pymysql.err.OperationalError(1045, "Access denied")

    with pytest.raises(pymysql.err.OperationalError) as raised:
        resilient_dbapi.connect(refusing, user="u", credentials=lambda a: {"password": secret})
    ours = [
        frame
        for frame, _ in traceback.walk_tb(raised.value.__traceback__)
        if "resilient_dbapi" in frame.f_code.co_filename
    ]
    assert ours
    shown = [repr(value) for frame in ours for value in frame.f_locals.values()]
    assert not [text for text in shown if secret in text]
