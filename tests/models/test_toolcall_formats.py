"""Tool calls written as text, one block of cases per format, each written from the format's own
documentation (the model family's chat template or its server parser's docs), not from our parser."""

from __future__ import annotations

import json

import pytest

from plugdeck.models.base import ModelResponse
from plugdeck.models.reply_stream import ReplyReader
from plugdeck.models.toolcall_formats import TOOL_FORMATS, parse_tool_calls

OFFERED = {"calculate", "get_weather"}
CALC = {"expression": "17.5% of 2,340 + 12"}
LYON, OSLO = {"city": "Lyon"}, {"city": "Oslo"}
DS = {w: f"<｜{w}｜>" for w in ("tool▁calls▁begin", "tool▁calls▁end", "tool▁call▁begin", "tool▁call▁end", "tool▁sep")}


def j(value):
    return json.dumps(value)


def ds_v3(name, args):
    return f"{DS['tool▁call▁begin']}function{DS['tool▁sep']}{name}\n```json\n{j(args)}\n```{DS['tool▁call▁end']}"


def ds_v31(name, args):
    return f"{DS['tool▁call▁begin']}{name}{DS['tool▁sep']}{j(args)}{DS['tool▁call▁end']}"


def ds(*calls):
    return DS["tool▁calls▁begin"] + "".join(calls) + DS["tool▁calls▁end"]


def qwen_coder(name, args):
    """Qwen3-Coder's chat template: a <parameter=...> block per argument, the value between newlines."""
    params = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in args.items())
    return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"


def glm(name, args):
    """GLM-4.5/4.6's chat template: the name, then <arg_key>/<arg_value> pairs (strings as written)."""
    pairs = "".join(f"<arg_key>{k}</arg_key>\n<arg_value>{v if isinstance(v, str) else j(v)}</arg_value>\n"
                    for k, v in args.items())
    return f"<tool_call>{name}\n{pairs}</tool_call>"


def kimi(*calls):
    """Kimi K2: functions.NAME:INDEX ids, JSON arguments, inside the tool calls section."""
    body = "".join(f"<|tool_call_begin|>functions.{name}:{i}<|tool_call_argument_begin|>{j(args)}<|tool_call_end|>"
                   for i, (name, args) in enumerate(calls))
    return f"<|tool_calls_section_begin|>{body}<|tool_calls_section_end|>"


def harmony(*calls, thinking="Need to call a tool."):
    """gpt-oss' harmony format: analysis channel, then commentary messages addressed to functions.NAME."""
    out = f"<|channel|>analysis<|message|>{thinking}<|end|>"
    for name, args in calls:
        out += f"<|start|>assistant<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>{j(args)}<|call|>"
    return out


