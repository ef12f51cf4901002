"""One storage API (``Store``) over clickhouse-connect, for the embedded chDB store and ClickHouse servers.
Errors come out as ``RetryableStoreError`` or ``PermanentStoreError`` carrying the ClickHouse error code.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import pyarrow as pa
from clickhouse_connect import get_client
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DataError, ProgrammingError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sovtel.config import SecretError, SecretRef, resolve_secret

log = logging.getLogger("sovtel.storage")

T = TypeVar("T")

_ERROR_CODE = re.compile(r"\bCode:\s*(\d+)")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# ClickHouse error codes worth retrying: the same request can succeed later unchanged.
RETRYABLE_CODES: frozenset[int] = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE (connection cut mid-stream)
        32,  # ATTEMPT_TO_READ_AFTER_EOF
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        164,  # READONLY (server or replica temporarily read-only)
        201,  # QUOTA_EXCEEDED (resets with the quota interval)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        225,  # NO_ZOOKEEPER
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        286,  # UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
        319,  # UNKNOWN_STATUS_OF_INSERT
        373,  # SESSION_IS_LOCKED
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        999,  # KEEPER_EXCEPTION
    }
)

DEFAULT_HTTP_PORT = 8123
DEFAULT_HTTPS_PORT = 8443


class StoreError(Exception):
    """A store call failed; ``code`` is the ClickHouse error code when the server gave one."""

    retryable: bool = False

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RetryableStoreError(StoreError):
    """The same call may succeed later (network, timeout, too many parts, memory)."""

    retryable = True


class PermanentStoreError(StoreError):
    """Retrying the same call cannot help (syntax, type mismatch, unknown table, bad credentials)."""

    retryable = False


def classify_error(exc: BaseException) -> StoreError:
    """Map any exception from a client call to a retryable or permanent ``StoreError``."""
    if isinstance(exc, StoreError):
        return exc
    message = str(exc).strip() or type(exc).__name__
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        # chDB's own exceptions carry the code only in the text ("Code: 60. DB::Exception: …").
        found = _ERROR_CODE.search(message)
        code = int(found.group(1)) if found else None
    if code is not None:
        cls: type[StoreError] = RetryableStoreError if code in RETRYABLE_CODES else PermanentStoreError
        return cls(message, code)
    # Without a server code: client-side mistakes and data conversion are permanent; transport
    # failures (refused connections, timeouts, proxies answering 5xx) are worth another try.
    if isinstance(exc, ProgrammingError | DataError | pa.ArrowException | SecretError | TypeError | ValueError):
        return PermanentStoreError(message)
    if isinstance(exc, ClickHouseError | OSError | TimeoutError):
        return RetryableStoreError(message)
    # Unknown failures are retried rather than dropped: the queue keeps the data and logs each attempt.
    return RetryableStoreError(f"{type(exc).__name__}: {message}")


class StoreLocation(BaseModel):
    """Connection fields shared by ``StoreConfig`` and the ClickHouse exporter's configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path | None = Field(default=None, description="Embedded chDB data directory (shortcut for a chdb:// dsn).")
    dsn: str | None = Field(default=None, description="chdb:///DIR, http://user@host:port/db or https://…")
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    secure: bool = False
    verify: bool = True
    ca_cert: str | None = None
    username: str | None = None
    password: SecretRef | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    send_receive_timeout_s: float = Field(default=300.0, gt=0)
    compress: bool = True

    def location_problems(self, require: bool = True) -> list[str]:
        """Every reason the connection fields are inconsistent (empty when they are fine)."""
        problems: list[str] = []
        given = [name for name in ("path", "dsn", "host") if getattr(self, name) is not None]
        if len(given) > 1 or (require and not given):
            problems.append(f"give exactly one of path, dsn or host (got {', '.join(given) or 'none'})")
        if self.dsn is not None:
            parts = urlsplit(self.dsn)
            if parts.scheme not in ("chdb", "http", "https"):
                problems.append("dsn must start with chdb://, http:// or https://")
            if parts.password:
                problems.append("dsn must not contain a password: use password: env:NAME or file:PATH")
        if self.embedded:
            server_only = [n for n in ("port", "username", "password", "ca_cert") if getattr(self, n) is not None]
            if self.secure:
                server_only.append("secure")
            if server_only:
                problems.append(f"{', '.join(server_only)} only apply to a server, not the embedded store")
        return problems

    @property
    def embedded(self) -> bool:
        """Whether this is the in-process chDB store."""
        return self.path is not None or (self.dsn is not None and self.dsn.startswith("chdb:"))

    def embedded_dir(self) -> Path | None:
        """The chDB data directory, or None for a server or an in-memory engine."""
        if self.path is not None:
            return self.path
        if self.dsn is not None and self.dsn.startswith("chdb:"):
            parts = urlsplit(self.dsn)
            # chdb:///abs/dir names a directory; chdb://memory is the in-memory engine.
            if not parts.netloc and parts.path:
                return Path(unquote(parts.path))
        return None

    def describe(self) -> str:
        """Where the store is, for messages (never includes a secret)."""
        if self.path is not None:
            return f"chdb://{self.path}"
        if self.dsn is not None:
            parts = urlsplit(self.dsn)
            if parts.scheme == "chdb":
                return self.dsn
            netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            return f"{parts.scheme}://{netloc}{parts.path}"
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.host}:{self.port or (DEFAULT_HTTPS_PORT if self.secure else DEFAULT_HTTP_PORT)}"


