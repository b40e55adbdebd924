"""OpenTelemetry export: every run becomes a trace in the GenAI semantic conventions.

`telemetry_sink(config)` returns an event sink (for `Agent(sinks=[...])`) that turns a run's events
into spans and ships them over OTLP/HTTP to Jaeger, Langfuse, Phoenix or any collector:

    invoke_agent                      the run: model, planner, status, token totals
    ├── chat {model}                  one per model call: tokens, finish reason, time to first chunk
    ├── execute_tool {plugin.tool}    one per tool call: call id, error as span status
    └── ...

Each model call also feeds the GenAI client metrics, `gen_ai.client.token.usage` (a histogram of
tokens, `gen_ai.token.type` input or output) and `gen_ai.client.operation.duration` (seconds), with the
same attributes as the call's span; they go to the collector's /v1/metrics.

Span times come from the events, not from when the sink sees them, so a stored run exported later
(`export_run`) gives the same trace. Messages, tool arguments and results, answers and policy reasons
may hold personal data: they leave only with `capture_content = true`. Every secret the platform
holds (plugdeck.redaction: configured API keys, plugin credentials, in any encoding or piece) and
common key patterns are scrubbed from every string that leaves, content or not.

The opentelemetry packages are imported only when a sink is made (the `telemetry` extra).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlsplit

from ..config import Config, ConfigError, config_tables
from ..events import Event, event_from_dict
from ..models.base import decoded
from ..redaction import redact, register_secret


class GenAI:
    """The semantic-convention attribute names used here, in one place.

    Upstream keeps the gen_ai.* names in `opentelemetry.semconv._incubating` and is moving them to a
    repository of their own; written out here, a package update cannot break the export, and a test
    checks that every name still equals the one the installed package defines.
    """

    OPERATION_NAME = "gen_ai.operation.name"
    PROVIDER_NAME = "gen_ai.provider.name"
    AGENT_NAME = "gen_ai.agent.name"
    REQUEST_MODEL = "gen_ai.request.model"
    RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
    RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
    USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
    USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
    TOOL_NAME = "gen_ai.tool.name"
    TOOL_TYPE = "gen_ai.tool.type"
    TOOL_CALL_ID = "gen_ai.tool.call.id"
    TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
    TOOL_CALL_RESULT = "gen_ai.tool.call.result"
    INPUT_MESSAGES = "gen_ai.input.messages"
    OUTPUT_MESSAGES = "gen_ai.output.messages"
    SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
    ERROR_TYPE = "error.type"
    SERVER_ADDRESS = "server.address"
    SERVER_PORT = "server.port"
    RESPONSE_MODEL = "gen_ai.response.model"
    TOKEN_TYPE = "gen_ai.token.type"


class GenAIMetrics:
    """The GenAI client metrics recorded per model call, with the bucket boundaries the conventions advise."""

    TOKEN_USAGE = "gen_ai.client.token.usage"
    OPERATION_DURATION = "gen_ai.client.operation.duration"
    TOKEN_BUCKETS = [4.0 ** n for n in range(14)]  # 1, 4, 16 ... 67,108,864 tokens
    DURATION_BUCKETS = [0.01 * 2 ** n for n in range(14)]  # 10 ms ... 81.92 s


TELEMETRY_KEYS = {"otlp_endpoint", "capture_content", "service_name"}
TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
EXPORT_TIMEOUT = 3.0  # seconds for one export, retries included
LOCAL_MODELS = ("rules", "scripted")  # answered inside plugdeck: the provider is plugdeck itself


@dataclass(frozen=True)
class TelemetrySettings:
    traces_endpoint: str  # the full OTLP/HTTP URL, ending in /v1/traces
    capture_content: bool = False
    service_name: str = "plugdeck"
    metrics_endpoint: str | None = None  # ending in /v1/metrics; None: no metrics (OTEL_METRICS_EXPORTER=none)


def telemetry_settings(cwd=None) -> TelemetrySettings | None:
    """The [telemetry] table of the config files, overridden by the standard OTEL_* variables; None if off.

        [telemetry]
        otlp_endpoint = "http://127.0.0.1:4318"   # or OTEL_EXPORTER_OTLP_ENDPOINT
        capture_content = false                   # messages, tool arguments and results
        service_name = "plugdeck"
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    table: dict[str, Any] = {}
    for path, section in config_tables("telemetry", cwd):
        table.update(_telemetry_table(path, section))
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or table.get("otlp_endpoint")
    # The signal-specific variables hold the full URL, as the spec says.
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (_signal_url(base, TRACES_PATH) if base else None)
    if not endpoint:
        return None
    _check_url(endpoint)
    metrics = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or (_signal_url(base, METRICS_PATH) if base else None)
    if os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        metrics = None
    if metrics:
        _check_url(metrics)
    capture = table.get("capture_content", False)
    switch = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    if switch:
        capture = switch.strip().lower() in ("true", "1", "yes")
    return TelemetrySettings(endpoint, bool(capture), str(table.get("service_name", "plugdeck")), metrics)


