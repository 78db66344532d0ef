"""What a SQL statement may do, judged from its text alone.

The classifier answers one question for the safety rules: may this statement be sent
again after a connection died with it in flight? Only a *plain read* may. Anything the
scanner cannot read with certainty (executable comments, several statements, unterminated
literals, side-effecting functions) is classified as a write: a wrong "write" costs one
error a user sees; a wrong "read" could apply a write twice.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NEXT_GTID",
    "NEXT_GTID_SEQ_NO",
    "NEXT_INSERT_ID",
    "ONE_SHOT",
    "ONE_SHOT_STATE",
    "RELEASED_BY",
    "REPLAYABLE",
    "TAKEN_BY_A_WRITE",
    "WITH_ONE_SHOT",
    "Statement",
    "StatementKind",
    "assignments",
    "classify",
    "commits_implicitly",
    "foldable",
    "key_names",
    "one_shot_effects",
    "replayable",
    "session_effects",
    "session_key",
    "statement",
]


class StatementKind(enum.Enum):
    """The classes of statement the engine tells apart."""

    READ = "read"
    """A plain read: re-sending it changes nothing."""
    WRITE = "write"
    """Anything that may change data, locks or session state."""
    SESSION = "session"
    """A session setting (``SET [SESSION] var = literal``, ``USE db``): writes no data,
    takes no lock, and may be sent again."""
    BEGIN = "begin"
    """``BEGIN`` / ``START TRANSACTION``: opens an explicit transaction."""
    COMMIT = "commit"
    ROLLBACK = "rollback"


_READ_VERBS = frozenset({"select", "show", "describe", "desc", "explain"})
# Words that turn a SELECT into something that writes, locks, or changes state.
_NOT_PLAIN = frozenset(
    {
        "into",  # SELECT ... INTO OUTFILE / @var
        "update",  # FOR UPDATE, or EXPLAIN UPDATE
        "share",  # FOR SHARE, LOCK IN SHARE MODE
        "lock",
        "get_lock",
        "release_lock",
        "release_all_locks",
        "is_used_lock",  # harmless, but kept with its family for clarity
        "nextval",
        "setval",
        "lastval",
        "last_insert_id",  # LAST_INSERT_ID(expr) sets session state
        "insert",
        "delete",
        "replace",
        "call",
        "load",
        "handler",
        "do",
        "set",
    }
)
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")


class _Unreadable(Exception):
    """The scanner cannot be sure what the server would see."""


class _Several(_Unreadable):
    """A second statement follows the ``;`` at ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__("several statements")
        self.at = at


_Scanned = tuple[list[str], bool, bool, set[str], set[str], bool]
_REPLAYABLE_WORD = "resilient_dbapi:replayable"
REPLAYABLE = f"/* {_REPLAYABLE_WORD} */"
"""A comment that lets a write calling ``NOW()``, ``RAND()``, ``UUID()`` or another
built-in whose value differs from one call to the next be replayed
(``ReplayTransaction``): put in its text, anywhere outside a literal, it says a replay
may write other values than the first run did and nothing the caller relies on
changes. A stored function is never replayed, marked or not."""


def replayable(sql: str) -> str:
    """``sql`` with the :data:`REPLAYABLE` comment before it."""
    if not isinstance(sql, str):
        kind = type(sql).__name__
        raise TypeError(f"replayable() takes the statement's text (a str), not {kind}")
    return f"{REPLAYABLE} {sql}"


def _scan(sql: str, backslash_escapes: bool) -> _Scanned:
    """Split ``sql`` into lower-case words outside literals and comments.

    Returns the words, whether an assignment ``:=`` was seen, whether a user variable
    ``@x`` was, the names followed by ``(`` (function calls, and keywords before a
    parenthesis; see :func:`_call_name` for how a call is written down), the system
    variables read (``@@x``, ``@@session.x``), and whether a comment said the
    statement may be replayed (:data:`REPLAYABLE`).
    Raises ``_Unreadable`` for executable comments, unterminated literals or comments,
    and a second statement after a ``;``.
    """
    words: list[str] = []
    assigns = user_vars = False
    calls: set[str] = set()
    sysvars: set[str] = set()
    i, n = 0, len(sql)
    ended = False  # a ';' was seen: only whitespace and comments may follow
    ended_at = 0
    # The name a "(" would make a call of: the server reads f/**/(1), f -- c\n(1) and
    # `f`(1) as calls, so whitespace and comments keep it and any other token ends it.
    callee: str | None = None
    quoted = qualified = spaced = False  # how the callee was written
    dotted = False  # a '.' follows a name: the next name is qualified (db.f)
    closed = False  # the last token was ')'

    sysvar = False  # '@@' was read: the next name is a system variable (or its scope)
    marked = False
    while i < n:
        c = sql[i]
        if c in " \t\r\n\f\v":
            spaced = True
            i += 1
        elif c == "#" or (
            c == "-" and sql.startswith("--", i) and (i + 2 == n or sql[i + 2] <= " ")
        ):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            spaced = True
        elif c == "-" and sql.startswith("--", i):
            # A comment to PostgreSQL, two minus signs to MySQL: the dialects disagree.
            raise _Unreadable("'--' without a space")
        elif c == "/" and sql.startswith("/*", i):
            if sql.startswith("/*!", i) or sql.startswith("/*M!", i):
                raise _Unreadable("executable comment")
            j = sql.find("*/", i + 2)
            if j < 0:
                raise _Unreadable("unterminated comment")
            if "/*" in sql[i + 2 : j]:
                raise _Unreadable("nested comment")  # PostgreSQL nests them, MySQL does not
            if sql[i + 2 : j].strip().lower() == _REPLAYABLE_WORD:
                marked = True
            i = j + 2
            spaced = True
        elif c == "$":
            # PostgreSQL's dollar quoting ($$...$$, $tag$...$tag$) hides anything.
            raise _Unreadable("dollar quoting")
        elif ended:
            raise _Several(ended_at)
        elif c == ";":
            ended = True
            ended_at = i
            callee = None
            dotted = sysvar = False
            i += 1
        elif c in "'\"`":
            j = _skip_quoted(sql, i, c, backslash_escapes and c != "`")
            if c == "'":
                callee = None
            else:  # `f`(...) or, under ANSI_QUOTES, "f"(...)
                callee = sql[i + 1 : j - 1].replace(c + c, c).lower()
                quoted, qualified, spaced = True, dotted, False
            dotted = sysvar = closed = False
            i = j
        elif c in _WORD_CHARS or c > "\x7f":
            j = i + 1
            while j < n and (sql[j] in _WORD_CHARS or sql[j] > "\x7f"):
                j += 1
            word = sql[i:j].lower()
            words.append(word)
            if sysvar:
                # @@x, or the scope of @@session.x: the name follows the dot.
                sysvar = word in _SYSVAR_SCOPES and sql[j:].lstrip().startswith(".")
                if not sysvar:
                    sysvars.add(word)
            # AGAINST right after MATCH (...) is MATCH's syntax; anywhere else, a name.
            matched = word == "against" and closed and "match" in calls
            callee = "match against" if matched else word
            quoted, qualified, spaced = False, dotted, False
            dotted = closed = False
            i = j
        else:
            if c == "(" and callee is not None:
                calls.add(_call_name(callee, quoted, qualified, spaced))
            was_name = callee is not None
            callee = None
            closed = c == ")"
            dotted = c == "." and was_name
            if c == ":" and sql.startswith(":=", i):
                assigns = True
            elif c == "@":
                if sql.startswith("@@", i):
                    i += 1  # a system variable such as @@session.wait_timeout
                    sysvar = True
                else:
                    user_vars = True  # session state a new connection lacks
            elif c == "." and sysvar:
                dotted, sysvar = False, True
            i += 1
    return words, assigns, user_vars, calls, sysvars, marked


