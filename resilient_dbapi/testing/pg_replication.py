"""A PostgreSQL primary and its streaming standby, for failover tests.

``StandbyPair()`` runs two :class:`~resilient_dbapi.testing.PostgresServer`: a primary
(``wal_level=replica``) and a hot standby made from it by ``pg_basebackup -R``, replicating
synchronously (a commit is acknowledged once the standby applied it), so a promotion
keeps every acknowledged write. ``kill_primary()`` then ``promote()`` is a failover; it
goes with :func:`~resilient_dbapi.testing.failover_drill` like the MariaDB pair.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from .servers import PostgresServer

__all__ = ["PostgresStandby", "StandbyPair"]

_PRIMARY_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": "5",
    "hot_standby": "on",
    # Acknowledged only once the standby applied it: a promotion loses nothing, and a read
    # on the standby sees every acknowledged write.
    "synchronous_commit": "remote_apply",
    "wal_keep_size": "64MB",
}


class PostgresStandby(PostgresServer):
    """A hot standby of ``primary``: its data directory is ``pg_basebackup -R`` of it."""

    def __init__(self, primary: PostgresServer) -> None:
        self.primary = primary
        super().__init__(
            settings={"hot_standby": "on", "wal_level": "replica", "max_wal_senders": "5"}
        )

    def _initdb(self) -> None:
        self._run_tool(
            str(Path(self.initdb_bin).with_name("pg_basebackup")),
            f"--pgdata={self.datadir}",
            "--host=127.0.0.1",
            f"--port={self.primary.port}",
            f"--username={self.user}",
            "--write-recovery-conf",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-sync",
        )


class StandbyPair:
    """A PostgreSQL primary and a synchronous hot standby on loopback.

    The same surface as :class:`~resilient_dbapi.testing.ReplicatedPair`: ``hosts()``,
    ``app_kwargs()``, ``table()``, ``wait_caught_up()``, ``kill_primary()`` (an immediate
    shutdown, like a crash; ``fast=True``: a fast one, every session ended with 57P01) and
    ``promote()`` (``pg_promote()``)."""

    database: str = "postgres"
    drill_table: str = "n BIGSERIAL PRIMARY KEY, uid VARCHAR(64) NOT NULL"

    def __init__(self) -> None:
        self._started = False
        self._promoted = False

    def start(self) -> StandbyPair:
        if self._started:
            return self
        self.primary = PostgresServer(settings=_PRIMARY_SETTINGS)
        try:
            self.primary.start()
            self.replica = PostgresStandby(self.primary)
            self.replica.start()
            self._wait_streaming()
            with contextlib.closing(self.primary.admin()) as conn:
                conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
                conn.execute("SELECT pg_reload_conf()")
            self._wait_streaming(sync=True)
        except BaseException:
            self.remove()
            raise
        self._started = True
        return self

    def _wait_streaming(self, *, sync: bool = False, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        seen: Any = None
        with contextlib.closing(self.primary.admin()) as conn:
            while time.monotonic() < deadline:
                seen = conn.execute(
                    "SELECT state, sync_state FROM pg_stat_replication "
                    "WHERE application_name = 'walreceiver'"
                ).fetchall()
                if seen and seen[0][0] == "streaming" and (not sync or seen[0][1] == "sync"):
                    return
                time.sleep(0.02)
        raise TimeoutError(
            f"the standby is not streaming{' synchronously' if sync else ''}: {seen}"
        )

    def remove(self) -> None:
        for name in ("replica", "primary"):
            server: PostgresServer | None = getattr(self, name, None)
            if server is not None:
                server.remove()

    def __enter__(self) -> StandbyPair:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    # -- using it -----------------------------------------------------------------------

    def hosts(self) -> list[tuple[str, int]]:
        """``(host, port)`` of the primary then the standby."""
        return [("127.0.0.1", self.primary.port), ("127.0.0.1", self.replica.port)]

    def app_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """``psycopg.connect`` arguments, without host and port."""
        return {"user": PostgresServer.user, "dbname": PostgresServer.dbname, **overrides}

    def table(self, name: str) -> str:
        return f"public.{name}"

    def wait_caught_up(self, timeout: float = 10.0) -> None:
        """Wait until the standby has replayed everything the primary wrote."""
        with contextlib.closing(self.primary.admin()) as conn:
            position = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with contextlib.closing(self.replica.admin()) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (position,)
                ).fetchone()
                if row[0]:
                    return
                time.sleep(0.02)
        raise TimeoutError(f"the standby did not replay up to {position} within {timeout} s")

    def kill_primary(self, *, fast: bool = False) -> None:
        """Stop the primary: immediately (SIGQUIT: backends quit at once, nothing is
        checkpointed, the next start recovers as after a crash), or with ``fast`` a fast
        shutdown (sessions ended with 57P01 after a checkpoint)."""
        self.primary.stop(kill=not fast)

    def promote(self) -> float:
        """Make the standby the primary (``pg_promote()``, waiting for it); returns the
        seconds it took. A synchronous standby has every acknowledged commit."""
        if self._promoted:
            raise RuntimeError("the standby was promoted already")
        began = time.monotonic()
        with contextlib.closing(self.replica.admin()) as conn:
            # Not pg_promote(true): it looks every 100 ms, so writers could be served by
            # the promoted server before it returns, and the drill's times would be off.
            conn.execute("SELECT pg_promote(false)")
            while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                if time.monotonic() - began > 30:
                    raise TimeoutError("the standby was still in recovery 30 s after pg_promote()")
                time.sleep(0.005)
        self._promoted = True
        return time.monotonic() - began
