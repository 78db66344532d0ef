"""The statement classifier: only plain reads may ever be sent twice."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_dbapi.statements import (
    NEXT_GTID,
    NEXT_GTID_SEQ_NO,
    NEXT_INSERT_ID,
    ONE_SHOT_STATE,
    REPLAYABLE,
    WITH_ONE_SHOT,
    StatementKind,
    assignments,
    classify,
    commits_implicitly,
    foldable,
    replayable,
    session_effects,
    session_key,
    statement,
    statement_parts,
)

READ, WRITE, SESSION = StatementKind.READ, StatementKind.WRITE, StatementKind.SESSION


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", READ),
        ("  select * from t where id = %s", READ),
        ("/* hint */ SELECT 1 -- trailing\n", READ),
        ("SELECT 'FOR UPDATE', `into` FROM t", READ),
        ("(SELECT 1) UNION (SELECT 2)", READ),
        ("SHOW TABLES", READ),
        ("DESCRIBE t", READ),
        ("EXPLAIN SELECT * FROM t", READ),
        (b"SELECT 1", READ),
        ("SELECT 1;", READ),
        ("SELECT * FROM t FOR UPDATE", WRITE),
        ("SELECT * FROM t LOCK IN SHARE MODE", WRITE),
        ("SELECT * FROM t FOR SHARE", WRITE),
        ("SELECT 1 INTO @x", WRITE),
        ("SELECT * INTO OUTFILE '/tmp/x' FROM t", WRITE),
        ("SELECT GET_LOCK('a', 1)", WRITE),
        ("SELECT NEXTVAL(s)", WRITE),
        ("SELECT NEXT VALUE FOR s", WRITE),
        ("SELECT @x := 1", WRITE),
        ("SELECT 1; DELETE FROM t", WRITE),
        ("SELECT 1 --1; DELETE FROM t", WRITE),
        ("SELECT 1 # c\n; DELETE FROM t", WRITE),
        ("/*!50000 DELETE FROM t */", WRITE),
        ("/*M!100000 DELETE FROM t */", WRITE),
        ("SELECT 'a\\'; DELETE FROM t; -- '", WRITE),  # NO_BACKSLASH_ESCAPES reads it so
        ("SELECT 'unterminated", WRITE),
        ("WITH x AS (SELECT 1) DELETE FROM t", WRITE),
        ("EXPLAIN DELETE FROM t", WRITE),
        ("INSERT INTO t VALUES (1)", WRITE),
        ("UPDATE t SET v = 1", WRITE),
        ("CALL p()", WRITE),
        ("", READ),  # an empty statement: nothing runs (SQLAlchemy's psycopg pre-ping)
        (" ; ", READ),
        (";;", READ),
        ("SET SESSION wait_timeout = 10", SESSION),
        ("SET NAMES utf8mb4", SESSION),
        ("SET @@session.sql_mode = ''", SESSION),
        ("USE db", SESSION),
        ("SET @x = 1", WRITE),
        ("SET GLOBAL max_connections = 10", WRITE),
        ("SET x = (SELECT GET_LOCK('a', 1))", WRITE),
        ("SET STATEMENT max_statement_time=1 FOR DELETE FROM t", WRITE),
        ("BEGIN", StatementKind.BEGIN),
        ("START TRANSACTION READ ONLY", StatementKind.BEGIN),
        ("BEGIN NOT ATOMIC SELECT 1; END", WRITE),
        ("commit", StatementKind.COMMIT),
        ("ROLLBACK WORK", StatementKind.ROLLBACK),
        ("ROLLBACK TO SAVEPOINT a", WRITE),
    ],
)
def test_classify(sql: str, kind: StatementKind) -> None:
    assert classify(sql) is kind


WRITES = st.sampled_from(
    [
        "INSERT INTO t VALUES (1)",
        "DELETE FROM t",
        "UPDATE t SET v=1",
        "REPLACE INTO t VALUES (1)",
        "SELECT * FROM t FOR UPDATE",
        "SELECT GET_LOCK('x', 1)",
        "CALL p()",
        "DROP TABLE t",
    ]
)
NOISE = st.sampled_from(["", " ", "\n", "\t", "/* c */", "-- c\n", "# c\n", "/*+ hint */"])


@given(write=WRITES, before=NOISE, after=NOISE, upper=st.booleans())
def test_writes_stay_writes_under_noise(write: str, before: str, after: str, upper: bool) -> None:
    sql = before + (write.upper() if upper else write.lower()) + after
    assert classify(sql) is not READ


@given(read=st.sampled_from(["SELECT 1", "SHOW TABLES"]), write=WRITES, sep=NOISE)
def test_a_read_followed_by_a_write_is_not_a_read(read: str, write: str, sep: str) -> None:
    assert classify(f"{read};{sep}{write}") is not READ


@pytest.mark.parametrize(
    ("sql", "kind", "parts"),
    [
        (
            "SET SQL_AUTO_IS_NULL = 0; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            SESSION,
            2,
        ),
        ("SET a = 'x;y'; /* ; */ SET b = 2;", SESSION, 2),
        ("SET a = 1; DELETE FROM t", WRITE, 2),
        ("SET a = 1; SET @v = (SELECT 1)", WRITE, 2),
        ("SELECT 1; SELECT 2", WRITE, 2),  # a read, but its results need nextset()
        ("SET a = '\\'; SET b = 1", WRITE, 1),  # NO_BACKSLASH_ESCAPES splits it otherwise
        ("SET a = 1 /*!; DELETE FROM t */", WRITE, 1),
        ("SET a = 1;", SESSION, 1),
    ],
)
def test_several_statements(sql: str, kind: StatementKind, parts: int) -> None:
    assert classify(sql) is kind
    assert len(statement_parts(sql)) == parts


@pytest.mark.parametrize(
    ("sql", "commits"),
    [
        ("SET sql_mode = ''; SET autocommit = 1", True),  # the second part commits
        ("SET a = 1; SET b = 2", False),
        ("SET a = 1; CREATE TABLE x (a INT)", True),
        ("SET a = 1 /*!; COMMIT */", None),  # cannot tell
    ],
)
def test_several_statements_commit_if_any_part_does(sql: str, commits: bool | None) -> None:
    assert commits_implicitly(sql) is commits


@given(setting=st.sampled_from(["SET a = 1", "SET NAMES utf8"]), write=WRITES, sep=NOISE)
def test_settings_followed_by_a_write_are_a_write(setting: str, write: str, sep: str) -> None:
    assert classify(f"{setting};{sep}{write}") is WRITE
    assert classify(f"{setting};{sep}{setting};{sep}{write}") is WRITE


@given(st.text(max_size=60))
def test_arbitrary_text_never_crashes(sql: str) -> None:
    assert isinstance(classify(sql), StatementKind)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT @x", READ),
        ("SELECT @x := 1", WRITE),
        ("SELECT 1 INTO @x", WRITE),
        ("SET @x = 1", WRITE),
        ("SELECT place_order(1, 2)", WRITE),  # a stored function may write
        ("SELECT shop.place_order (1)", WRITE),
        ("EXPLAIN ANALYZE SELECT f()", WRITE),
        ("SELECT COUNT(*), NOW(), CONCAT(a, b) FROM t WHERE id IN (1, 2)", READ),
        ("SELECT * FROM t FORCE INDEX (i) WHERE MATCH (a) AGAINST ('x')", READ),
    ],
)
def test_user_variables_and_functions(sql: str, kind: StatementKind) -> None:
    assert classify(sql) is kind


@pytest.mark.parametrize(
    ("sql", "key"),
    [
        ("SET SESSION sql_mode = %s", "set sql_mode"),
        ("set @@session.time_zone = '+00:00'", "set time_zone"),
        ("SET NAMES utf8mb4", "set names"),
        ("SET CHARACTER SET latin1", "set names"),
        ("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "set transaction isolation"),
        ("SET TRANSACTION READ ONLY", None),  # shapes the next transaction only
        ("SET a = 1, b = (SELECT 1, 2)", "set a,b"),
        ("USE shop", "use"),
    ],
)
def test_session_keys(sql: str, key: str | None) -> None:
    assert session_key(sql) == key


@pytest.mark.parametrize(
    ("sql", "effects"),
    [
        ("SET @x = 1", {"user variables"}),
        ("SELECT 1 INTO @x", {"user variables"}),
        ("CREATE TEMPORARY TABLE t (a INT)", {"temporary tables"}),
        ("SELECT GET_LOCK('a', 1)", {"GET_LOCK() locks"}),
        ("LOCK TABLES t WRITE", {"table locks (LOCK TABLES)"}),
        ("PREPARE s FROM 'SELECT 1'", {"prepared statements"}),
        ("CREATE OR REPLACE TEMPORARY TABLE t (a INT)", {"temporary tables"}),
        ("CALL p(@out)", {"user variables", "state a stored procedure may have set (CALL)"}),
        ("FLUSH TABLES WITH READ LOCK", {"the global read lock (FLUSH TABLES WITH READ LOCK)"}),
        ("LOCK INSTANCE FOR BACKUP", {"backup locks"}),
        ("BACKUP STAGE START", {"backup locks"}),
        ("INSERT INTO t VALUES (1)", set()),
        ("/*!40101 SET @x = 1 */", {"state of a statement resilient_dbapi could not read"}),
    ],
)
def test_session_effects(sql: str, effects: set[str]) -> None:
    assert session_effects(sql) == effects


@pytest.mark.parametrize(
    ("sql", "key"),
    [
        ("SET SESSION transaction_isolation = 'READ-COMMITTED'", "set transaction_isolation"),
        ("SET time_zone = DEFAULT", "set time_zone"),
        (
            "SET sql_mode = CONCAT(@@sql_mode, ',X')",
            "set sql_mode <- SET sql_mode = CONCAT(@@sql_mode, ',X')",
        ),
    ],
)
def test_session_keys_of_variables_and_relative_settings(sql: str, key: str) -> None:
    assert classify(sql) is SESSION
    assert session_key(sql) == key


@pytest.mark.parametrize(
    "sql",
    [
        "SET GLOBAL max_connections = 100, SESSION insert_id = 5",
        "SET PERSIST max_connections = 100, @@session.sql_mode = ''",
        "SET GLOBAL max_connections = 100, @x = 1",
    ],
)
def test_session_settings_after_a_server_wide_scope_are_state_no_replay_rebuilds(
    sql: str,
) -> None:
    """A scope holds for the assignments after it until another (review of 0685376): the
    session's part of such a SET was neither journaled nor held."""
    made = statement(sql)
    assert made.kind is WRITE and made.effects and made.key is None


