"""A Tortoise-ORM engine whose pooled MySQL connections are resilient.

In the Tortoise config, ``"engine": "resilient_dbapi.contrib.tortoise"`` with the usual
MySQL credentials (``host``, ``port``, ``user``, ``password``, ``database``, ``minsize``,
``maxsize``, ``charset``, ...). Two more credentials are understood: ``policies`` (a
profile name, or a list of policies) and ``on_connect`` (statements for every new
connection). Tortoise's own session settings (``storage_engine``, the time zone with
``use_tz``) are applied to every connection the pool opens, replacements included.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiomysql
from pymysql.charset import charset_by_name
from tortoise.backends.base.client import (
    NestedTransactionContext,
    TransactionContext,
    TransactionContextPooled,
)
from tortoise.backends.mysql import client as _tortoise_mysql
from tortoise.backends.mysql.client import MySQLClient, TransactionWrapper, translate_exceptions
from tortoise.exceptions import DBConnectionError, TransactionManagementError
from tortoise.timezone import get_default_timezone, get_use_tz

from .. import aiomysql as _resilient_aiomysql
from ..policies import Policy

__all__ = ["ResilientMySQLClient", "client_class"]

if getattr(_tortoise_mysql, "mysql", None) is not aiomysql:
    # Tortoise prefers asyncmy when it is installed, and then translates asyncmy's errors
    # only: ours (PyMySQL's classes, through aiomysql) would escape its error handling.
    raise ImportError(
        "resilient_dbapi.contrib.tortoise needs Tortoise-ORM's MySQL backend on aiomysql, "
        "but Tortoise is using asyncmy (installed here): uninstall asyncmy"
    )

_savepoints = itertools.count()


class ResilientMySQLClient(MySQLClient):
    """Tortoise's MySQL client on a pool of resilient aiomysql connections."""

    def __init__(
        self,
        *,
        policies: Sequence[Policy] | str | None = None,
        on_connect: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._policies = policies
        self._on_connect = list(on_connect or ())

    def _session_setup(self) -> list[str]:
        statements = list(self._on_connect)
        if self.storage_engine:
            statements.append(f"SET default_storage_engine='{self.storage_engine}'")
            if self.storage_engine.lower() != "innodb":
                self.capabilities.__dict__["supports_transactions"] = False
        if get_use_tz():
            offset = datetime.now(tz=get_default_timezone()).utcoffset()
            seconds = int(offset.total_seconds()) if offset is not None else 0
            zone = f"{seconds // 3600:+d}:{abs(seconds) % 3600 // 60:02d}"
            statements.append(f"SET time_zone='{zone}'")
        return statements

    async def create_connection(self, with_db: bool) -> None:
        if charset_by_name(self.charset) is None:
            raise DBConnectionError(f"Unknown charset {self.charset}")
        self._template = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "db": self.database if with_db else None,
            "autocommit": True,
            "charset": self.charset,
            "minsize": self.pool_minsize,
            "maxsize": self.pool_maxsize,
            **self.extra,
        }
        try:
            self._pool = await _resilient_aiomysql.create_pool(
                password=self.password,
                policies=self._policies,
                on_connect=self._session_setup(),
                **self._template,
            )
        except _resilient_aiomysql.OperationalError as exc:
            # The template, not the password, as Tortoise's own client reports it.
            raise DBConnectionError(f"Can't connect to MySQL server: {self._template}") from exc
        await self._post_connect()

    async def _expire_connections(self) -> None:
        if self._pool:
            for conn in self._pool._free:
                conn.expire()  # replaced before the connection's next statement

    def _in_transaction(self) -> TransactionContext:
        return TransactionContextPooled(ResilientTransactionWrapper(self), self._pool_init_lock)


class ResilientTransactionWrapper(TransactionWrapper, ResilientMySQLClient):
    """Tortoise's transaction on a resilient connection. Savepoints go through a cursor,
    under the connection's rules, rather than aiomysql's private command methods."""

    def _in_transaction(self) -> TransactionContext:
        return NestedTransactionContext(ResilientTransactionWrapper(self))

    async def _statement(self, sql: str) -> None:
        async with self._connection.cursor() as cursor:
            await cursor.execute(sql)

    @translate_exceptions
    async def savepoint(self) -> None:
        self._savepoint = f"tortoise_savepoint_{next(_savepoints)}"
        await self._statement(f"SAVEPOINT {self._savepoint}")

    async def savepoint_rollback(self) -> None:
        self._check_savepoint()
        await self._statement(f"ROLLBACK TO SAVEPOINT {self._savepoint}")
        self._savepoint = None
        self._finalized = True

    async def release_savepoint(self) -> None:
        self._check_savepoint()
        await self._statement(f"RELEASE SAVEPOINT {self._savepoint}")
        self._savepoint = None
        self._finalized = True

    def _check_savepoint(self) -> None:
        if self._finalized:
            raise TransactionManagementError("Transaction already finalised")
        if self._savepoint is None:
            raise TransactionManagementError("No savepoint")


client_class = ResilientMySQLClient
