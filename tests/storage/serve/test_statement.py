"""The INSERT splitter and lexer: where the statement ends and the data begins, as ClickHouse's parser decides."""

from __future__ import annotations

import pytest

from storage.serve.statement import Incomplete, first_word, split_insert, trailing_format


class TestSplitInsert:
    @pytest.mark.parametrize(
        ("text", "head", "statement", "fmt", "data"),
        [
            (b"INSERT INTO t FORMAT Native\n\x20\x01", b"INSERT INTO t", b"INSERT INTO t FORMAT Native", "Native",
             b"\x20\x01"),
            (b"INSERT INTO db.t (a, `b c`) FORMAT TabSeparated  \r\n1\t2\n", b"INSERT INTO db.t (a, `b c`)",
             b"INSERT INTO db.t (a, `b c`) FORMAT TabSeparated", "TabSeparated", b"1\t2\n"),
            (b"insert into t values (1, 'a'), (2, 'b')", b"insert into t", b"insert into t values", "Values",
             b"(1, 'a'), (2, 'b')"),
            (b"INSERT INTO t SETTINGS async_insert=1, x = 'y' FORMAT CSV\n1,2",
             b"INSERT INTO t SETTINGS async_insert=1, x = 'y'",
             b"INSERT INTO t SETTINGS async_insert=1, x = 'y' FORMAT CSV", "CSV", b"1,2"),
            (b"INSERT INTO t FORMAT CSV SETTINGS format_csv_delimiter=';'\n1;2",
             b"INSERT INTO t SETTINGS format_csv_delimiter=';'",
             b"INSERT INTO t FORMAT CSV SETTINGS format_csv_delimiter=';'", "CSV", b"1;2"),
            (b"INSERT INTO t /* (x) */ FORMAT JSONEachRow {\"a\":1}", b"INSERT INTO t /* (x) */",
             b"INSERT INTO t /* (x) */ FORMAT JSONEachRow", "JSONEachRow", b"{\"a\":1}"),
            (b"INSERT INTO FUNCTION file('x', 'CSV') FORMAT CSV\n1", b"INSERT INTO FUNCTION file('x', 'CSV')",
             b"INSERT INTO FUNCTION file('x', 'CSV') FORMAT CSV", "CSV", b"1"),
            (b"INSERT INTO t FORMAT Native\n'unclosed binary quote", b"INSERT INTO t", b"INSERT INTO t FORMAT Native",
             "Native", b"'unclosed binary quote"),
            (b"INSERT INTO t FORMAT Native", b"INSERT INTO t", b"INSERT INTO t FORMAT Native", "Native", b""),
        ],
    )
    def test_finds_the_data(self, text, head, statement, fmt, data):
        """The head, the statement as parsed, the format and the data start match ClickHouse's rules."""
        found = split_insert(text, complete=True)
        assert found is not None
        assert (found.head, found.statement, found.format, text[found.data_start:]) == (head, statement, fmt, data)

    @pytest.mark.parametrize(
        "text",
        [b"INSERT INTO t SELECT 1", b"INSERT INTO t FROM INFILE '/x' FORMAT CSV", b"SELECT 1", b"INSERT t VALUES (1)",
         b"INSERT INTO t (a FORMAT CSV"],
    )
    def test_no_inline_data(self, text):
        """INSERT … SELECT, FROM INFILE, other statements and broken grammar have no data to stream."""
        assert split_insert(text, complete=True) is None

    @pytest.mark.parametrize(
        "text", [b"INSERT INTO t FORMAT Nat", b"INSERT INTO t FORMAT Native", b"INSERT INTO t (a, b", b"INSERT INTO 'x"]
    )
    def test_asks_for_more_when_cut_short(self, text):
        """A buffer that ends before the data start is determined raises Incomplete while more may follow."""
        with pytest.raises(Incomplete):
            split_insert(text, complete=False)


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        (b"SELECT 1 FORMAT JSON", "JSON"),
        (b"SELECT format FROM t", "FROM"),  # a candidate only: the AST check discards it
        (b"SELECT 1 AS format, (SELECT 2 FORMAT CSV) FROM t FORMAT Native SETTINGS x=1", "Native"),
        (b"SELECT 'FORMAT JSON'", None),
        (b"SELECT 1 -- FORMAT JSON", None),
    ],
)
def test_trailing_format(text, fmt):
    """The last FORMAT outside brackets, strings and comments is the candidate output format."""
    assert trailing_format(text) == fmt


@pytest.mark.parametrize(
    ("text", "word"), [(b"  -- c\n /* x */ select 1", "SELECT"), (b"# c\ninsert into t", "INSERT"), (b"(SELECT 1)", "")]
)
def test_first_word(text, word):
    """The first keyword is found after comments; a statement starting with a bracket has none."""
    assert first_word(text, complete=True) == word
