"""The documentation: every link resolves, and every ``sovtel`` command in a shell block runs.

Commands run as separate processes (chDB allows one data directory per process) in a scratch
workspace holding what the docs refer to: ``.sovtel/store`` (an embedded store with the current
schema), ``jobs.yaml`` (the jobs configuration, pointing at that store), ``keyring.yaml`` with its
keys, ``signing/`` (a checkpoint signing key pair), ``sovtel.yaml`` and ``examples/``. A command
passes when it exits 0, or 1 where sovtel documents 1 as "the job found problems" (an audit of an
empty store fails its checks); exit 2 (bad usage or input) or a traceback fails the test. A block
preceded by ``<!-- doctest: skip (reason) -->`` is reported as skipped with its reason.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.docs.markdown import ROOT, SKIP_MARK, anchors, blocks, commands, doc_files, links

SHELL_LANGS = ("sh", "bash", "shell", "console")
MAX_SKIPPED = 3
# Commands whose exit code 1 means "ran, and found problems" (documented in docs/retention.md).
FINDS_PROBLEMS = ("sovtel audit run", "sovtel audit verify", "sovtel retention apply", "sovtel retention erase")
SOVTEL = str(Path(sys.executable).with_name("sovtel"))


def _shell_blocks():
    return [b for path in doc_files() for b in blocks(path) if b.lang in SHELL_LANGS and commands(b)]


SHELL_BLOCKS = _shell_blocks()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, env=_env(), check=False)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(SOVTEL).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SOVTEL_PII_KEY"] = "doc-test-pii-key-0123456789abcdef"
    env.pop("SOVTEL_KEY_RING", None)
    return env


@pytest.fixture(scope="session")
def seed(tmp_path_factory) -> Path:
    """A workspace with an embedded store, jobs configuration, key ring and keys, built once."""
    ws = tmp_path_factory.mktemp("doc-seed")
    shutil.copytree(ROOT / "examples", ws / "examples")
    shutil.copy(ROOT / "examples" / "single-node.yaml", ws / "sovtel.yaml")
    done = _run([SOVTEL, "schema", "migrate", "--store", ".sovtel/store"], ws)
    assert done.returncode == 0, done.stderr
    done = _run([SOVTEL, "audit", "keygen", "--out", "signing"], ws)
    assert done.returncode == 0, done.stderr
    (ws / "keys").mkdir()
    for name in ("n1", "p1"):
        (ws / "keys" / f"{name}.key").write_text(secrets.token_hex(32))
    created = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (ws / "keyring.yaml").write_text(
        f"node:\n  active: n1\n  keys:\n    n1: {{ref: 'file:keys/n1.key', created: '{created}'}}\n"
        f"pepper:\n  active: p1\n  keys:\n    p1: {{ref: 'file:keys/p1.key', created: '{created}'}}\n"
    )
    (ws / "jobs.yaml").write_text(
        "tiers:\n  - path: .sovtel/store\n    databases: [sovtel]\n"
        "ledger:\n  checkpoint_dir: checkpoints\n  signing_key: file:signing/ledger-signing.pem\n  actor: dpo\n"
        "audit:\n  ner: 'off'\n"
        "erasure:\n  keyring: keyring.yaml\n"
    )
    return ws


def _run_block(block, ws: Path) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Run a block's commands in order in ``ws``, stopping at the first one that fails."""
    results = []
    for command in commands(block):
        done = subprocess.run(["bash", "-c", command], cwd=ws, capture_output=True, text=True,
                              timeout=120, env=_env(), check=False)
        results.append((command, done))
        if done.returncode not in _allowed(command):
            break
    return results


def _allowed(command: str) -> set[int]:
    return {0, 1} if command.startswith(FINDS_PROBLEMS) else {0}


@pytest.fixture(scope="session")
def block_results(seed, tmp_path_factory):
    """Every runnable block's command results, each block in its own copy of the seed, run concurrently."""
    runnable = [b for b in SHELL_BLOCKS if not b.skip]
    spaces = [tmp_path_factory.mktemp("doc-block") / "ws" for _ in runnable]
    for ws in spaces:
        shutil.copytree(seed, ws, symlinks=True)  # chDB's metadata directory holds relative symlinks
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(_run_block, runnable, spaces))
    return {b.where: r for b, r in zip(runnable, results, strict=True)}


class TestLinks:
    @pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
    def test_every_link_resolves(self, path):
        """Every relative link points at an existing file, and every anchor at a heading of its target."""
        broken = []
        for target in links(path):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                broken.append(f"{target}: no such file")
            elif anchor and dest.is_file() and anchor not in anchors(dest):
                broken.append(f"{target}: no heading with anchor #{anchor}")
        assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)

    def test_docs_home_links_every_page(self):
        """docs/index.md links every Markdown page under docs/."""
        index = ROOT / "docs" / "index.md"
        linked = {(index.parent / t.partition("#")[0]).resolve() for t in links(index) if not t.startswith("http")}
        pages = {p.resolve() for p in (ROOT / "docs").rglob("*.md") if p != index}
        missing = sorted(str(p.relative_to(ROOT)) for p in pages - linked)
        assert not missing, missing

    def test_no_machine_paths_in_docs(self):
        """The docs speak of the product only: no paths of a developer's machine."""
        for path in doc_files():
            text = path.read_text(encoding="utf-8")
            for fragment in ("/tmp/venv", "/work/", "/home/", "/Users/"):
                assert fragment not in text, f"{path.relative_to(ROOT)} mentions {fragment}"


class TestCommands:
    def test_skips_are_rare_and_explained(self):
        """Skipped blocks each give a reason, and there are at most a few of them."""
        skipped = [b for b in SHELL_BLOCKS if b.skip]
        assert len(skipped) <= MAX_SKIPPED, [b.where for b in skipped]
        for path in doc_files():
            for line in path.read_text(encoding="utf-8").splitlines():
                if "doctest:" in line:
                    assert SKIP_MARK.match(line.strip()), f"{path.relative_to(ROOT)}: malformed mark {line!r}"

    def test_commands_are_found(self):
        """The parser finds the documented commands, including ones split over lines."""
        found = [c for b in SHELL_BLOCKS for c in commands(b)]
        assert any(c.startswith("sovtel retention erase --config jobs.yaml") for c in found)
        query = next(c for c in found if c.startswith("sovtel query"))
        assert "--password-env CH_READER_PASSWORD" in query
        assert query.endswith('ORDER BY new_errors DESC"')

    @pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.where)
    def test_command_runs(self, block, block_results):
        """Each documented sovtel command runs: exit 0, or 1 where that means the job found problems."""
        if block.skip:
            pytest.skip(f"{block.where}: {block.skip}")
        results = block_results[block.where]
        assert len(results) == len(commands(block)) or results[-1][1].returncode not in _allowed(results[-1][0])
        for command, done in results:
            output = done.stdout[-2000:] + done.stderr[-2000:]
            status = done.returncode
            assert status in _allowed(command), f"{block.where}: `{command}` exited {status}\n{output}"
            assert "Traceback" not in done.stderr, f"{block.where}: `{command}` crashed\n{output}"
