"""JSON documents (GenAI messages, tool arguments) taken apart into maskable leaves and put back.

Only the strings (and long integers) of a document are rewritten; every other byte keeps its exact
formatting, and a JSON document inside a string is masked as a document of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

# JSON keys whose values are structure, not prose: masked by patterns but never worth NER.
STRUCTURAL_KEYS = frozenset(
    {"role", "type", "finish_reason", "id", "tool_call_id", "call_id", "mime_type", "format", "model", "index"}
)

MAX_DEPTH = 64

# JSON tokens: string literals, structural characters, scalars, whitespace. Only applied to text
# json.loads has accepted, so the tokens are well formed.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+|\s+')
_LONG_INT = re.compile(r"-?\d{6,}")


@dataclass(slots=True, eq=False)
class Leaf:
    """A collected text inside a JSON document: its raw token and how to write it back."""

    index: int
    raw: str
    kind: Literal["string", "number", "nested"] = "string"
    nested: list[Any] | None = None  # template of a JSON document inside a string


class Leaves:
    """Texts collected from values (JSON leaves and keys, plain strings) for one batched scan."""

    def __init__(self, secret_keys: re.Pattern[str]) -> None:
        self.texts: list[str] = []
        self.contexts: list[str] = []
        self.ner: list[bool] = []
        self.forced: list[bool] = []
        self.secret_keys = secret_keys

    def add(self, text: str, keys: Sequence[str], ner: bool = True) -> int:
        """Collect one text; ``keys`` (innermost last) are its JSON path or attribute key."""
        nearest = keys[-1].lower() if keys else ""
        self.texts.append(text)
        self.contexts.append(" ".join(re.sub(r"[_.\-]+", " ", k) for k in keys[-3:]))
        self.ner.append(ner and nearest not in STRUCTURAL_KEYS)
        self.forced.append(bool(nearest) and bool(text) and self.secret_keys.search(nearest) is not None)
        return len(self.texts) - 1

    def truncate(self, n: int) -> None:
        """Forget texts collected after the first ``n`` (a value that failed part-way)."""
        del self.texts[n:], self.contexts[n:], self.ner[n:], self.forced[n:]

    def template(self, text: str, keys: tuple[str, ...], depth: int = 0) -> list[Any]:
        """The JSON document ``text`` (already validated) as raw pieces and leaves, so that only
        masked strings are rewritten and everything else keeps its exact formatting."""
        if depth > MAX_DEPTH:
            raise ValueError("JSON nested too deeply to mask")
        parts: list[Any] = []
        # One frame per open container: [is_object, current key, expecting a key].
        stack: list[list[Any]] = []
        for m in _JSON_TOKEN.finditer(text):
            tok = m.group()
            c = tok[0]
            if c == '"':
                value = json.loads(tok)
                frame = stack[-1] if stack else None
                path = (*keys, *(str(f[1]) for f in stack if f[1] is not None))
                if frame is not None and frame[0] and frame[2]:
                    frame[1], frame[2] = value, False
                    parts.append(Leaf(self.add(value, path, ner=False), tok) if value else tok)
                    continue
                nested = json_container(value)
                if nested is not None:
                    first = len(self.texts)
                    inner = self.template(value, path, depth + 1)
                    parts.append(Leaf(first, tok, "nested", inner))
                else:
                    parts.append(Leaf(self.add(value, path), tok) if value else tok)
            elif c in "{[":
                if len(stack) >= MAX_DEPTH:
                    raise ValueError("JSON nested too deeply to mask")
                stack.append([c == "{", stack[-1][1] if stack and c == "[" else None, c == "{"])
                parts.append(tok)
            elif c in "}]":
                stack.pop()
                parts.append(tok)
            elif c == ",":
                if stack and stack[-1][0]:
                    stack[-1][1], stack[-1][2] = None, True
                parts.append(tok)
            elif _LONG_INT.fullmatch(tok):
                path = (*keys, *(str(f[1]) for f in stack if f[1] is not None))
                parts.append(Leaf(self.add(tok, path, ner=False), tok, "number"))
            else:
                parts.append(tok)
        return parts


def json_container(text: str) -> str | None:
    """``text`` itself if it is a JSON object or array, else None (a cheap check before parsing)."""
    head = text[:1] if text[:1] not in " \n\t\r" else text.lstrip()[:1]
    if head not in ("{", "["):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return text if isinstance(value, dict | list) else None


def render(parts: list[Any], texts: Sequence[str], changed: Sequence[bool]) -> tuple[str, bool]:
    """The document rebuilt from its template; (text, whether anything changed)."""
    out: list[str] = []
    any_change = False
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        elif p.kind == "nested":
            assert p.nested is not None
            inner, inner_changed = render(p.nested, texts, changed)
            out.append(json.dumps(inner, ensure_ascii=False) if inner_changed else p.raw)
            any_change |= inner_changed
        elif changed[p.index]:
            # A masked number becomes a string token: still valid JSON.
            out.append(json.dumps(texts[p.index], ensure_ascii=False))
            any_change = True
        else:
            out.append(p.raw)
    return "".join(out), any_change
