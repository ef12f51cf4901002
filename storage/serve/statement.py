"""Where an INSERT's statement ends and its data begins, found the way ClickHouse's parser does,
so the statement can be checked on its own and the data streamed into the engine unparsed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

_SPACE = frozenset(b" \t\n\r\f\v")
_WORD_START = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_WORD = _WORD_START | frozenset(b"0123456789$")
_DIGITS = frozenset(b"0123456789")
_OPEN = {ord("("): ord(")"), ord("["): ord("]"), ord("{"): ord("}")}


class Incomplete(Exception):
    """The text ends before the statement does: more of the request body is needed."""


@dataclass(frozen=True)
class Token:
    """One lexical token: ``word``, ``quoted`` (identifier), ``string``, ``number`` or ``punct``."""

    kind: str
    start: int
    end: int


class Lexer:
    """ClickHouse's tokens over a byte buffer that may be only the beginning of the request.

    Whitespace and comments (``--``, ``# ``, ``#!``, nested ``/* */``) are skipped. Reaching the end of
    an incomplete buffer inside a token raises ``Incomplete``; ``complete`` says no bytes follow.
    """

    def __init__(self, text: bytes, complete: bool) -> None:
        self.text = text
        self.complete = complete

    def tokens(self, pos: int = 0) -> Iterator[Token]:
        """Every token from ``pos``; stops at the end of the buffer."""
        while True:
            token = self.next(pos)
            if token is None:
                return
            yield token
            pos = token.end

    def next(self, pos: int) -> Token | None:
        """The token at or after ``pos``, or None at the end of a complete buffer."""
        text, n = self.text, len(self.text)
        pos = self._skip_space_and_comments(pos)
        if pos >= n:
            if self.complete:
                return None
            raise Incomplete
        c = text[pos]
        if c in _WORD_START:
            end = pos + 1
            while end < n and text[end] in _WORD:
                end += 1
            return Token("word", pos, self._need(end))
        if c in _DIGITS or (c == ord(".") and pos + 1 < n and text[pos + 1] in _DIGITS):
            end = pos + 1
            while end < n and (text[end] in _WORD or text[end] == ord(".")
                               or (text[end] in b"+-" and text[end - 1] in b"eEpP")):
                end += 1
            return Token("number", pos, self._need(end))
        if c in b"'`\"":
            return Token("string" if c == ord("'") else "quoted", pos, self._quoted_end(pos, c))
        if c == ord("$"):
            heredoc = self._heredoc_end(pos)
            if heredoc is not None:
                return Token("string", pos, heredoc)
        return Token("punct", pos, pos + 1)

    def _need(self, end: int) -> int:
        # A word or number touching the end of an incomplete buffer may continue in the next bytes.
        if end >= len(self.text) and not self.complete:
            raise Incomplete
        return end

    def _skip_space_and_comments(self, pos: int) -> int:
        text, n = self.text, len(self.text)
        while pos < n:
            c = text[pos]
            if c in _SPACE:
                pos += 1
            elif text.startswith(b"--", pos) or (c == ord("#") and text[pos + 1:pos + 2] in (b" ", b"!")):
                newline = text.find(b"\n", pos)
                if newline < 0:
                    return self._unterminated()
                pos = newline + 1
            elif text.startswith(b"/*", pos):
                depth, pos = 1, pos + 2
                while depth:
                    opening, closing = text.find(b"/*", pos), text.find(b"*/", pos)
                    if closing < 0:
                        return self._unterminated()
                    if 0 <= opening < closing:
                        depth, pos = depth + 1, opening + 2
                    else:
                        depth, pos = depth - 1, closing + 2
            elif c == ord("#") and pos + 1 >= n and not self.complete:
                raise Incomplete
            else:
                break
        return pos

    def _unterminated(self) -> int:
        if not self.complete:
            raise Incomplete
        return len(self.text)

    def _quoted_end(self, pos: int, quote: int) -> int:
        text, n, i = self.text, len(self.text), pos + 1
        while i < n:
            c = text[i]
            if c == ord("\\"):
                i += 2
            elif c == quote:
                if i + 1 < n and text[i + 1] == quote:
                    i += 2
                else:
                    return i + 1
            else:
                i += 1
        return self._unterminated()

    def _heredoc_end(self, pos: int) -> int | None:
        text, n = self.text, len(self.text)
        i = pos + 1
        while i < n and text[i] in _WORD and text[i] != ord("$"):
            i += 1
        if i >= n:
            if not self.complete:
                raise Incomplete
            return None
        if text[i] != ord("$"):
            return None
        tag = text[pos:i + 1]
        close = text.find(tag, i + 1)
        if close < 0:
            return self._unterminated()
        return close + len(tag)


def word(text: bytes, token: Token | None) -> str:
    """The token's text upper-cased if it is a word, else ''."""
    if token is None or token.kind != "word":
        return ""
    return text[token.start:token.end].decode("ascii", "replace").upper()


def first_word(text: bytes, complete: bool) -> str:
    """The statement's first keyword, upper-cased ('' when it does not start with a word)."""
    return word(text, Lexer(text, complete).next(0))


@dataclass(frozen=True)
class InsertData:
    """An INSERT that carries its data inline (``FORMAT name`` or ``VALUES``).

    ``head`` is the statement without the format clause (what the engine's streaming insert takes),
    ``statement`` the statement as ClickHouse parses it without the data, ``data_start`` the offset
    of the first data byte in the text.
    """

    head: bytes
    statement: bytes
    format: str
    data_start: int


def split_insert(text: bytes, complete: bool) -> InsertData | None:
    """Find the data of an ``INSERT … FORMAT name`` or ``INSERT … VALUES`` in ``text``.

    Follows ClickHouse's ParserInsertQuery: after ``FORMAT name`` (and an optional SETTINGS list)
    spaces and tabs are skipped, then one line break; after ``VALUES`` the data starts at the next
    token. Returns None for INSERTs without inline data (``SELECT``, ``FROM INFILE``) and for text
    that does not follow the grammar (the engine's parser then reports the error). Raises
    ``Incomplete`` when the buffer ends before the data is found.
    """
    lex = Lexer(text, complete)
    t = lex.next(0)
    if word(text, t) != "INSERT":
        return None
    t = _after(lex, t)
    if word(text, t) != "INTO":
        return None
    t = _after(lex, t)
    if word(text, t) == "TABLE":
        t = _after(lex, t)
    if word(text, t) == "FUNCTION":
        t = _after(lex, t)
        if t is None or t.kind != "word":
            return None
        t = _after(lex, t)
        if not _is(text, t, b"("):
            return None
        t = _after(lex, _skip_group(lex, t))
    else:
        if t is None or t.kind not in ("word", "quoted"):
            return None
        t = _after(lex, t)
        if _is(text, t, b"."):
            t = _after(lex, t)
            if t is None or t.kind not in ("word", "quoted"):
                return None
            t = _after(lex, t)
    if _is(text, t, b"("):
        t = _after(lex, _skip_group(lex, t))
    if word(text, t) == "SETTINGS":
        t = _after(lex, _skip_settings(lex, t))
    keyword = word(text, t)
    if t is None:
        return None
    if keyword == "VALUES":
        following = lex.next(t.end)
        data_start = following.start if following is not None else len(text)
        return InsertData(text[:t.start].rstrip(), text[:t.end], "Values", data_start)
    if keyword != "FORMAT":
        return None
    name = _after(lex, t)
    if name is None or name.kind != "word":
        return None
    last_end = name.end
    settings = b""
    peeked = _peek_word(lex, name.end)
    if peeked is not None and word(text, peeked) == "SETTINGS":
        end = _skip_settings(lex, peeked)
        if end is None:
            return None
        settings, last_end = text[peeked.start:end.end], end.end
    data_start = last_end
    while data_start < len(text) and text[data_start] in b" \t\f":
        data_start += 1
    if data_start >= len(text) and not complete:
        raise Incomplete
    if text[data_start:data_start + 1] == b"\r":
        data_start += 1
    if text[data_start:data_start + 1] == b"\n":
        data_start += 1
    head = text[:t.start].rstrip() + (b" " + settings if settings else b"")
    return InsertData(head, text[:last_end], text[name.start:name.end].decode("ascii"), data_start)


def _after(lex: Lexer, token: Token | None) -> Token | None:
    return None if token is None else lex.next(token.end)


def _is(text: bytes, token: Token | None, punct: bytes) -> bool:
    return token is not None and token.kind == "punct" and text[token.start:token.end] == punct


def _skip_group(lex: Lexer, opening: Token | None) -> Token | None:
    """The closing bracket matching ``opening`` (brackets inside strings do not count)."""
    if opening is None:
        return None
    text = lex.text
    stack = [_OPEN[text[opening.start]]]
    for token in lex.tokens(opening.end):
        if token.kind != "punct":
            continue
        c = text[token.start]
        if c in _OPEN:
            stack.append(_OPEN[c])
        elif c == stack[-1]:
            stack.pop()
            if not stack:
                return token
    if not lex.complete:
        raise Incomplete
    return None


def _skip_settings(lex: Lexer, keyword: Token | None) -> Token | None:
    """The last token of ``SETTINGS name = value [, …]``."""
    text = lex.text
    t = keyword
    while t is not None:
        name = lex.next(t.end)
        equals = _after(lex, name)
        if name is None or not _is(text, equals, b"="):
            return t
        value = _after(lex, equals)
        if _is(text, value, b"-"):
            value = _after(lex, value)
        if value is not None and value.kind == "punct" and text[value.start] in _OPEN:
            value = _skip_group(lex, value)
        if value is None:
            return None
        comma = lex.next(value.end)
        if not _is(text, comma, b","):
            return value
        t = comma
    return None


def _peek_word(lex: Lexer, pos: int) -> Token | None:
    """The next token if it is a word; data after a format name is never lexed further than that."""
    try:
        token = lex.next(pos)
    except Incomplete:
        # Binary data may open a quote that never closes; only a word cut off at the end is ambiguous.
        probe = _skip_space_only(lex.text, pos)
        if probe >= len(lex.text) or lex.text[probe] in _WORD_START:
            raise
        return None
    return token if token is not None and token.kind == "word" else None


def _skip_space_only(text: bytes, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def trailing_format(text: bytes) -> str | None:
    """The name after the last ``FORMAT`` outside brackets, if any (the caller confirms it on the AST)."""
    lex = Lexer(text, complete=True)
    depth = 0
    found: str | None = None
    previous: Token | None = None
    for token in lex.tokens():
        if token.kind == "punct":
            c = text[token.start]
            if c in _OPEN:
                depth += 1
            elif c in b")]}":
                depth = max(0, depth - 1)
        elif depth == 0 and token.kind == "word" and word(text, previous) == "FORMAT":
            found = text[token.start:token.end].decode("ascii")
        previous = token
    return found
