"""ClickHouse's HTTP interface as `sovtel serve` speaks it, checked with raw HTTP: query placement,
formats and headers, settings, bindings, compression both ways, chunked bodies, limits and errors."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import zlib

import lz4.frame
import pyarrow as pa
import pytest
import zstandard

from tests.storage.serve.conftest import ServedStore

SERVE_LIMITS = {"max_body_mb": 8, "default_session_timeout_s": 30, "max_session_timeout_s": 30}


@pytest.fixture(scope="module")
def table(served: ServedStore) -> str:
    """A small table every test here may read."""
    assert served.query("CREATE TABLE default.http_t (n UInt64, s String) ENGINE = MergeTree ORDER BY n").status == 200
    assert served.query("INSERT INTO default.http_t SELECT number, toString(number) FROM numbers(10)").status == 200
    return "default.http_t"


class TestEndpoints:
    @pytest.mark.parametrize(("method", "path"), [("GET", "/ping"), ("GET", "/"), ("GET", "/replicas_status")])
    def test_health_checks_need_no_credentials(self, served, method, path):
        """/ping and a bare GET / answer 'Ok.' without authentication, as ClickHouse does."""
        response = served.request(method, path, user=None)
        assert (response.status, response.body) == (200, b"Ok.\n")

    def test_unknown_path_is_404(self, served):
        """Any other path is 404."""
        assert served.request("GET", "/play", user=None).status == 404

    def test_http_1_0_gets_a_body_that_ends_with_the_connection(self, served):
        """An HTTP/1.0 client (netcat, old tools) gets a plain streamed body, not chunks."""
        with socket.create_connection((served.host, served.port), timeout=30) as sock:
            sock.sendall(b"GET /?query=SELECT%20number%20FROM%20numbers(3) HTTP/1.0\r\nAuthorization: Basic "
                         + base64.b64encode(b"admin:admin-password-1") + b"\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower()
        assert body == b"0\n1\n2\n"

    def test_unsupported_method(self, served):
        """PUT is refused."""
        assert served.request("PUT", "/", body=b"SELECT 1").status == 500


class TestQueries:
    @pytest.mark.parametrize(
        ("method", "params", "body", "expected"),
        [
            ("GET", {"query": "SELECT 1"}, None, b"1\n"),
            ("POST", {}, b"SELECT 2", b"2\n"),
            ("POST", {"query": "SELECT"}, b"3", b"3\n"),  # parameter and body joined by a newline
            ("POST", {"query": "SELECT 'a\tb'"}, None, b"a\\tb\n"),
        ],
    )
    def test_query_in_parameter_body_or_both(self, served, method, params, body, expected):
        """The query may come in the URL, the body, or start in one and end in the other; TSV is the default."""
        response = served.request(method, "/", params, body)
        assert (response.status, response.body) == (200, expected)
        assert response.header("Content-Type").startswith("text/tab-separated-values")
        assert response.header("X-ClickHouse-Format") == "TabSeparated"

    def test_clickhouse_headers(self, served, table):
        """Query id (given or generated), timezone, summary and format headers are sent."""
        given = served.query(f"SELECT sum(n) AS total FROM {table} FORMAT JSON", query_id="my-query-1")
        generated = served.query("SELECT 1")
        assert given.header("X-ClickHouse-Query-Id") == "my-query-1"
        assert len(generated.header("X-ClickHouse-Query-Id")) == 36
        assert given.header("X-ClickHouse-Timezone")
        assert given.header("X-ClickHouse-Format") == "JSON"
        assert given.header("Content-Type").startswith("application/json")
        assert json.loads(given.body)["data"] == [{"total": 45}]
        assert json.loads(given.header("X-ClickHouse-Summary"))["read_rows"] == "10"

    def test_statements_without_results_have_no_format_header(self, served):
        """DDL answers with an empty body and no X-ClickHouse-Format (clickhouse-connect relies on it)."""
        response = served.query("CREATE TABLE IF NOT EXISTS default.http_ddl (a UInt8) ENGINE = Memory")
        assert (response.status, response.body, response.header("X-ClickHouse-Format")) == (200, b"", None)

    @pytest.mark.parametrize(
        ("params", "headers", "fmt"),
        [({"default_format": "CSV"}, {}, "CSV"), ({}, {"X-ClickHouse-Format": "JSONEachRow"}, "JSONEachRow")],
    )
    def test_default_format(self, served, params, headers, fmt):
        """default_format and the X-ClickHouse-Format request header choose the output format."""
        response = served.request("POST", "/", params, b"SELECT 1 AS x", headers)
        assert response.header("X-ClickHouse-Format") == fmt
        assert response.body in (b"1\n", b'{"x":1}\n')

    def test_unknown_default_format_is_404(self, served):
        """A default_format the engine does not know is UNKNOWN_FORMAT."""
        response = served.query("SELECT 1", default_format="NoSuchFormat")
        assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (404, "73")

    @pytest.mark.parametrize("wait", ["0", "1"])
    def test_arrow_stream_is_one_valid_stream(self, served, wait):
        """ArrowStream output made of many engine blocks reads back as one Arrow stream."""
        response = served.query("SELECT number, toString(number) AS s FROM numbers(10000) "
                                "SETTINGS max_block_size = 1000 FORMAT ArrowStream", wait_end_of_query=wait)
        table = pa.ipc.open_stream(response.body).read_all()
        assert table.num_rows == 10000 and table.column("number").to_pylist()[-1] == 9999

    def test_settings_as_url_parameters(self, served):
        """Any non-transport URL parameter is a setting for that query."""
        response = served.query("SELECT getSetting('max_threads'), getSetting('max_result_rows')", max_threads="3",
                                max_result_rows="77")
        assert response.body == b"3\t77\n"

    def test_unknown_setting_is_an_error(self, served):
        """An unknown setting is UNKNOWN_SETTING (404)."""
        response = served.query("SELECT 1", no_such_setting="1")
        assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (404, "115")

    def test_database_parameter(self, served, table):
        """database= sets the current database for the query."""
        response = served.query("SELECT currentDatabase(), count() FROM http_t", database="default")
        assert response.body == b"default\t10\n"

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"param_n": "3", "param_s": "x\\ty"}, b"3\tx\\ty\n"),
            ({"param_n": "0", "param_s": "\\N"}, b"0\t\\N\n"),
        ],
    )
    def test_parameter_binding(self, served, params, expected):
        """param_ values bind {name:Type} placeholders, parsed from escaped text like ClickHouse does."""
        response = served.request("POST", "/", params, b"SELECT {n:UInt8}, {s:Nullable(String)}")
        assert (response.status, response.body) == (200, expected)

    def test_multipart_form(self, served):
        """A multipart form carries the query and its parameters (clickhouse-connect does so for long ones)."""
        boundary = "sovtelboundary"
        parts = [("query", "SELECT {v:String}"), ("param_v", "from-a-form")]
        body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in parts)
        body += f"--{boundary}--\r\n"
        response = served.request("POST", "/", None, body.encode(),
                                  {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert (response.status, response.body) == (200, b"from-a-form\n")


class TestInsert:
    @pytest.mark.parametrize(
        ("params", "body", "chunks"),
        [
            ({}, b"INSERT INTO default.http_ins VALUES (1, 'a'), (2, 'b')", None),
            ({"query": "INSERT INTO default.http_ins FORMAT TabSeparated"}, b"1\ta\n2\tb\n", None),
            ({"query": "INSERT INTO default.http_ins FORMAT CSV"}, None, [b"1,a\n", b"2,", b"b\n"]),
            ({}, None, [b"INSERT INTO default.http_ins FORMAT JSONEachRow\n", b'{"n":1,"s":"a"}\n{"n":2,"s":"b"}']),
            ({"query": "INSERT INTO default.http_ins (n, s) VALUES"}, b"(1, 'a'), (2, 'b')", None),
        ],
    )
    def test_insert_bodies(self, served, params, body, chunks):
        """VALUES and formatted data arrive in the body (plain or chunked) and land in the table."""
        served.query("CREATE TABLE IF NOT EXISTS default.http_ins (n UInt8, s String) ENGINE = Memory")
        served.query("TRUNCATE TABLE default.http_ins")
        response = served.request("POST", "/", params, body, chunks=chunks)
        assert response.status == 200, response.text
        assert json.loads(response.header("X-ClickHouse-Summary"))["written_rows"] == "2"
        assert served.query("SELECT n, s FROM default.http_ins ORDER BY n").body == b"1\ta\n2\tb\n"

    @pytest.mark.parametrize(
        ("coding", "encode"),
        [
            ("lz4", lambda parts: b"".join(lz4.frame.compress(p) for p in parts)),
            ("zstd", lambda parts: b"".join(zstandard.ZstdCompressor().compress(p) for p in parts)),
            ("gzip", lambda parts: gzip.compress(b"".join(parts))),
            ("deflate", lambda parts: zlib.compress(b"".join(parts))),
        ],
    )
    def test_compressed_insert_bodies(self, served, coding, encode):
        """Content-Encoding bodies (lz4 one frame per block) are decompressed before they are inserted."""
        served.query("CREATE TABLE IF NOT EXISTS default.http_z (n UInt32) ENGINE = Memory")
        served.query("TRUNCATE TABLE default.http_z")
        parts = [b"".join(b"%d\n" % i for i in range(k, k + 5000)) for k in range(0, 20000, 5000)]
        response = served.request("POST", "/", {"query": "INSERT INTO default.http_z FORMAT TSV"}, encode(parts),
                                  {"Content-Encoding": coding})
        assert response.status == 200, response.text
        assert served.query("SELECT count(), sum(n) FROM default.http_z").body == b"20000\t199990000\n"

    def test_bad_data_commits_nothing(self, served):
        """A body that fails to parse part-way leaves the table as it was and reports the engine's error."""
        served.query("CREATE TABLE IF NOT EXISTS default.http_bad (n UInt8) ENGINE = Memory")
        response = served.request("POST", "/", {"query": "INSERT INTO default.http_bad FORMAT TSV"}, b"1\n2\nnope\n")
        assert response.status in (400, 500) and response.header("X-ClickHouse-Exception-Code") is not None
        assert response.text.startswith("Code: ")
        assert served.query("SELECT count() FROM default.http_bad").body == b"0\n"