@pytest.mark.parametrize(
    "sql",
    [
        "SET GLOBAL max_connections = 100",
        "SET GLOBAL max_connections = 123, wait_timeout = 7",  # both global (measured)
        "SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY",
        "SET @@global.max_connections = 100, @@global.wait_timeout = 7",
        "SET @@global.max_connections = 100, GLOBAL wait_timeout = 7, lock_wait_timeout = 5",
    ],
)
def test_server_wide_settings_alone_are_no_session_state(sql: str) -> None:
    """Review of a567480: every assignment server-wide leaves the session as it was."""
    assert statement(sql).kind is WRITE and not statement(sql).effects


@pytest.mark.parametrize(
    "sql",
    [
        "SET GLOBAL max_connections = 100, @@wait_timeout = 7",
        "SET @@global.max_connections = 100, wait_timeout = 7",
        "SET GLOBAL max_connections = 100, LOCAL wait_timeout = 7",
        "SET GLOBAL max_connections = 100, NAMES latin1",  # review of 7e49a2b
        "SET GLOBAL max_connections = 100, CHARACTER SET latin1",
        # A backslash: where its parts split cannot be told (review of 7e49a2b)
        "SET GLOBAL init_connect = 'it\\'s', SESSION sql_mode = 'ANSI'",
    ],
)
def test_a_session_assignment_after_a_server_wide_one_is_seen(sql: str) -> None:
    assert statement(sql).effects


