"""Cheap text analysis for the quality scorers: GenAI message parsing, sentences, stems, numbers, entities.

Pure Python and regular expressions only, so it runs anywhere the collector runs, with no model.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# Roles whose text the model was given as context rather than asked about.
CONTEXT_ROLES = frozenset({"system", "developer", "tool", "function", "context", "document"})
# Part types that carry context (tool output, retrieved passages) whatever the message role.
CONTEXT_PART_TYPES = frozenset(
    {"tool_call_response", "tool_result", "context", "document", "retrieval", "retrieved_document"}
)
# Keys of retrieval documents and tool results whose values are text worth reading.
TEXT_KEYS = ("content", "text", "page_content", "document", "snippet", "body", "passage", "chunk", "response")

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _words(
    """a an the and or but if then else of to in on at by for with from into onto over under about as is are was
    were be been being am do does did done have has had having it its it's this that these those there here
    they them their theirs he him his she her hers we us our ours you your yours i me my mine who whom whose
    which what when where why how all any both each few more most other some such only own same so than too
    very can could will would shall should may might must also just per via up down out off again further
    once s t d ll m o re ve y let lets please yes ok okay sure well still yet while during before after
    between through within without against among because until whether either neither nor one ones
    get got make made use used say said tell told know known see seen"""
)
NEGATIONS = _words(
    """not no never none nobody nothing neither nor cannot can't won't don't doesn't didn't isn't aren't
    wasn't weren't hasn't haven't hadn't shouldn't wouldn't couldn't mustn't without n't"""
)
# Stopwords that must still count as content: negations and quantity words change the meaning.
_KEEP = NEGATIONS | {"free", "only", "all", "none", "more", "most", "less", "least"}

NUMBER_WORDS: dict[str, str] = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
    "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
    "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000",
    "once": "1", "twice": "2", "half": "0.5", "noon": "12", "midnight": "0",
}
MONTHS: dict[str, str] = {
    "january": "1", "february": "2", "march": "3", "april": "4", "may": "5", "june": "6", "july": "7",
    "august": "8", "september": "9", "october": "10", "november": "11", "december": "12",
    "jan": "1", "feb": "2", "mar": "3", "apr": "4", "jun": "6", "jul": "7", "aug": "8", "sep": "9",
    "sept": "9", "oct": "10", "nov": "11", "dec": "12",
}
# Months that are also ordinary words are only months when capitalised ("May" vs "may").
_AMBIGUOUS_MONTHS = frozenset({"may", "march", "mar", "jan", "dec", "oct"})

_TOKEN = re.compile(
    r"[^\W\d_]+-?\d[\w-]*|\d+(?:[.,:/-]\d+)*(?:st|nd|rd|th|am|pm|h|%)?|[^\W\d_]+(?:[-'\u2019][^\W\d_]+)*",
    re.UNICODE,
)
# Split on sentence punctuation before a capital or digit (the punctuation is captured and kept), and on
# bullets; lines are split first with str.splitlines, which is much faster than a regex alternative.
# A semicolon joins independent clauses whatever follows, so it always ends a claim: an answer
# that combines two facts from two evidence sentences must be checked clause by clause.
_SENTENCE_END = re.compile(r"((?:[.!?])(?=\s+[\"'(\[]?[A-Z0-9ÀÖØÞ])|;(?=\s))\s+")
_BULLET = re.compile(r"(?<=:)\s+(?=[-*•])|\s+[-*•]\s+")
_ABBREVIATION = re.compile(
    r"(?:^|\s|\()(?:dr|mr|mrs|ms|prof|st|sr|jr|no|nr|vs|etc|approx|ca|e\.g|i\.e|incl|dept|ave|fig)\.$", re.IGNORECASE
)
_ID_LIKE = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9-]{2,}$")

_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("ational", "ate"), ("ization", "ize"), ("isation", "ize"), ("fulness", "ful"), ("iveness", "ive"),
    ("ousness", "ous"), ("ements", ""), ("ement", ""), ("ments", ""), ("ment", ""), ("ingly", ""),
    ("ations", "ate"), ("ation", "ate"), ("ities", ""), ("ity", ""), ("ings", ""), ("ing", ""),
    ("ies", "y"), ("ied", "y"), ("ably", ""), ("able", ""), ("ibly", ""), ("ible", ""), ("edly", ""),
    ("ers", ""), ("er", ""), ("ed", ""), ("es", ""), ("ly", ""), ("s", ""),
)


# Generic English synonym groups (not tuned to any data set): each word maps to its group's first word.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("buy", "purchase"), ("begin", "start", "commence"), ("end", "finish", "conclude"),
    ("fee", "charge", "cost", "price"), ("help", "assist", "support"), ("get", "receive", "obtain"),
    ("need", "require"), ("allow", "permit", "let"), ("show", "display"), ("big", "large"),
    ("small", "little"), ("fast", "quick", "rapid"), ("close", "shut"), ("phone", "telephone"),
    ("email", "e-mail", "mail"), ("doctor", "physician"), ("car", "vehicle"), ("use", "utilise", "utilize"),
    ("reply", "respond", "answer"), ("ask", "request"), ("inform", "notify", "tell"),
    ("about", "approximately", "around", "roughly"), ("maximum", "max"), ("minimum", "min"),
    ("customer", "client"), ("employee", "staff", "worker"), ("company", "firm", "business"),
    ("shop", "store"), ("trip", "journey"), ("flight", "plane"), ("depart", "leave"), ("arrive", "land"),
    ("medicine", "medication", "drug"), ("patient", "patients"), ("appointment", "visit"),
    ("delivery", "shipping", "shipment"), ("deliver", "ship"), ("refund", "reimburse"),
    ("weekday", "business day", "working day"), ("daily", "per day", "a day"), ("hour", "hours", "hrs"),
    ("minute", "minutes", "min"), ("kilogram", "kg"), ("gram", "g"), ("euro", "eur", "€"),
    ("percent", "per cent", "%"), ("limit", "cap", "ceiling"), ("increase", "raise", "rise"),
    ("decrease", "reduce", "lower"), ("choose", "select", "pick"), ("main", "primary", "principal"),
    ("house", "home"), ("annual", "yearly", "per year"), ("monthly", "per month"), ("weekly", "per week"),
)
_CANON: dict[str, str] = {}


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix-stripping stem (Porter-like, one pass); ``discharged`` and ``discharges`` meet."""
    w = word.lower().replace("\u2019", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) <= 3:
        return w
    for suffix, repl in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            base = w[: -len(suffix)] + repl
            # "running" → "run", "stopped" → "stop": undo a doubled final consonant.
            if not repl and len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]
            return base.rstrip("e") if len(base) > 4 else base
    return w.rstrip("e") if len(w) > 4 else w


