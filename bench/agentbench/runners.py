"""The agents under test, each behind the same small interface: build once, then `await run(question)`.

Every agent gets the same mock endpoint, the same tools (`tools.TOOLS`, wrapped by each framework
from one JSON Schema), the same system prompt, retries off and streaming on. Each framework is
imported only inside its own runner, so a worker process holds one framework and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import tools
from .tasks import SYSTEM_PROMPT

API_KEY = "sk-agentbench-dummy"  # the mock ignores it; the clients insist on one
MODEL = "agentbench-mock"
TIMEOUT = 600.0


@dataclass
class Outcome:
    answer: str
    status: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)


class PlugdeckRunner:
    """plugdeck's Agent with its OpenAI backend; `planner` is loop, plan or auto."""

    def __init__(self, base_url: str, planner: str, stream: bool = True, schemas: str = "whole"):
        from plugdeck import Agent, OpenAIModel, tool_from_schema

        model = OpenAIModel(MODEL, base_url, api_key=API_KEY, max_retries=0, deadline=TIMEOUT, stream=stream)
        shown = (lambda t: t.parameters) if schemas == "whole" else names_and_types
        wrapped = [tool_from_schema(t.name, t.description, shown(t), tools.make_callable(t)) for t in tools.TOOLS]
        self.agent = Agent(model, tools=wrapped, system_prompt=SYSTEM_PROMPT, planner=planner, max_steps=20,
                           deadline=TIMEOUT)

    async def run(self, question: str) -> Outcome:
        from plugdeck.events import PlannerNote, RunStarted

        run = await self.agent.run(question)
        started = next(e for e in run.events if isinstance(e, RunStarted))
        notes = [e.message for e in run.events if isinstance(e, PlannerNote)]
        return Outcome(run.answer or run.error or "", run.status,
                       {"planner": started.planner, "fallback": any("falling back" in n for n in notes),
                        "replans": sum("replanning" in n for n in notes)})


def names_and_types(definition: tools.ToolDef) -> dict[str, Any]:
    """A tool's schema cut down to its arguments' names and types: what plugdeck's plan prompt
    showed before issue 11. The control agents built on it must fail the timetable family."""
    properties = definition.parameters.get("properties", {})
    return {"type": "object", "properties": {name: {"type": p.get("type", "string")} for name, p in properties.items()}}


class LangGraphRunner:
    """LangGraph's prebuilt `create_react_agent` with LangChain's ChatOpenAI, no checkpointer."""

    def __init__(self, base_url: str, streaming: bool = True, parallel: bool = True):
        import warnings

        from langchain_core.tools import StructuredTool
        from langchain_openai import ChatOpenAI

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # create_react_agent's move to langchain.agents
            from langgraph.prebuilt import create_react_agent

            options: dict[str, Any] = {} if parallel else {"model_kwargs": {"parallel_tool_calls": False}}
            model = ChatOpenAI(model=MODEL, base_url=base_url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT,
                               streaming=streaming, stream_usage=True, **options)
            wrapped = [StructuredTool.from_function(coroutine=tools.make_callable(t), name=t.name,
                                                    description=t.description, args_schema=t.parameters)
                       for t in tools.TOOLS]
            self.graph = create_react_agent(model, wrapped, prompt=SYSTEM_PROMPT)

    async def run(self, question: str) -> Outcome:
        state = await self.graph.ainvoke({"messages": [{"role": "user", "content": question}]},
                                         {"recursion_limit": 50})
        content = state["messages"][-1].content
        return Outcome(content if isinstance(content, str) else str(content))


class RawHttpxRunner:
    """The floor for per-call overhead: a bare tool loop on httpx and dicts (streamed, parallel tool
    calls), with no argument validation, events, policy or error handling."""

    def __init__(self, base_url: str):
        import httpx

        self.client = httpx.AsyncClient(timeout=TIMEOUT)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {API_KEY}"}
        self.specs = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                         "parameters": t.parameters}} for t in tools.TOOLS]
        self.functions = {t.name: tools.make_callable(t) for t in tools.TOOLS}

    async def run(self, question: str) -> Outcome:
        import asyncio
        import json

        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT},
                                          {"role": "user", "content": question}]
        for _ in range(20):
            body = {"model": MODEL, "messages": messages, "tools": self.specs, "stream": True,
                    "stream_options": {"include_usage": True}}
            text, calls, buffer = [], {}, b""
            async with self.client.stream("POST", self.url, json=body, headers=self.headers) as response:
                async for piece in response.aiter_bytes():
                    *lines, buffer = (buffer + piece).split(b"\n")
                    for line in lines:
                        if not line.startswith(b"data: {"):
                            continue
                        for choice in json.loads(line[6:])["choices"]:
                            delta = choice["delta"]
                            text.append(delta.get("content") or "")
                            for call in delta.get("tool_calls") or []:
                                entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                                entry["id"] = call.get("id") or entry["id"]
                                entry["name"] = (call.get("function") or {}).get("name") or entry["name"]
                                entry["arguments"] += (call.get("function") or {}).get("arguments") or ""
            if not calls:
                return Outcome("".join(text))
            ordered = [calls[i] for i in sorted(calls)]
            messages.append({"role": "assistant", "content": "".join(text) or None, "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in ordered]})
            results = await asyncio.gather(*(self.functions[c["name"]](**json.loads(c["arguments"])) for c in ordered))
            messages.extend({"role": "tool", "tool_call_id": c["id"], "content": r} for c, r in zip(ordered, results))
        return Outcome("", "max_steps")


AGENTS = {
    "plugdeck-loop": ("plugdeck", lambda url: PlugdeckRunner(url, "loop")),
    "plugdeck-plan": ("plugdeck", lambda url: PlugdeckRunner(url, "plan")),
    "plugdeck-auto": ("plugdeck", lambda url: PlugdeckRunner(url, "auto")),
    "plugdeck-loop-nostream": ("plugdeck", lambda url: PlugdeckRunner(url, "loop", stream=False)),
    # Controls for the mock's honesty checks: tools shown with argument names and types only.
    "plugdeck-plan-names-only": ("plugdeck", lambda url: PlugdeckRunner(url, "plan", schemas="names-only")),
    "plugdeck-loop-names-only": ("plugdeck", lambda url: PlugdeckRunner(url, "loop", schemas="names-only")),
    "langgraph": ("langgraph", lambda url: LangGraphRunner(url)),
    "langgraph-nostream": ("langgraph", lambda url: LangGraphRunner(url, streaming=False)),
    "langgraph-sequential": ("langgraph", lambda url: LangGraphRunner(url, parallel=False)),
    "raw-httpx": ("httpx", RawHttpxRunner),
}
DEFAULT_AGENTS = ["plugdeck-loop", "plugdeck-plan", "plugdeck-auto", "langgraph"]
# Reference points measured at zero latency only: the bare-httpx floor, and both frameworks unstreamed.
DEFAULT_CPU_ONLY = ["raw-httpx", "plugdeck-loop-nostream", "langgraph-nostream"]