@pytest.mark.parametrize(
    ("sql", "key", "held"),
    [
        ("SET insert_id = 5", "set insert_id", {NEXT_INSERT_ID}),
        ("set @@SESSION.insert_id=%s", "set insert_id", {NEXT_INSERT_ID}),
        ("SET LOCAL `insert_id` = 7", "set insert_id", {NEXT_INSERT_ID}),
        ("SET insert_id = 0", "set insert_id", set()),
        ("SET @@insert_id = DEFAULT", "set insert_id", set()),
        ("SET insert_id = 0, time_zone = '+00:00'", "set insert_id,time_zone", set()),
        ("SET insert_id = 5, time_zone = '+00:00'", None, {NEXT_INSERT_ID, WITH_ONE_SHOT}),
        ("SET time_zone = '+00:00', @@insert_id = 5", None, {NEXT_INSERT_ID, WITH_ONE_SHOT}),
        ("SET insert_idx = 5", "set insert_idx", set()),
        # Review of 54d6ab8: one parser for the scope and the name
        ("SET @@session . insert_id = 5", "set insert_id", {NEXT_INSERT_ID}),
        ("SET @@session./* c */insert_id = 5", "set insert_id", {NEXT_INSERT_ID}),
        ("SET @@local . insert_id = 0", "set insert_id", set()),
        (
            "SET time_zone = @@time_zone, insert_id = 0",
            "set time_zone,insert_id <- SET time_zone = @@time_zone, insert_id = 0",
            set(),
        ),
        (
            "SET insert_id = @@auto_increment_offset",
            "set insert_id <- SET insert_id = @@auto_increment_offset",
            {NEXT_INSERT_ID},
        ),
        # MariaDB's next GTID sequence number: never journaled (a replay may be refused)
        ("SET gtid_seq_no = 100", None, {NEXT_GTID_SEQ_NO}),
        ("SET @@session.gtid_seq_no = 0", "set gtid_seq_no", set()),
        ("SET insert_id = 5, gtid_seq_no = 7", None, {NEXT_INSERT_ID, NEXT_GTID_SEQ_NO}),
        # MySQL's next transaction's GTID: taken by a read too, never journaled
        ("SET gtid_next = '3e11fa47-71ca-11e1-9e33-c80aa9429562:23'", None, {NEXT_GTID}),
        ("SET @@SESSION.GTID_NEXT = 'AUTOMATIC'", "set gtid_next", set()),
    ],
)
def test_a_value_the_next_write_takes_is_known_by_its_value(
    sql: str, key: str | None, held: set[str]
) -> None:
    """A value other than 0 or DEFAULT waits for the next generated id (see
    NEXT_INSERT_ID) or logged transaction (NEXT_GTID_SEQ_NO); alone it is journaled, with
    other settings none of them is. A GTID for the next transaction is never."""
    made = statement(sql)
    assert made.kind is SESSION and made.key == key
    assert made.effects & ONE_SHOT_STATE == held