for _group in SYNONYM_GROUPS:
    for _word in _group:
        if " " not in _word:
            _CANON.setdefault(stem(_word), stem(_group[0]))


def canonical(word: str) -> str:
    """The stem of a word, mapped to its synonym group's first member (``purchased`` → ``buy``)."""
    s = stem(word)
    return _CANON.get(s, s)


def normalise_number(token: str) -> list[str]:
    """The canonical forms of a numeric token: ``1,234.50`` → ``1234.5``; ``09:00`` → ``9``; dates split."""
    t = token.lower()
    for suffix in ("st", "nd", "rd", "th", "am", "pm", "h", "%"):
        if t.endswith(suffix) and t[: -len(suffix)][-1:].isdigit():
            t = t[: -len(suffix)]
            break
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", t):
        t = t.replace(",", "")
    elif re.fullmatch(r"\d+,\d{1,2}", t):  # decimal comma
        t = t.replace(",", ".")
    if re.fullmatch(r"\d{1,2}:\d{2}", t):
        hours, minutes = t.split(":")
        h = str(int(hours))
        return [h] if minutes == "00" else [f"{h}:{minutes}", h]
    parts = re.split(r"[/:-]", t) if re.search(r"[/:-]", t) else [t]
    out: list[str] = []
    for part in parts:
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            continue
        out.append(str(int(value)) if value.is_integer() else repr(value))
    return out


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the scorers need of one text: canonical content stems, numbers, entity stems and negation."""

    stems: frozenset[str]
    numbers: frozenset[str]
    entities: frozenset[str]
    negated: bool


def tokens(text: str) -> list[str]:
    """Word and number tokens of ``text`` in order."""
    return _TOKEN.findall(text)


def sentences(text: str) -> list[str]:
    """Split text into sentence-like claims (sentence ends, line breaks, bullet items); "Dr. Rossi" stays whole."""
    out: list[str] = []
    for line in text.splitlines():
        chunks = _BULLET.split(line) if ("•" in line or " - " in line or " * " in line) else [line]
        for chunk in chunks:
            parts = _SENTENCE_END.split(chunk)
            # re.split with a group yields text, punctuation, text, …: glue each mark back on.
            for i in range(0, len(parts), 2):
                piece = (parts[i] + (parts[i + 1] if i + 1 < len(parts) else "")).strip(" \t-*•")
                if not piece:
                    continue
                if i > 0 and out and out[-1].endswith(".") and _ABBREVIATION.search(out[-1][-8:]):
                    out[-1] = f"{out[-1]} {piece}"
                else:
                    out.append(piece)
    return out


@functools.lru_cache(maxsize=16384)
def analyse(text: str) -> Analysis:
    """Content stems, normalised numbers, entity stems and whether the text is negated."""
    stems: set[str] = set()
    numbers: set[str] = set()
    entities: set[str] = set()
    negated = False
    first = True
    for tok in tokens(text):
        low = tok.lower().replace("\u2019", "'")
        if tok[0].isdigit():
            numbers.update(normalise_number(tok))
            first = False
            continue
        if low in NEGATIONS or low.endswith("n't"):
            negated = True
        if low in NUMBER_WORDS:
            numbers.add(NUMBER_WORDS[low])
        if low in MONTHS and (tok[0].isupper() or low not in _AMBIGUOUS_MONTHS):
            numbers.add(MONTHS[low])
            first = False
            continue
        if _ID_LIKE.match(tok):
            entities.add(low)
            stems.add(low)
            first = False
            continue
        if low in STOPWORDS and low not in _KEEP:
            first = False
            continue
        s = canonical(low)
        stems.add(s)
        if (tok[0].isupper() and not first and low not in NUMBER_WORDS) or (len(tok) > 1 and tok.isupper()):
            entities.add(s)
        first = False
    return Analysis(frozenset(stems), frozenset(numbers), frozenset(entities), negated)


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string and number in a JSON value, with object keys read as words (``eta_days`` → ``eta days``)."""
    if depth > 20:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k in ("id", "score", "type", "role", "finish_reason"):
                continue
            yield str(k).replace("_", " ")
            yield from _strings(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, depth + 1)


