"""What most adapters share: defaults for drivers that keep no extra state."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar

from ..error_kinds import Code

__all__ = [
    "AdapterBase",
    "AutocommitProperty",
    "CommitOnExit",
    "CommitThenCloseOnExit",
    "DriverSurface",
    "MySQLSession",
]


class DriverSurface:
    """A mixin for the resilient connection class of one driver, for what that driver
    spells differently from PyMySQL (``autocommit`` as a property, ``conn.execute()``).

    Adapters name theirs in :attr:`AdapterBase.surface`; it comes before the proxy class
    in the MRO, so its members replace the proxy's."""


class AutocommitProperty(DriverSurface):
    """For drivers whose ``conn.autocommit`` is a property (mysql-connector, psycopg):
    reading it asks the adapter (no round trip), and setting it goes through the proxy's
    ``autocommit()``, so the setting is kept for every new connection."""

    __slots__ = ()

    @property
    def autocommit(self) -> bool:
        return bool(self._adapter.status(self._raw)[1])  # type: ignore[attr-defined]

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        super().autocommit(value)  # type: ignore[misc]

    def set_autocommit(self, value: bool) -> None:
        """psycopg's spelling of the setter."""
        super().autocommit(value)  # type: ignore[misc]


class CommitOnExit(DriverSurface):
    """``with conn:`` as sqlite3 means it: commit on success, roll back on an error; the
    connection stays open."""

    __slots__ = ()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()  # type: ignore[attr-defined]
        else:
            with contextlib.suppress(Exception):  # the error in flight is the one to see
                self.rollback()  # type: ignore[attr-defined]


class CommitThenCloseOnExit(CommitOnExit):
    """``with conn:`` as psycopg means it: commit (or roll back), then close."""

    __slots__ = ()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if not self.open:  # type: ignore[attr-defined]
                return
            super().__exit__(exc_type, *rest)
        finally:
            self.close()  # type: ignore[attr-defined]


class AdapterBase:
    """Defaults for an adapter: subclasses set the error classes and override what their
    driver can do better."""

    name = "driver"
    operational_error: type[Exception]
    interface_error: type[Exception]
    programming_error: type[Exception]
    gone_code: Code = 0
    idle_setting = "wait_timeout"
    """The session setting after which the server closes an idle connection: a ``SET``
    of it makes the proxy read the new value (see :meth:`wait_timeout`)."""
    in_process = False
    """True for an in-process database (sqlite3): never replaced by a policy, which
    would swap the database for another one."""
    surface: ClassVar[tuple[type, ...]] = ()
    """Mixins for the connection class (see :class:`DriverSurface`)."""
    cursor_surface: ClassVar[tuple[type, ...]] = ()
    """Mixins for the cursor class."""

    def make_error(self, cls: type[Exception], code: Code, message: str) -> Exception:
        """An instance of ``cls`` (a driver error class, or a subclass of one) built the
        way the driver builds its errors, carrying ``code``."""
        return cls(code, message)

    def known_dead(self, raw: Any) -> Callable[[], bool] | None:
        return None  # nothing the driver knows without a system call

    def busy(self, raw: Any) -> bool:
        return False

    def unbuffered(self, cursor: Any) -> bool:
        return False

    def discard(self, raw: Any) -> None:
        with contextlib.suppress(Exception):  # a broken connection may fail to close
            raw.close()

    def describe(self, raw: Any) -> str:
        return self.name


class MySQLSession:
    """Session setup on a MySQL-protocol driver, through a buffered cursor of
    :meth:`_cursor`."""

    def _cursor(self, raw: Any) -> Any:
        raise NotImplementedError

    def _row(self, raw: Any, query: str) -> Any:
        cursor = self._cursor(raw)
        try:
            cursor.execute(query)
            return cursor.fetchone()
        finally:
            cursor.close()

    def wait_timeout(self, raw: Any) -> float | None:
        row = self._row(raw, "SELECT @@SESSION.wait_timeout")
        return float(row[0]) if row and row[0] else None

    def read_only(self, raw: Any) -> bool:
        """Whether the server refuses writes (``@@read_only``: a replica)."""
        return bool(int(self._row(raw, "SELECT @@GLOBAL.read_only")[0]))

    def execute(self, raw: Any, query: str, args: Any) -> None:
        cursor = self._cursor(raw)
        try:
            cursor.execute(query, args)
        finally:
            cursor.close()
