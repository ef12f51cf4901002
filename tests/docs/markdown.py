"""Read the Markdown documentation: its files, links, heading anchors and shell blocks."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_MARK = re.compile(r"^<!--\s*doctest:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->$")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)(?P<lang>[\w-]*)\s*$")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"`[^`]*`")


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, text (indent removed), first line number, and skip reason."""

    path: Path
    line: int
    lang: str
    text: str
    skip: str | None

    @property
    def where(self) -> str:
        """``docs/x.md:12`` for messages and test ids."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced code block of a Markdown file, with the skip mark on the line before it, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m.group("indent")), m.group("fence")
        previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        mark = SKIP_MARK.match(previous)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j].lstrip())
            j += 1
        found.append(Block(path, i + 1, m.group("lang"), "\n".join(body), mark.group("reason") if mark else None))
        i = j + 1
    return found


def prose(path: Path, *, keep_inline_code: bool = False) -> str:
    """The file's text outside fenced code blocks (and outside inline code unless kept)."""
    out, fence = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _FENCE.match(line)
        if m and fence is None:
            fence = m.group("fence")
            continue
        if fence is not None:
            if line.strip() == fence:
                fence = None
            continue
        out.append(line if keep_inline_code else _INLINE_CODE.sub("", line))
    return "\n".join(out)


def links(path: Path) -> list[str]:
    """Every link target in the file's prose."""
    return [m.group("target") for m in _LINK.finditer(prose(path))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", lambda m: "_" if m.group(0) == "_" else "", heading.strip())
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a file's headings, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose(path, keep_inline_code=True).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def commands(block: Block) -> list[str]:
    """The ``sovtel …`` commands of a shell block, with backslash continuations and quoted line breaks joined."""
    joined: list[str] = []
    current = ""
    for raw in block.text.splitlines():
        line = raw.rstrip()
        if current:
            current += " " + line.strip()
        else:
            current = line.strip()
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        if current.count('"') % 2 or current.count("'") % 2:
            continue  # inside a quoted argument that spans lines
        joined.append(current)
        current = ""
    if current:
        joined.append(current)
    return [c for c in joined if c.startswith("sovtel ")]
