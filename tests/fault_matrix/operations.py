"""The operations of the fault matrix (each an :class:`~.trials.Operation`), in their
contexts (autocommit on or off, a write already in the transaction, a row stream half
read), through the sync proxy over PyMySQL; their asyncio twins are in
:mod:`.trials_async`."""

from __future__ import annotations

import pymysql.cursors

from .common import PAUSED_STREAM_ROWS, STREAM_ROWS
from .trials import Operation, Trial

__all__ = ["OPERATIONS", "OPERATION_NAMES"]


def _read(trial: Trial, slow: float) -> None:
    cur = trial.conn.cursor()
    if slow:
        cur.execute("SELECT SLEEP(%s), COUNT(*) FROM t WHERE uid = 'seed'", (slow,))
        value = cur.fetchone()[1]
    else:
        cur.execute("SELECT COUNT(*) FROM t WHERE uid = 'seed'")
        value = cur.fetchone()[0]
    cur.close()
    trial.expect("the seed rows read", value, 1)


def _insert(trial: Trial, slow: float) -> None:
    uid = trial.new_uid()
    trial.attempted.add(uid)
    cur = trial.conn.cursor()
    if slow:
        cur.execute("INSERT INTO t (uid, v) SELECT %s, SLEEP(%s)", (uid, slow))
    else:
        cur.execute("INSERT INTO t (uid) VALUES (%s)", (uid,))
    cur.close()


def _write_first(trial: Trial, slow: float) -> None:
    """A write acknowledged inside the open transaction, not committed yet."""
    uid = trial.new_uid()
    cur = trial.conn.cursor()
    cur.execute("INSERT INTO t (uid) VALUES (%s)", (uid,))
    cur.close()
    trial.pending.add(uid)


def _insert_keyed(trial: Trial, slow: float) -> None:
    """As :func:`_insert`, with the row's key given (a replay of a row whose id the
    server assigned would diverge: the caller saw the first run's id)."""
    uid = trial.new_uid()
    trial.attempted.add(uid)
    cur = trial.conn.cursor()
    if slow:
        sql = "INSERT INTO t (id, uid, v) SELECT %s, %s, SLEEP(%s)"
        cur.execute(sql, (trial.new_key(), uid, slow))
    else:
        cur.execute("INSERT INTO t (id, uid) VALUES (%s, %s)", (trial.new_key(), uid))
    cur.close()


def _write_first_keyed(trial: Trial, slow: float) -> None:
    uid = trial.new_uid()
    cur = trial.conn.cursor()
    cur.execute("INSERT INTO t (id, uid) VALUES (%s, %s)", (trial.new_key(), uid))
    cur.close()
    trial.pending.add(uid)


def _commit(trial: Trial, slow: float) -> None:
    if slow:
        trial.block_commits(slow)  # FLUSH TABLES WITH READ LOCK holds the COMMIT
    trial.conn.commit()


def _executemany(trial: Trial, slow: float) -> None:
    uids = [trial.new_uid(), trial.new_uid()]
    trial.attempted.update(uids)
    cur = trial.conn.cursor()
    # Not a VALUES list: PyMySQL sends the rows one by one, so the first is applied
    # before the second (the slow one) is sent.
    cur.executemany("INSERT INTO t (uid, v) SELECT %s, SLEEP(%s)", [(uids[0], 0), (uids[1], slow)])
    cur.close()


def _open_stream(trial: Trial, slow: float) -> None:
    """An unbuffered result half read: executed, its first row fetched."""
    cur = trial.conn.cursor(pymysql.cursors.SSCursor)
    if slow:
        trial.stream_rows = PAUSED_STREAM_ROWS
        cur.execute(
            "SELECT seq, REPEAT('x', 1000), IF(seq = 1000, SLEEP(%s), 0) "
            f"FROM seq_1_to_{PAUSED_STREAM_ROWS}",
            (slow,),
        )
    else:
        trial.stream_rows = STREAM_ROWS
        cur.execute(f"SELECT seq, REPEAT('x', 1000) FROM seq_1_to_{STREAM_ROWS}")
    trial.stream = cur
    trial.expect("the first streamed row", cur.fetchone()[0], 1)


def _fetch_stream(trial: Trial, slow: float) -> None:
    rows = trial.stream.fetchall()
    trial.expect("the rest of the stream", len(rows), trial.stream_rows - 1)


def _callproc(trial: Trial, slow: float) -> None:
    uid = trial.new_uid()
    trial.attempted.add(uid)
    cur = trial.conn.cursor()
    cur.callproc("p", (uid, slow))
    cur.close()


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "autocommit_read", "autocommit read", "`SELECT COUNT(*)` of the seed row, autocommit on",
        autocommit=True, run=_read,
    ),
    Operation(
        "autocommit_write", "autocommit write", "one-row `INSERT`, autocommit on",
        autocommit=True, run=_insert,
    ),
    Operation(
        "txn_first", "first statement of a transaction",
        "autocommit off, nothing written yet: one-row `INSERT`, then `commit()`",
        autocommit=False, run=_insert,
    ),
    Operation(
        "mid_txn", "statement mid-transaction",
        "autocommit off, after an acknowledged `INSERT`: a second `INSERT`, then `commit()`",
        autocommit=False, run=_insert, setup=_write_first,
    ),
    Operation(
        "mid_txn_replay", "statement mid-transaction, replay on",
        "as mid-transaction, with `ReplayTransaction()` and the rows' keys given",
        autocommit=False, run=_insert_keyed, setup=_write_first_keyed, replay=True,
    ),
    Operation(
        "commit", "`COMMIT`",
        "`commit()` of a transaction with one `INSERT`; in flight, held by "
        "`FLUSH TABLES WITH READ LOCK` from another session",
        autocommit=False, run=_commit, setup=_write_first, blocks_commits=True,
    ),
    Operation(
        "executemany", "`executemany`",
        "two rows of `INSERT ... SELECT` (both drivers send them one by one), autocommit on",
        autocommit=True, run=_executemany,
    ),
    Operation(
        "sscursor_fetch", "`SSCursor` fetch",
        f"`fetchall()` of an unbuffered result of {STREAM_ROWS} rows of 1 kB (more than the "
        "socket buffers hold) whose first row was read before the fault; in flight, the "
        "server pauses at row 1000",
        autocommit=True, run=_fetch_stream, setup=_open_stream,
    ),
    Operation(
        "callproc", "`callproc`",
        "`callproc()` of a procedure that inserts one row, autocommit on",
        autocommit=True, run=_callproc,
    ),
)  # fmt: skip
OPERATION_NAMES = tuple(op.name for op in OPERATIONS)
