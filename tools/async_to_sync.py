"""Generate the synchronous proxy from its asyncio source (the way psycopg 3 does it).

    python tools/async_to_sync.py          # rewrite the generated files
    python tools/async_to_sync.py --check  # exit 1 if a generated file is out of date

The rules, applied to tokens so comments and layout survive:
- ``if True:  # ASYNC`` blocks are dropped; their ``else:`` branch, dedented, stays;
- ``await`` and the ``async`` of ``async def/with/for`` are removed;
- ``Awaitable[X]`` becomes ``X``;
- the names in :data:`NAMES` are renamed, in code, strings and comments alike (module
  names in code only).
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PAIRS = {
    "resilient_dbapi/_connection_async.py": "resilient_dbapi/connection.py",
    "resilient_dbapi/_cursor_async.py": "resilient_dbapi/cursor.py",
    "resilient_dbapi/_opening_async.py": "resilient_dbapi/_opening.py",
    "resilient_dbapi/_operations_async.py": "resilient_dbapi/_operations.py",
    "resilient_dbapi/_transaction_async.py": "resilient_dbapi/transaction.py",
}

NAMES = {
    "AsyncResilientConnection": "ResilientConnection",
    "AsyncConnectionBase": "ConnectionBase",
    "AsyncResilientCursor": "ResilientCursor",
    "AsyncTracedConnection": "TracedConnection",
    "AsyncTracedCursor": "TracedCursor",
    "AsyncOperations": "Operations",
    "AsyncAdapter": "Adapter",
    "async_adapter_for": "adapter_for",
    "AsyncIterator": "Iterator",
    "_connection_async": "connection",
    "_cursor_async": "cursor",
    "_opening_async": "_opening",
    "_operations_async": "_operations",
    "_transaction_async": "transaction",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "StopAsyncIteration": "StopIteration",
}

_ASYNC_IF = re.compile(r"^(?P<indent> *)if True:  # ASYNC\n$")
# Module names stay as they are in prose, which names the source and its twin.
_WORDS = re.compile(r"\b(" + "|".join(re.escape(n) for n in NAMES if n[0] != "_") + r")\b")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], start: int, indent: int) -> int:
    """The end of the block opened at ``start - 1`` (lines indented beyond ``indent``),
    leaving its trailing blank lines outside."""
    end = start
    last = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
        if lines[end - 1].strip():
            last = end
    return last


def _resolve_async_blocks(text: str) -> str:
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _ASYNC_IF.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent = len(match["indent"])
        i = _block(lines, i + 1, indent)
        rest = i
        while rest < len(lines) and not lines[rest].strip():
            rest += 1
        if rest < len(lines) and lines[rest] == " " * indent + "else:\n":
            end = _block(lines, rest + 1, indent)
            body = lines[rest + 1 : end]
            while body and not body[0].strip():
                body.pop(0)
            out.extend(line[4:] if line.strip() else line for line in body)
            i = end
        else:  # the block and the blank lines before it go
            while out and not out[-1].strip():
                out.pop()
    return "".join(out)


def transform(text: str) -> str:
    """The sync module for the asyncio module ``text``."""
    text = _resolve_async_blocks(text)
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(position: tuple[int, int]) -> int:
        return starts[position[0] - 1] + position[1]

    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(text).readline)
        if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    ]
    edits: list[tuple[int, int, str]] = []
    for i, token in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.type == tokenize.NAME and following is not None:
            if token.string == "await" or (
                token.string == "async" and following.string in ("def", "with", "for")
            ):
                edits.append((offset(token.start), offset(following.start), ""))
                continue
            if token.string == "Awaitable" and following.string == "[":
                edits.append((offset(token.start), offset(following.end), ""))
                depth = 0
                for closing in tokens[i + 1 :]:
                    depth += closing.string == "["
                    depth -= closing.string == "]"
                    if depth == 0:
                        edits.append((offset(closing.start), offset(closing.end), ""))
                        break
                continue
        if token.type == tokenize.NAME and token.string in NAMES:
            edits.append((offset(token.start), offset(token.end), NAMES[token.string]))
        elif token.type in (tokenize.STRING, tokenize.COMMENT) and _WORDS.search(token.string):
            renamed = _WORDS.sub(lambda m: NAMES[m[1]], token.string)
            edits.append((offset(token.start), offset(token.end), renamed))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    _check_no_async_left(text)
    return text


def _check_no_async_left(text: str) -> None:
    """Refuse output that still speaks asyncio: a misspelt marker, or asyncio code outside
    an ``if True:  # ASYNC`` block, would otherwise become silently wrong sync code."""
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        left = (token.type == tokenize.NAME and token.string in ("async", "await", "asyncio")) or (
            token.type == tokenize.COMMENT and "ASYNC" in token.string
        )
        if left:
            raise ValueError(
                f"line {token.start[0]}: {token.string!r} left in the sync output; put "
                "asyncio-only code under `if True:  # ASYNC` (spelt exactly so)"
            )


def _ruff(args: list[str], text: str, target: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", target, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return done.stdout


def generated(source: str, target: str) -> str:
    """The text of ``target``, generated from ``source``: transformed, then its imports
    sorted and pruned and its layout formatted by ruff."""
    header = (
        f"# Generated from {source} by tools/async_to_sync.py: do not edit.\n"
        "# Change the asyncio source and run `python tools/async_to_sync.py`.\n"
    )
    text = header + transform((ROOT / source).read_text())
    text = _ruff(["check", "--fix-only", "--quiet", "--select", "I,F401"], text, target)
    return _ruff(["format", "--quiet"], text, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    options = parser.parse_args(argv)
    stale = []
    for source, target in PAIRS.items():
        want = generated(source, target)
        path = ROOT / target
        if path.exists() and path.read_text() == want:
            continue
        if options.check:
            stale.append(target)
        else:
            path.write_text(want)
            print(f"wrote {target}")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run `python tools/async_to_sync.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
