"""Classifier fuzzing (issue 7): nothing that writes or locks is ever a read the proxy may
send again.

The classifier is fuzzed with a grammar of reads, writes and locking reads dressed in
comments, version comments, odd whitespace, mixed case, quoting tricks and several
statements; what it calls a plain read is also run on a real MariaDB in a READ ONLY
transaction under four ``sql_mode`` settings, and must neither be refused as a write nor
leave a lock, a row, a user variable or a sequence step behind.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from pymysql.constants import CLIENT

from resilient_dbapi.statements import StatementKind, classify

READ, WRITE, SESSION = StatementKind.READ, StatementKind.WRITE, StatementKind.SESSION

# What MariaDB reads as a space between two tokens: \f and \v are spaces, and so is any
# comment. (U+00A0 and the other Unicode spaces are not: MariaDB reads them as letters of
# an identifier; see test_unicode_spaces_are_letters_to_the_server_and_the_scanner.)
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\f", "\v", " \t\n "]
COMMENTS = [
    "/* c */",
    "/**/",
    "/* ; DELETE FROM t; ' \" ` */",
    "/*\u00a0\u2003\u3000*/",
    "/*+ hint */",
    "/* *\\/ */",
    "-- c\n",
    "--\tc\n",
    "-- ; DELETE FROM t '\n",
    "-- \u00a0\u2028\n",
    "# c\n",
    "#\n",
    "# ' \" ` ; INTO @x\n",
]
GAP = st.one_of(st.just(" "), st.sampled_from(SPACES + COMMENTS))
SPACE = st.one_of(st.just(" "), st.sampled_from(SPACES))
# Between a function's name and its '(' (MariaDB calls the function across all of them).
CALL_GAPS = ["", " ", "\t", "\n", "\f", "\v", "/**/", "/* c */", "-- c\n", "# c\n"]

_KEYWORD = re.compile(r"[A-Z][A-Z_]+")
# A template's tokens: separated by spaces outside quotes ('a b' is one token).
_TOKENS = re.compile(r"(?:'[^']*'|\"[^\"]*\"|`[^`]*`|[^ '\"`])+")


def _recase(rnd: random.Random, word: str) -> str:
    how = rnd.randrange(4)
    if how == 0:
        return word
    if how == 1:
        return word.lower()
    if how == 2:
        return word.title()
    return "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in word)


@st.composite
def render(
    draw: st.DrawFn, template: str, comments: bool = True, subs: dict[str, str] | None = None
) -> str:
    """``template``'s tokens (separated by spaces outside quotes) joined by drawn spaces or
    comments, keywords (upper-case words) in random case, ``{name}`` tokens replaced by
    ``subs`` verbatim. Identifiers are lower case in the templates and stay so (table
    names are case-sensitive on the server)."""
    rnd = draw(st.randoms(use_true_random=False))
    out: list[str] = []
    for i, token in enumerate(_TOKENS.findall(template)):
        if i:
            out.append(draw(GAP if comments else SPACE))
        if subs and token in subs:
            out.append(subs[token])
        else:
            out.append(_KEYWORD.sub(lambda m: _recase(rnd, m.group()), token))
    return "".join(out)


def from_templates(templates: list[str], comments: bool = True) -> st.SearchStrategy[str]:
    return st.sampled_from(templates).flatmap(lambda t: render(t, comments))


PLAIN_READS = [
    "SELECT 1",
    "SELECT * FROM t",
    "SELECT id , uid , v FROM t WHERE id = %s",
    "SELECT COUNT(*) FROM t WHERE uid = 'FOR UPDATE'",
    "SELECT 'a;b' , `v` FROM t",
    "SELECT 'it''s' , 'a\\\\' , '\u00a0\u2003\u3000'",
    "SELECT 'GET_LOCK(1); DELETE FROM t' , 'INTO @x'",
    "SELECT `into` , `update` FROM ( SELECT 1 AS `into` , 2 AS `update` ) AS d",
    "SHOW TABLES",
    "SHOW SESSION STATUS LIKE 'Ssl_cipher'",
    "DESCRIBE t",
    "DESC t",
    "EXPLAIN SELECT * FROM t WHERE id = 1",
    "SELECT NOW() , CONCAT('a', 'b') , COALESCE(v, 0) FROM t",
    "( SELECT id FROM t ) UNION ALL ( SELECT 2 )",
    "SELECT @x",
    "SELECT id FROM t ORDER BY id DESC LIMIT 2 OFFSET 1",
    "SELECT 1 FROM DUAL",
    "SELECT SLEEP(0)",
    "SELECT id FROM t WHERE uid IN ( 'a' , 'b' ) AND v BETWEEN 1 AND 2",
    "SELECT PI() , ABS(-1) , MD5('x') , JSON_EXTRACT('{\"a\":1}', '$.a')",
    "SELECT uid AS share_of_v FROM t",
]

_LOCK_BASES = [
    "SELECT * FROM t",
    "SELECT id FROM t WHERE id = %s",
    "SELECT 1 FROM DUAL",
    "SELECT id FROM t ORDER BY id LIMIT 1",
    "SELECT COUNT(*) FROM t WHERE uid = 'a'",
]
_LOCK_CLAUSES = [
    "FOR UPDATE",
    "FOR SHARE",
    "LOCK IN SHARE MODE",
    "FOR UPDATE SKIP LOCKED",
    "FOR UPDATE NOWAIT",
    "FOR UPDATE WAIT 1",
    "FOR SHARE SKIP LOCKED",
    "FOR NO KEY UPDATE",
    "FOR KEY SHARE",
    "FOR UPDATE OF t",
    "LOCK IN SHARE MODE SKIP LOCKED",
]
LOCKING_READS = [f"{base} {lock}" for base in _LOCK_BASES for lock in _LOCK_CLAUSES] + [
    "( SELECT * FROM t FOR UPDATE )",
    "SELECT * FROM t UNION SELECT * FROM t FOR UPDATE",
    "SELECT * FROM ( SELECT id FROM t FOR UPDATE ) AS d",
    "SELECT * FROM t WHERE id IN ( SELECT id FROM t FOR SHARE )",
    "EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE",
]
SELECT_INTO = [
    "SELECT 1 INTO @x",
    "SELECT id FROM t LIMIT 1 INTO @x",
    "SELECT id , v INTO @a , @b FROM t LIMIT 1",
    "SELECT * INTO OUTFILE '/tmp/rdbapi-o' FROM t",
    "SELECT * FROM t INTO OUTFILE '/tmp/rdbapi-o'",
    "SELECT uid FROM t INTO DUMPFILE '/tmp/rdbapi-d'",
    "SELECT * INTO new_t FROM t",
    "SELECT * INTO TEMPORARY new_t FROM t",
    "WITH x AS ( SELECT 1 AS a ) SELECT a INTO @v FROM x",
    "WITH x AS ( SELECT 1 ) SELECT * INTO new_t FROM x",
]
CTE_WRITES = [
    "WITH x AS ( SELECT 1 AS a ) DELETE FROM t WHERE id IN ( SELECT a FROM x )",
    "WITH x AS ( SELECT id FROM t ) UPDATE t SET v = 1 WHERE id IN ( SELECT id FROM x )",
    "WITH x AS ( SELECT 1 ) INSERT INTO t ( uid ) SELECT 'a' FROM x",
    "WITH RECURSIVE x ( n ) AS ( SELECT 1 ) DELETE FROM t",
    "WITH d AS ( DELETE FROM t RETURNING * ) SELECT * FROM d",
    "WITH u AS ( UPDATE t SET v = 1 RETURNING id ) SELECT id FROM u",
    "WITH i AS ( INSERT INTO t ( uid ) VALUES ( 'a' ) RETURNING id ) SELECT * FROM i",
    "WITH x AS ( SELECT id FROM t ) SELECT * FROM x FOR UPDATE",
    "WITH x AS ( SELECT 1 ) REPLACE INTO t ( id , uid ) VALUES ( 1 , 'a' )",
]
ASSIGNMENTS = [
    "SELECT @x := 1",
    "SELECT @x:=id FROM t",
    "SELECT 1 FROM DUAL WHERE ( @x := 1 )",
    "SELECT @`x` := 1",
    "SELECT @'x' := 1",
    'SELECT @"x" := 1',
    "SELECT id FROM t WHERE ( @n := @n + 1 ) > 0",
    "SELECT 1 FROM DUAL WHERE @x := 1",
]
SEQUENCES = [
    "SELECT NEXT VALUE FOR s",
    "SELECT NEXT VALUE FOR shop.s",
    "SELECT * FROM t WHERE id = NEXT VALUE FOR s",
    "SELECT s.nextval FROM DUAL",
    "SELECT s.NEXTVAL",
    "SELECT NEXTVAL(s)",
    "SELECT SETVAL(s, 5)",
]
PLAIN_WRITES = [
    "INSERT INTO t ( uid ) VALUES ( %s )",
    "UPDATE t SET v = v + 1 WHERE id = %s",
    "DELETE FROM t WHERE id = %s",
    "REPLACE INTO t ( id , uid ) VALUES ( 1 , 'a' )",
    "INSERT INTO t ( uid ) SELECT uid FROM t",
    "CALL p ( )",
    "DO GET_LOCK('a', 0)",
    "DO place_order(1)",
    "LOAD DATA INFILE '/tmp/x' INTO TABLE t",
    "HANDLER t OPEN",
    "TRUNCATE TABLE t",
    "DROP TABLE t",
    "CREATE TABLE u ( a INT )",
    "CREATE TABLE u AS SELECT * FROM t",
    "ALTER TABLE t ADD c INT",
    "RENAME TABLE t TO u",
    "LOCK TABLES t WRITE",
    "FLUSH TABLES WITH READ LOCK",
    "EXPLAIN ANALYZE DELETE FROM t",
    "EXPLAIN ( ANALYZE ) UPDATE t SET v = 1",
    "ANALYZE DELETE FROM t",
    "PREPARE q FROM 'DELETE FROM t'",
    "EXECUTE IMMEDIATE 'DELETE FROM t'",
    "XA START 'x'",
    "GRANT ALL ON *.* TO u",
    "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
    "COPY t FROM STDIN",
]
SETTING_WRITES = [
    "SET @x = 1",
    "SET @x := 1",
    "SET @`x` = 1",
    "SET GLOBAL max_connections = 100",
    "SET @@global.max_connections = 100",
    "SET PERSIST max_connections = 100",
    "SET PASSWORD = 'x'",
    "SET ROLE r",
    "SET DEFAULT ROLE r FOR u",
    "SET STATEMENT max_statement_time = 1 FOR DELETE FROM t",
    "SET wait_timeout = ( SELECT GET_LOCK('a', 0) )",
    "SET autocommit = 0 , @x = 1",
    "SET NAMES utf8mb4 , @x = 1",
    # A session setting and a global one in the same SET: the global one is no session
    # setting, and replaying it on every reconnect writes the server's configuration.
    "SET SESSION wait_timeout = 10 , GLOBAL max_connections = 100",
    "SET wait_timeout = 10 , @@global.max_connections = 100",
    "SET NAMES utf8mb4 , GLOBAL max_connections = 100",
]

# name, arguments, whether it may be a stored function (then qualified names too)
_WRITING_FUNCTIONS = [
    ("GET_LOCK", "'a', 0", False),
    ("RELEASE_LOCK", "'a'", False),
    ("RELEASE_ALL_LOCKS", "", False),
    ("NEXTVAL", "s", False),
    ("SETVAL", "s, 10", False),
    ("LAST_INSERT_ID", "5", False),
    ("pg_advisory_lock", "1", False),
    ("pg_try_advisory_xact_lock", "1", False),
    ("txid_current", "", False),
    ("set_config", "'a.b', 'c', false", False),
    ("nextval", "'s'", False),
    ("place_order", "1", True),
    ("audit_read", "%s", True),
    ("f", "", True),
]
_BUILTIN_NAMES = ["{}", "`{}`", '"{}"']
_STORED_NAMES = [*_BUILTIN_NAMES, "shop.{}", "shop.`{}`", "`shop`.`{}`", 'shop."{}"']
_CALL_CONTEXTS = [
    "SELECT {call}",
    "SELECT id , {call} FROM t",
    "SELECT * FROM t WHERE id = {call}",
    "SELECT 1 FROM DUAL WHERE {call} IS NOT NULL",
    "SELECT {fn {call} }",
    "SHOW STATUS WHERE {call} = 1",
    "EXPLAIN ANALYZE SELECT {call}",
    "SET wait_timeout = {call}",
    "SET SESSION sql_mode = {call}",
]


@st.composite
def writing_calls(draw: st.DrawFn) -> str:
    """A function that writes, locks or sets session state, called in a read or a SET,
    its name bare, quoted or qualified, and anything a server takes for a space before
    its '('."""
    name, args, stored = draw(st.sampled_from(_WRITING_FUNCTIONS))
    spelled = draw(st.sampled_from(_STORED_NAMES if stored else _BUILTIN_NAMES)).format(name)
    call = f"{spelled}{draw(st.sampled_from(CALL_GAPS))}({args})"
    context = draw(st.sampled_from(_CALL_CONTEXTS))
    return draw(render(context, subs={"{call}": call}))


CATEGORIES: dict[str, st.SearchStrategy[str]] = {
    "locking reads": from_templates(LOCKING_READS),
    "SELECT ... INTO": from_templates(SELECT_INTO),
    "CTEs with DML": from_templates(CTE_WRITES),
    "functions that write or lock": writing_calls(),
    "assignments": from_templates(ASSIGNMENTS),
    "sequences": from_templates(SEQUENCES),
    "writes": from_templates(PLAIN_WRITES),
    "SET that is not a session setting": from_templates(SETTING_WRITES),
}
DANGEROUS = st.one_of(*CATEGORIES.values())
READS = from_templates(PLAIN_READS)
# Trailing noise a statement may carry: a ';' and spaces or comments after it.
TAIL = st.sampled_from(["", ";", " ;", ";\n", "; -- c", ";/* c */", " # c"])


@pytest.mark.parametrize("category", list(CATEGORIES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_what_writes_or_locks_is_a_write(category: str, data: st.DataObject) -> None:
    """Whatever writes, locks or sets state the server keeps is WRITE: never a read to send
    again, never a session setting to replay on every reconnect."""
    statement = data.draw(CATEGORIES[category], label="statement")
    sql = data.draw(GAP, label="before") + statement + data.draw(TAIL, label="after")
    assert classify(sql) is WRITE, sql


@st.composite
def wrapped(draw: st.DrawFn) -> str:
    """A dangerous statement hidden by the ways a scanner may be fooled."""
    w = draw(DANGEROUS, label="write")
    r = draw(READS, label="read")
    gap = draw(GAP)
    forms = [
        f"{r};{gap}{w}",  # several statements
        f"{r}{gap};{w};",
        f"{w};{gap}{r}",
        f"SELECT ';' ; {w}",  # a ';' inside quotes first, then a real one
        f'SELECT ";"{gap};{w}',
        f"SELECT `;` FROM t ; {w}",
        f"SELECT 1 /* ; */ ; {w}",
        f"/*!50000 {w} */",  # version comments run on MySQL and MariaDB
        f"/*!{w}*/",
        f"/*M!100000 {w} */",
        f"{r} /*!50000 ; {w} */",
        "SELECT * FROM t /*!50000 FOR UPDATE */",
        "SELECT 1 /*!50000 , GET_LOCK('a', 0) */",
        "SELECT 1 /*M!100100 INTO @x */",
        f"SELECT 'a\\'; {w}; -- '",  # NO_BACKSLASH_ESCAPES ends the literal at \'
        f'SELECT "a\\"; {w}; # "',  # so do ANSI_QUOTES and NO_BACKSLASH_ESCAPES for "
        f"SELECT 'a\\\\\\'; {w}; -- '",
        f"SELECT $${gap};$$; {w}",  # PostgreSQL's dollar quoting
        f"SELECT $tag$ ' $tag$; {w}; -- '",
        f"SELECT 1 /* /* */ ; {w}; -- */",  # nested comments: PostgreSQL only
        f"SELECT 1 --1; {w}",  # a comment to PostgreSQL, 1 - -1 to MySQL
        f"SELECT 1 --x\n; {w}",
        f"{r} -- c\n; {w}",
        f"{r} # c\n; {w}",
    ]
    return draw(st.sampled_from(forms), label="form")


@settings(max_examples=400, deadline=None)
@given(sql=wrapped())
def test_hidden_writes_are_writes(sql: str) -> None:
    assert classify(sql) is WRITE, sql


@settings(max_examples=200, deadline=None)
@given(read=READS, before=GAP, after=TAIL)
def test_plain_reads_are_reads(read: str, before: str, after: str) -> None:
    """Not vacuous: what is only a read, however it is spelled, is sent again."""
    assert classify(before + read + after) is READ


# -- quoting: the scanner must be right under every sql_mode ---------------------------

_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")


class _Unterminated(Exception):
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        super().__init__("unterminated")
        self.tokens = tokens


def _lex(sql: str, backslash_escapes: bool, ansi_quotes: bool) -> list[tuple[str, str]]:
    """MariaDB's reading of ``sql`` (without version comments) under one sql_mode:
    tokens ("word", "ident", "str" or "punct", text); raises _Unterminated with the tokens
    read so far."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in " \t\r\n\f\v":
            i += 1
        elif c == "#" or (
            sql.startswith("--", i) and (i + 2 == n or sql[i + 2] <= " " or sql[i + 2] == "\x7f")
        ):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise _Unterminated(tokens)
            i = j + 2
        elif c in "'\"`":
            ident = c == "`" or (c == '"' and ansi_quotes)
            escapes = backslash_escapes and not ident
            j, text = i + 1, []
            while True:
                if j >= n:
                    raise _Unterminated(tokens)
                d = sql[j]
                if escapes and d == "\\":
                    text.append(sql[j + 1 : j + 2])
                    j += 2
                elif d == c and sql[j + 1 : j + 2] == c:
                    text.append(c)
                    j += 2
                elif d == c:
                    j += 1
                    break
                else:
                    text.append(d)
                    j += 1
            tokens.append(("ident" if ident else "str", "".join(text).lower()))
            i = j
        elif c in _WORD or c > "\x7f":
            j = i + 1
            while j < n and (sql[j] in _WORD or sql[j] > "\x7f"):
                j += 1
            tokens.append(("word", sql[i:j].lower()))
            i = j
        else:
            tokens.append(("punct", c))
            i += 1
    return tokens


