"""Tool selection with the real all-MiniLM-L6-v2: the right tools among hundreds, always-on tools,
the embedding cache (in memory and under a home, read back by a fresh process).

Data: ../shared/fixtures/bfcl/v3_core (Berkeley Function Calling Leaderboard, Apache-2.0).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plugdeck.agent.selection import ToolSelector, name_words, query_parts
from plugdeck.plugins.calculator import plugin as calculator
from plugdeck.plugins.knowledge.embeddings import LocalEmbedder
from plugdeck.tools import Tool, Toolset, tool_from_schema
from shared_fixtures import FIXTURES

BFCL = FIXTURES / "bfcl" / "v3_core"
EMBEDDER = LocalEmbedder()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def bfcl(name: str) -> tuple[list[Tool], dict[str, tuple[str, list[str]]]]:
    """All function docs of a BFCL set as tools (identical docs once); question id -> (text, names)."""
    answers = {a["id"]: a["ground_truth"] for a in read_jsonl(BFCL / "possible_answer" / f"BFCL_v3_{name}.json")}
    tools, questions = {}, {}
    for entry in read_jsonl(BFCL / f"BFCL_v3_{name}.json"):
        for doc in entry["function"]:
            key = json.dumps(doc, sort_keys=True)
            tools.setdefault(key, tool_from_schema(doc["name"], doc.get("description", ""), doc["parameters"],
                                                   lambda **kw: kw, plugin=entry["id"]))
        text = entry["question"][0][0]["content"]
        questions[entry["id"]] = (text, list(dict.fromkeys(n for call in answers[entry["id"]] for n in call)))
    return list(tools.values()), questions


def schema(**properties: str) -> dict:
    return {"type": "object", "properties": {name: {"type": "string", "description": about}
                                             for name, about in properties.items()}}


def everyday_tools() -> list[Tool]:
    made = [
        ("get_weather_forecast", "Weather forecast for a city: temperature, rain and wind for the coming days.",
         schema(city="The city name.")),
        ("convertCurrency", "Convert an amount of money from one currency to another at today's rate.",
         schema(amount="How much.", source="ISO code, e.g. USD.", target="ISO code, e.g. EUR.")),
        ("calculate_bmi", "Body mass index from weight and height.", schema(weight_kg="", height_cm="")),
        ("flight.book", "Book a flight between two airports on a date.", schema(origin="", destination="", date="")),
        ("translate_text", "Translate text into another language.", schema(text="", language="Target language.")),
        ("get_stock_price", "", schema(ticker="")),  # no descriptions at all
        ("send_email", "", {}),
    ]
    return [tool_from_schema(name, about, params, lambda **kw: kw) for name, about, params in made]


@pytest.fixture(scope="module")
def multiple():
    tools, questions = bfcl("multiple")
    return ToolSelector(tools, embedder=EMBEDDER), questions


def test_name_words_split_every_naming_style():
    assert name_words("math.factorial") == "math factorial"
    assert name_words("get_weather_forecast") == "get weather forecast"
    assert name_words("getWeatherForecast") == "get weather forecast"
    assert name_words("HTTPRequest-v2") == "http request v2"


def test_a_request_asking_for_several_things_is_split_into_its_clauses():
    parts = query_parts("Find the sum of the multiples of 3 and 5. Also find the product of the first five primes.")
    assert parts[1:] == ["Find the sum of the multiples of 3 and 5.", "find the product of the first five primes."]
    assert query_parts("What's the weather in Oslo?") == ["What's the weather in Oslo?"]


@pytest.mark.parametrize("question", ["multiple_0", "multiple_32", "multiple_48", "multiple_112", "multiple_148",
                                      "multiple_196"])
def test_the_right_tool_among_hundreds(multiple, question):
    selector, questions = multiple
    assert len(selector.tools) > 400
    text, names = questions[question]
    assert names[0] in [t.name for t in selector.select(text, 3)]


@pytest.mark.parametrize("question", ["parallel_multiple_18", "parallel_multiple_160", "parallel_multiple_36"])
def test_a_tool_for_each_thing_asked(question):
    tools, questions = bfcl("parallel_multiple")
    text, names = questions[question]
    chosen = {t.name for t in ToolSelector(tools, embedder=EMBEDDER).select(text, len(names) + 2)}
    assert set(names) <= chosen


def test_always_on_tools_come_first_and_on_top_of_k():
    tools = [*calculator.tools, *everyday_tools()]
    selector = ToolSelector(tools, embedder=EMBEDDER)
    chosen = selector.select("Will it rain in Lyon tomorrow?", 2, always=["calculator.*"])
    assert [t.qualified_name for t in chosen][:2] == ["calculator.calculate", "get_weather_forecast"]
    assert len(chosen) == 3
    assert selector.select("Will it rain in Lyon tomorrow?", 0, always=["calculator.*"]) == calculator.tools
    # Globs match qualified names: a plugin's tool is not pinned by its bare name.
    assert "calculator.calculate" not in [t.qualified_name for t in selector.select("rain", 1, always=["calculate"])]


def test_other_wordings_and_tools_without_descriptions():
    selector = ToolSelector(everyday_tools(), embedder=EMBEDDER)

    def top(question, mode="hybrid"):
        return [t.name for t in selector.select(question, 1, mode=mode)]

    assert top("Should I take an umbrella in Lisbon on Saturday?") == ["get_weather_forecast"]
    assert top("Should I take an umbrella in Lisbon on Saturday?", "keyword") == []  # no shared word: meaning did it
    assert top("How many euros would 250 dollars buy me?") == ["convertCurrency"]
    assert top("What is Apple's share price right now?") == ["get_stock_price"]
    assert top("Please mail my landlord that the heating is broken") == ["send_email"]
    assert top("put this sentence into Japanese") == ["translate_text"]


def test_wire_names_stay_those_of_the_whole_toolset():
    first = tool_from_schema("search", "Search the web for pages.", {}, lambda **kw: kw, plugin="web")
    second = tool_from_schema("search", "Search the company's documents.", {}, lambda **kw: kw, plugin="docs")
    toolset = Toolset([first, second, *everyday_tools()])
    chosen = ToolSelector(toolset.tools, embedder=EMBEDDER).select("search our internal documents", 1)
    assert chosen == [second]
    offered = toolset.offering(chosen)
    (spec,) = offered.specs
    assert spec.name == "docs_search" and offered.resolve(spec.name) is second
    assert offered.resolve("web_search") is first  # a tool not offered still resolves (under the policy)


def test_embeddings_are_reused_in_process_and_only_changed_tools_are_embedded_again():
    tools = everyday_tools()
    first = ToolSelector(tools, embedder=EMBEDDER)
    first.load()
    again = ToolSelector(everyday_tools(), embedder=EMBEDDER)
    again.load()
    assert again.stats == {"tools": 7, "from_cache": 7, "embedded": 0}
    changed = everyday_tools()
    changed[0].description = "Hourly weather for a place, including pollen counts."
    third = ToolSelector(changed, embedder=EMBEDDER)
    third.load()
    assert third.stats == {"tools": 7, "from_cache": 6, "embedded": 1}


BUILD_AGAIN = """
import json, sys
sys.path.insert(0, sys.argv[2])
from test_selection import everyday_tools
from plugdeck.agent.selection import ToolSelector
selector = ToolSelector(everyday_tools(), home=sys.argv[1])
selector.load()
print(json.dumps({**selector.stats, "torch_loaded": "torch" in sys.modules,
                  "top": selector.select("Will it rain in Lyon tomorrow?", 1, mode="keyword")[0].name}))
