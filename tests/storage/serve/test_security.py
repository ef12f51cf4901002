"""Who may do what over HTTP: authentication the ways ClickHouse accepts it, the reader and writer
roles (no writes, no DDL, no files or network), and the audit log that records every query."""

from __future__ import annotations

import base64
import uuid

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.storage.serve.conftest import USERS, ServedStore


@pytest.fixture(scope="module")
def table(served: ServedStore) -> str:
    """A table with one row, owned by the admin."""
    served.query("CREATE TABLE default.sec_t (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
    served.query("INSERT INTO default.sec_t VALUES (1, 'secret-literal-value')")
    return "default.sec_t"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestAuthentication:
    @pytest.mark.parametrize(
        ("headers", "params"),
        [
            ({"Authorization": basic("reader", "reader-password-1")}, {}),
            ({"Authorization": f"Bearer {USERS['reader'][1]}"}, {}),
            ({"X-ClickHouse-User": "reader", "X-ClickHouse-Key": USERS["reader"][2]}, {}),
            ({"X-ClickHouse-Key": USERS["reader"][1]}, {}),
            ({}, {"user": "reader", "password": USERS["reader"][2]}),
        ],
    )
    def test_ways_to_log_in(self, served, headers, params):
        """Basic auth, bearer token, X-ClickHouse-User/-Key and user/password parameters all log in."""
        response = served.request("POST", "/", params, b"SELECT 1", headers, user=None)
        assert (response.status, response.body) == (200, b"1\n")

    @pytest.mark.parametrize(
        ("headers", "status", "code"),
        [
            ({}, 401, "194"),
            ({"Authorization": basic("reader", "wrong-password")}, 403, "516"),
            ({"Authorization": basic("nobody", "whatever-pw")}, 403, "516"),
            ({"Authorization": "Bearer not-a-valid-token-at-all"}, 403, "516"),
            ({"Authorization": f"Bearer {USERS['reader'][1]}", "X-ClickHouse-User": "admin"}, 403, "516"),
        ],
    )
    def test_refused(self, served, headers, status, code):
        """No credentials is 401; wrong or mixed credentials are 403; nothing runs."""
        response = served.request("POST", "/", None, b"SELECT 1", headers, user=None)
        assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (status, code)
        assert response.body.startswith(f"Code: {code}.".encode())

    def test_clickhouse_connect_reports_bad_password(self, served):
        """clickhouse-connect raises DatabaseError with code 516 for a wrong password."""
        import clickhouse_connect

        with pytest.raises(DatabaseError) as err:
            clickhouse_connect.get_client(host=served.host, port=served.port, username="admin", password="nope")
        assert err.value.code == 516


READER_REFUSED = [
    ("INSERT INTO default.sec_t VALUES (2, 'x')", 497),
    ("ALTER TABLE default.sec_t DELETE WHERE 1", 497),
    ("DROP TABLE default.sec_t", 497),
    ("TRUNCATE TABLE default.sec_t", 497),
    ("SELECT * FROM file('{path}', 'LineAsString')", 497),
    ("SELECT file('{path}')", 497),
    ("SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')", 497),
    ("SELECT 1 INTO OUTFILE 'sovtel-out.csv'", 497),
    ("SET readonly = 0", 164),
    ("SELECT 1 SETTINGS readonly = 0", 164),
]


class TestReader:
    @pytest.mark.parametrize(("sql", "code"), READER_REFUSED)
    def test_reader_cannot_write_change_or_reach_out(self, served, table, sql, code):
        """A reader token cannot INSERT, ALTER, DROP, read files through file() or leave readonly."""
        client = served.client("reader", token=True)
        with pytest.raises(DatabaseError) as err:
            client.command(sql.format(path=served.store_dir.parent / "users.yaml"))
        assert err.value.code == code
        assert served.query(f"SELECT count() FROM {table}").body == b"1\n"

    def test_reader_reads(self, served, table):
        """A reader may select, show and describe."""
        client = served.client("reader", token=True)
        assert client.query(f"SELECT s FROM {table}").result_rows == [("secret-literal-value",)]
        assert client.command("SHOW DATABASES")

    def test_reader_url_settings_cannot_lift_readonly(self, served, table):
        """readonly=0 in the URL is refused by the engine for a reader."""
        response = served.request("POST", "/", {"readonly": "0"}, b"SELECT 1", user="reader")
        assert response.header("X-ClickHouse-Exception-Code") == "164"


class TestWriter:
    @pytest.mark.parametrize(
        "sql",
        ["ALTER TABLE default.sec_t DELETE WHERE 1", "DROP TABLE default.sec_t",
         "CREATE TABLE default.sec_new (a UInt8) ENGINE = Memory",
         "INSERT INTO FUNCTION file('sovtel-x.csv', 'CSV') SELECT 1",
         "INSERT INTO default.sec_t SELECT 9, line FROM file('{path}', 'LineAsString')"],
    )
    def test_writer_cannot_change_the_schema_or_reach_out(self, served, table, sql):
        """A writer is refused DDL and file access (the engine refuses the DDL the policy lets through)."""
        response = served.query(sql.format(path=served.store_dir.parent / "users.yaml"), user="writer")
        assert response.header("X-ClickHouse-Exception-Code") in ("497", "392")
        assert served.query(f"SELECT count() FROM {table}").body == b"1\n"

    def test_writer_inserts(self, served, table):
        """A writer may insert rows and use temporary tables."""
        client = served.client("writer")
        client.insert(table, [(5, "w")], column_names=["n", "s"])
        client.command("CREATE TEMPORARY TABLE w_tmp (a UInt8)")
        assert client.command(f"SELECT count() FROM {table} WHERE n = 5") == 1
        served.query(f"ALTER TABLE {table} DELETE WHERE n = 5 SETTINGS mutations_sync = 1")


class TestAdmin:
    def test_admin_may_read_files(self, served):
        """The admin role keeps ClickHouse's full power, file() included."""
        path = served.store_dir.parent / "users.yaml"
        response = served.query(f"SELECT count() > 0 FROM file('{path}', 'LineAsString')")
        assert (response.status, response.body) == (200, b"1\n")

    def test_python_table_function_refused_even_to_admins(self, served):
        """Python() would read the server process's memory: refused to everyone."""
        response = served.query("SELECT * FROM Python(secrets)")
        assert response.header("X-ClickHouse-Exception-Code") == "497"

    def test_get_is_read_only(self, served):
        """A GET may not modify anything, even as admin."""
        response = served.request("GET", "/", {"query": "CREATE TABLE default.sec_get (a UInt8) ENGINE = Memory"})
        assert response.header("X-ClickHouse-Exception-Code") == "164"


class TestAuditLog:
    def test_every_query_is_logged_without_its_literals(self, served, table):
        """Each query gets a record with user, role, kind, outcome and counts; literals are replaced."""
        qid = f"audit-{uuid.uuid4()}"
        sql = f"SELECT * FROM {table} WHERE s = 'secret-literal-value'"
        served.request("POST", "/", {"query_id": qid}, sql.encode(), user="reader")
        record = served.audit_record(qid)
        assert (record["user"], record["role"], record["kind"], record["outcome"]) == (
            "reader", "reader", "select", "ok")
        assert record["read_rows"] >= 1 and record["result_rows"] == 1
        assert "secret-literal-value" not in record["statement"] and "?" in record["statement"]

    @pytest.mark.parametrize(
        ("user", "sql", "outcome", "code"),
        [("reader", "DROP TABLE default.sec_t", "denied", 497), ("admin", "SELECT * FROM nope_t", "error", 60),
         (None, "SELECT 1", "denied", 194)],
    )
    def test_refusals_and_failures_are_logged(self, served, table, user, sql, outcome, code):
        """Denied and failed queries are recorded with their code, unauthenticated ones without a user."""
        qid = f"audit-{uuid.uuid4()}"
        served.request("POST", "/", {"query_id": qid}, sql.encode(), user=user)
        record = served.audit_record(qid)
        assert (record["user"], record["outcome"], record["code"]) == (user, outcome, code)
        assert record["error"] in ("ACCESS_DENIED", "UNKNOWN_TABLE", "REQUIRED_PASSWORD")

    def test_inserts_record_rows_written(self, served, table):
        """An INSERT's record counts the rows it wrote."""
        qid = f"audit-{uuid.uuid4()}"
        served.request("POST", "/", {"query_id": qid, "query": f"INSERT INTO {table} FORMAT TSV"}, b"7\ta\n8\tb\n")
        record = served.audit_record(qid)
        assert (record["kind"], record["written_rows"]) == ("insert", 2)

    def test_ledger_access_tags_are_recorded(self, served):
        """A read tagged by the ledger (retention.ledger's access tag) is logged with its access id."""
        from retention.ledger import ACCESS_TAG

        qid = f"audit-{uuid.uuid4()}"
        served.request("POST", "/", {"query_id": qid}, f"/* {ACCESS_TAG}:0123456789abcdef */ SELECT 1".encode())
        record = served.audit_record(qid)
        assert record["access_ids"] == ["0123456789abcdef"]