@pytest.mark.parametrize(
    ("sql", "effect"),
    [
        ("SET ROLE admin", "the session's role (SET ROLE)"),
        ("SET x = (SELECT 1)", "session settings resilient_dbapi cannot replay (SET with a query)"),
    ],
)
def test_settings_that_cannot_be_replayed(sql: str, effect: str) -> None:
    assert classify(sql) is WRITE
    assert session_effects(sql) == {effect}


@pytest.mark.parametrize(
    "sql",
    [
        # PostgreSQL reads each of these as a read followed by a DELETE.
        "SELECT $$'$$; DELETE FROM t; SELECT $$'$$",
        "SELECT $q$'$q$; DELETE FROM t; SELECT $q$'$q$",
        "SELECT 1 /* /* */ ' */ ; DELETE FROM t; -- '",
        "SELECT 1 --'\n; DELETE FROM t; --'",
    ],
)
def test_what_postgresql_reads_differently_is_never_a_read(sql: str) -> None:
    assert classify(sql) is StatementKind.WRITE


@pytest.mark.parametrize(
    ("sql", "key"),
    [
        ("SELECT set_config('TimeZone', %s, false)", "set timezone"),  # Django's
        ("select pg_catalog.set_config('app.tenant', 'a''b', FALSE);", "set app.tenant"),
        ("SELECT set_config('app.tenant', %s, true)", None),  # one transaction's only
        ("SELECT set_config(%s, %s, false)", None),  # which setting: unknown
        ("SELECT set_config('a', 'x', false), nextval('s')", None),
        ("SELECT set_config('role', 'admin', false)", None),  # who the session acts as
        ("SELECT set_config('session_authorization', %s, false)", None),
        ("SELECT set_config('transaction_isolation', 'serializable', false)", None),
        ("SELECT set_config(E'a\\'', 'x', false)", None),  # not the simple literal form
        ("SELECT set_config('a', 'x', false); DELETE FROM t", None),
    ],
)
def test_postgresql_set_config_is_a_setting_only_for_the_session(sql: str, key: str | None) -> None:
    record = statement(sql, postgres=True)
    if key is None:
        assert record.kind is StatementKind.WRITE and record.effects
    else:
        assert (record.kind, record.key, record.effects) == (StatementKind.SESSION, key, set())
    assert statement(sql).kind is StatementKind.WRITE  # MariaDB has no such built-in


@pytest.mark.parametrize(
    "sql",
    ["SET SESSION ROLE admin", "SET LOCAL ROLE admin", "SET SESSION AUTHORIZATION admin"],
)
def test_who_the_session_acts_as_is_never_a_replayed_setting(sql: str) -> None:
    for record in (statement(sql, postgres=True), statement(sql)):
        assert record.kind is StatementKind.WRITE
        assert record.effects == {"the session's role (SET ROLE)"}


def test_postgresql_set_local_is_not_journaled_nor_replaces_the_sessions_value() -> None:
    """PostgreSQL's SET LOCAL lasts one transaction; MySQL's LOCAL is the session."""
    assert statement("SET LOCAL search_path = x", postgres=True).key is None
    assert statement("SET search_path = x", postgres=True).key == "set search_path"
    assert statement("SET LOCAL time_zone = '+01:00'").key == "set time_zone"
    several = statement("SET search_path = a; SET LOCAL search_path = b", postgres=True)
    assert [key for key, _ in several.parts] == ["set search_path", None]


