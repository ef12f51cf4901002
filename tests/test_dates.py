"""The suite passes on any day: no literal calendar date in a test feeds the store.

Rows older than the personal retention are dropped on insert (TTL with ``ttl_only_drop_parts``),
retention jobs and "last N days" queries select by age, so a test that writes ``2026-11-01`` into a
table passes until the calendar moves on. Debian's ``faketime`` moves Python's clock but not the
embedded engine's, so date independence cannot be shown by running the suite at another date;
instead this test reads every test module and follows each literal calendar date
(``"2026-11-01"``, ``datetime(2026, 11, 1)``) through the names that hold it — constants, helper
functions, fixtures, imports between test modules — and fails when one reaches a function that
touches the store (a ``Store``, the ``chdb_dsn``/``unique_db`` fixtures, a ``--store`` or ``--url``
command line, …). Literal dates that feed pure functions may stay, listed below with a reason.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# Test modules whose literal dates feed pure functions only, and why they may stay.
PURE: dict[str, str] = {
    "tests/quality/test_windows.py": "window parsing against a fixed NOW; nothing is stored or queried",
    "tests/quality/test_report.py": "report rendering and window splitting of in-memory rows",
    "tests/processors/scorers/test_text.py": "tokenisation of a date written in a sentence",
    "tests/processors/test_generalise.py": "timestamp truncation of an in-memory column",
    "tests/retention/test_audit.py": "an evidence page rendered from an in-memory audit run",
    "tests/retention/test_ledger.py": "golden values of the canonical entry and checkpoint signatures",
    "tests/processors/test_recognizers.py": "a timestamp inside text scanned for PII",
    "tests/dashboards/test_macros.py": "Grafana macro expansion into SQL text, compared as strings",
}

# Literal dates that are labels rather than times, so may reach the store: (module, text) → why.
LABELS: dict[tuple[str, str], str] = {
    ("tests/retention/test_aiact.py", "2026-11-01"): "a model version named by its release date; never a time",
}

# Names (identifiers, parameters, attributes) and command-line words that mean "touches the store".
STORE_NAMES = frozenset({
    "Store", "StoreConfig", "open_store", "store", "chdb_dsn", "chdb_dir", "unique_db", "dbs", "aiact_only",
    "insert_arrow", "insert_spans", "query_rows", "migrate", "Service", "served", "ledger", "Ledger",
    "AiActStore", "ClickHouseLedger",
})
STORE_WORDS = ("--store", "--url", "chdb://", "--database")

DATE_TEXT = re.compile(r"\b(?:19|20|21)\d\d-[01]\d-[0-3]\d")
DATE_CALLS = frozenset({"datetime", "date"})


@dataclass
class Unit:
    """A function or a module-level assignment: what it defines, names and which literal dates it holds."""

    module: str
    line: int
    defines: set[str]
    names: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)
    dates: list[tuple[int, str]] = field(default_factory=list)
    tainted_by: list[str] = field(default_factory=list)

    @property
    def touches_store(self) -> bool:
        return bool(self.names & STORE_NAMES) or any(w in s for s in self.words for w in STORE_WORDS)


def literal_date(node: ast.AST) -> str | None:
    """The calendar date a node writes literally, if any."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        m = DATE_TEXT.search(node.value)
        return m.group(0) if m else None
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        first = node.args[0]
        if (name in DATE_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, int)
                and 1900 <= first.value <= 2199):
            return f"{name}({first.value}, …)"
    return None


def _fill(unit: Unit, node: ast.AST) -> Unit:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            unit.names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            unit.names.add(sub.attr)
        elif isinstance(sub, ast.arg) or (isinstance(sub, ast.keyword) and sub.arg):
            unit.names.add(sub.arg)
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            unit.words.add(sub.value)
        found = literal_date(sub)
        if found and (unit.module, found) not in LABELS:
            unit.dates.append((getattr(sub, "lineno", unit.line), found))
    return unit


def units_of(module: str, source: str) -> tuple[list[Unit], dict[str, tuple[str, str]]]:
    """The units of one module and its imports from other test modules (local name → (module, name))."""
    tree = ast.parse(source)
    units: list[Unit] = []
    imports: dict[str, tuple[str, str]] = {}

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.module.startswith("tests."):
                for alias in stmt.names:
                    imports[alias.asname or alias.name] = (stmt.module.replace(".", "/") + ".py", alias.name)
            elif isinstance(stmt, ast.ClassDef):
                visit(stmt.body)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                units.append(_fill(Unit(module, stmt.lineno, {stmt.name}), stmt))
            elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                defined = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
                units.append(_fill(Unit(module, stmt.lineno, defined), stmt))
            elif not isinstance(stmt, ast.Import | ast.ImportFrom):
                units.append(_fill(Unit(module, stmt.lineno, set()), stmt))

    visit(tree.body)
    return units, imports