class StoreConfig(StoreLocation):
    """Where the store is: an embedded chDB directory (``path`` or a ``chdb://`` dsn) or a server.

    Exactly one of ``path``, ``dsn`` and ``host`` is given. Passwords are secret references only.
    ``database`` is the default for unqualified names; sovtel itself always qualifies table names.
    """

    database: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> StoreConfig:
        problems = self.location_problems(require=True)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def client_factory(
    config: StoreLocation,
    resolve: Callable[[str], str] = resolve_secret,
    password: str | None = None,
    database: str | None = None,
) -> Callable[[], Client]:
    """A function that opens a clickhouse-connect client for ``config``.

    The password is resolved on every (re)connect so a rotated ``file:`` secret is picked up.
    ``password`` overrides the configured reference (the CLI's ``--url user:pass@…``).
    """

    def open_client() -> Client:
        kwargs: dict[str, Any] = {}
        if database:
            kwargs["database"] = database
        directory = config.embedded_dir()
        if config.embedded:
            if directory is not None:
                # chDB refuses to start in a directory that does not exist yet.
                directory.mkdir(parents=True, exist_ok=True)
                return get_client(dsn=f"chdb://{directory.resolve()}", **kwargs)
            return get_client(dsn=str(config.dsn), **kwargs)
        secret = password if password is not None else (resolve(config.password) if config.password else None)
        kwargs.update(
            connect_timeout=config.connect_timeout_s,
            send_receive_timeout=config.send_receive_timeout_s,
            compress=config.compress,
            verify=config.verify,
            # No HTTP session: calls are independent, so a lost response never leaves a session locked.
            autogenerate_session_id=False,
        )
        if config.dsn is not None:
            kwargs["dsn"] = config.dsn
        else:
            kwargs.update(host=config.host, secure=config.secure)
            if config.port is not None:
                kwargs["port"] = config.port
        if config.username is not None:
            kwargs["username"] = config.username
        if secret is not None:
            kwargs["password"] = secret
        if config.ca_cert:
            kwargs["ca_cert"] = config.ca_cert
        return get_client(**kwargs)

    return open_client


class _ArrowInserter:
    """Arrow inserts through chDB's ``Python()`` table function on a second handle of the same engine.

    clickhouse-connect's chDB mode writes each insert to a temporary file and parses it back;
    reading the Arrow buffers in place is about 1.4 times as fast on 20k-row span batches
    (tests/storage/bench_insert_rate.py). chDB allows several handles on one directory per process.
    """

    def __init__(self, directory: Path) -> None:
        # Imported here: loading the engine costs a quarter second that server deployments never need.
        import chdb

        # clickhouse-connect opens the engine by its real path; chDB compares paths literally.
        self._conn: Any = chdb.connect(os.path.realpath(directory))  # type: ignore[no-untyped-call]

    def insert(self, table_name: str, table: pa.Table, settings: Mapping[str, Any]) -> None:
        columns = ", ".join(_quote_identifier(name) for name in table.column_names)
        clause = ""
        if settings:
            for key in settings:
                if not _SETTING_NAME.match(key):
                    raise PermanentStoreError(f"invalid setting name {key!r}")
            clause = " SETTINGS " + ", ".join(f"{k} = {_quote_literal(v)}" for k, v in settings.items())
        # Python() resolves this local by name from the calling frame.
        sovtel_arrow_batch = table  # noqa: F841
        self._conn.query(
            f"INSERT INTO {_qualified(table_name)} ({columns}){clause} SELECT * FROM Python(sovtel_arrow_batch)"
        )

    def check_alive(self) -> bool:
        nonce = secrets.randbelow(2**62)
        try:
            return bytes(self._conn.query(f"SELECT toUInt64({nonce})", "CSV").bytes()).strip() == str(nonce).encode()
        except Exception:
            return False

    def close(self) -> None:
        self._conn.close()


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _qualified(table_name: str) -> str:
    return ".".join(_quote_identifier(part) for part in table_name.split("."))