@pytest.mark.parametrize(
    ("sql", "key"),
    [
        ("RESET search_path", "reset search_path"),
        ("reset  TIME ZONE;", "reset time zone"),
        ("RESET ALL", "reset all"),
    ],
)
def test_postgresql_reset_is_journaled_in_its_turn(sql: str, key: str) -> None:
    """A setting undone by RESET must not come back with a replay: RESET is a setting
    too, replayed after the SETs it undid."""
    record = statement(sql, postgres=True)
    assert (record.kind, record.key, record.effects) == (StatementKind.SESSION, key, set())
    assert statement(sql).kind is StatementKind.WRITE  # MariaDB's RESET is another thing


@pytest.mark.parametrize(
    ("sql", "effect"),
    [
        ("LISTEN jobs", "LISTEN registrations (notifications would be missed)"),
        ('listen "Jobs";', "LISTEN registrations (notifications would be missed)"),
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "cursors WITH HOLD"),
        ("declare c no scroll cursor with hold for select * from t", "cursors WITH HOLD"),
    ],
)
def test_postgresql_state_no_replay_makes_again(sql: str, effect: str) -> None:
    record = statement(sql, postgres=True)
    assert record.kind is StatementKind.WRITE and record.effects == {effect}


@pytest.mark.parametrize(
    "sql",
    [
        "RESET ROLE",  # who the session acts as: never a replayed setting
        "RESET SESSION AUTHORIZATION",
        "RESET search_path; DELETE FROM t",  # several statements: the general scan
        "RESET /* c */ search_path",
        "RESET",
        "DISCARD ALL",  # runs in no transaction: replayed with autocommit off, it fails
    ],
)
def test_what_is_not_read_as_a_postgresql_session_statement(sql: str) -> None:
    record = statement(sql, postgres=True)
    assert record.kind is StatementKind.WRITE and record.key is None


def test_a_setting_named_role_is_a_setting() -> None:
    for sql in ("SET app.role = 'x'", "SET SESSION app.role = 'x'"):
        record = statement(sql, postgres=True)
        assert (record.kind, record.effects) == (StatementKind.SESSION, set()), sql


def test_parts_of_several_settings_are_replayed_as_written() -> None:
    sql = "SET application_name = 'pg_catalog.version()'; SET search_path = b"
    parts = statement(sql, postgres=True).parts
    assert [text.strip() for _, text in parts] == [
        "SET application_name = 'pg_catalog.version()'",
        "SET search_path = b",
    ]


def test_a_call_in_postgresqls_system_schema_is_its_built_in() -> None:
    """SQLAlchemy's psycopg dialect asks ``select pg_catalog.version()`` on every new
    connection: a read, leaving no state that would make a reconnect a SessionLostError."""
    assert statement("select pg_catalog.version()", postgres=True).kind is StatementKind.READ
    assert statement("select myschema.version()", postgres=True).kind is StatementKind.WRITE
    assert statement("select pg_catalog.nextval('s')", postgres=True).kind is StatementKind.WRITE


@pytest.mark.parametrize(
    ("sql", "temporary"),
    [
        ("CREATE TEMP TABLE t (a int)", True),  # PostgreSQL's spelling
        ("CREATE LOCAL TEMP TABLE t (a int)", True),
        ("SELECT 1 INTO TEMP t2", True),
        ("CREATE TABLE temp (a int)", False),  # a table named temp
        ("CREATE TABLE t (temp int)", False),  # a column named temp
    ],
)
def test_postgresql_temp_tables_are_session_state(sql: str, temporary: bool) -> None:
    assert ("temporary tables" in statement(sql, postgres=True).effects) is temporary


def test_a_quoted_table_before_its_columns_is_no_function_call() -> None:
    """PostgreSQL's quoted names, as Django writes them: ``INSERT INTO "t" ("a") ...``
    calls no stored function, so it leaves no session state behind."""
    sql = 'INSERT INTO "items_item" ("name", "qty") VALUES (%s, %s) RETURNING "items_item"."id"'
    assert statement(sql, postgres=True).effects == set()
    assert statement('INSERT INTO "t" (a) VALUES (f(1))', postgres=True).effects


@pytest.mark.parametrize(
    "sql",
    ["SELECT pg_backend_pid()", "SELECT 42 FROM pg_sleep(1)", "SELECT current_setting('x')"],
)
def test_postgresql_reads(sql: str) -> None:
    """Reads under PostgreSQL's built-ins; on MariaDB the names are unknown, so a stored
    function of that name would run."""
    assert statement(sql, postgres=True).kind is StatementKind.READ
    assert classify(sql) is StatementKind.WRITE


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (1); SET @@session.wait_timeout = 10 -- was 5,\n",
        "SET a = 1,",
        "SET wait_timeout = 10 -- was 5,\n",
    ],
)
def test_a_setting_with_an_empty_part_is_classified_without_error(sql: str) -> None:
    # Such a text is the server's to refuse or run, never a crash before it is sent.
    assert statement(sql).kind in (SESSION, WRITE)
    assert statement(sql) is statement(sql)  # made once, then cached