def _harmful(statement: list[tuple[str, str]]) -> bool:
    for k, (kind, text) in enumerate(statement):
        if kind == "word" and text in ("into", "update", "delete"):
            return True
        following = statement[k + 1] if k + 1 < len(statement) else None
        if kind in ("word", "ident") and text == "place_order" and following == ("punct", "("):
            return True
    return False


def _harmful_under(sql: str) -> list[str]:
    """The sql_modes under which the server would run something harmful in ``sql``: a
    statement it reads completely (several run one by one, even if a later one is cut
    short by an unterminated literal)."""
    modes = []
    for backslash_escapes in (True, False):
        for ansi_quotes in (False, True):
            try:
                tokens, complete = _lex(sql, backslash_escapes, ansi_quotes), True
            except _Unterminated as cut:
                tokens, complete = cut.tokens, False
            statements: list[list[tuple[str, str]]] = [[]]
            for token in tokens:
                if token == ("punct", ";"):
                    statements.append([])
                else:
                    statements[-1].append(token)
            run = statements if complete else statements[:-1]
            if any(_harmful(statement) for statement in run):
                names = [] if backslash_escapes else ["NO_BACKSLASH_ESCAPES"]
                names += ["ANSI_QUOTES"] if ansi_quotes else []
                modes.append(",".join(names) or "default")
    return modes


