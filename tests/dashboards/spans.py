"""Deterministic GenAI span batches for tests, shaped as the decoder and the privacy and quality processors leave."""

from __future__ import annotations

import random
import time

import pyarrow as pa

from sovtel.records import TIMESTAMP, Batch, Signal, table_from_columns

MODELS = (
    ("llama-3.1-8b-instruct", "llama-3.1-8b-instruct-v1", "vllm"),
    ("llama-3.1-8b-instruct", "llama-3.1-8b-instruct-v2", "vllm"),
    ("mistral-small-24b", "mistral-small-24b-2503", "mistral_ai"),
)
PII = ("EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "PERSON")


def genai_spans(n: int, *, seed: int = 7, start_s: float | None = None, seconds: float = 600.0,
                node: str = "gpu-node-01") -> pa.Table:
    """``n`` spans spread over ``seconds`` from ``start_s``: chats (some failing, some without TTFT) and retrievals."""
    rng = random.Random(seed)
    start = time.time() - seconds if start_s is None else start_s
    cols: dict[str, list] = {k: [] for k in (
        "timestamp", "duration_ns", "trace_id", "span_id", "service_name", "node", "span_name", "span_kind",
        "status_code", "operation", "provider", "request_model", "response_model", "input_tokens",
        "output_tokens", "ttft_s", "error_type", "tenant_id", "tier", "pii_count", "pii_entities",
        "quality_scores", "quality_labels")}
    for i in range(n):
        req, resp, provider = MODELS[i % len(MODELS)]
        retrieval = i % 7 == 6
        failing = not retrieval and rng.random() < 0.06
        ttft = None if retrieval or i % 11 == 0 else round(rng.uniform(0.03, 0.4), 4)
        out_tokens = 0 if retrieval or failing else rng.randint(1, 600)
        duration = rng.uniform(0.005, 0.05) if retrieval else (ttft or 0.05) + out_tokens * rng.uniform(0.01, 0.04)
        cols["timestamp"].append(int((start + seconds * i / max(n, 1)) * 1e9))
        cols["duration_ns"].append(int(duration * 1e9))
        cols["trace_id"].append(f"{i:032x}")
        cols["span_id"].append(f"{i:016x}")
        cols["service_name"].append("chat-api")
        cols["node"].append(node)
        cols["span_name"].append("retrieval index" if retrieval else f"chat {req}")
        cols["span_kind"].append("CLIENT")
        cols["status_code"].append("ERROR" if failing else "OK")
        cols["operation"].append("retrieval" if retrieval else "chat")
        cols["provider"].append("qdrant" if retrieval else provider)
        cols["request_model"].append("" if retrieval else req)
        cols["response_model"].append("" if retrieval else resp)
        cols["input_tokens"].append(0 if retrieval else rng.randint(8, 4000))
        cols["output_tokens"].append(out_tokens)
        cols["ttft_s"].append(ttft)
        cols["error_type"].append(("timeout" if i % 2 else "") if failing else "")
        cols["tenant_id"].append(f"tenant-{i % 3}")
        cols["tier"].append(("local", "sovereign", "")[i % 3])
        entities = {rng.choice(PII): rng.randint(1, 3)} if i % 4 == 0 else {}
        cols["pii_count"].append(sum(entities.values()))
        cols["pii_entities"].append(list(entities.items()))
        if not retrieval and i % 2 == 0:
            hallucinated = rng.random() < 0.15
            cols["quality_scores"].append([("groundedness", round(rng.uniform(0.1, 1.0), 3)),
                                           ("hallucination", 1.0 if hallucinated else 0.0)])
            labels = [("groundedness", "ungrounded" if hallucinated else "grounded")]
            if hallucinated:
                labels.append(("hallucination.reason", rng.choice(("unsupported_number", "no_overlap"))))
            cols["quality_labels"].append(labels)
        else:
            cols["quality_scores"].append([])
            cols["quality_labels"].append([])
    ts = pa.array(cols.pop("timestamp"), type=pa.int64()).cast(TIMESTAMP)
    return table_from_columns(Signal.TRACES, {"timestamp": ts, **cols})


def span_batch(n: int, **kwargs: object) -> Batch:
    """``genai_spans`` as a traces batch."""
    return Batch(Signal.TRACES, genai_spans(n, **kwargs))  # type: ignore[arg-type]