def telemetry_sink(config: Config, cwd=None) -> TraceSink | None:
    """A sink exporting runs as traces to the configured OTLP endpoint, or None when none is configured."""
    settings = telemetry_settings(cwd)
    if settings is None:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError("telemetry is configured (an OTLP endpoint is set) but the OpenTelemetry packages are not "
                          "installed: pip install 'plugdeck[telemetry]', or remove the endpoint") from None
    from .. import __version__

    resource = Resource.create({"service.name": settings.service_name, "service.version": __version__})
    provider = TracerProvider(resource=resource)
    # Headers (a Langfuse or vendor token) come from OTEL_EXPORTER_OTLP_HEADERS, read by the exporter.
    # An unreachable collector delays a short command's exit by up to the timeout (retries included);
    # the standard OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT variables change it.
    from_environment = {"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"} & set(os.environ)
    timeout = None if from_environment else EXPORT_TIMEOUT
    exporter = OTLPSpanExporter(endpoint=settings.traces_endpoint, timeout=timeout)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    meters = None
    if settings.metrics_endpoint:
        # Sent every OTEL_METRIC_EXPORT_INTERVAL (60 s by default) and when the process exits.
        metric_exporter = OTLPMetricExporter(endpoint=settings.metrics_endpoint, timeout=timeout)
        meters = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(metric_exporter)])
    return TraceSink(provider, capture_content=settings.capture_content, secrets=configured_secrets(config),
                     servers=_model_servers(config), meter_provider=meters)


def configured_secrets(config: Config) -> list[str]:
    """Every key the configuration points to, to scrub from spans should one slip into a message."""
    keys = [p.api_key() for p in config.profiles.values()]
    keys.append(os.environ.get("PLUGDECK_API_KEY"))
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        for pair in os.environ.get(name, "").split(","):
            keys.append(pair.partition("=")[2].strip())
    return [k for k in keys if k and len(k) >= 4]


def export_run(run: dict[str, Any], sink: TraceSink) -> None:
    """Send a stored run (RunStore.get_run) through the sink as spans, as if it were happening now (not
    its metrics: they were recorded when it ran, and counting its tokens again would double them)."""
    for data in run["events"]:
        if data.get("type") in TraceSink.HANDLED:
            sink(event_from_dict(data), measure=False)


