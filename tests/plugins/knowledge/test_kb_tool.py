"""The knowledge plugin's search_knowledge tool, through the real agent loop, and the offline rules
model's knowledge skill."""

import json

import pytest

from plugdeck import Agent, RulesModel, ScriptedModel
from plugdeck.plugins.calculator import plugin as calculator
from plugdeck.plugins.calculator.rules_skill import arithmetic_skill
from plugdeck.plugins.knowledge import KnowledgeBase, KnowledgeError, knowledge_plugin, knowledge_skill
from plugdeck.tools import ToolError


async def test_the_tool_returns_passages_with_citations(handbook):
    plugin = knowledge_plugin(handbook)
    search = plugin.tool("search_knowledge")
    assert plugin.name == "handbook" and search.qualified_name == "handbook.search_knowledge"
    assert search.untrusted and search.capabilities == ("knowledge",) and search.effect == "read"
    assert "6 documents" in search.description and "[1]" in search.description
    result = await search.call({"query": "How many vacation days do new employees get?", "k": 3})
    passages = result["passages"]
    assert [p["citation"] for p in passages] == ["[1]", "[2]", "[3]"]
    best = passages[0]
    assert best["source"] == "handbook/leave.md" and best["title"] == "Leave > Vacation"
    assert best["location"] == "lines 10–18" and best["highlight"].startswith("New employees get 25 days")
    assert len(best["chunk_id"]) == 12 and best["score"] > 0 and 0 < best["similarity"] <= 1
    start, end = best["offsets"]
    assert (handbook.folder.parents[2] / "handbook" / "leave.md").read_text()[start:end] == best["text"]
    assert "not instructions" in result["note"]


async def test_the_tool_validates_and_filters(handbook):
    search = knowledge_plugin(handbook).tool("search_knowledge")
    for bad in ({"query": "x", "k": 0}, {"query": "x", "k": 21}, {"query": 3}, {"q": "x"}):
        with pytest.raises(ToolError) as error:
            await search.call(bad)
        assert error.value.kind == "invalid_arguments"
    with pytest.raises(ToolError, match="query is empty"):
        await search.call({"query": "   "})
    only_pdf = await search.call({"query": "rules", "type": "pdf", "k": 10})
    assert {p["source"] for p in only_pdf["passages"]} == {"handbook/security.pdf"}
    assert {p["page"] for p in only_pdf["passages"]} == {1, 2}
    nothing = await search.call({"query": "rules", "source": "nowhere/*"})
    assert nothing["passages"] == [] and "do not guess" in nothing["note"]


def test_several_knowledge_bases_in_one_tool(handbook, home, corpus, embedder):
    other = KnowledgeBase.open("travel", home, embedder=embedder, settings=handbook.settings)
    (corpus / "trains.md").write_text("# Trains\n\nThe night train to Vienna leaves at 21:40.\n")
    other.add([corpus / "trains.md"])
    plugin = knowledge_plugin([handbook, other])
    assert plugin.name == "knowledge"
    result = plugin.tool("search_knowledge").func(query="When does the night train leave?", k=3)
    assert result["passages"][0]["knowledge_base"] == "travel"
    assert [p["citation"] for p in result["passages"]] == ["[1]", "[2]", "[3]"]


def test_a_missing_knowledge_base_is_named(home):
    with pytest.raises(KnowledgeError, match="no knowledge base named 'handbok'"):
        knowledge_plugin("handbok", home)


async def test_an_llm_calls_the_tool_and_the_result_is_marked_untrusted(handbook):
    model = ScriptedModel([
        {"tool_calls": [{"name": "search_knowledge", "arguments": {"query": "laptop lock"}}]},
        "Laptops must be locked with a cable lock [1].",
    ])
    run = await Agent(model, [knowledge_plugin(handbook)]).run("Must I lock my laptop?")
    assert run.ok and run.answer == "Laptops must be locked with a cable lock [1]."
    finished = run.tool_results[0]
    assert finished.tool == "handbook.search_knowledge" and finished.untrusted and finished.source == "handbook"
    tool_message = json.loads(model.calls[1][-1]["content"])
    assert tool_message["passages"][0]["source"] == "handbook/security.pdf"


def rules_agent(handbook, *plugins):
    return Agent(RulesModel([arithmetic_skill(), knowledge_skill()]), [knowledge_plugin(handbook), *plugins])


async def test_rules_model_answers_extractively_with_citations(handbook):
    run = await rules_agent(handbook).run("How many vacation days do new employees get?")
    assert run.answer == ("New employees get 25 days of paid vacation per year. [1]\n\n"
                          "Sources:\n[1] handbook/leave.md, \"Vacation\", lines 10–18")
    run = await rules_agent(handbook).run("Which office does Bob work in?")
    assert run.answer.startswith("name: Bob | role: Manager | office: Lisbon [1]")
    assert "handbook/staff.csv, rows 2–3" in run.answer


async def test_rules_model_says_when_the_documents_do_not_answer(handbook):
    run = await rules_agent(handbook).run("What is the capital of France?")
    assert run.answer.startswith("The documents don't say. The closest passages:\n[1] handbook/")
    assert run.answer.count("\n[") == 3 and "`" not in run.answer  # three passages to follow up on, as plain text


async def test_rules_model_still_sends_arithmetic_to_the_calculator(handbook):
    run = await rules_agent(handbook, calculator).run("What is 17.5% of 2,340, plus 12?")
    assert run.answer == "421.5" and run.tool_results[0].tool == "calculator.calculate"


async def test_without_a_knowledge_base_the_skill_steps_aside():
    agent = Agent(RulesModel([arithmetic_skill(), knowledge_skill()]), [calculator])
    run = await agent.run("Who wrote Hamlet?")
    assert run.answer.startswith("I can't answer that offline") and "plugdeck ask --kb NAME" in run.answer
    assert run.usage.tool_calls == 0
