"""OpenTelemetry export: a real OTLP/HTTP receiver on loopback decodes what plugdeck sends."""

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)

from plugdeck import Agent, RunStore, ScriptedModel, tool
from plugdeck.config import ConfigError, load_config
from plugdeck.ops.otel import GenAI, export_run, telemetry_settings, telemetry_sink
from plugdeck.plugins.calculator import plugin as calculator
from plugdeck.policy.load import policy_from

CANARY = "canary-key-5d1f0b7e9a2c4431"


class Receiver:
    """An OTLP/HTTP trace receiver: keeps every request's headers, raw body and decoded spans."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                received.append(({k.lower(): v for k, v in self.headers.items()}, self.path, body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def spans(self) -> list:
        found = []
        for _, path, body in self.requests:
            if path != "/v1/traces":
                continue
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    found.extend(scope_spans.spans)
        return found

    def metrics(self) -> dict:
        """Metric name -> its data points, from every /v1/metrics request."""
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        found: dict = {}
        for _, path, body in self.requests:
            if path != "/v1/metrics":
                continue
            for resource_metrics in ExportMetricsServiceRequest.FromString(body).resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        found.setdefault(metric.name, []).extend(metric.histogram.data_points)
        return found

    def raw(self) -> bytes:
        return b"".join(body for _, _, body in self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A clean configuration: no OTEL_* or PLUGDECK_* variables, config files under tmp_path."""
    for name in list(__import__("os").environ):
        if name.startswith(("OTEL_", "PLUGDECK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("PLUGDECK_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(project, text):
    (project / "plugdeck.toml").write_text(text)


def attrs(span) -> dict:
    def value(v):
        kind = v.WhichOneof("value")
        if kind == "array_value":
            return [value(x) for x in v.array_value.values]
        return getattr(v, kind)

    return {a.key: value(a.value) for a in span.attributes}


def calculator_turns():
    return [{"tool_calls": [{"name": "calculate", "arguments": {"expression": "17.5% of 2,340 + 12"}}],
             "usage": {"prompt_tokens": 30, "completion_tokens": 5}},
            {"text": "421.5", "usage": {"prompt_tokens": 40, "completion_tokens": 2}}]


def by_name(spans):
    return {s.name: s for s in spans}


def test_a_run_becomes_one_trace_with_genai_spans(receiver, project):
    write_config(project, f'[telemetry]\notlp_endpoint = "{receiver.url}"\n')
    sink = telemetry_sink(load_config())
    run = Agent(ScriptedModel(calculator_turns()), [calculator], sinks=[sink]).run_sync("What is 17.5% of 2,340, plus 12?")
    assert run.answer == "421.5"
    assert sink.flush()
    headers, path, _ = receiver.requests[0]
    assert path == "/v1/traces" and headers["content-type"] == "application/x-protobuf"

    spans = receiver.spans()
    assert sorted(s.name for s in spans) == ["chat scripted", "chat scripted", "execute_tool calculator.calculate",
                                             "invoke_agent"]
    root = by_name(spans)["invoke_agent"]
    assert root.parent_span_id == b""
    assert {s.trace_id for s in spans} == {root.trace_id}
    children = [s for s in spans if s is not root]
    assert all(s.parent_span_id == root.span_id for s in children)

    root_attrs = attrs(root)
    assert root_attrs[GenAI.OPERATION_NAME] == "invoke_agent" and root_attrs[GenAI.REQUEST_MODEL] == "scripted"
    assert root_attrs[GenAI.PROVIDER_NAME] == "plugdeck" and root_attrs["plugdeck.run.id"] == run.id
    assert (root_attrs[GenAI.USAGE_INPUT_TOKENS], root_attrs[GenAI.USAGE_OUTPUT_TOKENS]) == (70, 7)
    assert root_attrs["plugdeck.run.status"] == "ok" and root_attrs["plugdeck.tools"] == ["calculator.calculate"]
    assert root.status.code == 0  # unset: success

    chats = sorted((s for s in spans if s.name.startswith("chat")), key=lambda s: s.start_time_unix_nano)
    first, second = (attrs(s) for s in chats)
    assert first[GenAI.OPERATION_NAME] == "chat" and first[GenAI.REQUEST_MODEL] == "scripted"
    assert (first[GenAI.USAGE_INPUT_TOKENS], first[GenAI.USAGE_OUTPUT_TOKENS]) == (30, 5)
    assert (second[GenAI.USAGE_INPUT_TOKENS], second[GenAI.USAGE_OUTPUT_TOKENS]) == (40, 2)
    assert first[GenAI.RESPONSE_FINISH_REASONS] == ["tool_calls"] and second[GenAI.RESPONSE_FINISH_REASONS] == ["stop"]

    tool_span = by_name(spans)["execute_tool calculator.calculate"]
    tool_attrs = attrs(tool_span)
    assert tool_attrs[GenAI.OPERATION_NAME] == "execute_tool" and tool_attrs[GenAI.TOOL_NAME] == "calculator.calculate"
    assert tool_attrs[GenAI.TOOL_CALL_ID] == "call_1_0"
    assert [e.name for e in tool_span.events] == ["plugdeck.policy_decision"]

    # Timings come from the events: the steps follow each other inside the run.
    assert root.start_time_unix_nano <= chats[0].start_time_unix_nano < chats[0].end_time_unix_nano
    assert chats[0].end_time_unix_nano <= tool_span.start_time_unix_nano < tool_span.end_time_unix_nano
    assert tool_span.end_time_unix_nano <= chats[1].start_time_unix_nano
    assert chats[1].end_time_unix_nano <= root.end_time_unix_nano

    # Content stays home by default: no question, arguments, results or answer in what was sent.
    raw = receiver.raw()
    for content in (b"17.5% of 2,340", b"421.5", GenAI.TOOL_CALL_ARGUMENTS.encode(), GenAI.INPUT_MESSAGES.encode()):
        assert content not in raw
    sink.shutdown()


def test_content_capture_is_opt_in_and_secrets_never_leave(receiver, project, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", CANARY)
    write_config(project, f"""
[models.local]
base_url = "http://127.0.0.1:9/v1"
model = "scripted"
api_key_env = "TEST_LLM_KEY"

[telemetry]
otlp_endpoint = "{receiver.url}/v1/traces"
capture_content = true
""")

    @tool
    def lookup(customer: str) -> str:
        """Look a customer up."""
        raise ValueError(f"upstream refused key {CANARY} (Authorization: Bearer abcdef0123456789xyz)")

    turns = [{"tool_calls": [{"name": "lookup", "arguments": {"customer": "Ada Lovelace"}}]}, "Ada is not listed."]
    sink = telemetry_sink(load_config())
    Agent(ScriptedModel(turns), tools=[lookup], sinks=[sink]).run_sync("Is Ada Lovelace a customer?")
    assert sink.flush()
    spans = receiver.spans()
    tool_span = by_name(spans)["execute_tool lookup"]
    tool_attrs = attrs(tool_span)
    assert tool_attrs[GenAI.TOOL_CALL_ARGUMENTS] == '{"customer": "Ada Lovelace"}'
    assert tool_span.status.code == 2 and tool_attrs[GenAI.ERROR_TYPE] == "tool_exception"
    assert "upstream refused key [redacted]" in tool_span.status.message
    chat = attrs(min((s for s in spans if s.name == "chat scripted"), key=lambda s: s.start_time_unix_nano))
    assert '"content": "Is Ada Lovelace a customer?"' in chat[GenAI.INPUT_MESSAGES]
    assert '"name": "lookup"' in chat[GenAI.OUTPUT_MESSAGES] and "You are a helpful" in chat[GenAI.SYSTEM_INSTRUCTIONS]
    assert (chat[GenAI.SERVER_ADDRESS], chat[GenAI.SERVER_PORT]) == ("127.0.0.1", 9)
    root = attrs(by_name(spans)["invoke_agent"])
    assert "Ada is not listed." in root[GenAI.OUTPUT_MESSAGES]
    raw = receiver.raw()
    assert CANARY.encode() not in raw and b"abcdef0123456789xyz" not in raw
    sink.shutdown()


def test_failures_and_denials_are_span_statuses(receiver, project):
    write_config(project, f'[telemetry]\notlp_endpoint = "{receiver.url}"\n')
    sink = telemetry_sink(load_config())
    policy = policy_from({"deny": ["calculator.*"]})
    denied = Agent(ScriptedModel(calculator_turns()), [calculator], policy=policy, sinks=[sink]).run_sync("17.5% of 2340")
    broken = Agent(ScriptedModel([]), sinks=[sink]).run_sync("no turns left")
    assert sink.flush()
    spans = receiver.spans()
    traces = {}
    for s in spans:
        traces.setdefault(s.trace_id, []).append(s)
    assert len(traces) == 2

    denied_spans = next(v for v in traces.values() if len(v) == 4)
    tool_span = by_name(denied_spans)["execute_tool calculator.calculate"]
    assert tool_span.status.code == 2 and attrs(tool_span)[GenAI.ERROR_TYPE] == "denied"
    decision = tool_span.events[0]
    assert {a.key: a.value.string_value for a in decision.attributes}["plugdeck.policy.decision"] == "deny"
    assert denied.status == "ok"

    broken_spans = next(v for v in traces.values() if len(v) == 2)
    root = by_name(broken_spans)["invoke_agent"]
    assert root.status.code == 2 and "no turn left" in root.status.message
    assert attrs(root)[GenAI.ERROR_TYPE] == "error" and broken.status == "error"
    chat = by_name(broken_spans)["chat scripted"]
    assert chat.status.code == 2 and attrs(chat)[GenAI.ERROR_TYPE] == "model_error"
    sink.shutdown()


def test_a_stored_run_exports_as_the_same_trace(receiver, project, tmp_path):
    write_config(project, f'[telemetry]\notlp_endpoint = "{receiver.url}"\n')
    with RunStore(tmp_path / "runs.db") as store:
        run = Agent(ScriptedModel(calculator_turns()), [calculator], sinks=[store.record]).run_sync("17.5% of 2340 + 12")
        store.flush()
        stored = store.get_run(run.id)
    sink = telemetry_sink(load_config())
    export_run(stored, sink)
    assert sink.flush()
    spans = receiver.spans()
    assert sorted(s.name for s in spans) == ["chat scripted", "chat scripted", "execute_tool calculator.calculate",
                                             "invoke_agent"]
    root = by_name(spans)["invoke_agent"]
    assert attrs(root)[GenAI.USAGE_INPUT_TOKENS] == 70
    # The wall clock of the original run, not of the export.
    assert abs(root.start_time_unix_nano / 1e9 - stored["started_at"]) < 1.0
    sink.shutdown()


def test_settings_come_from_config_files_and_otel_variables(project, monkeypatch):
    assert telemetry_settings() is None and telemetry_sink(load_config()) is None
    write_config(project, '[telemetry]\notlp_endpoint = "http://collector:4318/"\n')
    settings = telemetry_settings()
    assert settings.traces_endpoint == "http://collector:4318/v1/traces" and settings.capture_content is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    settings = telemetry_settings()
    assert settings.traces_endpoint == "http://other:4318/v1/traces" and settings.capture_content is True
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert telemetry_settings() is None
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    write_config(project, '[telemetry]\notlp_endpoint = "http://c:4318"\ncapture = true\n')
    with pytest.raises(ConfigError, match="unknown \\[telemetry\\] setting.*capture.*known: capture_content"):
        telemetry_settings()
    write_config(project, '[telemetry]\notlp_endpoint = "collector:4318"\n')
    with pytest.raises(ConfigError, match="must be an http\\(s\\) URL"):
        telemetry_settings()


def test_attribute_names_match_the_semantic_conventions_package():
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes, server_attributes
    from opentelemetry.semconv.attributes import error_attributes

    upstream = {**vars(gen_ai_attributes), **vars(server_attributes), **vars(error_attributes)}
    ours = {k: v for k, v in vars(GenAI).items() if k.isupper()}
    for key, name in ours.items():
        expected = "GEN_AI_" + key if name.startswith("gen_ai.") else key
        assert upstream[expected] == name, key