class TraceSink:
    """Turns events into spans. One sink serves any number of concurrent runs."""

    def __init__(self, tracer_provider, *, capture_content: bool = False, secrets: Iterable[str] = (),
                 servers: dict[str, tuple[str, int | None]] | None = None, meter_provider=None):
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        from .. import __version__

        self.provider = tracer_provider
        self.capture_content = capture_content
        self._tracer = tracer_provider.get_tracer("plugdeck", __version__)
        self._trace, self._kind, self._status, self._code = trace, SpanKind, Status, StatusCode
        for secret in secrets:
            register_secret(secret, "telemetry configuration")
        self._scrub = redact  # the platform's one redactor: every registered secret, key shapes
        self._servers = servers or {}
        self._runs: dict[str, _RunTrace] = {}
        self._lock = threading.Lock()
        self.meter_provider = meter_provider
        self._tokens = self._duration = None
        if meter_provider is not None:
            meter = meter_provider.get_meter("plugdeck", __version__)
            self._tokens = meter.create_histogram(
                GenAIMetrics.TOKEN_USAGE, unit="{token}", description="Tokens used per model call",
                explicit_bucket_boundaries_advisory=GenAIMetrics.TOKEN_BUCKETS)
            self._duration = meter.create_histogram(
                GenAIMetrics.OPERATION_DURATION, unit="s", description="Duration of a model call",
                explicit_bucket_boundaries_advisory=GenAIMetrics.DURATION_BUCKETS)

    # ---- the sink -------------------------------------------------------------------------------

    def __call__(self, event: Event, *, measure: bool = True) -> None:
        """measure=False: spans only (a stored run exported again was measured when it ran)."""
        handler = self._handlers.get(event.type)
        if handler is None:
            return
        with self._lock:
            if event.type == "run_started":
                self._run_started(event)
                return
            run = self._runs.get(event.run_id)
            if run is not None:  # a run that started before the sink was attached is not traced
                handler(self, run, event)
                if measure and event.type == "model_called":
                    self._measure(run, event)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Send everything finished so far (spans, and the metrics recorded); True if it all went out in time."""
        sent = self.provider.force_flush(int(timeout_s * 1000))
        if self.meter_provider is not None:
            sent = self.meter_provider.force_flush(int(timeout_s * 1000)) and sent
        return sent

    def shutdown(self) -> None:
        self.provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()

    # ---- events -> spans ------------------------------------------------------------------------

    def _run_started(self, event: Event) -> None:
        # Event times are seconds since the run started; the wall clock at that moment anchors them.
        origin = getattr(event, "started_at", 0.0) - event.t
        model = getattr(event, "model", "")
        attributes = {
            GenAI.OPERATION_NAME: "invoke_agent",
            GenAI.AGENT_NAME: "plugdeck",
            GenAI.PROVIDER_NAME: self._provider(model),
            GenAI.REQUEST_MODEL: model,
            "plugdeck.run.id": event.run_id,
            "gen_ai.conversation.id": getattr(event, "conversation_id", None) or event.run_id,
            "plugdeck.planner": getattr(event, "planner", ""),
            "plugdeck.tools": list(getattr(event, "tools", []) or []),
        }
        if self.capture_content:
            attributes[GenAI.INPUT_MESSAGES] = _json([_text_message("user", getattr(event, "question", ""))])
        root = self._tracer.start_span("invoke_agent", kind=self._kind.INTERNAL, start_time=_ns(origin + event.t),
                                       attributes=self._clean(attributes))
        self._runs[event.run_id] = _RunTrace(root, self._trace.set_span_in_context(root), origin, model)

    def _model_called(self, run: _RunTrace, event: Event) -> None:
        model = getattr(event, "model", "") or run.model
        latency = getattr(event, "latency", 0.0) or 0.0
        finish = getattr(event, "finish_reason", None)
        attributes: dict[str, Any] = {
            GenAI.OPERATION_NAME: "chat",
            GenAI.PROVIDER_NAME: self._provider(model),
            GenAI.REQUEST_MODEL: model,
            GenAI.USAGE_INPUT_TOKENS: getattr(event, "prompt_tokens", 0) or 0,
            GenAI.USAGE_OUTPUT_TOKENS: getattr(event, "completion_tokens", 0) or 0,
            GenAI.RESPONSE_FINISH_REASONS: [finish] if finish else None,
            GenAI.RESPONSE_TIME_TO_FIRST_CHUNK: getattr(event, "ttft", None),
            "plugdeck.step": getattr(event, "step", None),
            "plugdeck.cost": getattr(event, "cost", None),
        }
        server = self._servers.get(model)
        if server:
            attributes[GenAI.SERVER_ADDRESS], attributes[GenAI.SERVER_PORT] = server
        if self.capture_content:
            messages = getattr(event, "messages", []) or []
            system = [m.get("content") for m in messages if m.get("role") == "system" and m.get("content")]
            if system:
                attributes[GenAI.SYSTEM_INSTRUCTIONS] = _json([{"type": "text", "content": s} for s in system])
            attributes[GenAI.INPUT_MESSAGES] = _json(semconv_messages(messages))
            attributes[GenAI.OUTPUT_MESSAGES] = _json([_output_message(event)])
        span = self._tracer.start_span(f"chat {model}", context=run.context, kind=self._kind.CLIENT,
                                       start_time=_ns(run.origin + event.t - latency),
                                       attributes=self._clean(attributes))
        error = getattr(event, "error", None)
        if error:
            self._fail(span, "model_error", error)
        span.end(end_time=_ns(run.origin + event.t))

    def _measure(self, run: _RunTrace, event: Event) -> None:
        """A model call's GenAI client metrics: its duration, and its input and output tokens."""
        if self._duration is None:
            return
        model = getattr(event, "model", "") or run.model
        latency = getattr(event, "latency", 0.0) or 0.0
        error = getattr(event, "error", None)
        attributes: dict[str, Any] = {GenAI.OPERATION_NAME: "chat", GenAI.PROVIDER_NAME: self._provider(model),
                                      GenAI.REQUEST_MODEL: run.model or model, GenAI.RESPONSE_MODEL: model}
        server = self._servers.get(model)
        if server:
            attributes[GenAI.SERVER_ADDRESS], attributes[GenAI.SERVER_PORT] = server
        if error:
            attributes[GenAI.ERROR_TYPE] = "model_error"
        attributes = self._clean(attributes)
        self._duration.record(latency, attributes)
        if error:
            return  # no tokens were counted for a call that failed
        if getattr(event, "estimated", False):
            attributes["plugdeck.tokens.estimated"] = True  # the server sent no usage
        for kind, count in (("input", getattr(event, "prompt_tokens", 0)), ("output", getattr(event, "completion_tokens", 0))):
            self._tokens.record(count or 0, {**attributes, GenAI.TOKEN_TYPE: kind})

    def _tool_started(self, run: _RunTrace, event: Event) -> None:
        run.tools[event.call_id] = self._tool_span(run, event, event.t)

    def _tool_finished(self, run: _RunTrace, event: Event) -> None:
        span = run.tools.pop(event.call_id, None)
        if span is None:  # never started (or started before the sink was attached)
            span = self._tool_span(run, event, event.t - (getattr(event, "latency", 0.0) or 0.0))
        attributes = {"plugdeck.tool.source": getattr(event, "source", "") or None,
                      "plugdeck.tool.untrusted": bool(getattr(event, "untrusted", False))}
        error = getattr(event, "error", None)
        if self.capture_content and not error:
            attributes[GenAI.TOOL_CALL_RESULT] = _json(getattr(event, "result", None))
        span.set_attributes(self._clean(attributes))
        if error:
            kind = str(error.get("kind", "tool_error")) if isinstance(error, dict) else "tool_error"
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            # A tool's error message may repeat its arguments: content, so only its kind by default.
            self._fail(span, kind, message if self.capture_content else kind)
        span.end(end_time=_ns(run.origin + event.t))

    def _tool_span(self, run: _RunTrace, event: Event, started: float):
        tool = getattr(event, "tool", "")
        attributes = {GenAI.OPERATION_NAME: "execute_tool", GenAI.TOOL_NAME: tool, GenAI.TOOL_TYPE: "function",
                      GenAI.TOOL_CALL_ID: event.call_id, "plugdeck.step": getattr(event, "step", None)}
        if self.capture_content:
            attributes[GenAI.TOOL_CALL_ARGUMENTS] = _json(getattr(event, "arguments", None))
        return self._tracer.start_span(f"execute_tool {tool}", context=run.context, kind=self._kind.INTERNAL,
                                       start_time=_ns(run.origin + started), attributes=self._clean(attributes))

    def _policy_decided(self, run: _RunTrace, event: Event) -> None:
        attributes = {"plugdeck.policy.decision": getattr(event, "decision", ""),
                      "plugdeck.policy.rule": getattr(event, "rule", ""),
                      "plugdeck.tool": getattr(event, "tool", None)}
        if self.capture_content:  # reasons quote argument values
            attributes["plugdeck.policy.reason"] = getattr(event, "reason", "")
        self._note(run, event, "plugdeck.policy_decision", attributes, getattr(event, "call_id", None))

    def _confirmation_requested(self, run: _RunTrace, event: Event) -> None:
        attributes = {"plugdeck.action.id": event.action_id, "plugdeck.tool": getattr(event, "tool", "")}
        self._note(run, event, "plugdeck.confirmation_requested", attributes, getattr(event, "call_id", None))

    def _confirmation_answered(self, run: _RunTrace, event: Event) -> None:
        attributes = {"plugdeck.action.id": event.action_id, "plugdeck.approved": bool(getattr(event, "approved", False)),
                      "plugdeck.approved_by": getattr(event, "by", "")}
        self._note(run, event, "plugdeck.confirmation_answered", attributes, None)

    def _answer_checked(self, run: _RunTrace, event: Event) -> None:
        attributes = {"plugdeck.check": getattr(event, "check", ""),
                      "plugdeck.passed": bool(getattr(event, "passed", False))}
        self._note(run, event, "plugdeck.answer_checked", attributes, None)

    def _planner_note(self, run: _RunTrace, event: Event) -> None:
        attributes = {"plugdeck.planner": getattr(event, "planner", ""), "plugdeck.message": getattr(event, "message", "")}
        self._note(run, event, "plugdeck.planner", attributes, None)

    def _tool_calls_parsed(self, run: _RunTrace, event: Event) -> None:
        """How a step's tool calls were read (native, or recovered from an open model's text), counted on
        the run's span so a dashboard can watch an endpoint's parser break."""
        outcome = getattr(event, "outcome", "")
        run.parsed[outcome] = run.parsed.get(outcome, 0) + (getattr(event, "calls", 0) or 0)
        attributes = {"plugdeck.step": getattr(event, "step", None), "plugdeck.tool_format": getattr(event, "format", ""),
                      "plugdeck.outcome": outcome, "plugdeck.calls": getattr(event, "calls", 0) or 0}
        self._note(run, event, "plugdeck.tool_calls_parsed", attributes, None)

    def _answer(self, run: _RunTrace, event: Event) -> None:
        if self.capture_content:
            output = _text_message("assistant", getattr(event, "text", ""))
            run.root.set_attribute(GenAI.OUTPUT_MESSAGES, self._scrub(_json([{**output, "finish_reason": "stop"}])))

    def _run_finished(self, run: _RunTrace, event: Event) -> None:
        del self._runs[event.run_id]
        end = _ns(run.origin + event.t)
        for span in run.tools.values():  # cancelled mid-call
            self._fail(span, "cancelled", "the run ended before the tool call finished")
            span.end(end_time=end)
        status = getattr(event, "status", "ok")
        run.root.set_attributes(self._clean({
            "plugdeck.run.status": status,
            GenAI.USAGE_INPUT_TOKENS: getattr(event, "prompt_tokens", 0) or 0,
            GenAI.USAGE_OUTPUT_TOKENS: getattr(event, "completion_tokens", 0) or 0,
            "plugdeck.run.steps": getattr(event, "steps", 0) or 0,
            "plugdeck.run.model_calls": getattr(event, "model_calls", 0) or 0,
            "plugdeck.run.tool_calls": getattr(event, "tool_calls", 0) or 0,
            "plugdeck.cost": getattr(event, "cost", None),
            **{f"plugdeck.tool_calls.{outcome}": n for outcome, n in run.parsed.items()},
        }))
        if status != "ok":
            self._fail(run.root, status, getattr(event, "error", None) or f"the run ended with status {status}")
        run.root.end(end_time=end)

    _handlers = {
        "run_started": _run_started, "model_called": _model_called, "tool_started": _tool_started,
        "tool_finished": _tool_finished, "policy_decision": _policy_decided,
        "confirmation_requested": _confirmation_requested, "confirmation_answered": _confirmation_answered,
        "answer_checked": _answer_checked, "planner": _planner_note, "answer": _answer, "run_finished": _run_finished,
        "tool_calls_parsed": _tool_calls_parsed,
    }
    HANDLED = frozenset(_handlers)

    # ---- helpers --------------------------------------------------------------------------------

    def _note(self, run: _RunTrace, event: Event, name: str, attributes: dict[str, Any], call_id: str | None) -> None:
        span = run.tools.get(call_id) if call_id else None
        (span or run.root).add_event(name, self._clean(attributes), timestamp=_ns(run.origin + event.t))

    def _fail(self, span, error_type: str, description: str) -> None:
        span.set_attribute(GenAI.ERROR_TYPE, error_type)
        span.set_status(self._status(self._code.ERROR, self._scrub(str(description))))

    def _clean(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """Drop empty values; scrub secrets from every string."""
        cleaned: dict[str, Any] = {}
        for key, value in attributes.items():
            if value is None:
                continue
            if isinstance(value, str):
                value = self._scrub(value)
            elif isinstance(value, (list, tuple)):
                value = [self._scrub(v) if isinstance(v, str) else v for v in value if v is not None]
            cleaned[key] = value
        return cleaned

    def _provider(self, model: str) -> str:
        # Best knowledge, as the convention asks: endpoint models speak the OpenAI API.
        return "plugdeck" if model in LOCAL_MODELS else "openai"


@dataclass
class _RunTrace:
    root: Any
    context: Any
    origin: float  # wall-clock seconds at the run's t = 0
    model: str
    tools: dict[str, Any] = field(default_factory=dict)  # call id -> open execute_tool span
    parsed: dict[str, int] = field(default_factory=dict)  # tool calls by how they were read: native, recovered, failed


# ---- message formats ------------------------------------------------------------------------------


def semconv_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-format chat messages as the GenAI conventions write them (role + typed parts)."""
    converted = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            continue  # goes to gen_ai.system_instructions
        if role == "tool":
            parts = [{"type": "tool_call_response", "id": message.get("tool_call_id"),
                      "response": decoded(message.get("content"))}]
        else:
            parts = _text_parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                parts.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name"),
                              "arguments": decoded(function.get("arguments"))})
        converted.append({"role": role, "parts": parts})
    return converted


def _output_message(event: Event) -> dict[str, Any]:
    parts = _text_parts(getattr(event, "text", ""))
    for call in getattr(event, "tool_calls", []) or []:
        parts.append({"type": "tool_call", "id": call.get("id"), "name": call.get("name"),
                      "arguments": call.get("arguments")})
    return {"role": "assistant", "parts": parts, "finish_reason": getattr(event, "finish_reason", None) or "error"}


def _text_message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": _text_parts(text)}


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if not content:
        return []
    return [{"type": "text", "content": content if isinstance(content, str) else _json(content)}]


# ---- small things ---------------------------------------------------------------------------------


def _telemetry_table(path, table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: telemetry must be a table ([telemetry])")
    unknown = set(table) - TELEMETRY_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown [telemetry] setting(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(TELEMETRY_KEYS))}")
    if "capture_content" in table and not isinstance(table["capture_content"], bool):
        raise ConfigError(f"{path}: [telemetry] capture_content must be true or false")
    return table


def _signal_url(base: str, path: str) -> str:
    """The URL of one signal (traces, metrics) under the collector's base URL."""
    base = base.strip().rstrip("/")
    for suffix in (TRACES_PATH, METRICS_PATH):  # a base given as one signal's URL
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base + path


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"the OTLP endpoint must be an http(s) URL such as http://127.0.0.1:4318, not {url!r}")


def _model_servers(config: Config) -> dict[str, tuple[str, int | None]]:
    """Model name -> (host, port) of its endpoint, for server.address; never the URL's credentials or path."""
    servers = {}
    for profile in config.profiles.values():
        parts = urlsplit(profile.base_url)
        if parts.hostname:
            servers[profile.model] = (parts.hostname, parts.port)
    return servers


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


