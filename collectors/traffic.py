"""Synthetic GenAI inference traffic, emitted with the real OpenTelemetry SDK over real OTLP.

Used by ``sovtel demo``, tests and benchmarks: several services, models (two versions of one),
tenants and users; streaming chats with time to first chunk; RAG with retrieval; tool calls;
errors; older and newer GenAI attribute names; prompts that carry personal data on purpose, so the
privacy processors have something to catch. Span times are synthetic (no sleeping), so a generator
can emit thousands of requests per second.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry._logs import Logger, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

SERVICES: tuple[tuple[str, str], ...] = (
    # (service.name, style): "new" emits current GenAI names, "old" the pre-1.37 names.
    ("chat-api", "new"),
    ("rag-assistant", "new"),
    ("legacy-summariser", "old"),
)
TENANTS: tuple[tuple[str, str, str], ...] = (
    # (tenant, tier tag or "" for untagged, region)
    ("bank-a", "local", "de-fra"),
    ("hospital-b", "sovereign", "eu-west"),
    ("city-c", "", "fr-par"),
)
NODES: tuple[str, ...] = ("gpu-node-01", "gpu-node-02")


@dataclass(frozen=True)
class Model:
    """A served model: request name, response (version) name, provider and behaviour."""

    request: str
    response: str
    provider: str
    ttft_s: float
    tpot_s: float
    weight: float


MODELS: tuple[Model, ...] = (
    Model("llama-3.1-8b-instruct", "llama-3.1-8b-instruct-v1", "vllm", 0.08, 0.012, 3.0),
    Model("llama-3.1-8b-instruct", "llama-3.1-8b-instruct-v2", "vllm", 0.07, 0.011, 1.0),
    Model("mistral-small-24b", "mistral-small-24b-2503", "mistral_ai", 0.15, 0.02, 2.0),
    Model("qwen2.5-72b-instruct", "qwen2.5-72b-instruct", "vllm", 0.35, 0.04, 1.0),
)

FIRST_NAMES = ("Anna", "Lukas", "Marie", "Jonas", "Sofia", "Pierre", "Giulia", "Mateusz", "Lucía", "Daan")
LAST_NAMES = ("Schmidt", "Dubois", "Rossi", "García", "Kowalski", "de Vries", "Müller", "Bernard")
IBANS = ("DE89370400440532013000", "FR1420041010050500013M02606", "NL91ABNA0417164300", "IT60X0542811101000000123456")
PHONES = ("+49 30 901820", "+33 1 42 68 53 00", "+31 20 624 1111", "+39 06 6982")
TOPICS: tuple[tuple[str, str, str, str], ...] = (
    # (question, evidence a retriever returns, grounded answer, fabricated answer)
    ("What is the opening time of the branch in {city}?",
     "The {city} branch opens at 9:00 and closes at 17:30 on weekdays; it is closed on Sundays.",
     "The branch in {city} opens at 9:00 on weekdays.",
     "The branch in {city} opens at 7:00 every day, including Sundays."),
    ("What is the fee for a SEPA transfer?",
     "SEPA credit transfers within the EU are free of charge. Instant transfers cost 0.50 EUR each.",
     "SEPA transfers within the EU are free; instant transfers cost 0.50 EUR.",
     "Every SEPA transfer costs 2.90 EUR plus a 1% currency surcharge."),
    ("How long are discharge letters kept?",
     "Discharge letters are archived for 10 years in the clinical records system of the hospital.",
     "Discharge letters are archived for 10 years.",
     "Discharge letters are deleted after 6 months by the insurance office."),
    ("How do I reset my password?",
     "Passwords are reset with the 'Forgot password' link on the sign-in page; the link expires after 30 minutes.",
     "Use the 'Forgot password' link on the sign-in page; the link is valid for 30 minutes.",
     "Call the helpdesk at extension 4471 and they will read your password to you."),
    ("What is the daily card limit?",
     "The standard daily card limit is 1,000 EUR; premium cards have a limit of 5,000 EUR.",
     "The standard daily card limit is 1,000 EUR, or 5,000 EUR for premium cards.",
     "The daily card limit is 25,000 EUR for every card."),
)
# How often a model version answers against its evidence (v2 is the regression to catch).
FABRICATION_RATE = {"llama-3.1-8b-instruct-v2": 0.12}
DEFAULT_FABRICATION_RATE = 0.03
CITIES = ("Berlin", "Paris", "Milan", "Warsaw", "Madrid", "Utrecht")
ERRORS = (("timeout", "upstream inference timed out after 30s"), ("rate_limit_exceeded", "tenant quota exceeded"),
          ("context_length_exceeded", "prompt exceeds the context window"))
TOOLS = ("get_account_balance", "lookup_appointment", "search_documents")


@dataclass
class TrafficStats:
    """What a generator emitted, for checking against what was stored."""

    requests: int = 0
    spans: int = 0
    logs: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    by_model: dict[str, int] = field(default_factory=dict)


class GenAITraffic:
    """Emits one inference request (a small trace) at a time onto SDK tracers."""

    def __init__(self, seed: int = 7, prompt_scale: dict[str, float] | None = None) -> None:
        self.rng = random.Random(seed)
        self.stats = TrafficStats()
        # Where application logs go (one record per failed request), if anywhere.
        self.logger: Logger | None = None
        # Per response-model multipliers of prompt length: how tests inject drift.
        self.prompt_scale = prompt_scale or {}

    def _person(self) -> tuple[str, str, str]:
        r = self.rng
        first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
        email = f"{first.lower()}.{last.lower().replace(' ', '')}@example.{r.choice(('de', 'fr', 'it', 'nl'))}"
        return f"{first} {last}", email, r.choice(PHONES)

    def _prompt(self, model: str) -> tuple[str, str, str, bool]:
        """A user prompt, its evidence and an answer; about a third of prompts carry personal data."""
        r = self.rng
        q, evidence, grounded, fabricated = r.choice(TOPICS)
        city = r.choice(CITIES)
        q, evidence = q.format(city=city), evidence.format(city=city)
        fabricates = r.random() < FABRICATION_RATE.get(model, DEFAULT_FABRICATION_RATE)
        answer = (fabricated if fabricates else grounded).format(city=city)
        if r.random() < 0.35:
            name, email, phone = self._person()
            q += r.choice(
                (
                    f" My name is {name}, e-mail {email}.",
                    f" Please call me back on {phone}.",
                    f" My IBAN is {r.choice(IBANS)}.",
                    f" I am {name} and my card is 4111 1111 1111 1111.",
                )
            )
        return q, evidence, answer, fabricates

    def emit(self, tracer: Tracer, style: str, now_ns: int | None = None) -> None:
        """Emit one request (1–4 spans) ending at ``now_ns``."""
        r = self.rng
        end = now_ns if now_ns is not None else time.time_ns()
        model = r.choices(MODELS, weights=[m.weight for m in MODELS])[0]
        user = f"user-{r.randrange(1, 400):04d}"
        session = f"sess-{r.randrange(1, 2000):05d}"
        conversation = f"conv-{r.randrange(1, 5000):05d}"
        question, evidence, answer, _ = self._prompt(model.response)
        scale = self.prompt_scale.get(model.response, 1.0)
        input_tokens = max(8, int(r.lognormvariate(5.0, 0.6) * scale))
        output_tokens = max(1, int(r.lognormvariate(4.5, 0.7)))
        ttft = model.ttft_s * r.lognormvariate(0, 0.3) * (1 + input_tokens / 4000)
        duration = ttft + output_tokens * model.tpot_s * r.lognormvariate(0, 0.2)
        kind = r.random()
        failing = r.random() < 0.03
        start = end - int(duration * 1e9) - int(0.05e9)

        self.stats.requests += 1
        self.stats.by_model[model.response] = self.stats.by_model.get(model.response, 0) + 1

        with self._root(tracer, kind, start, end) as parent_ctx:
            if kind < 0.3:  # RAG: retrieval before the chat
                self._retrieval(tracer, parent_ctx, start, question, evidence)
            if 0.3 <= kind < 0.45:  # agent with a tool call
                self._tool(tracer, parent_ctx, start + int(0.01e9))
            attrs: dict[str, Any] = {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model.request,
                "gen_ai.response.model": model.response,
                "gen_ai.request.temperature": round(r.choice((0.0, 0.2, 0.7)), 2),
                "gen_ai.request.max_tokens": 1024,
                "gen_ai.request.stream": True,
                "gen_ai.response.id": f"chatcmpl-{r.getrandbits(48):012x}",
                "gen_ai.conversation.id": conversation,
                "user.id": user,
                "session.id": session,
                "server.address": "vllm.inference.svc",
                "server.port": 8000,
                # Undeclared attributes that minimisation must drop:
                "http.user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                "client.address": f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
            }
            messages_in = [{"role": "user", "parts": [{"type": "text", "content": question}]}]
            messages_out = [{"role": "assistant", "parts": [{"type": "text", "content": answer}],
                             "finish_reason": "stop"}]
            if style == "new":
                attrs.update({
                    "gen_ai.provider.name": model.provider,
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": 0 if failing else output_tokens,
                    "gen_ai.usage.cache_read.input_tokens": input_tokens // 4 if r.random() < 0.3 else 0,
                    "gen_ai.response.time_to_first_chunk": round(ttft, 4),
                    "gen_ai.response.finish_reasons": ["error"] if failing else [r.choice(("stop", "stop", "length"))],
                    "gen_ai.input.messages": json.dumps(messages_in, ensure_ascii=False),
                    "gen_ai.output.messages": json.dumps(messages_out, ensure_ascii=False),
                    "gen_ai.system_instructions": json.dumps(
                        [{"type": "text", "content": "You are a helpful assistant of the operator. "
                          + ("" if kind < 0.3 else f"Answer from this context: {evidence}")}]
                    ),
                })
            else:
                attrs.update({
                    "gen_ai.system": model.provider,
                    "gen_ai.usage.prompt_tokens": input_tokens,
                    "gen_ai.usage.completion_tokens": 0 if failing else output_tokens,
                    "gen_ai.server.time_to_first_token": round(ttft, 4),
                    "gen_ai.response.finish_reasons": ["error"] if failing else ["stop"],
                    "gen_ai.prompt": f"Context: {evidence}\n\nQuestion: {question}",
                    "gen_ai.completion": answer,
                })
            span = tracer.start_span(
                f"chat {model.request}", context=parent_ctx, kind=SpanKind.CLIENT, attributes=attrs,
                start_time=end - int(duration * 1e9),
            )
            if failing:
                err, msg = r.choice(ERRORS)
                span.set_attribute("error.type", err)
                span.add_event("exception", {"exception.type": err, "exception.message": msg})
                span.set_status(Status(StatusCode.ERROR, msg))
                self.stats.errors += 1
                if self.logger is not None:
                    from opentelemetry import trace as api

                    self.logger.emit(
                        timestamp=end, context=api.set_span_in_context(span), severity_number=SeverityNumber.ERROR,
                        severity_text="ERROR", body=f"inference failed for {user}: {msg}",
                        attributes={"error.type": err, "user.id": user, "gen_ai.request.model": model.request},
                        event_name="inference.failure",
                    )
                    self.stats.logs += 1
            self.stats.spans += 1
            self.stats.input_tokens += input_tokens
            self.stats.output_tokens += 0 if failing else output_tokens
            span.end(end_time=end)

    @contextmanager
    def _root(self, tracer: Tracer, kind: float, start: int, end: int) -> Iterator[Any]:
        from opentelemetry import trace as api

        name = "invoke_agent support-agent" if 0.3 <= kind < 0.45 else "POST /v1/chat/completions"
        root = tracer.start_span(name, kind=SpanKind.SERVER, start_time=start,
                                 attributes={"http.request.method": "POST", "http.response.status_code": 200})
        self.stats.spans += 1
        try:
            yield api.set_span_in_context(root)
        finally:
            root.end(end_time=end)

    def _retrieval(self, tracer: Tracer, ctx: Any, start: int, query: str, evidence: str) -> None:
        r = self.rng
        docs = [{"id": f"doc-{r.randrange(10_000)}", "score": round(r.uniform(0.8, 0.95), 3), "content": evidence}]
        span = tracer.start_span(
            "retrieval policies-index", context=ctx, kind=SpanKind.CLIENT, start_time=start + int(0.002e9),
            attributes={
                "gen_ai.operation.name": "retrieval",
                "gen_ai.data_source.id": "policies-index",
                "gen_ai.provider.name": "qdrant",
                "gen_ai.retrieval.query.text": query,
                "gen_ai.retrieval.documents": json.dumps(docs),
            },
        )
        span.end(end_time=start + int(r.uniform(0.005, 0.03) * 1e9))
        self.stats.spans += 1

    def _tool(self, tracer: Tracer, ctx: Any, start: int) -> None:
        r = self.rng
        tool = r.choice(TOOLS)
        span = tracer.start_span(
            f"execute_tool {tool}", context=ctx, kind=SpanKind.INTERNAL, start_time=start,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.id": f"call_{r.getrandbits(40):010x}",
                "gen_ai.tool.call.arguments": json.dumps({"account": r.choice(IBANS)}),
                "gen_ai.tool.call.result": json.dumps({"status": "ok"}),
            },
        )
        span.end(end_time=start + int(r.uniform(0.01, 0.2) * 1e9))
        self.stats.spans += 1


@dataclass
class OtlpTargets:
    """Where the generator sends: a gRPC endpoint (host:port) and an HTTP base URL."""

    grpc: str
    http: str


class TrafficRun:
    """Tracer providers for every (service, tenant, node), alternating OTLP gRPC and HTTP exporters."""

    def __init__(self, targets: OtlpTargets, seed: int = 7, queue_size: int = 200_000,
                 prompt_scale: dict[str, float] | None = None, nodes: tuple[str, ...] = NODES) -> None:
        self.traffic = GenAITraffic(seed, prompt_scale)
        self.providers: list[tuple[TracerProvider, Tracer, str]] = []
        i = 0
        for service, style in SERVICES:
            for tenant, tier, region in TENANTS:
                node = nodes[i % len(nodes)]
                attrs = {
                    "service.name": service,
                    "service.version": "1.4.2",
                    "host.name": node,
                    "k8s.pod.name": f"{service}-{i:02d}-7d9f",
                    "cloud.region": region,
                    "deployment.environment.name": "production",
                    "sovtel.tenant": tenant,
                }
                if tier:
                    attrs["sovtel.tier"] = tier
                exporter: SpanExporter
                if i % 2 == 0:
                    exporter = GrpcSpanExporter(endpoint=targets.grpc, insecure=True)
                else:
                    exporter = HttpSpanExporter(endpoint=f"{targets.http.rstrip('/')}/v1/traces")
                provider = TracerProvider(resource=Resource.create(attrs))
                # The default queue (2048) drops spans under a tight generator loop: size it.
                provider.add_span_processor(
                    BatchSpanProcessor(exporter, max_queue_size=queue_size, max_export_batch_size=4096,
                                       schedule_delay_millis=200)
                )
                self.providers.append((provider, provider.get_tracer("sovtel.demo"), style))
                i += 1

        log_resource = Resource.create({"service.name": "chat-api", "host.name": nodes[0], "sovtel.tenant": "bank-a",
                                        "sovtel.tier": "local"})
        self.log_provider = LoggerProvider(resource=log_resource)
        self.log_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{targets.http.rstrip('/')}/v1/logs"),
                                    max_queue_size=queue_size, schedule_delay_millis=200)
        )
        self.traffic.logger = self.log_provider.get_logger("sovtel.demo")

    def emit(self, n: int) -> None:
        """Emit ``n`` requests spread over the providers."""
        rng = self.traffic.rng
        for _ in range(n):
            _, tracer, style = rng.choice(self.providers)
            self.traffic.emit(tracer, style)

    def run_for(self, seconds: float, rate: int, on_tick: Any = None) -> TrafficStats:
        """Emit ``rate`` requests per second for ``seconds``; ``on_tick(elapsed)`` after each tick."""
        t0 = time.monotonic()
        tick = 0.1
        sent = 0
        while (elapsed := time.monotonic() - t0) < seconds:
            due = int(elapsed * rate) - sent
            if due > 0:
                self.emit(due)
                sent += due
            if on_tick is not None:
                on_tick(elapsed)
            time.sleep(tick)
        return self.traffic.stats

    def shutdown(self) -> None:
        """Flush and close every provider (exports what is still queued)."""
        for provider, _, _ in self.providers:
            provider.force_flush(30_000)
            provider.shutdown()
        self.log_provider.force_flush(30_000)
        self.log_provider.shutdown()
