"""SQLAlchemy dialects whose connections are resilient, chosen by the URL alone.

Registered as entry points, so no import is needed::

    create_engine("mysql+resilient_pymysql://app:secret@db/shop?policies=web")
    create_engine("mysql+resilient_mysqldb://app:secret@db/shop")
    create_engine("mysql+resilient_mysqlconnector://app:secret@db/shop")
    create_async_engine("mysql+resilient_aiomysql://app:secret@db/shop?policies=web")
    create_engine("postgresql+resilient_psycopg://app:secret@db/shop?policies=web")

Each is SQLAlchemy's own dialect for that driver (its SQL, its disconnect handling, its
``pool_pre_ping``), with the driver's ``connect`` replaced by a resilient one. The URL's
``policies`` names a profile (or a profile file's path); without it, the profile named
by ``RESILIENT_DBAPI_POLICY``, else the defaults. ``on_connect`` (repeat it for several)
is a statement run on every new physical connection, before the session is replayed:
``?on_connect=SET time_zone = '%2B00:00'``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pymysql as _pymysql
from sqlalchemy.dialects.mysql.aiomysql import AsyncAdapt_aiomysql_dbapi, MySQLDialect_aiomysql
from sqlalchemy.dialects.mysql.mysqlconnector import MySQLDialect_mysqlconnector
from sqlalchemy.dialects.mysql.mysqldb import MySQLDialect_mysqldb
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import ArgumentError

from .._dropin import chosen_policies
from ..connection import creator as _creator
from ..errors import ResilientError

__all__ = [
    "ResilientAiomysqlDialect",
    "ResilientMySQLConnectorDialect",
    "ResilientMySQLdbDialect",
    "ResilientPsycopgDialect",
    "ResilientPyMySQLDialect",
]


class _NotDisconnects:
    """An error of resilient_dbapi's own (the loss of a transaction, an unknown outcome)
    is not a disconnect to SQLAlchemy: the connection was replaced already, and only it
    needs the caller's ``rollback()``, which the pool gives it on return. Invalidating
    would recycle the whole pool."""

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        if isinstance(e, ResilientError):
            return False
        return bool(super().is_disconnect(e, connection, cursor))  # type: ignore[misc]


def _shared(
    dialect: object, make: Callable[..., Any], cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Callable[[], Any]:
    """The one creator of an engine (a dialect instance) for these connect arguments:
    its connections share what they learn of the server (its tables, its TLS, that its
    name was reached), as those of one ``creator()`` do."""
    creators: dict[str, Callable[[], Any]] = dialect.__dict__.setdefault("_creators", {})
    policies = chosen_policies(cparams.pop("policies", None) or None)
    on_connect = cparams.pop("on_connect", None)
    if isinstance(on_connect, str):  # ?on_connect=... once; repeated, a tuple
        on_connect = (on_connect,)
    key = repr((cargs, sorted(cparams.items()), policies, on_connect))
    made = creators.get(key)
    if made is None:
        made = creators[key] = make(*cargs, policies=policies, on_connect=on_connect, **cparams)
    return made


class _Resilient(_NotDisconnects):
    """The sync dialects: the connections of one engine come from one ``creator()``."""

    _driver_connect: Callable[..., Any]

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        make = functools.partial(_creator, type(self)._driver_connect)
        return _shared(self, make, cargs, cparams)()


class ResilientPyMySQLDialect(_Resilient, MySQLDialect_pymysql):
    """``mysql+resilient_pymysql://``: SQLAlchemy's PyMySQL dialect on the drop-in."""

    supports_statement_cache = True
    _driver_connect = staticmethod(_pymysql.connect)

    @classmethod
    def import_dbapi(cls) -> Any:
        from .. import pymysql

        return pymysql

    def _found_rows_client_flag(self) -> int:
        # SQLAlchemy looks for it under the module's name, which is not a package here:
        # without it, an UPDATE that changes nothing counts 0 rows (StaleDataError).
        return int(_pymysql.constants.CLIENT.FOUND_ROWS)


class ResilientMySQLdbDialect(_Resilient, MySQLDialect_mysqldb):
    """``mysql+resilient_mysqldb://``: SQLAlchemy's mysqlclient dialect, resilient."""

    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        import MySQLdb

        cls._driver_connect = staticmethod(MySQLdb.connect)
        return MySQLdb  # its connect is never called: see _Resilient.connect


class ResilientMySQLConnectorDialect(_Resilient, MySQLDialect_mysqlconnector):
    """``mysql+resilient_mysqlconnector://``: SQLAlchemy's mysql-connector-python
    dialect, resilient."""

    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        import mysql.connector

        cls._driver_connect = staticmethod(mysql.connector.connect)
        return mysql.connector  # its connect is never called: see _Resilient.connect


class ResilientAiomysqlDialect(_NotDisconnects, MySQLDialect_aiomysql):
    """``mysql+resilient_aiomysql://``: SQLAlchemy's asyncio aiomysql dialect on the
    drop-in."""

    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        from .. import aiomysql

        return AsyncAdapt_aiomysql_dbapi(aiomysql, _pymysql)

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        # Each connection from the engine's one creator, as with the sync dialects.
        if "async_creator_fn" in cparams:  # the caller's own
            return super().connect(*cargs, **cparams)
        from ..aiomysql import _factory

        def aiomysql_creator(
            *args: Any, policies: Any, on_connect: Any, **kwargs: Any
        ) -> Callable[[], Any]:
            return _factory(policies, on_connect, None, kwargs)  # aiomysql's: keywords only

        make = _shared(self, aiomysql_creator, cargs, cparams)
        return self.loaded_dbapi.connect(async_creator_fn=lambda: make())


class ResilientPsycopgDialect(_Resilient, PGDialect_psycopg):
    """``postgresql+resilient_psycopg://``: SQLAlchemy's psycopg (3) dialect, resilient.
    Types it registers on a connection (hstore) are carried to the connection that
    replaces it; its ``pool_pre_ping`` (an empty statement) goes through the proxy."""

    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        import psycopg

        cls._driver_connect = staticmethod(psycopg.connect)
        return psycopg  # its connect is never called: see _Resilient.connect

    def _type_info_fetch(self, connection: Any, name: str) -> Any:
        # psycopg's TypeInfo.fetch builds its own cursor on the connection's internals:
        # it asks the current driver connection (a read of the catalog, in a
        # transaction of its own that it ends).
        from psycopg.types import TypeInfo

        return TypeInfo.fetch(connection.connection.driver_connection.raw, name)

    @classmethod
    def get_async_dialect_cls(cls, url: Any) -> Any:
        raise ArgumentError(
            "postgresql+resilient_psycopg has no asyncio form: resilient_dbapi's asyncio "
            "proxy drives aiomysql (mysql+resilient_aiomysql); use create_engine()"
        )
