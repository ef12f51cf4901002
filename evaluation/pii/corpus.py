"""The labelled, synthetic, multilingual (DE/FR/IT/ES/NL/PL/EN) telemetry corpus for the PII masking
evaluation: prompts, tool arguments, logs and system prompts with planted personal data and
secrets, and telemetry-like negatives (model, pod and GPU names, ids, versions, timestamps).

The templates and vocabulary are the data files in ``data/``; this module fills them. About a third
of the given names and of the surnames lie outside the PERSON gazetteers, so the name results
measure NER and the context rules as well. The generator is deterministic for a seed.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from evaluation.pii import values
from evaluation.pii.vocabulary import (
    COMPANIES,
    HOLDOUT_PROMPTS,
    LANGUAGES,
    LOCALES,
    LOGS,
    PASSWORDS,
    PROMPTS,
    SYSTEM,
    TOOL_ARGS,
)

__all__ = ["LANGUAGES", "Planted", "Sample", "as_messages", "generate"]


@dataclass(frozen=True)
class Planted:
    """A value that must not survive masking."""

    entity: str
    value: str


@dataclass(frozen=True)
class Sample:
    """One text as it would sit in a span or log column, with what was planted in it."""

    kind: str  # prompt | tool_args | log | system
    lang: str
    text: str
    planted: tuple[Planted, ...]
    negatives: tuple[str, ...]
    split: str = "dev"  # dev (templates the rules were tuned on) | holdout


class _Filler:
    """Fills one template, recording what it planted and which negatives it used."""

    def __init__(self, rng: random.Random, lang: str) -> None:
        self.rng = rng
        self.lang = lang
        self.planted: list[Planted] = []
        self.negatives: list[str] = []
        self._person: tuple[str, str, str] | None = None
        self._natid = rng.choice(LOCALES[lang].national_ids)

    def person(self) -> tuple[str, str, str]:
        if self._person is None:
            self._person = values.person(self.rng, self.lang)
        return self._person

    def plant(self, entity: str, value: str) -> str:
        self.planted.append(Planted(entity, value))
        return value

    def value(self, slot: str) -> str:
        rng, lang = self.rng, self.lang
        if slot in values.NEGATIVES:
            v = values.NEGATIVES[slot](rng)
            self.negatives.append(v)
            return v
        if slot == "name":
            return self.plant("PERSON", self.person()[0])
        if slot == "given":
            return self.plant("PERSON", self.person()[1])
        if slot == "email":
            _, g, s = self.person()
            return self.plant("EMAIL_ADDRESS", values.email(rng, lang, g, s))
        if slot == "phone":
            while True:
                text, international = values.phone(rng, lang)
                if international:
                    return self.plant("PHONE_NUMBER", text)
        if slot == "phone_nat":
            return self.plant("PHONE_NUMBER", values.phone(rng, lang)[0])
        if slot == "natid":
            make_id = values.NATIONAL_ID_GENERATORS[self._natid.generator]
            return self.plant(self._natid.entity, make_id(rng))
        if slot == "natid_label":
            return self._natid.label
        if slot == "natid_key":
            return self._natid.key
        if slot == "country":
            return LOCALES[lang].phone_region
        if slot == "company":
            return rng.choice(COMPANIES)
        simple: dict[str, tuple[str, Callable[[], str]]] = {
            "iban": ("IBAN_CODE", lambda: values.iban(rng, lang)),
            "card": ("CREDIT_CARD", lambda: values.card(rng)),
            "vat": ("EU_VAT", lambda: values.vat(rng, lang)),
            "apikey": ("API_KEY", lambda: values.api_key(rng)),
            "jwt": ("JWT", lambda: values.jwt(rng)),
            "ip": ("IP_ADDRESS", lambda: values.ip(rng)),
            "bearer": ("AUTH_TOKEN", lambda: values.bearer(rng)),
            "session": ("SESSION_TOKEN", lambda: values.session_id(rng)),
            "privkey": ("PRIVATE_KEY", lambda: values.private_key(rng)),
            "password": ("SECRET", lambda: rng.choice(PASSWORDS)),
        }
        entity, make = simple[slot]
        return self.plant(entity, make())


def _fill(template: str, rng: random.Random, lang: str, json_values: bool = False) -> tuple[str, _Filler]:
    filler = _Filler(rng, lang)
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    values = {}
    for name in dict.fromkeys(fields):
        v = filler.value(name)
        # Inside a JSON template a value must be a valid JSON string body (PEM newlines etc.).
        values[name] = json.dumps(v, ensure_ascii=False)[1:-1] if json_values else v
    return template.format(**values), filler


def generate(n: int, seed: int = 7, holdout_share: float = 0.3) -> list[Sample]:
    """``n`` samples: about 60% prompts, 20% tool-call arguments, 12% logs, 8% system prompts;
    ``holdout_share`` of prompts, tool arguments and logs come from the holdout templates."""
    rng = random.Random(seed)
    out: list[Sample] = []
    for _ in range(n):
        lang = rng.choice(LANGUAGES)
        r = rng.random()
        holdout = rng.random() < holdout_share
        if r < 0.6:
            kind, template, as_json = "prompt", rng.choice((HOLDOUT_PROMPTS if holdout else PROMPTS)[lang]), False
        elif r < 0.8:
            kind, template, as_json = "tool_args", rng.choice(TOOL_ARGS.holdout if holdout else TOOL_ARGS.dev), True
        elif r < 0.92:
            kind, template, as_json = "log", rng.choice(LOGS.holdout if holdout else LOGS.dev), False
        else:
            kind, template, as_json, holdout = "system", rng.choice(SYSTEM), False, False
        text, filler = _fill(template, rng, lang, json_values=as_json)
        if as_json:
            json.loads(text)  # templates must produce valid JSON; fail loudly here if not
        split = "holdout" if holdout else "dev"
        out.append(Sample(kind, lang, text, tuple(filler.planted), tuple(filler.negatives), split))
    return out


def as_messages(sample: Sample) -> str:
    """The sample as a ``gen_ai.input.messages`` value (GenAI semantic conventions)."""
    if sample.kind == "tool_args":
        part = {"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": json.loads(sample.text)}
        return json.dumps([{"role": "assistant", "parts": [part]}], ensure_ascii=False)
    role = "system" if sample.kind == "system" else "user"
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": sample.text}]}], ensure_ascii=False)
