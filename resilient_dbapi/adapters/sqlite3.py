"""The sqlite3 adapter: no server, no network, nothing to lose.

The proxy passes everything through: no error means "connection dead", so every error
reaches the caller unchanged and nothing is ever sent again.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..error_kinds import ErrorTable
from .base import AdapterBase, CommitOnExit, Liveness

__all__ = ["SQLiteAdapter"]


def _alive() -> Liveness:
    return Liveness.ALIVE


class CursorDefaults:
    """sqlite3 refuses ``None`` parameters: a cursor's ``execute(sql)`` passes ``()``."""

    __slots__ = ()

    def execute(self, query: Any, args: Any = ()) -> Any:
        return super().execute(query, args)  # type: ignore[misc]


class SQLiteAdapter(AdapterBase):
    name = "sqlite3"
    connect_timeout_argument: str | None = None  # a file, not a server
    transactional_only = True
    in_process = True  # never replaced: a new connection would be another database
    errors = ErrorTable()
    operational_error: type[Exception] = sqlite3.OperationalError
    interface_error: type[Exception] = sqlite3.InterfaceError
    programming_error: type[Exception] = sqlite3.ProgrammingError
    surface = (CommitOnExit,)
    cursor_surface = (CursorDefaults,)

    def owns(self, raw: object) -> bool:
        return isinstance(raw, sqlite3.Connection)

    def owns_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def make_error(self, cls: type[Exception], code: Any, message: str) -> Exception:
        return cls(message)

    def error_code(self, exc: BaseException) -> None:
        return None  # nothing sqlite3 raises means a lost connection

    def never_sent(self, exc: BaseException) -> bool:
        return False

    def probe(self, raw: Any) -> Any:
        return _alive

    def status(self, raw: Any) -> tuple[bool, bool]:
        try:
            return raw.in_transaction, raw.isolation_level is None
        except sqlite3.ProgrammingError:  # closed
            return False, True

    def ping(self, raw: Any, timeout: float) -> None:
        return None  # an in-process database: there is no one to ask

    def completion_chains(self, raw: Any) -> bool:
        return False  # SQLite has no chaining COMMIT

    def table_rolls_back(self, raw: Any, database: str, name: str) -> bool:
        return False  # every SQLite table rolls back (never asked)

    def last_insert_id(self, raw: Any) -> None:
        return None  # no such history: a question about it is refused on a new session

    def wait_timeout(self, raw: Any) -> None:
        return None

    def execute(self, raw: Any, query: str, args: Any) -> None:
        raw.execute(query, () if args is None else args).close()

    def set_autocommit(self, raw: Any, value: bool) -> None:
        raw.isolation_level = None if value else ""

    def select_db(self, raw: Any, db: str) -> None:
        raise sqlite3.NotSupportedError("sqlite3 has no select_db(); ATTACH a database instead")
