"""The labelled, synthetic set of grounded and fabricated answers over given contexts, for the
groundedness scorer, generated from the fact templates in ``data/``.

Dev and test splits hold *different* domains, so a threshold calibrated on dev is judged on facts
and wording it never saw. Deterministic per seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluation.hallucination.kinds import CATEGORIES, DEV_KINDS, KINDS, REFUSALS, Kind

__all__ = ["CATEGORIES", "DEV_KINDS", "KINDS", "EvalItem", "Kind", "generate", "split"]

_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class EvalItem:
    """One labelled item, laid out as the span columns a collector would decode."""

    id: str
    kind: str
    domain: str
    category: str
    label: int
    split: str
    question: str
    answer: str
    input_messages: str
    output_messages: str
    retrieval_documents: str = ""
    tool_call_result: str = ""
    system_instructions: str = ""
    placement: str = "retrieval"
    extra: dict[str, str] = field(default_factory=dict)

    def columns(self) -> dict[str, str]:
        """The content columns of a span carrying this item."""
        return {
            "input_messages": self.input_messages,
            "output_messages": self.output_messages,
            "retrieval_documents": self.retrieval_documents,
            "tool_call_result": self.tool_call_result,
            "system_instructions": self.system_instructions,
        }


def _fill(template: str, values: Mapping[str, Any]) -> str:
    return template.format(**values)


def _values(kind: Kind, subject: str, rng: random.Random, avoid: Mapping[str, Any] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"s": subject}
    for slot, choices in kind.slots.items():
        options = [c for c in choices if avoid is None or c != avoid.get(slot)]
        values[slot] = rng.choice(options)
    if "date" in values:
        y, m, d = (int(x) for x in str(values["date"]).split("-"))
        values["date_long"] = f"{d} {_MONTH_NAMES[m - 1]} {y}"
    return values


def _msgs(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


class _Builder:
    """Lays a question, its evidence and an answer out as span content columns."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def document(self, kind: Kind, question: str, docs: Sequence[str]) -> dict[str, str]:
        r = self.rng
        where = r.choices(("retrieval", "system", "user"), weights=(6, 3, 2))[0]
        system = json.dumps([{"type": "text", "content": "You are a helpful assistant. Answer from the context."}])
        if where == "retrieval":
            payload = [
                {"id": f"doc-{r.randrange(10_000)}", "score": round(r.uniform(0.5, 0.95), 3), "content": d}
                for d in docs
            ]
            return {
                "retrieval_documents": json.dumps(payload, ensure_ascii=False),
                "input_messages": json.dumps([_msgs("user", question)], ensure_ascii=False),
                "system_instructions": system,
                "placement": where,
            }
        if where == "system":
            ctx = "Context:\n" + "\n".join(f"- {d}" for d in docs)
            return {
                "input_messages": json.dumps([_msgs("system", ctx), _msgs("user", question)], ensure_ascii=False),
                "system_instructions": system,
                "placement": where,
            }
        text = "Read this:\n" + " ".join(docs) + f"\n\nQuestion: {question}"
        return {
            "input_messages": json.dumps([_msgs("user", text)], ensure_ascii=False),
            "system_instructions": system,
            "placement": where,
        }

    def tool(self, kind: Kind, question: str, result: Any) -> dict[str, str]:
        r = self.rng
        result_json = json.dumps(result, ensure_ascii=False)
        if r.random() < 0.5:
            return {
                "tool_call_result": result_json,
                "input_messages": json.dumps([_msgs("user", question)], ensure_ascii=False),
                "placement": "tool_column",
            }
        call_id = f"call_{r.getrandbits(32):08x}"
        msgs = [
            _msgs("user", question),
            {"role": "assistant", "parts": [{"type": "tool_call", "id": call_id, "name": kind.name, "arguments": {}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id, "response": result}]},
        ]
        return {"input_messages": json.dumps(msgs, ensure_ascii=False), "placement": "tool_message"}


def _scenarios(
    kind: Kind, rng: random.Random, per_kind: int
) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[str]]]:
    """(target values, distractor values, other-kind context sentences) per scenario."""
    same_domain = [k for k in KINDS if k.domain == kind.domain and k is not kind and k.context]
    for _ in range(per_kind):
        subject, other = rng.sample(kind.subjects, 2)
        target = _values(kind, subject, rng)
        distractor = _values(kind, other, rng, avoid=target)
        extra: list[str] = []
        if same_domain and kind.context:
            k2 = rng.choice(same_domain)
            extra.append(_fill(rng.choice(k2.context), _values(k2, rng.choice(k2.subjects), rng)))
        yield target, distractor, extra