_SYSVAR_SCOPES = frozenset({"session", "local", "global"})


def _call_name(name: str, quoted: bool, qualified: bool, spaced: bool) -> str:
    """How a call is written down among the calls: the lower-case name, marked when the
    server may resolve it to a stored function of that name even if it is a built-in's.
    MariaDB calls a stored function for ``db.f(``, for a quoted name (```f`(`` for some
    built-ins), and for ``f (`` or ``f/**/(`` unless ``f`` is a reserved word (checked
    against the server in the tests). A marked name is never a pure built-in."""
    if qualified:
        return "." + name
    if quoted:
        return "`" + name
    if spaced and name not in _RESERVED_CALLS:
        return " " + name
    return name


def _bare(call: str) -> str:
    """A call's name without its mark."""
    return call.lstrip(". `")


def _skip_quoted(sql: str, start: int, quote: str, backslash_escapes: bool) -> int:
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if backslash_escapes and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and sql[i + 1] == quote:  # a doubled quote stands for itself
                i += 2
            else:
                return i + 1
        else:
            i += 1
    raise _Unreadable("unterminated literal")


# Built-in functions that neither write nor lock, and keywords that may stand before a
# parenthesis. Any other name called in a SELECT may be a stored function that writes.
_PURE_CALLS = frozenset(
    """
    select from where and or not xor in exists on using join as union all distinct by having
    when then else case is like between over partition interval any some values row with
    into limit offset order group rlike regexp div mod if ifnull nullif coalesce
    isnull greatest least interval cast convert binary collate char nchar varchar decimal
    signed unsigned date time datetime timestamp year month day hour minute second week
    weekday weekofyear dayofweek dayofmonth dayofyear quarter yearweek monthname dayname
    now current_timestamp current_date current_time curdate curtime sysdate utc_timestamp
    utc_date utc_time localtime localtimestamp date_format time_format date_add date_sub
    adddate subdate addtime subtime datediff timediff timestampdiff timestampadd to_days
    from_days to_seconds unix_timestamp from_unixtime str_to_date makedate maketime
    last_day extract period_add period_diff sec_to_time time_to_sec get_format
    convert_tz count sum avg min max group_concat std stddev stddev_pop stddev_samp
    variance var_pop var_samp bit_and bit_or bit_xor json_arrayagg json_objectagg
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value
    last_value nth_value median percentile_cont percentile_disc
    concat concat_ws substring substr substring_index left right length char_length
    character_length octet_length bit_length lower upper lcase ucase trim ltrim rtrim
    replace reverse repeat space lpad rpad locate position instr field find_in_set
    elt format insert strcmp ascii ord hex unhex bin oct conv quote soundex
    to_base64 from_base64 md5 sha sha1 sha2 crc32 compress uncompress uncompressed_length
    regexp_replace regexp_instr regexp_substr natural_sort_key
    abs sign ceil ceiling floor round truncate sqrt pow power exp ln log log2 log10 pi
    sin cos tan asin acos atan atan2 cot degrees radians rand
    uuid uuid_short sys_guid version database schema user current_user session_user
    system_user connection_id found_rows row_count charset collation coercibility
    benchmark sleep inet_aton inet_ntoa inet6_aton inet6_ntoa is_ipv4 is_ipv6
    json_extract json_unquote json_quote json_value json_query json_object json_array
    json_contains json_contains_path json_keys json_length json_depth json_type
    json_valid json_search json_set json_insert json_replace json_remove
    json_array_append json_array_insert json_merge json_merge_patch json_merge_preserve
    json_compact json_detailed json_loose json_exists json_overlaps
    st_astext st_geomfromtext st_distance index key force ignore match dual
    """.split()  # noqa: SIM905  (a word list reads best as words)
)
# PostgreSQL's own built-ins: pure there, unknown names to MariaDB (a stored function of
# that name is called).
_POSTGRES_CALLS = _PURE_CALLS | frozenset(
    """
    pg_sleep pg_backend_pid current_setting current_database current_schema
    pg_postmaster_start_time txid_current_if_assigned pg_current_xact_id_if_assigned
    """.split()  # noqa: SIM905
)
# Words that stand before "(" with a space or comment between and still mean themselves:
# reserved words that name no function MariaDB would call instead (a stored function
# named `count` is called by "count (1)"). Checked against the server in the tests.
_RESERVED_CALLS = frozenset(
    """
    all and as between binary by case char collate convert current_date current_time
    current_timestamp current_user decimal distinct div dual else exists force from group
    having if ignore in index insert interval into is join key left like limit localtime
    localtimestamp match mod not offset on or order over partition regexp repeat replace
    right rlike row_number select then union unsigned using utc_date utc_time
    utc_timestamp values varchar when where with xor
    any datetime get_format nchar row signed some timestampadd timestampdiff truncate user
    """.split()  # noqa: SIM905
)
# AGAINST after MATCH (...), as the scanner writes it down (see _scan).
_MATCH_AGAINST = frozenset({"match against"})
_PURE_CALLS |= _MATCH_AGAINST
_POSTGRES_CALLS |= _MATCH_AGAINST
_RESERVED_CALLS |= _MATCH_AGAINST

# SET forms that are not a plain session setting: server-wide, per-statement, or a role.
_NOT_SESSION = frozenset({"global", "persist", "persist_only", "password", "role", "statement"})
_SERVER_SCOPES = frozenset({"global", "persist", "persist_only"})


_SERVER_SCOPE_AND_OTHERS = frozenset(
    {"session settings made in one SET with server-wide ones (SET GLOBAL a = 1, SESSION b = 2)"}
)


def _sets_session_too(body: str) -> bool:
    """Whether a SET (its lowered text after ``set``) that begins server-wide also sets a
    session variable. A scope holds for the assignments after it until another
    (``GLOBAL a = 1, b = 2`` sets the global b), ``@@global.a`` is the one assignment's
    (a bare name after it is the session's), and ``@@b``, ``SESSION b``, ``NAMES`` are
    the session's (measured)."""
    if "\\" in body:
        return True  # its parts cannot be told apart with certainty: the weaker claim
    first, *later = (part.strip() for part in _top_level_parts(body))
    session_default = first.startswith("@@")
    for part in later:
        if part.startswith(_SERVER_WORDS):
            session_default = False
        elif part.startswith(("@@global", "@@persist")):
            continue
        elif _SCOPE.match(part) or part.startswith(_SESSION_ONLY) or session_default:
            return True
    return False


_SERVER_WORDS = ("global ", "persist ", "persist_only ")
_SESSION_ONLY = ("names", "character set", "charset")  # always the session's


def _plain_setting(rest: list[str]) -> bool:
    """``SET <rest>`` sets session variables (not GLOBAL, ROLE, a query's result...):
    every assignment's scope counts (``SET a = 1, GLOBAL b = 2`` changes the server)."""
    if not rest or rest[0] in _NOT_SESSION or rest[:2] == ["default", "role"] or _sets_role(rest):
        return False
    return "select" not in rest and not _SERVER_SCOPES.intersection(rest)


