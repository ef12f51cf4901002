"""PII masking: leak and false-positive rates per entity on the labelled corpus, and texts/s per core
of ``sovtel privacy scrub`` against Presidio's default AnalyzerEngine + AnonymizerEngine with the
same spaCy model, both measured in this run on the same texts.

``python -m bench.privacy`` also rewrites the generated tables in docs/privacy.md.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import tldextract
import tldextract.tldextract as tld
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_anonymizer import AnonymizerEngine

from app.privacy import scrub_stream
from bench.common import Section, machine, pin_to_one_core, write_generated
from evaluation import pii as corpus
from processors import pii
from processors.recognizers.person_name import given_names, surnames
from processors.recognizers.person_ner import DEFAULT_MODEL

DOCS = Path(__file__).resolve().parent.parent / "docs" / "privacy.md"
BEGIN = "<!-- BEGIN GENERATED: bench/privacy.py -->"
END = "<!-- END GENERATED: bench/privacy.py -->"
SAMPLES = 3000
SEED = 7
BENCH_KEY = "bench-only-token-key-0123456789"


def _cpu_rate(n: int, fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """(items per CPU-second, result): the best of ``repeat`` calls of ``fn`` over ``n`` items."""
    best, result = 0.0, None
    for _ in range(repeat):
        t0 = time.process_time()
        result = fn()
        best = max(best, n / max(time.process_time() - t0, 1e-9))
    return best, result


def sovtel_scrub(samples: Sequence[corpus.Sample], ner: bool = True) -> tuple[float, list[str]]:
    """texts/s per core and outputs of the scrub path (JSONL in, JSONL out, default config)."""
    masker = pii.build_masker(pii.Config(ner="required" if ner else "off"), lambda ref: BENCH_KEY)
    lines = "".join(json.dumps({"text": s.text}, ensure_ascii=False) + "\n" for s in samples).encode()
    # Warm-up: first calls compile regexes and fill spaCy's caches.
    scrub_stream([masker], io.BytesIO(lines), io.StringIO(), io.StringIO())

    def work() -> str:
        out, err = io.StringIO(), io.StringIO()
        if scrub_stream([masker], io.BytesIO(lines), out, err):
            raise RuntimeError("the corpus produced bad lines: " + err.getvalue())
        return out.getvalue()

    rate, text = _cpu_rate(len(samples), work, repeat=3)
    return rate, [json.loads(line)["text"] for line in text.splitlines()]


def presidio_default(samples: Sequence[corpus.Sample]) -> tuple[float, list[str]]:
    """texts/s per core and outputs of Presidio's default engines with the same spaCy model.

    Two changes keep it offline and nothing else: the NLP engine loads the installed model
    package instead of downloading one, and tldextract uses its bundled suffix list.
    """

    tld.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    nlp = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": DEFAULT_MODEL}]}
    ).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp)
    anonymizer = AnonymizerEngine()
    texts = [s.text for s in samples]
    # Warm-up on 200 texts; one full pass is measured (it takes minutes, repeats change little).
    for t in texts[:200]:
        anonymizer.anonymize(t, analyzer.analyze(t, language="en"))

    def work() -> list[str]:
        return [anonymizer.anonymize(t, analyzer.analyze(t, language="en")).text for t in texts]

    return _cpu_rate(len(texts), work)


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _tables(ours: corpus.Evaluation, base: corpus.Evaluation, split: dict[str, corpus.Evaluation]) -> str:
    lines = [
        "| entity | planted | leaked (sovtel) | leak rate (sovtel) | leaked (Presidio default) "
        "| leak rate (Presidio default) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for entity in sorted(ours.entities):
        o, b = ours.entities[entity], base.entities.get(entity, corpus.EntityScore())
        lines.append(
            f"| {entity} | {o.planted} | {o.leaked} | {_pct(o.leak_rate)} | {b.leaked} | {_pct(b.leak_rate)} |"
        )
    lines.append(
        f"| **all** | **{ours.planted}** | **{ours.leaked}** | **{_pct(ours.leak_rate)}** | **{base.leaked}** | "
        f"**{_pct(base.leak_rate)}** |"
    )
    lines += [
        "",
        "| negative (must stay unchanged) | count | altered (sovtel) | altered (Presidio default) |",
        "|---|---:|---:|---:|",
    ]
    for kind in sorted(ours.negatives):
        o, b = ours.negatives[kind], base.negatives.get(kind, corpus.EntityScore())
        lines.append(f"| {kind} | {o.planted} | {o.leaked} ({_pct(o.leak_rate)}) | {b.leaked} ({_pct(b.leak_rate)}) |")
    lines.append(
        f"| **all** | **{ours.negatives_total}** | **{ours.negatives_altered} ({_pct(ours.false_positive_rate)})** | "
        f"**{base.negatives_altered} ({_pct(base.false_positive_rate)})** |"
    )
    lines += [
        "",
        "| slice (sovtel) | planted | leak rate | negatives | altered |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, ev in split.items():
        lines.append(
            f"| {name} | {ev.planted} | {_pct(ev.leak_rate)} | {ev.negatives_total} | {_pct(ev.false_positive_rate)} |"
        )
    for label, score in (
        ("names with a given name or surname in the gazetteers", ours.names_in_gazetteer),
        ("names with neither in the gazetteers", ours.names_outside_gazetteer),
    ):
        lines.append(f"| {label} | {score.planted} | {_pct(score.leak_rate)} | | |")
    lines.append("")
    lines.append(
        f"Tool-call arguments that are no longer valid JSON after masking: sovtel {ours.invalid_json}, "
        f"Presidio default {base.invalid_json}."
    )
    return "\n".join(lines)


def run(samples: int = SAMPLES, seed: int = SEED, update_docs: bool = True) -> Section:
    """Measure, rewrite the generated tables of docs/privacy.md, and return the section and its numbers."""
    pinned = pin_to_one_core()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data = corpus.generate(samples, seed)
    gazetteer = frozenset(given_names()) | frozenset(surnames())
    ours_rate, ours_out = sovtel_scrub(data)
    patterns_rate, patterns_out = sovtel_scrub(data, ner=False)
    base_rate, base_out = presidio_default(data)
    ours = corpus.evaluate(data, ours_out, gazetteer)
    patterns_only = corpus.evaluate(data, patterns_out, gazetteer)
    base = corpus.evaluate(data, base_out, gazetteer)
    split = {
        name: corpus.evaluate(
            [s for s in data if s.split == name], [o for s, o in zip(data, ours_out, strict=True) if s.split == name]
        )
        for name in ("dev", "holdout")
    }
    ratio = ours_rate / base_rate
    summary = (
        f"Corpus: {samples} texts (seed {seed}; {sum(len(s.planted) for s in data)} planted values, "
        f"{sum(len(s.negatives) for s in data)} negatives; DE/FR/IT/ES/NL/PL/EN prompts, tool-call arguments, "
        f"logs and system prompts). CPU time on {'one pinned core' if pinned else 'one process'}; "
        f"{machine()}.\n\n"
        f"| path | texts/s per core | leak rate | negatives altered |\n|---|---:|---:|---:|\n"
        f"| `sovtel privacy scrub` (patterns + batched spaCy NER) | {ours_rate:,.0f} | {_pct(ours.leak_rate)} | "
        f"{_pct(ours.false_positive_rate)} |\n"
        f"| `sovtel privacy scrub` without NER (`ner: off`) | {patterns_rate:,.0f} | {_pct(patterns_only.leak_rate)} | "
        f"{_pct(patterns_only.false_positive_rate)} |\n"
        f"| Presidio default AnalyzerEngine + AnonymizerEngine (`{DEFAULT_MODEL}`) | {base_rate:,.0f} | "
        f"{_pct(base.leak_rate)} | {_pct(base.false_positive_rate)} |\n\n"
        f"Speed-up: **{ratio:.1f}x**.\n"
    )
    markdown = summary + "\n" + _tables(ours, base, split) + "\n"
    numbers = {
        "samples": samples,
        "seed": seed,
        "sovtel_texts_per_s_per_core": round(ours_rate, 1),
        "presidio_texts_per_s_per_core": round(base_rate, 1),
        "speedup": round(ratio, 2),
        "sovtel_without_ner_texts_per_s_per_core": round(patterns_rate, 1),
        "sovtel_without_ner_leak_rate": patterns_only.leak_rate,
        "sovtel_leak_rate": ours.leak_rate,
        "sovtel_false_positive_rate": ours.false_positive_rate,
        "presidio_leak_rate": base.leak_rate,
        "presidio_false_positive_rate": base.false_positive_rate,
        "holdout_leak_rate": split["holdout"].leak_rate,
        "per_entity": {
            e: {
                "planted": s.planted,
                "leaked": s.leaked,
                "presidio_leaked": base.entities.get(e, corpus.EntityScore()).leaked,
            }
            for e, s in sorted(ours.entities.items())
        },
    }
    section = Section("Privacy: PII masking", markdown, numbers)
    if update_docs:
        write_docs(section)
    return section


def write_docs(section: Section, path: Path = DOCS) -> None:
    """Replace the generated block of docs/privacy.md with this run's section."""
    write_generated(path, BEGIN, END, "bench.privacy", section.markdown)


if __name__ == "__main__":
    print(run().markdown)