_QUOTING = [
    "'",
    '"',
    "`",
    "\\",
    "\\'",
    '\\"',
    "''",
    '""',
    " ",
    "a",
    ",",
    "-- ",
    "#",
    "\n",
    " INTO @x",
    " FOR UPDATE",
    "; DELETE FROM t",
    ", place_order(1)",
]


def test_the_reference_lexer_sees_what_the_modes_hide() -> None:
    assert _harmful_under("SELECT 'a\\'; DELETE FROM t; -- '") == [
        "NO_BACKSLASH_ESCAPES",
        "NO_BACKSLASH_ESCAPES,ANSI_QUOTES",
    ]
    assert _harmful_under('SELECT "a\\" INTO @x -- "') == [
        "ANSI_QUOTES",
        "NO_BACKSLASH_ESCAPES",
        "NO_BACKSLASH_ESCAPES,ANSI_QUOTES",
    ]
    assert _harmful_under("SELECT 'a INTO @x") == []  # unterminated: never run
    assert len(_harmful_under("SELECT 'a' INTO @x; 'b")) == 4  # the first statement runs


@settings(max_examples=600, deadline=None)
@given(pieces=st.lists(st.sampled_from(_QUOTING), min_size=1, max_size=10))
def test_quotes_and_escapes_read_alike_under_every_sql_mode(pieces: list[str]) -> None:
    """Backslashes, doubled quotes, double quotes as strings or (ANSI_QUOTES) identifiers:
    if any sql_mode lets the server see a write or a lock, the scanner must not call the
    text a read."""
    sql = "SELECT " + "".join(pieces)
    modes = _harmful_under(sql)
    note(f"harmful under: {modes}")
    if modes:
        assert classify(sql) is not READ, (sql, modes)