def _sets_role(rest: list[str]) -> bool:
    """``SET [SESSION | LOCAL] ROLE`` or ``SET [SESSION | LOCAL] SESSION AUTHORIZATION``
    (PostgreSQL): who the session acts as, which is never replayed (``SET app.role`` is
    a setting named role, not this)."""
    if rest[:2] == ["session", "authorization"]:
        return True
    if rest[:1] in (["session"], ["local"]):
        rest = rest[1:]
    return rest[:1] == ["role"] or rest[:2] == ["session", "authorization"]


# SET NAMES / CHARACTER SET are plain settings; REPLACE() and INSERT() string functions too.
_NOT_PLAIN_SET = _NOT_PLAIN - {"set", "replace", "insert"}


def _kind_of(words: list[str], assigns: bool, user_vars: bool, unknown: set[str]) -> StatementKind:
    """The kind of a readable statement; ``unknown``: the calls of no known pure built-in
    (see :func:`_unknown_calls`)."""
    # Reading a user variable is a read (the session check guards its value); setting
    # one (SET @x, :=, INTO @x) is not.
    if not words:
        return StatementKind.WRITE
    verb = words[0]
    rest = words[1:]
    if verb in _READ_VERBS:
        if assigns or _NOT_PLAIN.intersection(rest) or _uses_sequence(rest):
            return StatementKind.WRITE
        if unknown:
            return StatementKind.WRITE  # a stored function may write: never sent twice
        return StatementKind.READ
    if verb == "set" and rest:
        if (
            assigns
            or user_vars
            or not _plain_setting(rest)
            or _NOT_PLAIN_SET.intersection(rest)
            or unknown
        ):
            return StatementKind.WRITE
        return StatementKind.SESSION
    if verb == "use" and len(rest) == 1:
        return StatementKind.SESSION
    if verb == "begin" and rest in ([], ["work"]):
        return StatementKind.BEGIN
    if verb == "start" and rest[:1] == ["transaction"]:
        return StatementKind.BEGIN
    if verb == "commit" and _ends_transaction(rest):
        return StatementKind.COMMIT
    if verb == "rollback" and _ends_transaction(rest):
        return StatementKind.ROLLBACK
    return StatementKind.WRITE


def _ends_transaction(rest: list[str]) -> bool:
    """The words after COMMIT or ROLLBACK end the transaction (``[WORK] [AND [NO] CHAIN]
    [[NO] RELEASE]``), unlike ``ROLLBACK TO SAVEPOINT``."""
    return _TRANSACTION_END.fullmatch("".join(word + " " for word in rest)) is not None


_TRANSACTION_END = re.compile(r"(?:work )?(?:and (?:no )?chain )?(?:(?:no )?release )?")


def _uses_sequence(words: list[str]) -> bool:
    """``NEXT VALUE FOR seq`` / ``PREVIOUS VALUE FOR seq`` (MariaDB sequences)."""
    return any(
        w == "value" and i + 1 < len(words) and words[i + 1] == "for" for i, w in enumerate(words)
    )


_MAX_PARTS = 16


def _split(sql: str, backslash_escapes: bool) -> list[str] | None:
    parts: list[str] = []
    rest = sql
    while len(parts) < _MAX_PARTS:
        try:
            _scan(rest, backslash_escapes)
        except _Several as several:
            parts.append(rest[: several.at])
            rest = rest[several.at + 1 :]
            continue
        except _Unreadable:
            return None
        parts.append(rest)
        return parts
    return None


def _parts_text(sql: str) -> list[str] | None:
    parts = _split(sql, backslash_escapes=True)
    if parts is not None and "\\" in sql and _split(sql, backslash_escapes=False) != parts:
        return None  # split differently under NO_BACKSLASH_ESCAPES: cannot tell
    return parts


def statement_parts(sql: str | bytes) -> list[str]:
    """The statements in ``sql`` (``SET a = 1; SET b = 2`` is two); ``[sql]`` for one
    statement, or for a text the scanner cannot split with certainty."""
    if isinstance(sql, bytes | bytearray):
        sql = bytes(sql).decode("utf-8", "replace")
    return _parts_text(sql) or [sql]


_NOT_REBUILT = "state of a statement resilient_dbapi could not read"


# Built-ins that are no plain read but run no stored code: what they leave behind is
# named by its own rule (GET_LOCK() locks, the session's history).
_IMPURE_BUILTINS = frozenset(
    {"last_insert_id", "get_lock", "release_lock", "release_all_locks", "is_used_lock"}
    | {"is_free_lock", "nextval", "setval", "lastval"}
)
# Statements whose calls of unknown functions run them: a stored function may set user
# variables or take GET_LOCK() locks inside.
_RUNS_FUNCTIONS = frozenset(
    {"select", "insert", "update", "delete", "replace", "set", "do", "values", "with"}
)


def _effects_of(
    words: list[str], assigns: bool, user_vars: bool, calls: set[str], unknown: set[str]
) -> frozenset[str]:
    """The session state a readable statement creates that no replay rebuilds."""
    effects = set()
    verb = words[0] if words else ""
    if verb in _RUNS_FUNCTIONS and not _IMPURE_BUILTINS.issuperset(unknown):
        effects.add("state a stored function may have set")
    if user_vars and (verb in ("set", "call") or assigns or "into" in words):
        effects.add("user variables")
    # CREATE [OR REPLACE | GLOBAL | LOCAL] TEMPORARY (PostgreSQL also spells it TEMP),
    # PostgreSQL's SELECT ... INTO TEMP.
    if (verb == "create" and _temporary(words)) or (
        verb == "select"
        and "into" in words
        and words[words.index("into") + 1 : words.index("into") + 2] in (["temp"], ["temporary"])
    ):
        effects.add("temporary tables")
    if verb == "call":
        effects.add("state a stored procedure may have set (CALL)")
    if verb == "flush" and "lock" in words:
        effects.add("the global read lock (FLUSH TABLES WITH READ LOCK)")
    if (verb == "lock" and words[1:2] == ["instance"]) or (
        verb == "backup" and words[1:2] == ["stage"]
    ):
        effects.add("backup locks")
    if "get_lock" in words or any(_bare(call) == "get_lock" for call in calls):
        effects.add("GET_LOCK() locks")
    if verb == "lock" and words[1:2] in (["tables"], ["table"]):
        effects.add("table locks (LOCK TABLES)")
    if verb == "prepare":
        effects.add("prepared statements")
    if verb == "set" and _sets_role(words[1:]) and words[1:3] != ["default", "role"]:
        effects.add("the session's role (SET ROLE)")
    elif (
        verb == "set"
        and not effects
        and words[1:2]
        and words[1] not in _NOT_SESSION
        and words[1:3] != ["default", "role"]
        and _kind_of(words, assigns, user_vars, unknown) is StatementKind.WRITE
    ):
        effects.add("session settings resilient_dbapi cannot replay (SET with a query)")
    return frozenset(effects)