"""


def build_in_fresh_process(home: Path) -> dict:
    tests = str(Path(__file__).resolve().parents[1])
    env = {"PYTHONPATH": tests, "HOME": str(home / "user"), "PLUGDECK_HOME": str(home),
           "XDG_CONFIG_HOME": str(home / "config")}
    done = subprocess.run([sys.executable, "-c", BUILD_AGAIN, str(home), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_second_process_reads_the_embeddings_from_the_home_cache(tmp_path):
    first = ToolSelector(everyday_tools(), embedder=EMBEDDER, home=tmp_path)
    first.load()
    assert (tmp_path / "cache" / "tool-embeddings.db").exists()
    second = build_in_fresh_process(tmp_path)
    assert second == {"tools": 7, "from_cache": 7, "embedded": 0, "torch_loaded": False,
                      "top": "get_weather_forecast"}


def test_a_damaged_cache_is_replaced(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tool-embeddings.db").write_bytes(b"this is not a SQLite database" * 100)
    selector = ToolSelector(everyday_tools(), embedder=EMBEDDER, home=tmp_path)
    assert [t.name for t in selector.select("Will it rain in Lyon tomorrow?", 1)] == ["get_weather_forecast"]
    assert build_in_fresh_process(tmp_path)["from_cache"] == 7


async def test_aselect_runs_off_the_event_loop():
    selector = ToolSelector(everyday_tools(), embedder=EMBEDDER)
    chosen = await selector.aselect("book me a plane to Rome on Friday", 1)
    assert [t.name for t in chosen] == ["flight.book"]


def test_bad_arguments_say_what_is_wrong():
    selector = ToolSelector(everyday_tools(), embedder=EMBEDDER)
    with pytest.raises(ValueError, match="k must be"):
        selector.select("anything", -1)
    with pytest.raises(ValueError, match="mode must be"):
        selector.select("anything", 1, mode="fuzzy")
    assert ToolSelector([], embedder=EMBEDDER).select("anything", 5) == []