# format -> (one call, two calls in parallel): each must read as calculate(CALC) [+ get_weather(LYON)]
WRITTEN = {
    "hermes": (f'<tool_call>\n{{"name": "calculate", "arguments": {j(CALC)}}}\n</tool_call>',
               f'<tool_call>\n{{"name": "calculate", "arguments": {j(CALC)}}}\n</tool_call>\n'
               f'<tool_call>\n{{"name": "get_weather", "arguments": {j(LYON)}}}\n</tool_call>'),
    "llama3_json": (f'{{"name": "calculate", "parameters": {j(CALC)}}}',
                    f'{{"name": "calculate", "parameters": {j(CALC)}}}; {{"name": "get_weather", "parameters": {j(LYON)}}}'),
    "python_tag": (f'<|python_tag|>{{"name": "calculate", "parameters": {j(CALC)}}}',
                   f'<|python_tag|>{{"name": "calculate", "parameters": {j(CALC)}}}; '
                   f'{{"name": "get_weather", "parameters": {j(LYON)}}}'),
    "function_tag": (f"<function=calculate>{j(CALC)}</function>",
                     f"<function=calculate>{j(CALC)}</function><function=get_weather>{j(LYON)}</function>"),
    "llama4_pythonic": ('[calculate(expression="17.5% of 2,340 + 12")]',
                        '[calculate(expression="17.5% of 2,340 + 12"), get_weather(city="Lyon")]'),
    "python_start": ('<|python_start|>[calculate(expression="17.5% of 2,340 + 12")]<|python_end|>',
                     '<|python_start|>[calculate(expression="17.5% of 2,340 + 12"), get_weather(city=\'Lyon\')]<|python_end|>'),
    "mistral": (f'[TOOL_CALLS] [{{"name": "calculate", "arguments": {j(CALC)}}}]',
                f'[TOOL_CALLS] [{{"name": "calculate", "arguments": {j(CALC)}}}, '
                f'{{"name": "get_weather", "arguments": {j(LYON)}}}]'),
    "mistral_v11": (f"[TOOL_CALLS]calculate[ARGS]{j(CALC)}",
                    f"[TOOL_CALLS]calculate[ARGS]{j(CALC)}[TOOL_CALLS]get_weather[ARGS]{j(LYON)}"),
    "deepseek": (ds(ds_v3("calculate", CALC)), ds(ds_v3("calculate", CALC), ds_v3("get_weather", LYON))),
    "deepseek_v31": (ds(ds_v31("calculate", CALC)), ds(ds_v31("calculate", CALC), ds_v31("get_weather", LYON))),
    "granite": (f'<|tool_call|>[{{"name": "calculate", "arguments": {j(CALC)}}}]',
                f'<|tool_call|>[{{"name": "calculate", "arguments": {j(CALC)}}}, '
                f'{{"name": "get_weather", "arguments": {j(LYON)}}}]'),
    "granite_3_1": (f'<tool_call>[{{"name": "calculate", "arguments": {j(CALC)}}}]',
                    f'<tool_call>[{{"name": "calculate", "arguments": {j(CALC)}}}, '
                    f'{{"name": "get_weather", "arguments": {j(LYON)}}}]'),
    "qwen3_coder": (qwen_coder("calculate", CALC), qwen_coder("calculate", CALC) + "\n" + qwen_coder("get_weather", LYON)),
    "qwen3_coder_unwrapped": ("<function=calculate>\n<parameter=expression>\n17.5% of 2,340 + 12\n</parameter>\n</function>",
                              "<function=calculate><parameter=expression>17.5% of 2,340 + 12</parameter></function>\n"
                              "<function=get_weather><parameter=city>Lyon</parameter></function>"),
    "glm45": (glm("calculate", CALC), glm("calculate", CALC) + "\n" + glm("get_weather", LYON)),
    "kimi_k2": (kimi(("calculate", CALC)), kimi(("calculate", CALC), ("get_weather", LYON))),
    "harmony": (harmony(("calculate", CALC)), harmony(("calculate", CALC), ("get_weather", LYON))),
    "harmony_recipient_first": (
        f"<|start|>assistant to=functions.calculate<|channel|>commentary json<|message|>{j(CALC)}<|call|>",
        f"<|channel|>commentary to=functions.calculate<|message|>{j(CALC)}<|call|>"
        f"<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{j(LYON)}<|call|>"),
    "lmstudio": (f'[TOOL_REQUEST]{{"name": "calculate", "arguments": {j(CALC)}}}[END_TOOL_REQUEST]',
                 f'[TOOL_REQUEST]{{"name": "calculate", "arguments": {j(CALC)}}}[END_TOOL_REQUEST]\n'
                 f'[TOOL_REQUEST]{{"name": "get_weather", "arguments": {j(LYON)}}}[END_TOOL_REQUEST]'),
    "json": (f'{{"name": "calculate", "arguments": {j(CALC)}}}',
             f'[{{"name": "calculate", "arguments": {j(CALC)}}}, {{"name": "get_weather", "arguments": {j(LYON)}}}]'),
    "json_fenced": (f'```json\n{{"name": "calculate", "arguments": {j(CALC)}}}\n```',
                    f'```json\n[{{"name": "calculate", "arguments": {j(CALC)}}}, '
                    f'{{"name": "get_weather", "arguments": {j(LYON)}}}]\n```'),
}
FORMAT_OF = {"python_tag": "llama3_json", "function_tag": "llama3_json", "python_start": "llama4_pythonic",
             "mistral_v11": "mistral", "deepseek_v31": "deepseek", "granite_3_1": "granite", "json_fenced": "json",
             "qwen3_coder_unwrapped": "qwen3_coder", "harmony_recipient_first": "harmony"}
