"""The masker: detected values in texts and JSON documents become keyed ``<ENTITY:hex>`` tokens.

Shared by the ``pii`` processor and ``sovtel privacy scrub``, so both mask exactly alike.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from processors.pii.documents import Leaves, json_container, render
from processors.recognizers.scan import Finding, Scanner

# A token this processor wrote; masking it again must leave it as it is.
TOKEN_RE = re.compile(r"<[A-Z][A-Z0-9_]*:[0-9a-f]{4,64}>")

# JSON keys whose whole value is a credential, whatever it looks like.
DEFAULT_SECRET_KEYS = (
    r"(?:^|[_.\-\s])(?:pass(?:word|wd|phrase)?|passwort|pwd|secret|client[_\-]?secret|api[_\-]?key|apikey"  # noqa: S105
    r"|access[_\-]?key|secret[_\-]?key|private[_\-]?key|authorization|bearer|cookie|set[_\-]cookie"
    r"|credentials?|session(?:[_\-]?(?:id|key))?|(?:access|refresh|id|auth|api|bearer|session|csrf|xsrf|oauth)?[_\-]?token)$"
)


@dataclass(slots=True)
class Masked:
    """The masked form of one value, what was found in it, or why it could not be masked."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)
    error: str | None = None


class Masker:
    """Masks texts and JSON documents with one scanner and one token key; shared by the processor
    and ``sovtel privacy scrub`` so both mask exactly alike."""

    def __init__(
        self,
        scanner: Scanner,
        key: bytes,
        token_hex: int = 6,
        secret_keys: str = DEFAULT_SECRET_KEYS,
        max_text_chars: int = 1_000_000,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the PII token key must be at least 16 bytes")
        self.scanner = scanner
        self._key = key
        self.token_hex = token_hex
        self.secret_keys = re.compile(secret_keys, re.IGNORECASE)
        self.max_text_chars = max_text_chars

    @property
    def entities(self) -> tuple[str, ...]:
        """Entity types this masker can report (SECRET always: it comes from secret keys too)."""
        return tuple(dict.fromkeys((*self.scanner.entities, "SECRET")))

    def token(self, entity: str, value: str) -> str:
        """The replacement token of a value: same value and key → same token."""
        digest = hmac.new(self._key, f"{entity}\x1f{value}".encode(), hashlib.sha256).hexdigest()
        return f"<{entity}:{digest[: self.token_hex]}>"

    def _apply(self, text: str, findings: Iterable[Finding], counts: Counter[str]) -> str:
        out, pos = [], 0
        for f in findings:
            out.append(text[pos : f.start])
            out.append(self.token(f.entity, f.value))
            counts[f.entity] += 1
            pos = f.end
        if pos == 0:
            return text
        out.append(text[pos:])
        return "".join(out)

    def _scan_leaves(self, leaves: Leaves) -> tuple[list[str], list[Counter[str]], list[bool], set[int]]:
        """Masked text, counts and 'changed' per leaf, and the leaves that could not be scanned."""
        n = len(leaves.texts)
        todo = [
            i for i in range(n) if not leaves.forced[i] and leaves.texts[i] and not TOKEN_RE.fullmatch(leaves.texts[i])
        ]
        failed: set[int] = set()
        try:
            found = self.scanner.scan_many(
                [leaves.texts[i] for i in todo], [leaves.contexts[i] for i in todo], [leaves.ner[i] for i in todo]
            )
        except TimeoutError:
            # Find the text(s) a pattern stalled on, one by one; the rest are masked as usual.
            found = []
            for i in todo:
                try:
                    found.extend(self.scanner.scan_many([leaves.texts[i]], [leaves.contexts[i]], [leaves.ner[i]]))
                except TimeoutError:
                    failed.add(i)
                    found.append([])
        findings: list[list[Finding]] = [[] for _ in range(n)]
        for i, f in zip(todo, found, strict=True):
            findings[i] = f
        out, counts, changed = [], [], []
        for i, text in enumerate(leaves.texts):
            c: Counter[str] = Counter()
            if leaves.forced[i] and not TOKEN_RE.fullmatch(text):
                masked = self._apply(text, [Finding("SECRET", 0, len(text), 1.0, text)], c)
            else:
                masked = self._apply(text, findings[i], c)
            out.append(masked)
            counts.append(c)
            changed.append(masked is not text)
        return out, counts, changed, failed

    def mask_values(
        self, values: Sequence[str], keys: Sequence[str] | None = None, documents: bool = False
    ) -> list[Masked]:
        """Mask each value; ``keys`` are the attribute keys or column names the values sit under,
        used as context and to spot secrets.

        A value holding a JSON object or array is masked string by string and stays valid JSON
        with its formatting kept; with ``documents`` every value must be a JSON document (any
        type, already validated). A value that cannot be masked comes back with ``error`` set and
        its text emptied: never raw.
        """
        leaves = Leaves(self.secret_keys)
        plans: list[tuple[Any, int, int] | str] = []
        for i, value in enumerate(values):
            key = (keys[i],) if keys is not None and keys[i] else ()
            first = len(leaves.texts)
            try:
                if len(value) > self.max_text_chars:
                    raise ValueError(f"value longer than {self.max_text_chars} characters")
                if documents or json_container(value) is not None:
                    plan: Any = leaves.template(value, key)
                else:
                    plan = leaves.add(value, key)
            except (ValueError, RecursionError) as exc:
                leaves.truncate(first)
                plans.append(str(exc) or type(exc).__name__)
                continue
            plans.append((plan, first, len(leaves.texts)))
        texts, counts, changed, failed = self._scan_leaves(leaves)
        results: list[Masked] = []
        for value, item in zip(values, plans, strict=True):
            if isinstance(item, str):
                results.append(Masked("", error=item))
                continue
            plan, lo, hi = item
            if failed and any(lo <= i < hi for i in failed):
                results.append(Masked("", error="a pattern timed out on this value"))
                continue
            total: Counter[str] = Counter()
            for c in counts[lo:hi]:
                total.update(c)
            if not any(changed[lo:hi]):
                results.append(Masked(value, total))
            elif isinstance(plan, int):
                results.append(Masked(texts[plan], total))
            else:
                results.append(Masked(render(plan, texts, changed)[0], total))
        return results