@pytest.mark.parametrize(
    "sql",
    [
        "SET a = '\\'; DELETE FROM t; '",  # under NO_BACKSLASH_ESCAPES: a DELETE
        "SET a = '\\' , b = 2 -- '",  # sets b too under NO_BACKSLASH_ESCAPES
        "BEGIN -- '\\'\n",
    ],
)
def test_a_setting_that_reads_differently_without_backslash_escapes_is_a_write(sql: str) -> None:
    record = statement(sql)
    if "BEGIN" in sql:
        assert record.kind is StatementKind.BEGIN  # reads the same both ways
    else:
        assert record.kind is WRITE and not record.resendable


def test_bytes_like_texts_are_classified_by_their_content() -> None:
    text = b"SELECT 42 FROM dual"
    assert statement(memoryview(text)).kind is READ  # before the bytes were seen...
    assert statement(bytearray(text)).kind is READ
    assert statement(text).kind is READ  # ...and after: the same record either way
    assert statement(memoryview(b"DELETE FROM t")).kind is WRITE
    assert statement(object()).kind is WRITE  # an object whose text is not ours to read


@pytest.mark.parametrize(
    ("sql", "kind", "commits"),
    [
        ("COMMIT", StatementKind.COMMIT, True),
        ("commit work and chain", StatementKind.COMMIT, True),
        ("COMMIT AND NO CHAIN NO RELEASE", StatementKind.COMMIT, True),
        ("COMMIT RELEASE", StatementKind.COMMIT, True),
        ("ROLLBACK AND CHAIN", StatementKind.ROLLBACK, False),
        ("ROLLBACK TO SAVEPOINT a", StatementKind.WRITE, False),
        ("commit workand chain", StatementKind.WRITE, True),
        ("SET autocommit = 1", StatementKind.SESSION, True),
        ("SET autocommit = 0", StatementKind.SESSION, False),
        ("SET autocommit = 'ON'", StatementKind.SESSION, None),
        ("SET autocommit = DEFAULT", StatementKind.SESSION, None),
        ("SET autocommit = 2-1", StatementKind.SESSION, None),
        ("SET autocommit = 0, autocommit = 1", StatementKind.SESSION, True),
        (
            "SET autocommit = 0, sql_mode = 'x', autocommit = @@autocommit",
            StatementKind.SESSION,
            None,
        ),
        ("SET PASSWORD = PASSWORD('')", StatementKind.WRITE, True),
        ("FLUSH TABLES", StatementKind.WRITE, True),
        ("CHECK TABLE t", StatementKind.WRITE, True),
        ("CALL p()", StatementKind.WRITE, None),
        ("EXECUTE stmt", StatementKind.WRITE, None),
        ("XA COMMIT 'x' ONE PHASE", StatementKind.WRITE, None),
        ("SOME_FUTURE_VERB x", StatementKind.WRITE, None),
        ("INSERT INTO t VALUES (1)", StatementKind.WRITE, False),
        ("CACHE INDEX t IN default", StatementKind.WRITE, False),
    ],
)
def test_what_commits_is_known_or_cannot_tell(
    sql: str, kind: StatementKind, commits: bool | None
) -> None:
    """Only a statement known never to commit is "does not commit": any other verb, and a
    value of autocommit not provably off, may commit what is open."""
    record = statement(sql)
    assert record.kind is kind
    assert record.commits is commits


@pytest.mark.parametrize(
    ("sql", "xa"),
    [
        ("XA START 'x'", "start"),
        ("xa end 'x'", "end"),
        ("XA PREPARE 'x'", "prepare"),
        ("XA COMMIT 'x'", "commit"),
        ("XA RECOVER", "recover"),
        ("INSERT INTO xa VALUES (1)", ""),
    ],
)
def test_xa_statements_are_marked(sql: str, xa: str) -> None:
    assert statement(sql).xa == xa


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT db.now()",
        "SELECT db . now ()",
        "SELECT `db`.`abs`(1)",
        "SELECT now (1)",
        "SELECT count/* c */(*)",
        "SELECT `concat`('a')",
        "SELECT point(1, 2)",
        "SELECT 42 FROM pg_sleep(1)",
        "SELECT against('x')",
        "SET sql_mode = db.f()",
        "SET sql_mode = concat ('a')",
    ],
)
def test_a_call_that_may_run_a_stored_function_is_never_a_read(sql: str) -> None:
    """Qualified, quoted, spaced (unless a reserved word), or no MariaDB built-in."""
    assert classify(sql) is WRITE
    assert "state a stored function may have set" in session_effects(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM t WHERE a IN (1, 2) AND b = ANY (SELECT 1)",
        "SELECT * FROM t WHERE MATCH (a) AGAINST ('x' IN BOOLEAN MODE)",
        "SELECT t.a, db.t.b FROM db.t WHERE (a, b) IN ((1, 2))",
        "SELECT CAST(a AS DECIMAL (10, 2)), CONVERT (a, CHAR (3)) FROM t",
        "/* tag */ INSERT INTO db.t (a) VALUES (NOW())",
    ],
)
def test_builtins_and_keywords_before_a_parenthesis_stay_what_they_are(sql: str) -> None:
    assert "state a stored function may have set" not in session_effects(sql)
    if not sql.startswith("/*"):
        assert classify(sql) is READ