TAGGED = {"hermes", "python_tag", "function_tag", "python_start", "mistral", "mistral_v11", "deepseek",
          "deepseek_v31", "granite", "granite_3_1", "qwen3_coder", "qwen3_coder_unwrapped", "glm45", "kimi_k2",
          "harmony", "harmony_recipient_first", "lmstudio"}


def read(text, fmt="auto", offered=OFFERED):
    parsed = parse_tool_calls(text, offered, fmt)
    return parsed and (parsed.format, parsed.text, [(c.name, c.arguments, c.error) for c in parsed.calls])


def streamed(text, size, fmt="auto", offered=OFFERED):
    """The text fed in pieces of `size` characters: (what was shown as answer text, the response)."""
    reader, shown = ReplyReader(sorted(offered), fmt), []
    for i in range(0, len(text), size):
        shown.append(reader.feed(text[i : i + size])[1])
    response = ModelResponse(text=text)
    shown.append(reader.finish(response)[1])
    return "".join(shown), response


@pytest.mark.parametrize("case", WRITTEN)
def test_one_call_in_each_format(case):
    fmt = FORMAT_OF.get(case, case)
    expected = (fmt, "", [("calculate", CALC, None)])
    assert read(WRITTEN[case][0]) == expected  # auto detects it
    assert read(WRITTEN[case][0], fmt) == expected  # and the profile can name it


@pytest.mark.parametrize("case", WRITTEN)
def test_parallel_calls_in_each_format(case):
    fmt = FORMAT_OF.get(case, case)
    assert read(WRITTEN[case][1]) == (fmt, "", [("calculate", CALC, None), ("get_weather", LYON, None)])
    parsed = parse_tool_calls(WRITTEN[case][1], OFFERED)
    assert len({c.id for c in parsed.calls}) == 2  # each call its own id


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("case", WRITTEN)
def test_calls_split_across_stream_chunks_are_never_shown_as_text(case, size):
    shown, response = streamed(WRITTEN[case][1], size)
    assert shown == ""
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("calculate", CALC), ("get_weather", LYON)]
    assert response.tool_format == FORMAT_OF.get(case, case) and response.text == ""
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("case", sorted(TAGGED))
def test_text_before_a_tagged_call_stays_text_and_streams(case):
    text = "Let me work that out. " + WRITTEN[case][0]
    assert read(text)[1:] == ("Let me work that out.", [("calculate", CALC, None)])
    shown, response = streamed(text, 4)
    assert shown.strip() == "Let me work that out." and response.text == "Let me work that out."


@pytest.mark.parametrize("case", ["json", "llama3_json", "llama4_pythonic"])
def test_text_around_a_bare_call_makes_it_text(case):
    """Without a marker the whole reply must be calls: prose with JSON in it is an answer."""
    for text in (f"Here is how: {WRITTEN[case][0]}", f"{WRITTEN[case][0]} and that is how you do it."):
        assert read(text) is None
        shown, response = streamed(text, 5)
        assert shown == text and response.tool_calls == [] and response.text == text


@pytest.mark.parametrize("case", sorted(TAGGED))
def test_a_tagged_call_to_a_tool_not_offered_is_a_call_the_executor_refuses(case):
    text = WRITTEN[case][0].replace("calculate", "delete_everything")
    fmt, _, calls = read(text)
    assert [c[0] for c in calls] == ["delete_everything"]  # the executor answers: no such tool


@pytest.mark.parametrize("case", ["json", "json_fenced", "llama3_json", "llama4_pythonic"])
def test_a_bare_call_to_a_tool_not_offered_stays_text(case):
    assert read(WRITTEN[case][0].replace("calculate", "format_disk")) is None