# -- minimal examples found by the fuzzing above (checked against MariaDB below) -------

# Each runs a stored function (which may write), takes a lock or sets session state on a
# real MariaDB 10.11, yet the scanner reads it as a plain read: a killed connection would
# send it again, applying the write twice. The scanner only counts a call when a bare name
# is followed by '(' after spaces or tabs.
MISREAD_AS_READ = [
    "SELECT `place_order`(1)",  # a quoted name is still a call
    "SELECT shop.`place_order`(1)",
    "SELECT {fn `place_order`(1)}",
    "SELECT place_order/**/(1)",  # a comment is a space
    "SELECT place_order -- c\n(1)",
    "SELECT place_order # c\n(1)",
    "SELECT place_order\f(1)",  # \f and \v are spaces
    "SELECT place_order\v(1)",
    "SELECT `GET_LOCK`('a', 0)",  # a quoted built-in is the built-in
    "SELECT `LAST_INSERT_ID`(5)",
    'SELECT "place_order"(1)',  # under sql_mode ANSI_QUOTES
]
# Classified SESSION (journaled, replayed on every new connection) though they write.
MISREAD_AS_SESSION = [
    "SET wait_timeout = `place_order`(100)",
    "SET wait_timeout = place_order/**/(100)",
    "SET wait_timeout = 100, @@global.div_precision_increment = 7",
    "SET SESSION wait_timeout = 100, GLOBAL div_precision_increment = 7",
]


