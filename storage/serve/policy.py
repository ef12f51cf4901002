"""What a statement is and who may run it: the engine's own parser (``formatQuery`` to refuse
multi-statements, ``EXPLAIN AST`` for the tree) classifies it, and each role's rules are checked on
the tree; a statement that does not parse is refused (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from storage.serve.config import Role
from storage.serve.errors import ACCESS_DENIED, READONLY, ServeError

# AST root node → statement kind (the audit log's ``kind``); any other root is "other" (admin only).
_KINDS: dict[str, str] = {
    "SelectWithUnionQuery": "select", "SelectIntersectExceptQuery": "select", "SelectQuery": "select",
    "InsertQuery": "insert", "CreateQuery": "create", "AlterQuery": "alter", "DropQuery": "drop",
    "TruncateQuery": "truncate", "DetachQuery": "detach", "AttachQuery": "attach", "UndropQuery": "undrop",
    "Rename": "rename", "OptimizeQuery": "optimize", "DeleteQuery": "delete", "UpdateQuery": "update",
    "Set": "set", "UseQuery": "use", "DescribeQuery": "describe", "Explain": "explain",
    "KillQueryQuery": "kill", "SYSTEM": "system", "CheckQuery": "check", "BackupQuery": "backup",
    "ShowProcesslistQuery": "processlist",
}
READ_KINDS = frozenset({"select", "show", "describe", "exists", "explain", "set", "use"})
ROLE_KINDS: Mapping[Role, frozenset[str]] = {
    Role.READER: READ_KINDS,
    # CREATE only succeeds for temporary tables: writer sessions run with allow_ddl = 0.
    Role.WRITER: READ_KINDS | {"insert", "create"},
}
# Settings each role's engine connections start with; the engine enforces them, not the parser.
ROLE_SETTINGS: Mapping[Role, tuple[str, ...]] = {
    Role.READER: ("SET readonly = 1",),
    Role.WRITER: ("SET allow_ddl = 0",),
    Role.ADMIN: (),
}

# Table functions non-admin users may use: they read nothing but the store itself.
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generaterandom", "generate_series", "generateseries",
    "values", "view", "viewifpermitted", "null", "primes",
})
# System tables that show other users' statements (which may hold personal data): admin only.
PRIVATE_SYSTEM_TABLES = frozenset({
    "processes", "user_processes", "query_log", "query_thread_log", "query_views_log", "query_metric_log",
    "session_log", "text_log", "processors_profile_log", "asynchronous_insert_log",
})
# Table engines non-admin users may create (temporary) tables with.
ALLOWED_ENGINES = frozenset({
    "memory", "mergetree", "replacingmergetree", "summingmergetree", "aggregatingmergetree",
    "collapsingmergetree", "versionedcollapsingmergetree", "coalescingmergetree", "log", "tinylog",
    "stripelog", "set", "join", "null",
})
# Scalar functions that read server files.
DENIED_FUNCTIONS = frozenset({"file", "catboostevaluate"})
# Formats that read schema or template files named by settings, or fetch schemas over the network.
DENIED_FORMATS = frozenset({
    "template", "templateignorespaces", "capnproto", "protobuf", "protobufsingle", "protobuflist", "avroconfluent",
})
# chDB's in-process table functions read the server process's own Python objects: refused for everyone.
PROCESS_FUNCTIONS = frozenset({"python", "arrowstream"})


@dataclass(frozen=True)
class AstNode:
    """One line of ``EXPLAIN AST``: its depth, node type and the words after it."""

    depth: int
    type: str
    words: tuple[str, ...]

    @property
    def name(self) -> str:
        """The node's name (a function's or identifier's), '' if it has none."""
        return self.words[0] if self.words else ""


def parse_ast(text: str) -> list[tuple[AstNode, AstNode | None]]:
    """Every node of an ``EXPLAIN AST`` dump with its parent (None for the root)."""
    out: list[tuple[AstNode, AstNode | None]] = []
    stack: list[AstNode] = []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if not stripped:
            continue
        depth = len(line) - len(stripped)
        body = stripped
        if body.endswith(")") and " (children " in body:
            body = body[: body.rindex(" (children ")]
        parts = body.split()
        node = AstNode(depth, parts[0], tuple(parts[1:]))
        while stack and stack[-1].depth >= depth:
            stack.pop()
        out.append((node, stack[-1] if stack else None))
        stack.append(node)
    return out


@dataclass(frozen=True)
class Statement:
    """A parsed statement, as the policy and the audit log see it."""

    root: str
    kind: str
    output_format: str | None = None
    functions: frozenset[str] = frozenset()
    table_functions: frozenset[str] = frozenset()
    engines: frozenset[str] = frozenset()
    dictionary_sources: frozenset[str] = frozenset()
    tables: frozenset[str] = frozenset()
    file_io: bool = False
    normalized: str = ""
    access_ids: tuple[str, ...] = field(default_factory=tuple)

    @property
    def streams_rows(self) -> bool:
        """Whether the engine can stream this statement's result block by block."""
        return self.kind == "select"

    @property
    def has_result(self) -> bool:
        """Whether the statement produces a result set (and an ``X-ClickHouse-Format`` header)."""
        return self.kind in ("select", "show", "describe", "exists", "explain", "check", "kill")


