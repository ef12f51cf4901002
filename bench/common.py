"""Shared benchmark plumbing: a section of the report, timing, and pinning work to one core."""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Section:
    """One part of docs/benchmarks.md: a title, its markdown body, and the raw numbers (for JSON)."""

    title: str
    markdown: str
    numbers: dict[str, Any] = field(default_factory=dict)


def pin_to_one_core(core: int = 0) -> bool:
    """Restrict this process (and threads it starts later) to one CPU; False where unsupported."""
    try:
        os.sched_setaffinity(0, {core})
        return True
    except (AttributeError, OSError):
        return False


def rate(n: int, fn: Callable[[], Any], min_seconds: float = 1.0) -> float:
    """Items per second of ``fn`` (which processes ``n`` items), repeated for at least ``min_seconds``."""
    fn()  # warm-up
    done, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < min_seconds or done == 0:
        fn()
        done += n
    return done / elapsed


def write_generated(path: Path, begin: str, end: str, module: str, markdown: str) -> None:
    """Replace the block of ``path`` between the markers ``begin`` and ``end`` with ``markdown``, noted as
    written by ``python -m {module}``; a file without the block is a ValueError."""
    text = path.read_text(encoding="utf-8")
    note = f"<!-- written by `python -m {module}`; do not edit by hand -->"
    block = f"{begin}\n{note}\n\n{markdown.strip()}\n\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{path} has no generated block ({begin} … {end})")
    path.write_text(pattern.sub(lambda _m: block, text), encoding="utf-8")


def machine() -> str:
    """A one-line description of the machine the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} × {cpu}, Python {platform.python_version()}"