def _top_level_parts(text: str) -> list[str]:
    """``text`` split at commas outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


# A session scope before a variable's name, as the server reads it (spaces, or a comment
# _setting_text made one, around the dot): in lowered text.
_SCOPE = re.compile(r"@@\s*(?:session|local)\s*\.\s*|@@|(?:session|local)\s+")
# One assignment to a session system variable: an optional session scope, a plain name,
# "=". Names such as NAMES, CHARACTER SET or TRANSACTION never take this form.
_PLAIN_ASSIGNMENT = re.compile(
    r"\s*(?:@@session\.|@@local\.|@@|session\s+|local\s+)?[a-z_][a-z0-9_]*\s*=", re.IGNORECASE
)
# A value that reads nothing: the server evaluates every value of one SET before it
# assigns any, so a function or an expression could read a setting folded before it.
_LITERAL = re.compile(r"-?\d+(?:\.\d+)?|'[^'\\]*'|[a-z_][a-z0-9_]*", re.IGNORECASE)
# What could end the statement or hide what follows it, once appended to another.
_UNFOLDABLE = re.compile(r"--|#|/\*|;|\\|\n|\r|\bglobal\b|\bselect\b", re.IGNORECASE)


def assignments(sql: Any) -> str | None:
    """The assignment list of a MySQL ``SET`` of session system variables to literal
    values (``SET time_zone = '+00:00', sql_mode = ''``), to be sent within another
    ``SET``; None for anything else (names, character sets, a transaction's
    characteristics, user variables, functions and expressions, comments, several
    statements): those run on their own."""
    if not isinstance(sql, str) or _UNFOLDABLE.search(sql):
        return None
    text = sql.strip()
    if text[:4].lower() != "set ":
        return None
    body = text[4:].strip()
    for part in _top_level_parts(body):
        match = _PLAIN_ASSIGNMENT.match(part)
        if match is None or not _LITERAL.fullmatch(part[match.end() :].strip()):
            return None
    return body


ONE_SHOT = "a setting for the next transaction only (SET TRANSACTION)"
"""The session state a one-shot transaction setting makes on MySQL and MariaDB (``SET
TRANSACTION ...``, ``SET @@transaction_isolation = ...``): it is never journaled (it
shapes one transaction), so until the server spends it (``COMMIT``, ``ROLLBACK``, DDL)
no replay rebuilds it: the session is held (see ``Engine.unrestorable``)."""
WITH_ONE_SHOT = "settings made in one statement with a one-shot setting"
NEXT_INSERT_ID = "a value for the next generated id (SET insert_id) a write may have taken"
"""The session state ``SET insert_id = n`` makes: the next insert that generates an id
takes ``n``, and the server forgets it (measured on MariaDB, inside a transaction rolled
back too). Journaled until a write may have taken it; then, whether it still waits
cannot be told: the session is held until the caller sets it again."""
NEXT_GTID_SEQ_NO = "a sequence number for the next GTID (SET gtid_seq_no) a write may have taken"
"""MariaDB's ``SET gtid_seq_no = n``: the next transaction written to the binary log
takes ``n`` as its GTID's sequence number, once. Never journaled: replayed after a write
took it, the next transaction would log the GTID twice (or fail under
``gtid_strict_mode``), and once another session logged a later GTID the server refuses
the ``SET`` itself (1950), every statement of a new session with it. Held from the
start, until set again (0 or DEFAULT: none)."""
NEXT_GTID = "the next transaction's GTID (SET gtid_next)"
"""MySQL's ``SET gtid_next = 'uuid:n'``: the next transaction, a read's too, takes that
GTID, and one whose GTID the server has executed is skipped without a word. Never
journaled (a read may take it): the session is held until ``SET gtid_next =
'AUTOMATIC'``."""
TAKEN_BY_A_WRITE = {"insert_id": NEXT_INSERT_ID}
"""The session variables whose value the next write takes once, and the session state
each makes: journaled alone until a write may have taken it (``Engine.settings_made``)."""
RELEASED_BY = {**TAKEN_BY_A_WRITE, "gtid_seq_no": NEXT_GTID_SEQ_NO, "gtid_next": NEXT_GTID}
"""The variable whose new value (0, DEFAULT, ``'AUTOMATIC'``: none) ends each hold."""
_ONE_SHOT_EFFECTS = frozenset({ONE_SHOT})
_JOURNALED_ALONE = frozenset(TAKEN_BY_A_WRITE.values())
ONE_SHOT_STATE = frozenset({ONE_SHOT, WITH_ONE_SHOT, *RELEASED_BY.values()})
"""What :func:`one_shot_effects` may name."""
# The variables that SET @@name (no scope) sets for the next transaction only.
_ONE_SHOT_VARIABLES = frozenset(
    {"tx_isolation", "tx_read_only", "transaction_isolation", "transaction_read_only"}
)
# The values of those that set none (lowered, stripped).
_NONE_SET = re.compile(r"\s*(?:0+|default|'automatic'|\"automatic\"|automatic)\s*$")


def key_names(key: str | None) -> list[str]:
    """The variables a setting's journal key (:func:`session_key`) names: ``set a,b``,
    or ``set a,b <- text`` (a value computed from others, or several statements)."""
    if key is None or not key.startswith("set "):
        return []
    return key[4:].split(" <- ", 1)[0].split(",")


def _unscoped(part: str) -> str:
    """One lowered assignment of a SET without its session scope (``@@session.``)."""
    scope = _SCOPE.match(part)
    return part[scope.end() :].strip() if scope else part


# Quoted texts and names (kept as they are), or a comment the server skips (not the
# executable /*! ... */ and /*M! ... */ forms; "--" needs a space or control after it).
_QUOTED_OR_COMMENT = re.compile(
    r"""('(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`[^`]*`)"""
    r"|/\*(?!!|M!).*?\*/|(?:--(?=[\x00-\x20]|$)|#)[^\n]*",
    re.DOTALL,
)


def _uncommented(match: re.Match[str]) -> str:
    return match.group(1) or " "


def _setting_text(sql: str | bytes) -> str:
    if isinstance(sql, bytes | bytearray):
        sql = bytes(sql).decode("utf-8", "replace")
    if "/*" in sql or "--" in sql or "#" in sql:
        sql = _QUOTED_OR_COMMENT.sub(_uncommented, sql)
    return " ".join(sql.strip().rstrip(";").split())


def one_shot_effects(sql: str | bytes) -> frozenset[str]:
    """For a session statement: whether it sets something for the next transaction only
    (:data:`ONE_SHOT`) or a value the next write or transaction takes
    (:data:`RELEASED_BY`), alone or with other settings (then none of them is journaled,
    and the session is held for good)."""
    return _one_shot_of(_setting_text(sql).lower())


def _one_shot_of(lowered: str) -> frozenset[str]:
    """:func:`one_shot_effects` of a text as :func:`_setting_text` left it, lowered."""
    if not lowered.startswith("set "):
        return _NO_EFFECTS
    body = lowered[4:]
    if body.split()[:1] == ["transaction"]:
        return _ONE_SHOT_EFFECTS
    parts = [part.strip() for part in _top_level_parts(body)]
    held = set()
    shots = 0
    for part in parts:
        if part.startswith("@@") and not part.startswith(("@@session.", "@@local.", "@@global.")):
            name = part[2:].split("=", 1)[0].strip().strip("`")
            if name in _ONE_SHOT_VARIABLES:
                held.add(ONE_SHOT)
                shots += 1
                continue
        name, assigns, value = _unscoped(part).partition("=")
        held_by = RELEASED_BY.get(name.rstrip(" :").strip("`")) if assigns else None
        if held_by is not None and not _NONE_SET.match(value):
            held.add(held_by)
            shots += 1
    if not shots:
        return _NO_EFFECTS
    if shots < len(parts):
        held.add(WITH_ONE_SHOT)
    return frozenset(held)


