"""The GenAI client metrics: each model call records its duration and its input and output tokens,
with the semantic-convention attributes, read back through the OTel SDK's in-memory reader and
received by a real OTLP/HTTP endpoint on loopback."""

from __future__ import annotations

import pytest
from mock_openai import MockOpenAI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from test_otel import Receiver, calculator_turns, project, write_config  # noqa: F401 - project is a fixture

from plugdeck import Agent, ScriptedModel
from plugdeck.config import Config, ModelProfile, load_config
from plugdeck.models.profiles import model_for
from plugdeck.ops.otel import GenAI, GenAIMetrics, TraceSink, telemetry_sink
from plugdeck.plugins.calculator import plugin as calculator


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    found: dict[str, list] = {}
    data = reader.get_metrics_data()  # None when nothing was recorded
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).append(metric)
    return found


def metered_sink(**kwargs) -> tuple[TraceSink, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return TraceSink(TracerProvider(), meter_provider=MeterProvider(metric_readers=[reader]), **kwargs), reader


def test_each_model_call_records_tokens_by_type_and_its_duration():
    sink, reader = metered_sink()
    Agent(ScriptedModel(calculator_turns()), [calculator], sinks=[sink]).run_sync("What is 17.5% of 2,340, plus 12?")
    found = points(reader)
    (usage,), (duration,) = found[GenAIMetrics.TOKEN_USAGE], found[GenAIMetrics.OPERATION_DURATION]
    assert usage.unit == "{token}" and duration.unit == "s"
    by_type = {p.attributes[GenAI.TOKEN_TYPE]: p for p in usage.data.data_points}
    assert set(by_type) == {"input", "output"}
    assert (by_type["input"].sum, by_type["input"].count) == (70, 2)  # 30 + 40 over two calls
    assert (by_type["output"].sum, by_type["output"].count) == (7, 2)
    assert list(by_type["input"].explicit_bounds) == GenAIMetrics.TOKEN_BUCKETS
    (timed,) = duration.data.data_points
    assert timed.count == 2 and timed.sum > 0 and list(timed.explicit_bounds) == GenAIMetrics.DURATION_BUCKETS
    for point in [*by_type.values(), timed]:
        assert point.attributes[GenAI.OPERATION_NAME] == "chat"
        assert point.attributes[GenAI.PROVIDER_NAME] == "plugdeck"
        assert point.attributes[GenAI.REQUEST_MODEL] == point.attributes[GenAI.RESPONSE_MODEL] == "scripted"
        assert GenAI.ERROR_TYPE not in point.attributes


def test_an_endpoint_model_carries_its_server_and_a_failed_call_its_error_type(tmp_path):
    with MockOpenAI([{"text": "Paris.", "usage": {"prompt_tokens": 12, "completion_tokens": 3}}, {"fault": "400"}]) as mock:
        profile = ModelProfile(name="m", base_url=mock.base_url, model="mock-model", max_retries=0)
        config = Config(home=tmp_path, model="m", profiles={"m": profile})
        sink, reader = metered_sink(servers={"mock-model": ("127.0.0.1", int(mock.base_url.split(":")[2][:-3]))})
        assert Agent(model_for(config), sinks=[sink]).run_sync("Capital of France?").status == "ok"
        assert Agent(model_for(config), sinks=[sink]).run_sync("And of Spain?").status != "ok"
    found = points(reader)
    usage = found[GenAIMetrics.TOKEN_USAGE][0].data.data_points
    assert {(p.attributes[GenAI.TOKEN_TYPE], p.sum) for p in usage} == {("input", 12), ("output", 3)}
    for p in usage:
        assert p.attributes[GenAI.PROVIDER_NAME] == "openai" and p.attributes[GenAI.SERVER_ADDRESS] == "127.0.0.1"
        assert p.attributes[GenAI.REQUEST_MODEL] == "mock-model" and GenAI.ERROR_TYPE not in p.attributes
    durations = found[GenAIMetrics.OPERATION_DURATION][0].data.data_points
    assert sorted(p.attributes.get(GenAI.ERROR_TYPE, "") for p in durations) == ["", "model_error"]


def test_metrics_go_to_the_collector_next_to_the_spans(project):  # noqa: F811
    receiver = Receiver()
    try:
        write_config(project, f'[telemetry]\notlp_endpoint = "{receiver.url}"\n')
        sink = telemetry_sink(load_config())
        Agent(ScriptedModel(calculator_turns()), [calculator], sinks=[sink]).run_sync("17.5% of 2,340, plus 12?")
        assert sink.flush(5.0)
        received = receiver.metrics()  # what was recorded so far (points are cumulative: read before shutdown)
        sink.shutdown()
        assert {p.count for p in received[GenAIMetrics.TOKEN_USAGE]} == {2}
        assert sum(p.count for p in received[GenAIMetrics.OPERATION_DURATION]) == 2
        assert receiver.spans()  # the traces still arrive beside them
    finally:
        receiver.close()


def test_metrics_can_be_switched_off_alone(project, monkeypatch):  # noqa: F811
    from plugdeck.ops.otel import telemetry_settings

    write_config(project, '[telemetry]\notlp_endpoint = "http://collector:4318/v1/traces"\n')
    settings = telemetry_settings()
    assert settings.metrics_endpoint == "http://collector:4318/v1/metrics"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4318/custom")
    assert telemetry_settings().metrics_endpoint == "http://metrics:4318/custom"
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    settings = telemetry_settings()
    assert settings.metrics_endpoint is None and settings.traces_endpoint == "http://collector:4318/v1/traces"


def test_metric_names_match_the_semantic_conventions_package():
    from opentelemetry.semconv._incubating.metrics import gen_ai_metrics

    assert GenAIMetrics.TOKEN_USAGE == gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
    assert GenAIMetrics.OPERATION_DURATION == gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION


@pytest.mark.parametrize("estimated", [True, False])
def test_estimated_tokens_are_marked(estimated):
    sink, reader = metered_sink()
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "estimated": estimated}
    Agent(ScriptedModel([{"text": "hi", "usage": usage}]), sinks=[sink]).run_sync("hello")
    (usage_metric,) = points(reader)[GenAIMetrics.TOKEN_USAGE]
    assert all(p.attributes.get("plugdeck.tokens.estimated", False) is estimated for p in usage_metric.data.data_points)


def test_a_stored_run_exported_again_adds_spans_but_no_metrics(tmp_path):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from plugdeck import RunStore
    from plugdeck.ops.otel import export_run

    with RunStore(str(tmp_path / "runs.db")) as store:
        run = Agent(ScriptedModel(calculator_turns()), [calculator], sinks=[store.record]).run_sync("17.5% of 2,340?")
        store.flush()
        stored = store.get_run(run.id)
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(spans))
    export_run(stored, TraceSink(tracer, meter_provider=MeterProvider(metric_readers=[reader])))
    assert [s.name for s in spans.get_finished_spans()].count("chat scripted") == 2
    assert GenAIMetrics.TOKEN_USAGE not in points(reader)