def date_leaks(sources: dict[str, str]) -> list[str]:
    """Where a literal date reaches a unit that touches the store: one line per such unit."""
    units: dict[str, list[Unit]] = {}
    imports: dict[str, dict[str, tuple[str, str]]] = {}
    for module, source in sources.items():
        units[module], imports[module] = units_of(module, source)
    tainted: dict[str, dict[str, list[str]]] = {m: {} for m in units}  # module → name → origins
    for module, module_units in units.items():
        for u in module_units:
            if u.dates:
                u.tainted_by = [f"{module}:{line} {text}" for line, text in u.dates]
    changed = True
    while changed:
        changed = False
        for module, module_units in units.items():
            for local, (other, name) in imports[module].items():
                origins = tainted.get(other, {}).get(name)
                if origins and local not in tainted[module]:
                    tainted[module][local] = origins
                    changed = True
            for u in module_units:
                if not u.tainted_by:
                    hits = [o for n in u.names if n in tainted[module] for o in tainted[module][n]]
                    if hits:
                        u.tainted_by = sorted(set(hits))
                        changed = True
                if u.tainted_by:
                    for name in u.defines:
                        if name not in tainted[module]:
                            tainted[module][name] = u.tainted_by
                            changed = True
    return [f"{u.module}:{u.line} touches the store with a literal date from {', '.join(u.tainted_by)}"
            for module_units in units.values() for u in module_units if u.tainted_by and u.touches_store]


def suite_sources() -> dict[str, str]:
    """Every test module, by path relative to the repository."""
    return {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in sorted(TESTS.rglob("*.py"))
            if p != Path(__file__).resolve()}  # this module's examples are what it must catch


def test_no_literal_date_reaches_the_store() -> None:
    """No literal calendar date in a test flows into a function that writes to or queries the store."""
    assert date_leaks(suite_sources()) == []


def test_every_literal_date_is_listed_or_gone() -> None:
    """A module keeps literal dates only when it is listed with a reason, and a listed module still has some."""
    with_dates = {m for m, s in suite_sources().items() for u in units_of(m, s)[0] if u.dates}
    assert with_dates - PURE.keys() == set(), "make these dates relative to now, or list the module with a reason"
    assert PURE.keys() - with_dates == set(), "these modules no longer hold literal dates: drop them from PURE"


OLD_CONFTEST = '''
import datetime as dt
DAY = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
START_NS = int(DAY.timestamp()) * 1_000_000_000

def scored_traffic(seed, requests, start_ns=START_NS):
    return traffic_table(seed, requests, start_ns=start_ns)
'''
OLD_TEST = '''
from tests.quality.conftest import V1, scored_traffic

def filled(store, unique_db):
    store.insert_arrow(f"{unique_db}.spans", scored_traffic(3, 3000))
    return store

def test_report(filled):
    invoke("report", "--window", "2026-11-01T00:00/2026-11-02T00:00")
'''


def test_the_old_fixture_day_is_caught() -> None:
    """The fixture that broke the suite on 2026-12-01 (``DAY = 2026-11-01`` via a helper and an import) is caught."""
    leaks = date_leaks({"tests/quality/conftest.py": OLD_CONFTEST, "tests/quality/test_jobs.py": OLD_TEST})
    assert leaks == [
        "tests/quality/test_jobs.py:4 touches the store with a literal date from tests/quality/conftest.py:3 "
        "datetime(2026, …)",
    ]


def test_a_literal_window_on_a_store_command_is_caught() -> None:
    """A literal date in the command line of a job run against the store is caught in place."""
    leaks = date_leaks({"tests/quality/test_cli.py": OLD_TEST.replace("def test_report(filled)",
                                                                      "def test_report(filled, chdb_dsn)")})
    assert leaks == ["tests/quality/test_cli.py:8 touches the store with a literal date from "
                     "tests/quality/test_cli.py:9 2026-11-01"]


def test_dates_feeding_pure_functions_are_not_flagged() -> None:
    """A date that only a pure function sees (no store names, no store command line) is allowed."""
    source = "import datetime as dt\nNOW = dt.datetime(2026, 1, 1)\n\ndef test_parse():\n    assert parse('x', NOW)\n"
    assert date_leaks({"tests/quality/test_windows.py": source}) == []


@pytest.mark.parametrize("text", ["2026-11-01", "x 2031-02-28T00:00Z y"])
def test_date_strings_are_recognised(text: str) -> None:
    """ISO dates inside strings count as literal dates."""
    assert literal_date(ast.Constant(text)) is not None


def test_relative_dates_are_not_literal() -> None:
    """A date computed from now is not a literal date."""
    tree = ast.parse("DAY = dt.datetime.now(dt.UTC).replace(hour=0) - dt.timedelta(days=2)")
    assert [n for n in ast.walk(tree) if literal_date(n)] == []
