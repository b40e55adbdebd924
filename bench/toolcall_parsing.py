"""What reading tool calls out of a streamed reply costs, against the client's own CPU per model call.

The mock OpenAI server (tests/mock_openai.py) runs in its own process, so this process's CPU time is the
client's alone: httpx, the SSE decoder, the stream's assembly. Each case is streamed N times with
`tool_format = "native"` (nothing read from text) and N times with "auto" (every format sniffed, calls
held back and parsed). The parser's own share is also timed apart: the same chunks fed through
`ReplyReader` alone. Goal (issue 15): under 5% of the client's CPU per call.

Run: python bench/toolcall_parsing.py [--calls N] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from _report import report

TESTS = Path(__file__).resolve().parent.parent / "tests"
SERVER = f"""
import json, sys
sys.path.insert(0, {str(TESTS)!r})
from mock_openai import MockOpenAI
with MockOpenAI(default=json.loads(sys.argv[1])) as mock:
    print(mock.base_url, flush=True)
    sys.stdin.read()
"""
CALL = {"name": "calculate", "arguments": {"expression": "17.5% of 2,340 + 12", "precision": 6}}
PROSE = " ".join(["The answer, worked out step by step, is 421.5 once the percentage is applied."] * 30)
CASES = {
    "answer text (~400 words)": PROSE,
    "native tool call": {"tool_calls": [CALL]},
    "hermes call in text": {"tool_calls": [CALL], "text_format": "hermes", "chunk": 4},
    "bare JSON call in text": {"tool_calls": [CALL], "text_format": "json", "chunk": 4},
    "llama4 pythonic in text": {"tool_calls": [CALL], "text_format": "llama4_pythonic", "chunk": 4},
    "qwen3-coder XML in text": {"tool_calls": [CALL], "text_format": "qwen3_coder", "chunk": 4},
    "GLM-4.5 arg_key in text": {"tool_calls": [CALL], "text_format": "glm45", "chunk": 4},
    "gpt-oss harmony in text": {"tool_calls": [CALL], "text_format": "harmony", "chunk": 4},
    "reasoning + <think> answer": {"text": "<think>" + PROSE[:600] + "</think>" + PROSE[:400], "chunk": 6},
}


async def stream_calls(base_url: str, tool_format: str, calls: int) -> tuple[float, list[str], int]:
    """CPU seconds per call for `calls` streamed calls; the text chunks of one; chunks per call."""
    from plugdeck.models.base import ModelResponse, TextChunk
    from plugdeck.models.openai import OpenAIModel
    from plugdeck.plugins.calculator import plugin as calculator
    from plugdeck.tools import Toolset

    specs = Toolset(list(calculator.tools)).specs
    chunks: list[str] = []
    async with OpenAIModel("mock-model", base_url, tool_format=tool_format) as model:
        async for item in model.stream([{"role": "user", "content": "q"}], specs):  # warm the connection
            if isinstance(item, TextChunk):
                chunks.append(item.text)
        raw: list[str] = []
        async with OpenAIModel("mock-model", base_url, tool_format="native") as plain:
            async for item in plain.stream([{"role": "user", "content": "q"}], specs):
                if isinstance(item, TextChunk):
                    raw.append(item.text)
        started = time.process_time()
        for _ in range(calls):
            async for item in model.stream([{"role": "user", "content": "q"}], specs):
                if isinstance(item, ModelResponse):
                    assert item.tool_calls or item.text
        return (time.process_time() - started) / calls, raw, len(raw)


def reader_cost(chunks: list[str], repeat: int) -> float:
    """CPU seconds per reply for ReplyReader alone over the same chunks (with the final parse)."""
    from plugdeck.models.base import ModelResponse
    from plugdeck.models.reply_stream import ReplyReader

    started = time.process_time()
    for _ in range(repeat):
        reader = ReplyReader(["calculate"], "auto")
        for chunk in chunks:
            reader.feed(chunk)
        reader.finish(ModelResponse(text="".join(chunks)))
    return (time.process_time() - started) / repeat


def run_case(turn, calls: int) -> dict:
    server = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(turn)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        native, chunks, count = asyncio.run(stream_calls(base_url, "native", calls))
        auto, _, _ = asyncio.run(stream_calls(base_url, "auto", calls))
    finally:
        server.stdin.close()
        server.wait(10)
    parser = reader_cost(chunks, max(calls * 10, 50))
    return {"chunks": count, "client_cpu_us": round(native * 1e6, 1), "auto_cpu_us": round(auto * 1e6, 1),
            "parser_us": round(parser * 1e6, 2), "parser_us_per_chunk": round(parser * 1e6 / max(count, 1), 3),
            "parser_share_pct": round(100 * parser / native, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="a few calls per case, to check it runs")
    args = parser.parse_args()
    calls = 5 if args.smoke else args.calls
    rows = [{"case": name, **run_case(turn, calls)} for name, turn in CASES.items()]
    worst = max(r["parser_share_pct"] for r in rows)
    report("toolcall_parsing", rows, ["case", "chunks", "client_cpu_us", "auto_cpu_us", "parser_us",
                                      "parser_us_per_chunk", "parser_share_pct"],
           {"calls_per_case": calls, "worst_parser_share_pct": worst, "goal_pct": 5.0})


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