def session_key(sql: str | bytes) -> str | None:
    """What a session statement sets, so that a later one setting the same replaces it
    in the journal; None for a statement that must not be replayed (``SET TRANSACTION``
    without ``SESSION`` only shapes the next transaction: see :func:`one_shot_effects`)."""
    text = _setting_text(sql)
    lowered = text.lower()
    if _one_shot_of(lowered) - _JOURNALED_ALONE:
        return None  # SET insert_id alone is journaled until a write (Engine.settings_made)
    if lowered.startswith("use "):
        return "use"
    if not lowered.startswith("set "):
        return lowered
    body = lowered[4:]
    names = []
    computed = False
    for part in _top_level_parts(body):
        part = part.strip()
        if not part:  # a trailing comma (or one inside a comment): no name to key by
            return lowered
        part = _unscoped(part)
        if part.startswith(_SESSION_ONLY):
            names.append("names")
        elif part.split()[:1] == ["transaction"]:
            names.append(" ".join(part.split()[:2]))
        elif "=" in part:
            name, value = part.split("=", 1)
            names.append(name.strip().strip("`"))
            computed = computed or "@@" in value
        else:
            return lowered
    if computed:
        # Computed from current values (CONCAT(@@sql_mode, ...)): it must replay after
        # the settings it builds on, not replace them. Every name it sets stays readable
        # (the engine reads them: identity, insert_id).
        return f"set {','.join(names)} <- {text}"
    return "set " + ",".join(names)


# Settings that change how the server reads the text of later statements.
_PARSING = re.compile(r"(?:sql_mode|character_set_\w+|collation\w*)\s*=", re.IGNORECASE)


def foldable(journal: list[tuple[str, Any]]) -> list[str]:
    """The assignment lists of the journal's first entries that may be sent within one
    ``SET`` (see :func:`assignments`): in order, up to the
    first that may not, which runs on its own with all after it."""
    folded = []
    for method, payload in journal:
        # Only without arguments: with some (even empty), the driver formats the text.
        body = assignments(payload[0]) if method == "execute" and payload[1] is None else None
        if body is None:
            break
        folded.append(body)
        if _PARSING.search(body):
            # The server parses a statement whole before running it: what follows was
            # written for the parsing this one sets (ANSI_QUOTES, a character set).
            break
    return folded


# Statements after which the server has committed any open transaction.
_COMMITTING_VERBS = frozenset(
    {
        "alter",
        "truncate",
        "rename",
        "grant",
        "revoke",
        "lock",
        "unlock",
        "analyze",
        "optimize",
        "repair",
        "check",
        "flush",
        "reset",
        "install",
        "uninstall",
        "begin",
        "start",
        "commit",
    }
)
# Statements that never commit an open transaction. Any other verb may: what is not known
# not to commit is "cannot tell" (a procedure's or a prepared statement's body, XA, a
# verb the list does not know).
_NEVER_COMMITTING_VERBS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "replace",
        "do",
        "show",
        "describe",
        "desc",
        "explain",
        "values",
        "table",
        "with",
        "handler",
        "savepoint",
        "release",
        "rollback",
        "use",
        "prepare",
        "deallocate",
        "cache",
        "load",
        "kill",
        "help",
        "signal",
        "resignal",
        "get",
    }
)
_ON = (["1"], ["on"], ["true"])
_OFF = (["0"], ["off"], ["false"])


def _commits_of(words: list[str]) -> bool | None:
    """Whether a readable single statement commits an open transaction before it runs;
    None: cannot tell."""
    verb = words[0] if words else ""
    if verb in _COMMITTING_VERBS:
        return True
    if verb in ("create", "drop"):
        return not _temporary(words)
    if verb == "set":
        if words[1:2] == ["password"]:
            return True
        commits: bool | None = False
        for i, word in enumerate(words):
            if word == "autocommit":
                # Turning autocommit on commits what is open. Only a value read as off
                # for certain is not a commit ('ON' in quotes, DEFAULT, 2-1 ... may be on).
                value = words[i + 1 : i + 2]
                if value in _ON:
                    return True
                if value not in _OFF:
                    commits = None
        return commits
    if verb in _NEVER_COMMITTING_VERBS:
        return False
    return None


_ATOMIC_WRITES = frozenset({"insert", "update", "delete", "replace"})
# INSERT/REPLACE's table followed by its column list reads as a call to the scanner.
_INSERT_HEAD = re.compile(
    r"\s*(?:insert|replace)\s+(?:(?:low_priority|delayed|high_priority|ignore)\s+)*"
    r"(?:into\s+)?(?:(?:`[^`]*`|\"[^\"]*\"|\w+)\s*\.\s*)?(?P<table>`[^`]*`|\"[^\"]*\"|\w+)\s*"
    r"(?P<partition>partition\s*\([^)]*\)\s*)?\(",
    re.IGNORECASE,
)


# Whitespace and plain comments before a statement (an application's /* tag */).
_LEADING = re.compile(r"(?:\s+|/\*(?![!M]).*?\*/|#[^\n]*\n?|--\s[^\n]*\n?)*", re.DOTALL)


def _unknown_calls(sql: str, words: list[str], calls: set[str], pure: frozenset[str]) -> set[str]:
    """The calls of ``sql`` that are no known pure built-in: a stored function of that
    name may run (INSERT's table before its column list is no call)."""
    unknown = calls - pure
    if unknown and words[:1] in (["insert"], ["replace"]):
        head = _INSERT_HEAD.match(sql, _LEADING.match(sql).end())  # type: ignore[union-attr]
        if head is not None:
            name = head["table"].strip('`"').lower()
            unknown -= {name, " " + name, "`" + name, "." + name, "partition"}
    return unknown


_IDENT = r"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"
_RETURNING_WRITE = re.compile(
    r"\s*(?:(?:insert|replace)(?:\s+(?:low_priority|delayed|high_priority|ignore))*"
    r"(?:\s+into)?|delete(?:\s+(?:low_priority|quick|ignore))*\s+from)"
    rf"\s+({_IDENT})(?:\s*\.\s*({_IDENT}))?"
    r"(?=\s*\(|\s+(?:values?|set|select|partition|where|order|limit|returning)\b)",
    re.IGNORECASE,
)


def _unquoted(ident: str) -> str:
    return ident[1:-1].replace("``", "`") if ident.startswith("`") else ident


def _returning_table(sql: str) -> tuple[str, str] | None:
    """The one table a ``INSERT``/``REPLACE``/``DELETE ... RETURNING`` writes, as
    (database or "", name); None for any other form (several tables, a leading comment)."""
    found = _RETURNING_WRITE.match(sql)
    if found is None:
        return None
    first, second = found.group(1), found.group(2)
    if second is None:
        return "", _unquoted(first)
    return _unquoted(first), _unquoted(second)


_TRACKING_NAME = "session_track_transaction_info"
_RESHAPING_VERBS = frozenset({"create", "alter", "drop", "rename"})
# Not LOCK (its locks stay), FLUSH (... WITH READ LOCK), the table maintenance verbs
# (they answer with rows, whose end PyMySQL does not take the server's flags from), nor
# TRUNCATE (of a temporary table, named as any other, it may not commit).
_SELF_COMMITTING_VERBS = frozenset({*_RESHAPING_VERBS, "grant", "revoke"})