@pytest.mark.parametrize(
    ("sql", "history"),
    [
        ("SELECT LAST_INSERT_ID()", True),
        ("SELECT `last_insert_id`()", True),
        ("SELECT @@identity, @@session.warning_count", True),
        ("SELECT @@LOCAL . error_count", True),
        ("SELECT ROW_COUNT(), FOUND_ROWS()", True),
        ("SELECT CONNECTION_ID()", True),
        ("SHOW WARNINGS", True),
        ("SHOW COUNT(*) ERRORS", True),
        ("GET DIAGNOSTICS @n = NUMBER", True),
        ("SELECT identity, warning_count FROM t", False),
        ("SELECT 'LAST_INSERT_ID()'", False),
        ("SELECT @@wait_timeout", False),
    ],
)
def test_what_asks_about_the_session_history(sql: str, history: bool) -> None:
    assert statement(sql).history is history


@pytest.mark.parametrize(
    ("sql", "insert_id"),
    [
        ("SELECT LAST_INSERT_ID()", True),
        ("SELECT `last_insert_id`()", True),
        ("SELECT @@identity", True),
        ("SELECT @@session.last_insert_id", True),
        ("INSERT INTO child (pid) VALUES (LAST_INSERT_ID())", True),
        ("SELECT 1; SELECT LAST_INSERT_ID()", True),  # several
        # With other history: a question sent before it would change that (ROW_COUNT())
        ("SELECT LAST_INSERT_ID(), ROW_COUNT()", False),
        ("SELECT LAST_INSERT_ID(); SHOW WARNINGS", False),
        ("SELECT ROW_COUNT(), FOUND_ROWS()", False),  # of the statement just before
        ("SHOW WARNINGS", False),
        ("SELECT CONNECTION_ID()", False),
        ("SELECT 'LAST_INSERT_ID()'", False),
        ("INSERT INTO t (a) VALUES (1)", False),
    ],
)
def test_what_asks_about_the_last_generated_id(sql: str, insert_id: bool) -> None:
    """The one history that outlasts the statements after it (until an insert generates
    another id): asked on a new session after anything else, it may still ask the old
    one, which the new session is asked first (when nothing else of the history is)."""
    record = statement(sql)
    assert record.insert_id is insert_id
    assert record.history or not insert_id


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        (b"\x00\x0b\x05\t\x08I_RwW_S_", True),  # as MariaDB 10.11 sends them
        (b"\x00\x0b\x05\t\x08I__w____", True),
        (b"\x00\x0b\x05\t\x08I___W___", False),
        (b"\x00\x0b\x05\t\x08________", False),
        (b"\x02ok\x11\x01\x04\x03abc\x05\t\x08T__w____", True),  # info, then a schema change
        (b"\x00\x05\x00\x03\x02db", False),  # only the schema changed
    ],
)
def test_the_transaction_state_the_server_reports(message: bytes, kept: bool) -> None:
    from resilient_dbapi.adapters._mysql import _nontransactional_write

    assert _nontransactional_write(message) is kept


def test_a_transaction_state_cut_short_is_read_as_a_kept_write() -> None:
    """An OK packet's tail whose transaction state is shorter than it says: the weaker
    claim (a write the server may not roll back)."""
    from resilient_dbapi.adapters._mysql import _nontransactional_write

    assert _nontransactional_write(b"\0\x0b\x05\x09\x08") is True