class TestResponseCompression:
    @pytest.mark.parametrize(
        ("accept", "coding", "decode"),
        [
            ("lz4", "lz4", lz4.frame.decompress),
            ("zstd", "zstd", lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)),
            ("gzip", "gzip", gzip.decompress),
            ("deflate", "deflate", zlib.decompress),
        ],
    )
    @pytest.mark.parametrize("wait", ["0", "1"])
    def test_accept_encoding(self, served, accept, coding, decode, wait):
        """Responses are compressed with a coding the client accepts, streamed or whole."""
        response = served.request("POST", "/", {"wait_end_of_query": wait, "enable_http_compression": "1"},
                                  b"SELECT number FROM numbers(20000)", {"Accept-Encoding": accept})
        assert response.header("Content-Encoding") == coding
        assert decode(response.body) == b"".join(b"%d\n" % i for i in range(20000))

    def test_compression_can_be_switched_off(self, served):
        """enable_http_compression=0 answers uncompressed whatever the client accepts."""
        response = served.request("POST", "/", {"enable_http_compression": "0"}, b"SELECT 1",
                                  {"Accept-Encoding": "gzip"})
        assert (response.header("Content-Encoding"), response.body) == (None, b"1\n")

    def test_unknown_request_coding_is_refused(self, served):
        """A body in a coding the server does not know is refused with UNKNOWN_COMPRESSION_METHOD."""
        response = served.request("POST", "/", None, b"SELECT 1", {"Content-Encoding": "snappy"})
        assert response.header("X-ClickHouse-Exception-Code") == "89"

    def test_corrupt_compressed_body(self, served):
        """A body that does not decompress is CANNOT_DECOMPRESS."""
        response = served.request("POST", "/", None, b"\x04\x22\x4d\x18garbage", {"Content-Encoding": "lz4"})
        assert response.header("X-ClickHouse-Exception-Code") == "271"