def _temporary(words: list[str]) -> bool:
    """``CREATE [OR REPLACE | GLOBAL | LOCAL] TEMPORARY``, or PostgreSQL's ``TEMP`` in
    the same place (not a table or column named temp)."""
    if "temporary" in words[1:4]:
        return True
    at = 3 if words[1:3] == ["or", "replace"] else 2 if words[1:2] in (["global"], ["local"]) else 1
    return words[at : at + 1] == ["temp"]


_LOCKING = frozenset({"update", "share", "lock"})


def _locks_only(words: list[str], assigns: bool, unknown: set[str]) -> bool:
    """Whether a SELECT would be a plain read but for its row-locking clause."""
    rest = words[1:]
    return (
        words[:1] == ["select"]
        and not assigns
        and not unknown
        and not _uses_sequence(rest)
        and _NOT_PLAIN.intersection(rest) <= _LOCKING
    )


def _atomic_write(words: list[str], unknown: set[str]) -> bool:
    """Whether a readable single write is applied whole or not at all."""
    return bool(words) and words[0] in _ATOMIC_WRITES and not unknown


_HISTORY_CALLS = frozenset({"last_insert_id", "row_count", "found_rows", "connection_id"})
_HISTORY_VARS = frozenset(
    {"identity", "last_insert_id", "insert_id", "warning_count", "error_count"}
)


_INSERT_ID_CALLS = frozenset({"last_insert_id"})
_INSERT_ID_VARS = frozenset({"identity", "last_insert_id", "insert_id"})


def _reads_only_insert_id(words: list[str], calls: set[str], sysvars: set[str]) -> bool:
    """Whether, of the session's history, it asks (or sets) only the last id the session
    generated: a history that outlasts the statements after it, until an insert
    generates another; and nothing a question sent just before it would change
    (``ROW_COUNT()``, the warnings)."""
    others = {call for call in calls if _bare(call) not in _INSERT_ID_CALLS}
    if _reads_history(words, others, sysvars - _INSERT_ID_VARS):
        return False
    return len(others) < len(calls) or not _INSERT_ID_VARS.isdisjoint(sysvars)


def _reads_history(words: list[str], calls: set[str], sysvars: set[str]) -> bool:
    """Whether the answer depends on what this session ran before (``LAST_INSERT_ID()``,
    ``FOUND_ROWS()``, ``SHOW WARNINGS``, ``@@identity`` ...): a new session answers it
    differently."""
    verb = words[0] if words else ""
    if verb == "show" and ("warnings" in words[1:4] or "errors" in words[1:4]):
        return True
    if verb == "get" and "diagnostics" in words[1:3]:
        return True
    return not _HISTORY_VARS.isdisjoint(sysvars) or any(
        _bare(call) in _HISTORY_CALLS for call in calls
    )


_NO_EFFECTS: frozenset[str] = frozenset()


_RESENDABLE = frozenset({StatementKind.READ, StatementKind.SESSION, StatementKind.BEGIN})
_STEADY = frozenset({StatementKind.READ, StatementKind.WRITE})


@dataclass(frozen=True, slots=True, eq=False)
class Statement:
    """What one SQL text may do, read once (one scan) and shared by every rule.

    Made by :func:`statement`, cached by the text as the caller wrote it (before the
    driver interpolates parameters). Conservative: what the scanner cannot prove safe is
    a write that may commit, applied perhaps in part."""

    kind: StatementKind
    commits: bool | None = False
    """Whether the server commits an open transaction before running it (DDL, ``LOCK
    TABLES``, ``BEGIN``, ``SET autocommit = 1``); None: cannot tell."""
    atomic: bool = True
    """Whether the server applies it whole or not at all (a single ``INSERT``, ``UPDATE``,
    ``DELETE`` or ``REPLACE`` calling no stored function; reads and settings), so that a
    refusal proves nothing of it was applied."""
    effects: frozenset[str] = _NO_EFFECTS
    """Session state it creates that a new connection cannot rebuild (for writes)."""
    key: str | None = None
    """For a session setting: what it sets, as one journal entry (see :func:`session_key`)."""
    parts: tuple[tuple[str | None, str], ...] = ()
    """For several session settings in one text: each one's key and text, replayed one
    by one."""
    xa: str = ""
    """For an XA statement, its verb (``start``, ``end``, ``prepare``, ``commit`` ...)."""
    history: bool = False
    """Whether its answer depends on the session's history (``LAST_INSERT_ID()``,
    ``SHOW WARNINGS``): never answered by a session that replaced the one it asks about."""
    insert_id: bool = False
    """Of :attr:`history`, whether it asks (or sets) only the last id the session
    generated (``LAST_INSERT_ID()``, ``@@identity``), which outlasts the statements after
    it: a new session answers 0 until an insert on it generates one."""
    chains: bool = False
    """``COMMIT``/``ROLLBACK ... AND CHAIN``: it opens a new transaction as it ends one,
    which a new session would not have."""
    locks: bool = False
    """A ``SELECT`` whose only effect is row locks (``FOR UPDATE``, ``LOCK IN SHARE
    MODE``): a write by kind (never sent twice), but it writes no table."""
    table: tuple[str, str] | None = None
    """For a single-table write answered with rows (``INSERT ... RETURNING``), whose
    reply names no table it cannot roll back: the table it writes, as (database, name);
    the database is "" for the current one."""
    reshapes: bool = False
    """Whether it may change what a table is (DDL: ``ALTER TABLE ... ENGINE=MyISAM``, a
    trigger, a view), or may run some (a procedure, several statements, a verb the
    scanner does not know): what was learned of tables is then forgotten."""
    self_commits: bool = False
    """DDL the server commits as it ends (``CREATE``, ``ALTER``, ``DROP``, ``RENAME``,
    ``GRANT``, ``REVOKE``, not ``TEMPORARY``; MySQL and MariaDB): it leaves
    no transaction open, and its reply (never rows) carries the server's fresh flags."""
    volatile: bool = False
    """A write calling what differs from one call to the next (``NOW()``, ``RAND()``,
    ``UUID()``, a sequence's next value ...): run again, it may write other values
    than the first time without its reply showing it, so it is never replayed."""
    unsettles: bool = False
    """Whether it may change, unseen, what the engine relies on in the session: the
    current database (a ``USE`` among several statements) or the server's reports
    (``session_track_transaction_info`` set in a form not read as a setting, or by a
    procedure or a verb the scanner does not know)."""
    # Derived once, for the hot path (an enum's hash is a Python call).
    resendable: bool = dataclasses.field(init=False)
    """Whether sending it again after a connection died with it in flight changes
    nothing the caller could see (a plain read, a setting, ``BEGIN``)."""
    steady: bool = dataclasses.field(init=False)
    """A read or a write that neither begins nor ends a transaction, nor changes what
    the engine relies on: inside an open transaction it leaves the transaction open."""
    unreplayable: bool = dataclasses.field(init=False)
    """Run inside a transaction, it keeps that transaction from a verified replay: a
    setting (replayed from the journal before BEGIN, out of order), session state, an XA
    verb, what the scanner cannot vouch for, or a volatile write."""

    def __post_init__(self) -> None:
        kind = self.kind
        object.__setattr__(self, "resendable", kind in _RESENDABLE)
        object.__setattr__(
            self,
            "steady",
            kind in _STEADY
            and self.commits is False
            and not self.reshapes
            and not self.unsettles
            and not self.xa,
        )
        object.__setattr__(
            self,
            "unreplayable",
            kind is StatementKind.SESSION
            or bool(self.effects)
            or bool(self.xa)
            or self.unsettles
            or self.reshapes
            or (kind is StatementKind.WRITE and self.volatile),
        )

    @property
    def opaque(self) -> bool:
        """Whether the text could not be read as one statement (several, or unreadable):
        nothing is known of what it did."""
        return _NOT_REBUILT in self.effects


