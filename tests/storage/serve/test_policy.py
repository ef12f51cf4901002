"""Statement classification on the engine's own parse tree, each role's rules, and the engine-side
enforcement (readonly, allow_ddl) that holds even where the parser-based rules would not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.serve.config import Role
from storage.serve.engine import Connection, Engine
from storage.serve.errors import ACCESS_DENIED, READONLY, ServeError
from storage.serve.policy import ROLE_SETTINGS, Statement, authorize, classify, parse_ast
from storage.serve.statement import trailing_format


@pytest.fixture(scope="module")
def engine(chdb_dir: Path) -> Iterator[Engine]:
    """The test process's own engine (its one chDB directory)."""
    eng = Engine(chdb_dir)
    yield eng
    eng.close()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A fresh engine connection."""
    conn = engine.connect()
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def table_functions(engine: Engine) -> frozenset[str]:
    """The table functions this engine knows."""
    conn = engine.connect()
    try:
        return frozenset(conn.text("SELECT name FROM system.table_functions").split())
    finally:
        conn.close()


def parsed(connection: Connection, sql: str) -> Statement:
    """The statement as the service classifies it."""
    text = sql.encode()
    return classify(connection.text(b"EXPLAIN AST " + text), trailing_format(text))


class TestClassify:
    @pytest.mark.parametrize(
        ("sql", "kind", "fmt", "table_functions", "file_io"),
        [
            ("SELECT number FROM numbers(3) FORMAT JSON", "select", "JSON", {"numbers"}, False),
            ("SELECT format FROM system.one", "select", None, set(), False),
            ("SELECT 1 UNION ALL SELECT * FROM url('http://x', CSV)", "select", None, {"url"}, False),
            ("SELECT 1 INTO OUTFILE '/tmp/x' FORMAT CSV", "select", "CSV", set(), True),
            ("INSERT INTO t FROM INFILE '/etc/hosts' FORMAT LineAsString", "insert", None, set(), True),
            ("INSERT INTO FUNCTION file('/tmp/x', 'CSV') SELECT 1", "insert", None, {"file"}, False),
            ("INSERT INTO t SELECT * FROM s3('http://x')", "insert", None, {"s3"}, False),
            ("CREATE TABLE x AS file('/etc/hosts', 'LineAsString')", "create", None, {"file"}, False),
            ("DESCRIBE TABLE file('/etc/hosts')", "describe", None, {"file"}, False),
            ("SHOW TABLES FROM system FORMAT JSON", "show", "JSON", set(), False),
            ("EXISTS TABLE system.one", "exists", None, set(), False),
            ("ALTER TABLE t DELETE WHERE 1", "alter", None, set(), False),
            ("TRUNCATE TABLE t", "truncate", None, set(), False),
            ("KILL QUERY WHERE 1", "kill", None, set(), False),
            ("SYSTEM FLUSH LOGS", "system", None, set(), False),
            ("SET max_threads = 1", "set", None, set(), False),
            ("GRANT SELECT ON *.* TO u", "other", None, set(), False),
        ],
    )
    def test_kinds_formats_and_reach(self, connection, sql, kind, fmt, table_functions, file_io):
        """Kind, output format, table functions and file access come from the parse tree."""
        statement = parsed(connection, sql)
        assert (statement.kind, statement.output_format, set(statement.table_functions), statement.file_io) == (
            kind, fmt, table_functions, file_io)

    def test_engines_scalar_functions_and_dictionary_sources(self, connection):
        """Storage engines, scalar functions and dictionary sources are found wherever they are."""
        engine = parsed(connection, "CREATE TEMPORARY TABLE x (a String) ENGINE = File(CSV, '/etc/hosts')")
        scalar = parsed(connection, "SELECT lower(file('/etc/hosts'))")
        dictionary = parsed(connection, "CREATE DICTIONARY d (k UInt64) PRIMARY KEY k "
                                        "SOURCE(FILE(path '/etc/hosts' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)")
        assert engine.engines == {"file"}
        assert {"file", "lower"} <= scalar.functions
        assert dictionary.dictionary_sources == {"file"}

    def test_parse_ast_keeps_parents(self):
        """Each node of the dump is paired with its parent by indentation."""
        nodes = parse_ast("A (children 1)\n B (children 1)\n  Function f (alias x) (children 1)\n   C\n D")
        assert [(n.type, p.type if p else None) for n, p in nodes] == [
            ("A", None), ("B", "A"), ("Function", "B"), ("C", "Function"), ("D", "A")]
        assert nodes[2][0].name == "f"


READER_REFUSED = [
    "INSERT INTO t VALUES (1)",
    "ALTER TABLE t DELETE WHERE 1",
    "DROP TABLE t",
    "TRUNCATE TABLE t",
    "CREATE TEMPORARY TABLE x (a Int8)",
    "KILL QUERY WHERE 1",
    "SYSTEM FLUSH LOGS",
    "SELECT * FROM file('/etc/hosts', 'LineAsString')",
    "SELECT file('/etc/hosts')",
    "SELECT 1 INTO OUTFILE '/tmp/sovtel-x'",
    "DESCRIBE TABLE url('http://127.0.0.1:1/x', CSV)",
    "SELECT * FROM numbers(1) WHERE 1 IN (SELECT * FROM remote('127.0.0.1', system.one))",
    "SELECT * FROM mysql('h:3306', 'd', 't', 'u', 'p')",
    "SELECT * FROM format(CSV, '1')",
    "SELECT 1 FORMAT Template",
    "SELECT query FROM system.processes",
    "SELECT * FROM view(SELECT * FROM system.query_log)",
    "SHOW PROCESSLIST",
    "SELECT * FROM merge('system', '^processes$')",
]
WRITER_REFUSED = [
    "ALTER TABLE t DELETE WHERE 1",
    "DROP TABLE t",
    "KILL QUERY WHERE 1",
    "INSERT INTO FUNCTION file('/tmp/sovtel-x', 'CSV') SELECT 1",
    "INSERT INTO t SELECT * FROM file('/etc/hosts', 'LineAsString')",
    "INSERT INTO t FROM INFILE '/etc/hosts' FORMAT LineAsString",
    "CREATE TEMPORARY TABLE x (a String) ENGINE = File(CSV, '/etc/hosts')",
    "CREATE TEMPORARY TABLE x (a String) ENGINE = URL('http://127.0.0.1:1/x', CSV)",
]
ALLOWED = [
    (Role.READER, "SELECT count() FROM numbers(10)"),
    (Role.READER, "SELECT processes FROM (SELECT 1 AS processes)"),
    (Role.READER, "SELECT * FROM analytics.processes"),
    (Role.READER, "SHOW TABLES"),
    (Role.READER, "SET max_threads = 1"),
    (Role.READER, "USE system"),
    (Role.WRITER, "INSERT INTO t VALUES (1)"),
    (Role.WRITER, "CREATE TEMPORARY TABLE x (a Int8) ENGINE = Memory"),
    (Role.ADMIN, "SELECT * FROM file('/etc/hosts', 'LineAsString')"),
    (Role.ADMIN, "DROP TABLE IF EXISTS t"),
]


class TestAuthorize:
    @pytest.mark.parametrize("sql", READER_REFUSED)
    def test_reader_refused(self, connection, table_functions, sql):
        """A reader may not write, change the schema, or reach files or the network."""
        with pytest.raises(ServeError) as err:
            authorize(Role.READER, parsed(connection, sql), user="r", method="POST",
                      engine_table_functions=table_functions)
        assert err.value.code == ACCESS_DENIED and err.value.status == 403

    @pytest.mark.parametrize("sql", WRITER_REFUSED)
    def test_writer_refused(self, connection, table_functions, sql):
        """A writer may insert but not change the schema or reach files or the network."""
        with pytest.raises(ServeError) as err:
            authorize(Role.WRITER, parsed(connection, sql), user="w", method="POST",
                      engine_table_functions=table_functions)
        assert err.value.code == ACCESS_DENIED

    @pytest.mark.parametrize(("role", "sql"), ALLOWED)
    def test_allowed(self, connection, table_functions, role, sql):
        """Each role may run what it is for."""
        authorize(role, parsed(connection, sql), user="u", method="POST", engine_table_functions=table_functions)

    @pytest.mark.parametrize("role", list(Role))
    def test_python_table_function_refused_for_everyone(self, connection, role):
        """chDB's Python() reads the server process's memory: refused even for admins."""
        with pytest.raises(ServeError) as err:
            authorize(role, parsed(connection, "SELECT * FROM Python(x)"), user="u", method="POST")
        assert err.value.code == ACCESS_DENIED

    @pytest.mark.parametrize(("sql", "refused"), [("INSERT INTO t VALUES (1)", True), ("SELECT 1", False)])
    def test_get_is_readonly_even_for_admins(self, connection, sql, refused):
        """GET may only read, whoever asks (ClickHouse: GET implies readonly)."""
        if refused:
            with pytest.raises(ServeError) as err:
                authorize(Role.ADMIN, parsed(connection, sql), user="a", method="GET")
            assert err.value.code == READONLY
        else:
            authorize(Role.ADMIN, parsed(connection, sql), user="a", method="GET")


class TestEngineEnforcement:
    @pytest.mark.parametrize(
        ("role", "sql", "code"),
        [
            (Role.READER, "INSERT INTO {t} VALUES (1)", 164),
            (Role.READER, "CREATE TEMPORARY TABLE tmp_x (a Int8)", 164),
            (Role.READER, "SET readonly = 0", 164),
            (Role.READER, "SELECT 1 SETTINGS readonly = 0", 164),
            (Role.WRITER, "ALTER TABLE {t} DELETE WHERE 1", 392),
            (Role.WRITER, "DROP TABLE {t}", 392),
            (Role.WRITER, "SET allow_ddl = 1", 392),
        ],
    )
    def test_role_settings_hold_in_the_engine(self, engine, unique_db, role, sql, code):
        """A connection prepared for a role refuses what the role may not do, whatever the parser said."""
        admin = engine.connect()
        admin.query(f"CREATE DATABASE {unique_db}")
        admin.query(f"CREATE TABLE {unique_db}.t (a UInt8) ENGINE = MergeTree ORDER BY a")
        conn = engine.connect()
        try:
            for statement in ROLE_SETTINGS[role]:
                conn.query(statement)
            with pytest.raises(ServeError) as err:
                conn.query(sql.format(t=f"{unique_db}.t"))
            assert err.value.code == code
        finally:
            conn.close()
            admin.query(f"DROP DATABASE {unique_db}")
            admin.close()

    def test_writer_connection_can_insert(self, engine, unique_db):
        """The writer's engine settings still allow INSERT and temporary tables."""
        admin = engine.connect()
        admin.query(f"CREATE DATABASE {unique_db}")
        admin.query(f"CREATE TABLE {unique_db}.t (a UInt8) ENGINE = MergeTree ORDER BY a")
        conn = engine.connect()
        try:
            for statement in ROLE_SETTINGS[Role.WRITER]:
                conn.query(statement)
            conn.query(f"INSERT INTO {unique_db}.t VALUES (7)")
            conn.query("CREATE TEMPORARY TABLE tmp_w (a Int8)")
            assert conn.text(f"SELECT sum(a) FROM {unique_db}.t").strip() == "7"
        finally:
            conn.close()
            admin.query(f"DROP DATABASE {unique_db}")
            admin.close()