def _load(text: str) -> Any:
    s = text.strip()
    if not s or s[0] not in "[{\"":
        return None
    try:
        return json.loads(s)
    except ValueError:
        return None


def document_texts(raw: str) -> list[str]:
    """Readable text of a retrieval-documents or tool-result column value (JSON or plain text)."""
    if not raw:
        return []
    data = _load(raw)
    if data is None:
        return [raw]
    if isinstance(data, str):
        return [data]
    if isinstance(data, list):
        out: list[str] = []
        for item in data:
            text = _document_text(item)
            if text:
                out.append(text)
        return out
    text = _document_text(data)
    return [text] if text else []


def _document_text(item: Any) -> str:
    """One document's text; structured records become one line each so their facts stay together."""
    if isinstance(item, dict):
        for key in TEXT_KEYS:
            if isinstance(item.get(key), str):
                return str(item[key])
        records = [v for v in item.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if len(records) == 1:
            rest = {k: v for k, v in item.items() if v is not records[0]}
            lines = [", ".join(_strings(rec)) for rec in records[0]]
            return "\n".join([", ".join(_strings(rest)), *lines]).strip()
    if isinstance(item, list):
        return "\n".join(_document_text(x) for x in item)
    return ", ".join(_strings(item))


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    for key in ("content", "text", "response", "result"):
        value = part.get(key)
        if isinstance(value, str):
            return value
        if value is not None:
            return _document_text(value)
    return ""


@dataclass(frozen=True, slots=True)
class Conversation:
    """Input messages split by what they are to a groundedness check."""

    question: str
    history: tuple[str, ...]
    context: tuple[str, ...]


def parse_input(raw: str) -> Conversation:
    """Split ``gen_ai.input.messages`` into the last user turn, earlier turns and context parts.

    Accepts the OTel GenAI format (``role`` + ``parts``), the older ``content`` string form, and
    plain text (read as the question).
    """
    data = _load(raw) if raw else None
    if data is None:
        return Conversation(raw, (), ())
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return Conversation(str(data), (), ())
    context: list[str] = []
    turns: list[str] = []
    for msg in data:
        if not isinstance(msg, dict):
            continue
        role = str(msg.get("role", "user"))
        parts = msg.get("parts")
        if not isinstance(parts, list):
            parts = [{"type": "text", "content": msg.get("content", "")}]
        for part in parts:
            ptype = str(part.get("type", "text")) if isinstance(part, dict) else "text"
            if ptype == "tool_call":
                continue
            text = _part_text(part)
            if not text:
                continue
            if role in CONTEXT_ROLES or ptype in CONTEXT_PART_TYPES:
                context.append(text)
            else:
                turns.append(text)
    question = turns[-1] if turns else ""
    return Conversation(question, tuple(turns[:-1]), tuple(context))


@dataclass(frozen=True, slots=True)
class Answer:
    """The text of a model's response, and whether it called a tool instead of answering."""

    text: str
    tool_call: bool


def parse_output(raw: str) -> Answer:
    """The assistant text of ``gen_ai.output.messages`` (OTel GenAI format, ``content`` form or plain text)."""
    data = _load(raw)
    if data is None:
        return Answer(raw, False)
    if isinstance(data, str):
        return Answer(data, False)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return Answer(str(data), False)
    texts: list[str] = []
    tool_call = False
    for msg in data:
        if not isinstance(msg, dict):
            continue
        parts = msg.get("parts")
        if not isinstance(parts, list):
            parts = [{"type": "text", "content": msg.get("content", "")}]
            if msg.get("tool_calls"):
                tool_call = True
        for part in parts:
            ptype = str(part.get("type", "text")) if isinstance(part, dict) else "text"
            if ptype == "tool_call":
                tool_call = True
            elif ptype in ("text", "output_text"):
                text = _part_text(part)
                if text:
                    texts.append(text)
    return Answer("\n".join(texts), tool_call)


def instructions_text(raw: str) -> list[str]:
    """Text of ``gen_ai.system_instructions`` (a list of parts, or plain text)."""
    data = _load(raw) if raw else None
    if data is None:
        return [raw] if raw else []
    items = data if isinstance(data, list) else [data]
    return [t for t in (_part_text(p) for p in items) if t]


def join_nonempty(texts: Iterable[str]) -> str:
    """Texts joined as separate sentences."""
    return "\n".join(t for t in texts if t)