_UNREADABLE = Statement(
    StatementKind.WRITE, None, False, frozenset({_NOT_REBUILT}), reshapes=True, unsettles=True
)

# The records of operations that have no text (commit(), begin(), a driver method).
READ_OP = Statement(StatementKind.READ)
HISTORY_OP = Statement(StatementKind.READ, history=True)
WRITE_OP = Statement(StatementKind.WRITE)
SESSION_OP = Statement(StatementKind.SESSION)
CALL_OP = Statement(StatementKind.WRITE, None, False, reshapes=True, unsettles=True)
"""A procedure called through the driver (``callproc``): it may commit, run DDL, write
anywhere, or set what the server reports."""
BEGIN_OP = Statement(StatementKind.BEGIN)
COMMIT_OP = Statement(StatementKind.COMMIT)
AUTOCOMMIT_OP = Statement(StatementKind.COMMIT)
"""``autocommit(True)``: it commits an open transaction as COMMIT does, but leaves a
pending ``SET TRANSACTION`` pending (told apart by identity)."""
ROLLBACK_OP = Statement(StatementKind.ROLLBACK)
OPAQUE = _UNREADABLE
"""A composed statement object (psycopg's ``sql.Composed``): its text is not ours to read."""


def _several(sql: str, pure: frozenset[str]) -> Statement:
    """Several statements in one text: settings if every one is (Django sends two at
    connect); a commit if any one commits."""
    parts = _parts_text(sql)
    if parts is None:
        return _UNREADABLE
    records = [_record(part, pure) for part in parts]
    if all(r.kind is StatementKind.SESSION for r in records):
        kind = StatementKind.SESSION
    else:
        kind = StatementKind.WRITE
    verdicts = [r.commits for r in records]
    commits = True if True in verdicts else (None if None in verdicts else False)
    history = any(r.history for r in records)
    if kind is StatementKind.WRITE:
        return Statement(
            kind,
            commits,
            False,
            _UNREADABLE.effects,
            history=history,
            insert_id=history and all(r.insert_id for r in records if r.history),
            reshapes=any(r.reshapes for r in records),
            unsettles=any(
                r.unsettles or r.key == "use" or (r.key is not None and _TRACKING_NAME in r.key)
                for r in records
            ),
        )
    keyed = tuple((session_key(part), part.strip()) for part in parts)
    shots = _NO_EFFECTS.union(*(r.effects & ONE_SHOT_STATE for r in records))
    # Journaled whole (sent with parameters): keyed by every name its parts set, and by
    # its text, so that a later setting of one of them replays after it, never drops
    # the others with it.
    names = [name for key, _ in keyed for name in (key_names(key) or [key or "?"])]
    whole = f"set {','.join(names)} <- {sql.strip()}"
    return Statement(kind, commits, True, _UNREADABLE.effects | shots, whole, keyed)


def _record(sql: str, pure: frozenset[str] = _PURE_CALLS) -> Statement:
    """The one scan of ``sql`` (two when a backslash makes the sql_mode matter);
    ``pure``: the functions known to neither write nor lock in the server's dialect."""
    if not sql.strip(_NOTHING):
        return _EMPTY
    try:
        scanned = _scan(sql, backslash_escapes=True)
    except _Several:
        return _several(sql, pure)
    except _Unreadable:
        return _UNREADABLE
    words, assigns, user_vars, calls, sysvars, marked = scanned
    unknown = _unknown_calls(sql, words, calls, pure)
    kind = _kind_of(words, assigns, user_vars, unknown)
    other: _Scanned | _Unreadable | None = None
    if "\\" in sql:
        # Under sql_mode NO_BACKSLASH_ESCAPES a backslash ends no literal early: the text
        # must read the same both ways to count as a plain read or an atomic write.
        try:
            other = _scan(sql, backslash_escapes=False)
        except _Unreadable as exc:
            other = exc
    if kind is not StatementKind.WRITE and other is not None:
        # A read, a setting, BEGIN ...: it must be the same statement under either mode
        # (a setting that hides a DELETE in a literal would be replayed on reconnect).
        if isinstance(other, _Several):
            return _several(sql, pure)
        if isinstance(other, _Unreadable):
            kind = StatementKind.WRITE
        else:
            other_kind = _kind_of(*other[:3], _unknown_calls(sql, other[0], other[3], pure))
            if kind is StatementKind.READ:
                kind = other_kind  # a read either way may be sent again
            elif other_kind is not kind or other[0] != words:
                kind = StatementKind.WRITE
    history = _reads_history(words, calls, sysvars)
    insert_id = history and _reads_only_insert_id(words, calls, sysvars)
    effects = _effects_of(words, assigns, user_vars, calls, unknown)
    if (
        words[:1] == ["set"]
        and words[1:2]
        and words[1] in _SERVER_SCOPES
        and not effects
        and _sets_session_too(_setting_text(sql).lower()[4:])
    ):
        # SET GLOBAL a = 1, SESSION b = 2: never journaled (not a session setting).
        effects = _SERVER_SCOPE_AND_OTHERS
    if marked and other is not None:
        # Marked only if the comment is one under either sql_mode (not inside a literal
        # that a backslash ends early under one of them).
        marked = not isinstance(other, _Unreadable) and other[5]
    if kind is StatementKind.WRITE:
        same = other is None or (not isinstance(other, _Unreadable) and other[0] == words)
        whole = same and _atomic_write(words, unknown)
        xa = words[1] if words[:1] == ["xa"] and len(words) > 1 else ""
        locks = same and _locks_only(words, assigns, unknown)
        table = _returning_table(sql) if whole and not history and "returning" in words else None
        if not same:
            # Several statements, or another one, under the other sql_mode: nothing of it
            # is known.
            return Statement(
                kind,
                None,
                False,
                effects,
                history=history,
                insert_id=insert_id,
                reshapes=True,
                unsettles=True,
            )
        commits = _commits_of(words)
        unknown_verb = commits is None and not xa  # XA touches neither tables nor settings
        verb = words[0] if words else ""
        durable = not _temporary(words)
        return Statement(
            kind,
            commits,
            whole,
            effects,
            xa=xa,
            history=history,
            insert_id=insert_id,
            locks=locks,
            table=table,
            reshapes=unknown_verb or (verb in _RESHAPING_VERBS and durable),
            self_commits=verb in _SELF_COMMITTING_VERBS and durable,
            unsettles=unknown_verb or _TRACKING_NAME in sql.lower(),
            volatile=bool(unknown) or (not marked and not _VOLATILE.isdisjoint(words)),
        )
    if kind is StatementKind.SESSION:
        effects = effects | one_shot_effects(sql)
        return Statement(kind, _commits_of(words), True, effects, session_key(sql))
    chains = kind in _ENDS and "chain" in words and words[words.index("chain") - 1] == "and"
    return Statement(
        kind,
        _commits_of(words),
        True,
        effects,
        history=history,
        insert_id=insert_id,
        chains=chains,
    )