def classify(ast_dump: str, explicit_format: str | None) -> Statement:
    """A ``Statement`` from an ``EXPLAIN AST`` dump.

    ``explicit_format`` is the name after a trailing ``FORMAT`` the lexer found; it counts only if
    the tree has it as an identifier directly under the root.
    """
    nodes = parse_ast(ast_dump)
    if not nodes:
        raise ServeError(ACCESS_DENIED, "the statement could not be parsed")
    root = nodes[0][0]
    kind = _KINDS.get(root.type)
    if kind is None:
        if root.type.startswith("Show"):
            kind = "show"
        elif root.type.startswith("Exists"):
            kind = "exists"
        else:
            kind = "other"
    functions: set[str] = set()
    table_functions: set[str] = set()
    engines: set[str] = set()
    sources: set[str] = set()
    root_identifiers: set[str] = set()
    tables: set[str] = set()
    file_io = False
    for node, parent in nodes[1:]:
        if node.type in ("Function", "FunctionWithKeyValueArguments") and node.name:
            name = node.name.lower()
            functions.add(name)
            if node.type == "FunctionWithKeyValueArguments":
                sources.add(name)
            elif parent is not None and parent.type == "TableExpression":
                table_functions.add(name)
            elif parent is not None and parent.type == "Storage":
                engines.add(name)
            elif parent is root and root.type in ("InsertQuery", "CreateQuery", "BackupQuery"):
                # INSERT INTO FUNCTION f(…), CREATE TABLE t AS f(…), BACKUP … TO File(…)
                table_functions.add(name)
        elif node.type == "TableIdentifier" and node.name:
            tables.add(node.name.lower())
        elif parent is root and node.type == "Identifier":
            root_identifiers.add(node.name)
        elif parent is root and node.type == "Literal" and kind in ("select", "explain", "insert"):
            # Directly under the root, a string is INTO OUTFILE (or an INSERT's FROM INFILE).
            file_io = True
    fmt = explicit_format if explicit_format and explicit_format in root_identifiers else None
    return Statement(root.type, kind, fmt, frozenset(functions), frozenset(table_functions), frozenset(engines),
                     frozenset(sources), frozenset(tables), file_io)


def authorize(
    role: Role,
    statement: Statement,
    *,
    user: str,
    method: str,
    input_format: str | None = None,
    engine_table_functions: Iterable[str] = (),
) -> None:
    """Raise ``ServeError`` if ``role`` may not run ``statement``; pass silently otherwise.

    Admins may run anything but chDB's in-process table functions. Everyone else is limited to
    their role's statement kinds and may not reach files or the network: table functions outside
    ``ALLOWED_TABLE_FUNCTIONS``, engines outside ``ALLOWED_ENGINES``, dictionary sources, INTO
    OUTFILE / FROM INFILE and formats that load schema files are refused. A GET request may only
    read (as ClickHouse's GET implies readonly).
    """
    process = statement.functions & PROCESS_FUNCTIONS
    if process:
        raise ServeError(ACCESS_DENIED, f"{user}: the table function {sorted(process)[0]}() reads the server "
                         "process's memory and is not available over HTTP")
    if method == "GET" and statement.kind not in READ_KINDS:
        raise ServeError(READONLY, "Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
                         "readonly. You should use method POST for modifying queries")
    if role == Role.ADMIN:
        return
    allowed = ROLE_KINDS[role]
    if statement.kind not in allowed:
        raise ServeError(ACCESS_DENIED, f"{user}: Not enough privileges: the {role} role may not run "
                         f"{statement.kind.upper()} statements")
    # Unqualified names count too: the current database may be ``system``.
    private = sorted(t for t in statement.tables if ("." not in t or t.startswith("system."))
                     and t.removeprefix("system.") in PRIVATE_SYSTEM_TABLES)
    if private:
        raise ServeError(ACCESS_DENIED, f"{user}: Not enough privileges: {private[0]} shows other users' "
                         "statements; only admin users may read it")
    reach = _outside_reach(statement, engine_table_functions)
    if reach:
        raise ServeError(ACCESS_DENIED, f"{user}: Not enough privileges: {reach} reaches files or the network; "
                         "only admin users may use it")
    for fmt in (statement.output_format, input_format):
        if fmt and fmt.lower() in DENIED_FORMATS:
            raise ServeError(ACCESS_DENIED, f"{user}: Not enough privileges: format {fmt} reads schema files; "
                             "only admin users may use it")


def _outside_reach(statement: Statement, engine_table_functions: Iterable[str]) -> str:
    """A description of the first thing in the statement that reaches outside the store, or ''."""
    if statement.file_io:
        return "INTO OUTFILE / FROM INFILE"
    for name in sorted(statement.table_functions - ALLOWED_TABLE_FUNCTIONS):
        return f"the table function {name}()"
    known = {n.lower() for n in engine_table_functions} - ALLOWED_TABLE_FUNCTIONS - {"format"}
    for name in sorted(statement.functions & (known | DENIED_FUNCTIONS)):
        return f"the function {name}()"
    for name in sorted(statement.engines - ALLOWED_ENGINES):
        return f"the table engine {name}"
    for name in sorted(statement.dictionary_sources):
        return f"the dictionary source {name}"
    return ""