class TestErrors:
    @pytest.mark.parametrize(
        ("sql", "status", "code"),
        [
            ("SELECT * FROM default.no_such_table", 404, "60"),
            ("SELEKT 1", 400, "62"),
            ("SELECT 1; SELECT 2", 400, "62"),
            ("", 400, "62"),
            ("SELECT throwIf(1)", 500, "395"),
        ],
    )
    def test_errors_have_clickhouse_shape(self, served, sql, status, code):
        """Errors carry ClickHouse's status, X-ClickHouse-Exception-Code and a 'Code: N. DB::Exception:' body."""
        response = served.query(sql)
        assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (status, code)
        assert response.text.startswith(f"Code: {code}. DB::Exception: ")

    def test_failure_before_the_buffer_fills_gets_an_error_status(self, served):
        """A query failing part-way within the first buffer_size bytes (1 MiB) answers an error, no partial rows."""
        response = served.query("SELECT throwIf(number = 50000) FROM numbers(100000) SETTINGS max_block_size = 1000")
        assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (500, "395")
        assert response.text.startswith("Code: 395. DB::Exception: ")
        assert response.header("X-ClickHouse-Exception-Tag") is None

    def test_failure_mid_stream_ends_with_the_tagged_exception(self, served):
        """A query failing after output began (here: no buffer) ends the 200 body with the tagged exception block."""
        response = served.query("SELECT throwIf(number = 50000) FROM numbers(100000) SETTINGS max_block_size = 1000",
                                buffer_size="0")
        tag = response.header("X-ClickHouse-Exception-Tag")
        assert response.status == 200 and tag
        assert response.body.endswith(f" {tag}\r\n__exception__\r\n".encode())
        assert f"__exception__\r\n{tag}\r\nCode: 395.".encode() in response.body

    def test_failure_when_waiting_gets_an_error_status(self, served):
        """With wait_end_of_query=1 the same failure is a plain error response."""
        response = served.query("SELECT throwIf(number = 50000) FROM numbers(100000) SETTINGS max_block_size = 1000",
                                wait_end_of_query="1")
        assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (500, "395")

    def test_announced_body_over_the_limit_is_413_before_it_is_sent(self, served):
        """A Content-Length over limits.max_body_mb (8 MiB here) is refused before any body byte is read."""
        with socket.create_connection((served.host, served.port), timeout=30) as sock:
            sock.sendall(b"POST /?query=INSERT%20INTO%20default.http_big%20FORMAT%20TSV HTTP/1.1\r\n"
                         b"Host: x\r\nAuthorization: Basic " + base64.b64encode(b"admin:admin-password-1")
                         + b"\r\nContent-Length: 10485760\r\n\r\n")
            head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 413 ")
        assert b"X-ClickHouse-Exception-Code: 229" in head

    def test_chunked_body_over_the_limit_is_413(self, served):
        """A chunked body is counted as it arrives and refused once it passes the limit; nothing is inserted."""
        served.query("CREATE TABLE IF NOT EXISTS default.http_big (n UInt8) ENGINE = Memory")
        data = b"1\n" * (5 << 20)
        response = served.request("POST", "/", {"query": "INSERT INTO default.http_big FORMAT TSV"},
                                  chunks=[data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)])
        assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (413, "229")
        assert served.query("SELECT count() FROM default.http_big").body == b"0\n"

    def test_decompressed_size_is_limited_too(self, served):
        """A small compressed body that expands past the limit is refused (no decompression bombs)."""
        bomb = zstandard.ZstdCompressor().compress(b"1\n" * (6 << 20))
        response = served.request("POST", "/", {"query": "INSERT INTO default.http_big FORMAT TSV"}, bomb,
                                  {"Content-Encoding": "zstd"})
        assert response.status == 413

    def test_external_data_is_not_implemented(self, served):
        """Tables sent with the query (external data) are refused with NOT_IMPLEMENTED."""
        boundary = "b0undary"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="t"; filename="t.tsv"\r\n\r\n1\n\r\n'
                f"--{boundary}--\r\n").encode()
        response = served.request("POST", "/", {"query": "SELECT * FROM t", "t_structure": "a UInt8"}, body,
                                  {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert (response.status, response.header("X-ClickHouse-Exception-Code")) == (501, "48")

    def test_internal_compression_is_not_implemented(self, served):
        """compress=1 (ClickHouse's own block compression) is refused rather than ignored."""
        assert served.query("SELECT 1", compress="1").status == 501