MALFORMED = {
    "hermes": '<tool_call>\n{"name": "calculate", "arguments": {"expression": "17.5% of</tool_call>',
    "python_tag": '<|python_tag|>{"name": "calculate", "parameters": {"expression": "1+',
    "mistral": '[TOOL_CALLS] [{"name": "calculate", "arguments": {"expression": "1+}]',
    "mistral_v11": '[TOOL_CALLS]calculate[ARGS]{"expression": "1+',
    "deepseek": ds(f"{DS['tool▁call▁begin']}function{DS['tool▁sep']}calculate\n```json\n{{\"expression\": \"1+\n```"
                   f"{DS['tool▁call▁end']}"),
    "granite": '<|tool_call|>[{"name": "calculate", "arguments": {"expression": "1+',
    "json": '{"name": "calculate", "arguments": {"expression": "1+',
    "llama4_pythonic": '[calculate(expression="1+)]',
    "python_start": "<|python_start|>[calculate(1 + 2)]<|python_end|>",
    "qwen3_coder": "<tool_call>\n<function=calculate>\n<parameter=expression>\n1+",
    "qwen3_coder_text_outside": "<tool_call><function=calculate>1+2</function></tool_call>",
    "glm45": "<tool_call>calculate\n<arg_key>expression</arg_key>\n<arg_value>1+",
    "glm45_twice": "<tool_call>calculate<arg_key>expression</arg_key><arg_value>1</arg_value>"
                   "<arg_key>expression</arg_key><arg_value>2</arg_value></tool_call>",
    "kimi_k2": '<|tool_calls_section_begin|><|tool_call_begin|>functions.calculate:0<|tool_call_argument_begin|>'
               '{"expression": "1+<|tool_call_end|><|tool_calls_section_end|>',
    "kimi_k2_no_arguments_token": "<|tool_calls_section_begin|><|tool_call_begin|>functions.calculate:0 {}"
                                  "<|tool_call_end|><|tool_calls_section_end|>",
    "harmony": '<|channel|>commentary to=functions.calculate <|constrain|>json<|message|>{"expression": "1+<|call|>',
    "lmstudio": '[TOOL_REQUEST]{"name": "calculate", "arguments": {"expression": "1+[END_TOOL_REQUEST]',
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_call_is_refused_with_a_reason_not_turned_into_text(case):
    parsed = parse_tool_calls(MALFORMED[case], OFFERED)
    assert parsed is not None and len(parsed.calls) == 1
    call = parsed.calls[0]
    assert call.name == "calculate" and call.arguments is None and call.error
    assert parsed.failed == [call]


def test_unambiguous_slips_in_the_arguments_are_repaired():
    parsed = parse_tool_calls('<tool_call>{"name": "calculate", "arguments": {"expression": "2+2",}}</tool_call>', OFFERED)
    assert parsed.calls[0].arguments == {"expression": "2+2"} and parsed.calls[0].error is None


@pytest.mark.parametrize("text", [
    '{"name": "Ada", "born": 1815}',  # JSON about something else
    '{"name": "calculate"}',  # looks like a call, but has no arguments: a person asked for this JSON
    '[1, 2, 3]',
    '["calculate", "get_weather"]',
    '[note(s) about it]',
    '```json\n{"city": "Lyon"}\n```',
    "Use the calculate tool like calculate(expression='1+2').",
    "{not json at all}",
    "The [TOOL CALLS] marker is written without the underscore here.",
    "A <tool-call> is not a <tool_call",
])
def test_text_that_merely_looks_like_a_call_stays_text(text):
    if text == '{"name": "calculate"}':
        parsed = parse_tool_calls(text, OFFERED)  # the model did name an offered tool: read as a call, {} args
        assert parsed is not None and parsed.calls[0].arguments == {}
        return
    assert read(text) is None
    shown, response = streamed(text, 3)
    assert shown == text and response.text == text and response.tool_calls == []


def test_native_format_reads_nothing_from_text_and_streams_it_all():
    text = WRITTEN["hermes"][0]
    assert parse_tool_calls(text, OFFERED, "native") is None
    shown, response = streamed(text, 4, "native")
    assert shown == text and response.tool_calls == [] and response.tool_format is None


def test_a_named_format_reads_only_its_own_shape():
    assert read(WRITTEN["mistral"][0], "hermes") is None
    assert read(WRITTEN["hermes"][0], "mistral") is None
    with pytest.raises(ValueError, match="unknown tool format"):
        parse_tool_calls("x", OFFERED, "klingon")
    assert "prompted" in TOOL_FORMATS and "auto" in TOOL_FORMATS


def test_no_tools_offered_means_no_calls():
    assert parse_tool_calls(WRITTEN["hermes"][0], set()) is None
    shown, response = streamed(WRITTEN["hermes"][0], 4, offered=set())
    assert shown == WRITTEN["hermes"][0] and response.tool_calls == []


def test_native_calls_win_and_held_text_is_released():
    reader = ReplyReader(["calculate"])
    assert reader.feed('{"name": "calculate", ')[1] == ""  # could be a bare call: held
    response = ModelResponse(text='{"name": "calculate", "x": 1}', tool_calls=[])
    from plugdeck.models.base import ToolCall

    response.tool_calls = [ToolCall("c1", "calculate", {"expression": "1"})]
    rest = reader.finish(response)[1]
    assert response.tool_format == "native" and rest == '{"name": "calculate", '


def test_plain_answers_stream_without_delay():
    reader = ReplyReader(["calculate"])
    assert reader.feed("The answer")[1] == "The answer"
    assert reader.feed(" is 421.5 <tool")[1] == " is 421.5 "  # a marker could start here: held
    assert reader.feed("s are fun>")[1] == "<tools are fun>"  # it did not


# ---- reasoning -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 100])
def test_inline_think_is_reasoning_not_answer(size):
    text = "<think>The user wants 17.5% of 2,340.</think>\n\nIt is 421.5."
    reader, reasoning, shown = ReplyReader(["calculate"]), [], []
    for i in range(0, len(text), size):
        r, t = reader.feed(text[i : i + size])
        reasoning.append(r)
        shown.append(t)
    response = ModelResponse(text=text)
    r, t = reader.finish(response)
    reasoning.append(r)
    shown.append(t)
    assert "".join(reasoning) == "The user wants 17.5% of 2,340."
    assert "".join(shown) == "It is 421.5." and response.text == "It is 421.5."
    assert response.reasoning == "The user wants 17.5% of 2,340."


def test_think_then_a_call():
    text = "<think>I should call the calculator.</think>" + WRITTEN["hermes"][0]
    shown, response = streamed(text, 5)
    assert shown == "" and response.reasoning == "I should call the calculator."
    assert [c.name for c in response.tool_calls] == ["calculate"]


def test_a_closing_think_without_an_opening_one_is_taken_out_of_the_answer():
    """Templates that open <think> in the prompt: the model writes only `... </think> answer`."""
    response = ModelResponse(text="Thinking it over.</think>It is 421.5.")
    reader = ReplyReader(["calculate"])
    reader.feed(response.text)
    reader.finish(response)
    assert response.text == "It is 421.5." and response.reasoning == "Thinking it over."


def test_a_call_cut_off_by_the_token_limit_is_refused_not_completed():
    text = '<tool_call>{"name": "calculate", "arguments": {"precision": 10'  # 1000 cut short: closing it would say 10
    reader = ReplyReader(["calculate"])
    reader.feed(text)
    response = ModelResponse(text=text, finish_reason="length")
    reader.finish(response)
    (call,) = response.tool_calls
    assert call.arguments is None and "ran out of output tokens" in call.error
    assert response.tool_parse_errors


# ---- formats whose arguments are written key by key: the values' types come from the schema ----------

SCHEMAS = {"book": {"type": "object", "properties": {
    "code": {"type": "string"}, "seats": {"type": "integer"}, "window": {"type": "boolean"},
    "meals": {"type": "array"}, "price": {"type": ["number", "null"]}, "note": {"type": ["string", "null"]}}}}
WRITTEN_VALUES = {"code": "007", "seats": "2", "window": "True", "meals": '["veg"]', "price": "null", "note": "2"}
TYPED = {"code": "007", "seats": 2, "window": True, "meals": ["veg"], "price": None, "note": "2"}


@pytest.mark.parametrize("writer", [qwen_coder, glm], ids=["qwen3_coder", "glm45"])
def test_key_by_key_values_take_the_type_the_schema_asks_for(writer):
    parsed = parse_tool_calls(writer("book", WRITTEN_VALUES), SCHEMAS)
    assert parsed.calls[0].arguments == TYPED and parsed.calls[0].error is None
    # Names only (no schemas): JSON values are read as JSON, anything else stays the text written.
    untyped = parse_tool_calls(writer("book", {"seats": "2", "city": "Lyon"}), ["book"]).calls[0].arguments
    assert untyped == {"seats": 2, "city": "Lyon"}


def test_a_multiline_qwen3_coder_value_keeps_its_inner_lines():
    code = "def f():\n    return 1\n"
    parsed = parse_tool_calls(qwen_coder("write_file", {"path": "f.py", "content": code}),
                              {"write_file": {"properties": {"path": {"type": "string"}, "content": {"type": "string"}}}})
    assert parsed.calls[0].arguments == {"path": "f.py", "content": code}


def test_a_named_key_by_key_format_is_not_confused_with_hermes():
    assert read(WRITTEN["glm45"][0], "hermes")[2][0][2]  # Hermes reading GLM's call: refused, not guessed
    assert read(WRITTEN["hermes"][0], "glm45") is None and read(WRITTEN["hermes"][0], "qwen3_coder") is None
    assert read(WRITTEN["function_tag"][0])[0] == "llama3_json"  # Llama 3.1's <function=f>{json}: not Qwen's


def test_harmony_analysis_is_reasoning_and_the_final_channel_is_text():
    text = ("<|channel|>analysis<|message|>The user wants a sum.<|end|>"
            "<|start|>assistant<|channel|>commentary<|message|>Checking.<|end|>"
            f"<|start|>assistant<|channel|>commentary to=functions.calculate <|constrain|>json<|message|>{j(CALC)}<|call|>")
    shown, response = streamed(text, 5)
    assert shown == "Checking." and response.text == "Checking." and response.reasoning == "The user wants a sum."
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("calculate", CALC)]
    assert response.tool_format == "harmony"


