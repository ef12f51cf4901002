"""Evaluation sets whose text we did not write: sentences from the Presidio team's templates
(presidio-evaluator) and values from Faker's locale providers in neutral carriers (``faker_set``),
with the scorer that counts leaks and altered negatives on them (``score``)."""

from evaluation.external.samples import ExternalSample, Negative, read_jsonl, write_jsonl
from evaluation.external.score import evaluate, is_leaked, scorable

__all__ = ["ExternalSample", "Negative", "evaluate", "is_leaked", "read_jsonl", "scorable", "write_jsonl"]