_ENDS = frozenset({StatementKind.COMMIT, StatementKind.ROLLBACK})
# Built-ins whose value differs from one call (or session) to the next; and "next value
# for" a sequence. A write naming one is never replayed (see Statement.volatile).
_VOLATILE = frozenset(
    """
    now current_timestamp current_date current_time curdate curtime sysdate utc_timestamp
    utc_date utc_time localtime localtimestamp unix_timestamp rand uuid uuid_short sys_guid
    connection_id nextval lastval setval next random gen_random_uuid clock_timestamp
    statement_timestamp transaction_timestamp timeofday
    """.split()  # noqa: SIM905  (a word list reads best as words)
)
# An empty statement (SQLAlchemy's psycopg pool_pre_ping sends ";"): PostgreSQL answers it
# with nothing, MySQL refuses it; either way nothing ran, and sending it again is harmless.
_NOTHING = " \t\r\n;"
_EMPTY = Statement(StatementKind.READ, False, True, _NO_EFFECTS)

# The statements an application sends are few and repeated: the proxies look their
# records up in this plain dict first (a miss calls :func:`remember`); PostgreSQL's
# records apart, since its built-ins differ.
STATEMENTS: dict[Any, Statement] = {}
POSTGRES_STATEMENTS: dict[Any, Statement] = {}
_STATEMENTS_MAX = 4096


# PostgreSQL's session setting by function (Django sets its time zone so): the name a
# literal, the value one parameter or literal, is_local false (true lasts one transaction).
_SET_CONFIG = re.compile(
    r"\s*select\s+(?:pg_catalog\s*\.\s*)?set_config\s*\(\s*'([a-z_][a-z0-9_.]*)'\s*,"
    r"\s*(?:%s|'(?:[^'\\]|'')*')\s*,\s*false\s*\)\s*;?\s*",
    re.IGNORECASE,
)


def _postgres_setting(sql: str) -> Statement | None:
    """``SELECT set_config('name', value, false)`` as the session setting it is (journaled,
    replayed on a new connection), or None."""
    match = _SET_CONFIG.fullmatch(sql)
    if match is None:
        return None
    name = match[1].lower()
    if name in _NOT_REPLAYED_CONFIG or name.startswith("transaction_"):
        return None  # who the session acts as; what lasts one transaction
    return Statement(StatementKind.SESSION, False, True, _NO_EFFECTS, f"set {name}")


_NOT_REPLAYED_CONFIG = frozenset({"role", "session_authorization"})

# PostgreSQL's own session statements, one per text (no comment before it, nothing
# after it). RESET undoes settings: journaled in its turn, so that a replay ends where
# the session did (RESET ALL after the SETs it undid, a SET after it again).
# LISTEN registrations and cursors WITH HOLD outlive their transaction and no replay
# makes them again (notifications in between are lost): state a new session lacks.
_PG_SESSION = re.compile(
    r"\s*(reset|discard|listen|declare)\b([^;]*?)\s*;?\s*", re.IGNORECASE | re.DOTALL
)
_LISTENING = frozenset({"LISTEN registrations (notifications would be missed)"})
_HELD = frozenset({"cursors WITH HOLD"})


def _postgres_session(sql: str) -> Statement | None:
    match = _PG_SESSION.fullmatch(sql)
    if match is None or "--" in sql or "/*" in sql:
        return None  # one statement (no ";" but the last), no comment: else the general scan
    verb = match[1].lower()
    rest = " ".join(match[2].lower().split())
    if verb == "discard":
        return None  # DISCARD ALL runs in no transaction: a replay with autocommit off fails
    if verb == "reset":
        if not rest or rest.split()[0] in ("role", "session"):
            return None  # who the session acts as: as SET ROLE, never replayed
        text = f"{verb} {rest}"
        return Statement(StatementKind.SESSION, False, True, _NO_EFFECTS, text)
    if verb == "listen":
        return Statement(StatementKind.WRITE, False, True, _LISTENING)
    if " with hold " in f" {rest} ":
        return Statement(StatementKind.WRITE, False, True, _HELD)
    return None


# A call in PostgreSQL's system schema is the built-in of that name (SQLAlchemy asks
# ``select pg_catalog.version()``): read as the unqualified call, which the list of
# built-ins judges (pg_catalog is searched first for it too, unless put later).
_PG_CATALOG = re.compile(r"\bpg_catalog\s*\.\s*(?=[a-z_]\w*\s*\()", re.IGNORECASE)


def _postgres_record(sql: str) -> Statement:
    """The record of ``sql`` under PostgreSQL: where its SQL means other than MySQL's."""
    made = _postgres_setting(sql) or _postgres_session(sql)
    if made is not None:
        return made
    stripped = _PG_CATALOG.sub("", sql)
    made = _record(stripped, _POSTGRES_CALLS)
    if made.parts and stripped != sql:
        made = _record(sql, _POSTGRES_CALLS)  # its parts are replayed as written
    if made.kind is not StatementKind.SESSION:
        return made
    if made.effects & ONE_SHOT_STATE:
        # PostgreSQL's SET TRANSACTION shapes the transaction open (nothing outside one).
        made = dataclasses.replace(made, effects=made.effects - ONE_SHOT_STATE)
    # SET LOCAL lasts one transaction (MySQL's LOCAL is the session): nothing to replay,
    # nor may it replace the session's own value in the journal.
    if made.parts:
        parts = tuple((None if _is_local(text) else key, text) for key, text in made.parts)
        return dataclasses.replace(made, parts=parts)
    if made.key is not None and _is_local(sql):
        return dataclasses.replace(made, key=None)
    return made


def _is_local(text: str) -> bool:
    return text.lower().split(None, 2)[1:2] == ["local"]


def remember(query: Any, postgres: bool = False) -> Statement:
    """The record of ``query`` (a str, bytes, or a composed statement object), made and
    remembered in :data:`STATEMENTS` (or :data:`POSTGRES_STATEMENTS`) for the next time."""
    if isinstance(query, str):
        text = query
    elif isinstance(query, bytes | bytearray | memoryview):
        query = bytes(query)  # cached by its content, whatever holds it
        text = query.decode("utf-8", "replace")
    else:
        return OPAQUE
    cache = POSTGRES_STATEMENTS if postgres else STATEMENTS
    made = cache.get(query)
    if made is None:
        made = _postgres_record(text) if postgres else _record(text)
        if len(cache) >= _STATEMENTS_MAX:
            cache.clear()
        cache[query] = made
    return made


def statement(query: Any, postgres: bool = False) -> Statement:
    """The :class:`Statement` record of ``query``, from the cache when it was seen
    (``postgres``: under PostgreSQL's built-ins)."""
    try:
        found = (POSTGRES_STATEMENTS if postgres else STATEMENTS).get(query)
    except TypeError:  # not hashable: a bytearray, or psycopg's sql.Composed (opaque)
        found = None
    return remember(query, postgres) if found is None else found


def classify(sql: Any) -> StatementKind:
    """Classify one statement template (placeholders such as ``%s`` are fine)."""
    return statement(sql).kind


def session_effects(sql: Any) -> frozenset[str]:
    """The session state a statement creates that a new connection cannot rebuild
    (user variables, temporary tables, GET_LOCK locks, LOCK TABLES, PREPARE)."""
    return statement(sql).effects


def atomic(sql: Any) -> bool:
    """Whether ``sql`` is one statement that the server applies whole or not at all."""
    return statement(sql).atomic


def commits_implicitly(sql: Any) -> bool | None:
    """Whether the server commits an open transaction before running ``sql``; None if
    the text cannot be read with certainty."""
    return statement(sql).commits