@pytest.mark.parametrize("size", [3, 1000])
def test_a_harmony_answer_without_a_call_keeps_its_analysis_out_of_the_answer(size):
    text = ("<|channel|>analysis<|message|>Simple arithmetic.<|end|>"
            "<|start|>assistant<|channel|>final<|message|>It is 421.5.<|return|>")
    shown, response = streamed(text, size)
    assert shown == "It is 421.5." and response.text == "It is 421.5." and response.tool_calls == []
    assert response.reasoning == "Simple arithmetic." and response.tool_format is None


def test_a_kimi_call_gets_a_fresh_id_not_its_index():
    """Kimi's own ids (functions.f:0) start again at 0 each turn: results of two steps must not share one."""
    first, second = (parse_tool_calls(WRITTEN["kimi_k2"][0], OFFERED).calls[0].id for _ in range(2))
    assert first != second and "functions." not in first


@pytest.mark.parametrize("text", [
    "In GLM's template each argument sits in <arg_key> and <arg_value> tags.",
    "Qwen3-Coder writes each argument in a <parameter=NAME> tag.",
    "Kimi's tokens look like <|tool_call_argument_begin|> in its docs.",
    "Set the recipient to=functions.lookup in the harmony header.",
    "The <|channel|> token starts a harmony header.",
])
def test_prose_about_the_newer_formats_stays_text(text):
    assert read(text) is None
    shown, response = streamed(text, 3)
    assert shown == text and response.text == text and response.tool_calls == []