def generate(seed: int = 2026, per_kind: int = 3) -> list[EvalItem]:
    """The labelled set: ``per_kind`` scenarios per kind, each answered in every category (label by category)."""
    rng = random.Random(seed)
    build = _Builder(rng)
    items: list[EvalItem] = []
    for kind in KINDS:
        split = kind.split
        for n, (target, distractor, extra) in enumerate(_scenarios(kind, rng, per_kind)):
            others = [k for k in KINDS if k is not kind]
            question = _fill(rng.choice(kind.question), target)
            docs: list[str] = []
            tool_result: Any = None
            if kind.tool is None:
                docs = [_fill(rng.choice(kind.context), target), _fill(rng.choice(kind.context), distractor), *extra]
                rng.shuffle(docs)
            else:
                recs = [target, distractor]
                rng.shuffle(recs)
                tool_result = kind.tool.result(recs)

            answers: list[tuple[str, str, str]] = []  # (category, question, answer)
            grounded_cat = "tool_answer" if kind.tool is not None else "copy"
            answers.append((grounded_cat, question, _fill(rng.choice(kind.copy), target)))
            for t in rng.sample(kind.paraphrase, 2):
                answers.append(("paraphrase" if kind.tool is None else "tool_answer", question, _fill(t, target)))
            answers.append(("partial", question, _fill(rng.choice(kind.partial), target)))
            if extra:
                k2_sentence = extra[0]
                answers.append(("multi_fact", question, _fill(rng.choice(kind.paraphrase), target) + " " + k2_sentence))
            absent_q = _fill(rng.choice(kind.absent_question), target)
            refusal = rng.choice(REFUSALS).format(topic=kind.absent_topic)
            answers.append(("correct_refusal", absent_q, refusal))

            wrong = dict(target)
            slot = kind.number_slot
            alternatives = [c for c in kind.slots[slot] if c not in (target[slot], distractor.get(slot))]
            wrong[slot] = rng.choice(alternatives)
            answers.append(("wrong_number", question, _fill(rng.choice((*kind.copy, *kind.paraphrase)), wrong)))
            outsider = rng.choice([s for s in kind.subjects if s not in (target["s"], distractor["s"])])
            answers.append(
                (
                    "swapped_entity",
                    question,
                    _fill(rng.choice((*kind.copy, *kind.paraphrase)), {**target, "s": outsider}),
                )
            )
            answers.append(
                (
                    "entity_binding",
                    question,
                    _fill(rng.choice((*kind.copy, *kind.paraphrase)), {**target, "s": distractor["s"]}),
                )
            )
            answers.append(("negation", question, _fill(rng.choice(kind.negation), target)))
            answers.append(
                (
                    "unsupported_addition",
                    question,
                    _fill(rng.choice(kind.paraphrase), target) + " " + rng.choice(kind.addition),
                )
            )
            answers.append(("fabricated", absent_q, _fill(rng.choice(kind.fabricated), target)))
            # A fabrication borrowed from another domain's wording, so the set does not only test one template.
            borrowed = rng.choice(others)
            answers.append(("fabricated", absent_q, rng.choice(borrowed.addition)))

            for i, (category, q, answer) in enumerate(answers):
                cols = build.document(kind, q, docs) if tool_result is None else build.tool(kind, q, tool_result)
                items.append(
                    EvalItem(
                        id=f"{kind.name}-{n}-{i:02d}",
                        kind=kind.name,
                        domain=kind.domain,
                        category=category,
                        label=CATEGORIES[category],
                        split=split,
                        question=q,
                        answer=answer,
                        input_messages=cols["input_messages"],
                        output_messages=json.dumps(
                            [
                                {
                                    "role": "assistant",
                                    "parts": [{"type": "text", "content": answer}],
                                    "finish_reason": "stop",
                                }
                            ],
                            ensure_ascii=False,
                        ),
                        retrieval_documents=cols.get("retrieval_documents", ""),
                        tool_call_result=cols.get("tool_call_result", ""),
                        system_instructions=cols.get("system_instructions", ""),
                        placement=cols["placement"],
                    )
                )
    return items


def split(items: Sequence[EvalItem], name: str) -> list[EvalItem]:
    """The items of one split (``dev`` or ``test``)."""
    return [it for it in items if it.split == name]