@pytest.mark.parametrize("sql", MISREAD_AS_READ + MISREAD_AS_SESSION)
def test_found_misclassifications(sql: str) -> None:
    assert classify(sql) is WRITE


# -- the same on a real server -----------------------------------------------------------

SQL_MODES = ["", "NO_BACKSLASH_ESCAPES", "ANSI_QUOTES", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES"]
_USER_VARIABLES = ("x", "a", "b", "v", "n", "token")
_WATCHED_GLOBAL = "div_precision_increment"


@dataclass
class Scratch:
    """A database on the shared server with what the grammar names: a table ``t`` with
    rows, stored functions that write to ``log``, a sequence ``s``, a procedure ``p``."""

    server: Any
    kwargs: dict[str, Any]
    admin: Any

    @property
    def name(self) -> str:
        return str(self.kwargs["database"])

    def scalar(self, sql: str, args: Any = None) -> Any:
        with self.admin.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone()[0]


@pytest.fixture
def scratch(server: Any, db: dict[str, Any]) -> Iterator[Scratch]:
    admin = server.admin(database=db["database"])
    with admin.cursor() as cur:
        cur.execute("INSERT INTO t (uid, v) VALUES ('a', 1), ('b', 2), ('c', 3)")
        cur.execute("CREATE TABLE log (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB")
        cur.execute("CREATE SEQUENCE s")
        for name, params, value in (("place_order", "x INT", "x"), ("audit_read", "x INT", "x")):
            cur.execute(
                f"CREATE FUNCTION {name}({params}) RETURNS INT NOT DETERMINISTIC MODIFIES SQL "
                f"DATA BEGIN INSERT INTO log (v) VALUES ({value}); RETURN {value}; END"
            )
        cur.execute(
            "CREATE FUNCTION f() RETURNS INT NOT DETERMINISTIC MODIFIES SQL DATA "
            "BEGIN INSERT INTO log (v) VALUES (0); RETURN 0; END"
        )
        cur.execute("CREATE PROCEDURE p() MODIFIES SQL DATA INSERT INTO log (v) VALUES (-1)")
    try:
        yield Scratch(server, db, admin)
    finally:
        admin.close()


@dataclass
class Observation:
    """What running one statement in a READ ONLY transaction left behind."""

    error: int | None = None
    effects: list[str] = field(default_factory=list)


def _observe(scratch: Scratch, sql: str, sql_mode: str) -> Observation:
    """Run ``sql`` on a new session in ``START TRANSACTION READ ONLY`` under ``sql_mode``
    and report what the server did: refuse it as a write (1792), write rows (a stored
    function), hold row locks, hold GET_LOCK('a'), set user variables, LAST_INSERT_ID or
    a sequence step, or change a global variable."""
    seen = Observation()
    log_rows = scratch.scalar("SELECT COUNT(*) FROM log")
    global_before = scratch.scalar(f"SELECT @@global.{_WATCHED_GLOBAL}")
    conn = pymysql.connect(
        **scratch.kwargs,
        autocommit=True,
        client_flag=CLIENT.MULTI_STATEMENTS,
        read_timeout=10,
        ssl_disabled=True,  # a session per example: PyMySQL's TLS context costs ~25 ms
    )
    try:
        cur = conn.cursor()
        if sql_mode:
            cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',', %s)", (sql_mode,))
        cur.execute("START TRANSACTION READ ONLY")
        try:
            args = (1,) * sql.count("%s") if "%s" in sql else None
            cur.execute(sql, args)
            while cur.nextset():
                pass
        except pymysql.MySQLError as exc:
            seen.error = exc.args[0] if exc.args and isinstance(exc.args[0], int) else -1
        except (ValueError, TypeError):  # PyMySQL's own formatting of a stray '%'
            seen.error = -1
        if seen.error == 1792:
            seen.effects.append("refused in a READ ONLY transaction as a write (1792)")
        try:  # does this session hold row locks? (another session asks without waiting)
            scratch.scalar("SELECT COUNT(*) FROM t FOR UPDATE NOWAIT")
        except pymysql.MySQLError:
            seen.effects.append("holds row locks on t")
        holder = scratch.scalar("SELECT IS_USED_LOCK('a')")
        if holder is not None:  # released when this session ends, below
            seen.effects.append(f"holds GET_LOCK('a') (session {holder})")
        with conn.cursor() as check:
            check.execute("ROLLBACK")
            check.execute(
                "SELECT "
                + ", ".join(f"@{name}" for name in _USER_VARIABLES)
                + ", LAST_INSERT_ID(), PREVIOUS VALUE FOR s"
            )
            row = check.fetchone()
        set_vars = [
            f"@{name}"
            for name, value in zip(_USER_VARIABLES, row, strict=False)
            if value is not None
        ]
        if set_vars:
            seen.effects.append(f"set {', '.join(set_vars)}")
        if row[len(_USER_VARIABLES)]:
            seen.effects.append(f"set LAST_INSERT_ID() to {row[len(_USER_VARIABLES)]}")
        if row[len(_USER_VARIABLES) + 1] is not None:
            seen.effects.append("took a value from sequence s")
    finally:
        conn.close()
    written = scratch.scalar("SELECT COUNT(*) FROM log") - log_rows
    if written:
        seen.effects.append(f"wrote {written} row(s)")
    global_after = scratch.scalar(f"SELECT @@global.{_WATCHED_GLOBAL}")
    if global_after != global_before:
        seen.effects.append(f"changed @@global.{_WATCHED_GLOBAL}")
        scratch.admin.cursor().execute(f"SET GLOBAL {_WATCHED_GLOBAL} = %s", (global_before,))
    return seen


