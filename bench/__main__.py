"""Run every benchmark section and write docs/benchmarks.md (and docs/benchmarks.json)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import json
import sys
from pathlib import Path

from bench.common import Section, machine

SECTIONS = ("bench.spine", "bench.receiver_memory", "bench.serve", "bench.privacy", "bench.pii_external", "bench.quality", "bench.soak")


def main(argv: list[str] | None = None) -> int:
    """Run the sections (all, or those named) and write the report."""
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("only", nargs="*", help="section module names to run (default: all)")
    ap.add_argument("--out", default="docs/benchmarks.md")
    args = ap.parse_args(argv)
    results: list[Section] = []
    for name in SECTIONS:
        if args.only and name.rsplit(".", 1)[-1] not in args.only:
            continue
        if importlib.util.find_spec(name) is None:
            continue
        print(f"bench: {name} …", flush=True)
        module = importlib.import_module(name)
        results.append(module.run())
        print(results[-1].markdown, flush=True)
    out = Path(args.out)
    header = (
        "# Benchmarks\n\n"
        "Written by `make bench`; every ratio compares two measurements taken in the same run on the same machine.\n\n"
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n- machine: {machine()}\n\n"
    )
    out.write_text(header + "\n\n".join(f"## {s.title}\n\n{s.markdown.strip()}\n" for s in results))
    out.with_suffix(".json").write_text(json.dumps({s.title: s.numbers for s in results}, indent=2, default=str))
    print(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