@pytest.mark.parametrize(
    ("sql", "body"),
    [
        ("SET time_zone = '+00:00'", "time_zone = '+00:00'"),
        ("set lock_wait_timeout=5", "lock_wait_timeout=5"),
        ("SET SESSION a = 1, @@session.b = 'x,y'", "SESSION a = 1, @@session.b = 'x,y'"),
        ("SET NAMES utf8mb4", None),
        ("SET CHARACTER SET utf8", None),
        ("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", None),
        ("SET @a = 1", None),
        ("SET x = @y", None),
        ("SET sql_mode = CONCAT(@@sql_mode, ',X')", None),
        ("SET x = (SELECT 1)", None),
        ("SET x = 1 -- a comment would hide what follows", None),
        ("SET x = 1 /* c */", None),
        ("SET x = 1; SET y = 2", None),
        ("SET GLOBAL x = 1", None),
        ("SET @@global.x = 1", None),
        ("SET x = 'a\\'b'", None),
        ("SET x = DEFAULT, y = ON, z = -1.5", "x = DEFAULT, y = ON, z = -1.5"),
        ("SET timestamp = UNIX_TIMESTAMP('2024-01-01')", None),
        ("SET x = 1 + 1", None),
        ('SET x = "a"', None),
        ("SET x =", None),
        ("SET STATEMENT max_statement_time = 1 FOR SELECT 1", None),
        (b"SET x = 1", None),
    ],
)
def test_assignments_sent_within_another_set(sql: str | bytes, body: str | None) -> None:
    """Only a plain list of session assignments may ride in another SET: anything that
    could end the statement, hide what follows, or read other settings runs alone."""
    assert assignments(sql) == body


def _s(text: str, args: Any = None) -> tuple[str, Any]:
    """A journal entry for a statement the caller ran (with its arguments)."""
    return ("execute", (text, args))


@pytest.mark.parametrize(
    ("journal", "folded"),
    [
        ([_s("SET a = 1"), _s("SET b = 'x'")], ["a = 1", "b = 'x'"]),
        # Order kept: the first that may not ride stops the fold, all after it run alone.
        ([_s("SET a = 1"), ("autocommit", True), _s("SET b = 2")], ["a = 1"]),
        ([("select_db", "x"), _s("SET a = 1")], []),
        ([("setattr", ("encoding", "utf8")), _s("SET a = 1")], []),
        ([_s("SET NAMES utf8mb4"), _s("SET a = 1")], []),
        # With arguments, even none, the driver formats the text ('50%%' is 50%).
        ([_s("SET a = %s", (1,))], []),
        ([_s("SET a = '50%%'", {})], []),
        # The server parses a statement whole: nothing after what changes the parsing.
        ([_s("SET sql_mode = 'ANSI_QUOTES'"), _s("SET a = 1")], ["sql_mode = 'ANSI_QUOTES'"]),
        ([_s("SET collation_connection = x"), _s("SET a = 1")], ["collation_connection = x"]),
        (
            [_s("SET default_collation_for_utf8mb4 = x"), _s("SET a = 1")],
            ["default_collation_for_utf8mb4 = x"],
        ),
    ],
)
def test_foldable_takes_the_journals_first_plain_settings(
    journal: list[tuple[str, Any]], folded: list[str]
) -> None:
    assert foldable(journal) == folded


@pytest.mark.parametrize(
    ("sql", "volatile"),
    [
        ("UPDATE t SET at = NOW() WHERE id = 1", True),
        ("/* resilient_dbapi:replayable */ UPDATE t SET at = NOW() WHERE id = 1", False),
        ("UPDATE t SET at = NOW() /*  Resilient_DBAPI:Replayable */ WHERE id = 1", False),
        ("INSERT INTO t (u) VALUES (UUID()) -- resilient_dbapi:replayable\n", True),
        ("UPDATE t SET note = '/* resilient_dbapi:replayable */', at = NOW()", True),
        ("/* resilient_dbapi:replayable */ UPDATE t SET n = my_func(1)", True),
        ("/* resilient_dbapi:replayable, please */ UPDATE t SET at = NOW()", True),
    ],
)
def test_a_write_is_replayable_only_when_a_comment_says_so(sql: str, volatile: bool) -> None:
    """The REPLAYABLE comment, outside literals, lifts the rule on volatile built-ins;
    never on a stored function (which may write what no digest sees)."""
    for postgres in (False, True):
        assert statement(sql, postgres).volatile is volatile
        assert statement(sql, postgres).unreplayable is volatile


def test_a_comment_that_a_backslash_may_put_inside_a_literal_does_not_mark() -> None:
    """With backslash escapes the comment stands outside the literals; under
    NO_BACKSLASH_ESCAPES (and in PostgreSQL's standard strings) it is inside one."""
    sql = "INSERT INTO t VALUES ('a\\'' /* resilient_dbapi:replayable */ ' /* ' */, NOW())"
    for postgres in (False, True):
        assert statement(sql, postgres).volatile


def test_replayable_puts_the_comment_before_the_text() -> None:
    assert replayable("UPDATE t SET at = NOW()") == f"{REPLAYABLE} UPDATE t SET at = NOW()"
    assert not statement(replayable("UPDATE t SET at = NOW()"), False).volatile