def _on_server(scratch: Scratch, sql: str) -> str:
    return sql.replace("`shop`.", f"`{scratch.name}`.").replace("shop.", f"{scratch.name}.")


@pytest.mark.server
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(statement=st.one_of(READS, DANGEROUS), tail=TAIL)
def test_what_the_scanner_calls_a_read_is_a_read_on_the_server(
    scratch: Scratch, statement: str, tail: str
) -> None:
    """The cross-check: a statement classified READ, run in a READ ONLY transaction under
    each sql_mode, is never refused as a write (1792) and leaves nothing behind."""
    sql = _on_server(scratch, statement + tail)
    assume(classify(sql) is READ)
    for sql_mode in SQL_MODES:
        seen = _observe(scratch, sql, sql_mode)
        assert not seen.effects, f"{sql!r} is classified READ, but (sql_mode={sql_mode!r}) " + (
            "; ".join(seen.effects)
        )


@pytest.mark.server
@pytest.mark.parametrize("sql", MISREAD_AS_READ + MISREAD_AS_SESSION)
def test_the_server_confirms_the_misclassifications(scratch: Scratch, sql: str) -> None:
    """Each minimal example really writes, locks or sets state on MariaDB (the first half
    of the assertion proves the example), and must therefore be a WRITE."""
    sql = _on_server(scratch, sql)
    effects = []
    for sql_mode in SQL_MODES:
        effects += [
            f"{sql_mode or 'default'}: {e}" for e in _observe(scratch, sql, sql_mode).effects
        ]
    assert effects, f"{sql!r} did nothing on the server: not an example"
    assert classify(sql) is WRITE, f"{sql!r} is classified {classify(sql).name}, but " + (
        "; ".join(effects)
    )


@pytest.mark.server
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t FOR\u00a0UPDATE",  # an alias named 'FOR\u00a0UPDATE', no lock
        "SELECT 1\u00a0INTO @x",  # a column named '1\u00a0INTO', then an error
        "SELECT * FROM t FOR\u2003UPDATE",
        "SELECT * FROM t FOR\u3000SHARE",
        "SELECT * FROM t WHERE id = 1\u00a0",
    ],
)
def test_unicode_spaces_are_letters_to_the_server_and_the_scanner(
    scratch: Scratch, sql: str
) -> None:
    """U+00A0 and the other Unicode spaces are part of a word to MariaDB as to the
    scanner: these are reads (or errors), and take no lock."""
    for sql_mode in SQL_MODES:
        assert not _observe(scratch, sql, sql_mode).effects
    assert classify(sql) is READ