def _quote_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class Store:
    """A thread-safe handle on one ClickHouse store through one clickhouse-connect client.

    Every call holds one lock: the chDB client is not safe for concurrent use, and the bug guard
    must run before any other call can read the session. The client is opened on first use (or by
    ``connect``) and reopened after ``close`` or a failed guard, so an unreachable server surfaces
    as a ``RetryableStoreError`` from the call rather than at construction. For an embedded
    directory, Arrow inserts whose types match the table exactly use a second engine handle
    (``_ArrowInserter``), under the same lock and the same guard.
    """

    def __init__(
        self,
        open_client: Callable[[], Client],
        *,
        embedded: bool,
        target: str,
        embedded_dir: Path | None = None,
    ) -> None:
        self._open_client = open_client
        self.embedded = embedded
        self.target = target
        self._embedded_dir = embedded_dir
        self._client: Client | None = None
        self._inserter: _ArrowInserter | None = None
        # Arrow schema each table reads back as; forgotten after any command (it may be DDL).
        self._arrow_schemas: dict[str, pa.Schema] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, config: StoreConfig, resolve: Callable[[str], str] = resolve_secret) -> Store:
        """A store for ``config`` (not yet connected); secrets are resolved through ``resolve``."""
        return cls(
            client_factory(config, resolve, database=config.database),
            embedded=config.embedded,
            target=config.describe(),
            embedded_dir=config.embedded_dir(),
        )

    def connect(self) -> None:
        """Open the client now and check it answers; raises ``StoreError`` if the store is unusable."""
        self._call(self._check_alive)

    def ping(self) -> bool:
        """Whether the store answers a trivial query now."""
        try:
            self.connect()
        except StoreError:
            return False
        return True

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run a statement (DDL, ALTER, SET …) and return its scalar result, if any."""
        with self._lock:
            self._arrow_schemas.clear()
        return self._call(lambda c: c.command(sql, parameters=dict(parameters) if parameters else None))

    def query_rows(
        self, sql: str, parameters: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples; ``settings`` apply to this query only."""
        params = dict(parameters) if parameters else None
        opts = dict(settings) if settings else None
        return self._call(lambda c: [tuple(r) for r in c.query(sql, parameters=params, settings=opts).result_rows])

    def query_arrow(
        self, sql: str, parameters: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None
    ) -> pa.Table:
        """Run a query and return the result as an Arrow table; ``settings`` apply to this query only."""
        params = dict(parameters) if parameters else None
        opts = dict(settings) if settings else None
        return self._call(lambda c: c.query_arrow(sql, parameters=params, settings=opts))

    def insert_arrow(
        self,
        table_name: str,
        table: pa.Table,
        settings: Mapping[str, Any] | None = None,
        dedup_token: str | None = None,
    ) -> None:
        """Insert an Arrow table into ``table_name`` (``db.table``), matching columns by name.

        With ``dedup_token``, a second insert of the same token into the same table is skipped by
        ClickHouse (the table needs ``non_replicated_deduplication_window`` or a Replicated engine),
        so replaying a batch after an unclear failure is harmless.
        """
        opts: dict[str, Any] = dict(settings or {})
        if dedup_token is not None:
            opts["insert_deduplication_token"] = dedup_token
            # Dedup must not depend on server defaults that an operator may have switched off,
            # and a replay skipped in the table must be skipped in its materialized views too.
            opts.setdefault("insert_deduplicate", 1)
            opts.setdefault("deduplicate_blocks_in_dependent_materialized_views", 1)
        if "insert_deduplication_token" in opts:
            # ClickHouse derives block ids from the token and the block's position, and blocks
            # follow the Arrow chunks: one canonical layout makes a replay form the same blocks.
            table = table.combine_chunks()
        with self._lock:
            if self._embedded_dir is not None and self._fits_exactly(table_name, table.schema):
                self._call(lambda c: self._fast_inserter().insert(table_name, table, opts))
            else:
                self._call(lambda c: c.insert_arrow(table_name, table, settings=opts or None))

    def close(self) -> None:
        """Close the client; idempotent. A later call reopens it."""
        with self._lock:
            self._drop_connections()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fits_exactly(self, table_name: str, schema: pa.Schema) -> bool:
        """Whether every column of ``schema`` has exactly the Arrow type the table reads back as.

        Only then may the fast path run: an ``INSERT … SELECT`` converts mismatched values
        leniently (a string 'abc' into UInt32 becomes 0), whereas the Arrow input format of the
        other path converts strictly and rejects what does not fit.
        """
        expected = self._arrow_schemas.get(table_name)
        if expected is None:
            expected = self.query_arrow(f"SELECT * FROM {_qualified(table_name)} LIMIT 0").schema
            self._arrow_schemas[table_name] = expected
        for f in schema:
            index = expected.get_field_index(f.name)
            if index < 0 or not _same_type(f.type, expected.field(index).type):
                return False
        return True

    def _fast_inserter(self) -> _ArrowInserter:
        if self._inserter is None:
            assert self._embedded_dir is not None  # only called for embedded directory stores
            self._inserter = _ArrowInserter(self._embedded_dir)
        return self._inserter

    def _call(self, fn: Callable[[Client], T]) -> T:
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._open_client()
                except Exception as exc:
                    raise self._wrap(exc, "cannot open") from exc
            try:
                return fn(self._client)
            except Exception as exc:
                error = self._wrap(exc)
                if self.embedded:
                    self._discard_stale_results()
                raise error from exc

    def _wrap(self, exc: BaseException, doing: str = "") -> StoreError:
        error = classify_error(exc)
        if doing:
            text = str(error)
            if self.embedded and "lock" in text.lower():
                text += " (only one process may open an embedded store: is another sovtel process using it?)"
            return type(error)(f"{doing} store {self.target}: {text}", error.code)
        return error

    def _check_alive(self, client: Client) -> None:
        nonce = secrets.randbelow(2**62)
        rows = client.query(f"SELECT toUInt64({nonce})").result_rows
        if [tuple(r) for r in rows] != [(nonce,)]:
            raise RetryableStoreError(f"store {self.target} answered a liveness check with unexpected data")

    def _discard_stale_results(self) -> None:
        """Work around the chDB bug where a query failing part-way leaves its partial output to be
        returned as the result of the *next* query on the session (design §8).

        Run a query with a known answer until it comes back exactly; if it never does, drop the
        handle so the next call starts on a fresh session.
        """
        client = self._client
        if client is not None and not _any_of(3, lambda: self._is_alive(client)):
            log.warning("store %s kept returning stale results after an error; reopening the client", self.target)
            self._drop_connections()
        inserter = self._inserter
        if inserter is not None and not _any_of(3, inserter.check_alive):
            log.warning("store %s insert handle kept returning stale results; reopening it", self.target)
            self._inserter = None
            inserter.close()

    def _is_alive(self, client: Client) -> bool:
        try:
            self._check_alive(client)
        except Exception:  # a stale result may not even decode; that is what we are flushing
            return False
        return True

    def _drop_connections(self) -> None:
        client, self._client = self._client, None
        inserter, self._inserter = self._inserter, None
        for handle in (inserter, client):
            if handle is None:
                continue
            try:
                handle.close()
            except Exception:  # closing is best effort: the handle is dropped either way
                log.debug("closing a store handle failed", exc_info=True)


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    """Arrow type equality that ignores the nullability and names of nested fields."""
    if a.num_fields == 0 or b.num_fields == 0:
        return bool(a == b)
    return a.id == b.id and a.num_fields == b.num_fields and all(
        _same_type(a.field(i).type, b.field(i).type) for i in range(a.num_fields)
    )


def _any_of(attempts: int, check: Callable[[], bool]) -> bool:
    """Whether ``check`` succeeds within ``attempts`` tries (stops at the first success)."""
    return any(check() for _ in range(attempts))


def open_store(config: StoreConfig | Mapping[str, Any], resolve: Callable[[str], str] = resolve_secret) -> Store:
    """Open and check a store from a ``StoreConfig`` or its mapping; raises ``StoreError`` if unusable."""
    cfg = config if isinstance(config, StoreConfig) else StoreConfig.model_validate(dict(config))
    store = Store.from_config(cfg, resolve)
    try:
        store.connect()
    except StoreError:
        store.close()
        raise
    return store
