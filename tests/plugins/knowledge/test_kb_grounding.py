"""The grounded-answer check: answers from the scripted model that the passages support fully, in
part, or not at all, each with its expected outcome, recorded in the run."""

import pytest

from plugdeck import Agent, RulesModel, RunStore, ScriptedModel
from plugdeck.plugins.knowledge import GroundingCheck, knowledge_plugin, knowledge_skill

SEARCH = {"tool_calls": [{"name": "search_knowledge", "arguments": {"query": "vacation days and sick leave", "k": 5}}]}


async def grounded_run(handbook, answer, *, turns=None, **options):
    model = ScriptedModel(turns if turns is not None else [SEARCH, answer])
    agent = Agent(model, [knowledge_plugin(handbook)], checks=[GroundingCheck(handbook, **options)])
    run = await agent.run("How much vacation and sick leave do I get?")
    checked = [e for e in run.events if e.type == "answer_checked"]
    assert run.ok and len(checked) == 1 and checked[0].check == "grounding"
    return run, checked[0]


def claims(event):
    return [s for s in event.details["sentences"] if s["kind"] == "claim"]


async def test_a_supported_answer_is_kept_and_gets_its_sources(handbook):
    answer = ("New employees get 25 days of paid vacation per year [1]. "
              "Staff who are sick tell their manager before 10:00 on the first day [2].")
    run, event = await grounded_run(handbook, answer)
    assert event.passed and event.details["decision"] == "supported"
    assert run.answer == (answer + "\n\nSources:\n[1] handbook/leave.md, \"Vacation\", lines 10–18\n"
                                   "[2] handbook/leave.md, \"Sick leave\", line 22")
    assert [c["supported"] for c in claims(event)] == [True, True]
    assert event.original == answer and event.answer == run.answer


async def test_a_paraphrase_is_supported_by_its_meaning(handbook):
    _, event = await grounded_run(handbook, "Every kind of leave is tracked in the HR portal [3].")
    claim = claims(event)[0]
    assert event.passed and claim["lexical"] < 0.8 < claim["semantic"]


async def test_a_partly_supported_answer_loses_what_is_not_supported(handbook):
    answer = ("New employees get 25 days of paid vacation per year [1]. "
              "They may also work remotely from any country [1].")
    run, event = await grounded_run(handbook, answer)
    assert not event.passed and event.details["decision"] == "partly_supported"
    assert event.details["dropped"] == ["They may also work remotely from any country [1]."]
    assert run.answer.startswith("New employees get 25 days of paid vacation per year [1].\n\n"
                                 "(Removed 1 statement that the documents do not support.)\n\nSources:\n[1] ")
    assert "remotely" not in run.answer
    unsupported = claims(event)[1]
    assert unsupported["supported"] is False and unsupported["reason"].startswith("too little support")


async def test_flag_mode_keeps_unsupported_sentences_marked(handbook):
    answer = "New employees get 25 days of paid vacation per year [1]. The cafeteria serves free lunch [2]."
    run, event = await grounded_run(handbook, answer, mode="flag")
    assert event.details["decision"] == "partly_supported" and event.details["dropped"] == []
    assert "The cafeteria serves free lunch [2]. [not supported by the documents]" in run.answer


async def test_an_unsupported_answer_becomes_the_documents_dont_say(handbook):
    run, event = await grounded_run(handbook, "Everyone gets a company car [1]. The gym is open all night [2].")
    assert not event.passed and event.details["decision"] == "unsupported"
    assert run.answer.startswith("The documents don't say. The closest passages:\n[1] handbook/leave.md")
    assert "company car" not in run.answer


@pytest.mark.parametrize("answer, reason", [
    ("New employees get 30 days of paid vacation per year [1].", "numbers not in the cited passages: 30"),
    ("New employees do not get paid vacation [1].", "negates"),
    ("New employees get 25 days of paid vacation per year [9].", "cites [9], which no search returned"),
])
async def test_changed_numbers_flipped_negations_and_unknown_citations(handbook, answer, reason):
    run, event = await grounded_run(handbook, answer)
    assert event.details["decision"] == "unsupported" and reason in claims(event)[0]["reason"]
    assert run.answer.startswith("The documents don't say.")


async def test_an_uncited_but_supported_sentence_gets_its_citation(handbook):
    run, event = await grounded_run(handbook, "From the fourth day a doctor's note is needed.")
    assert event.passed and claims(event)[0]["added_citation"] == "[2]"
    assert run.answer.startswith("From the fourth day a doctor's note is needed. [2]\n\nSources:\n[2] ")


async def test_an_answer_without_any_search(handbook):
    run, event = await grounded_run(handbook, None, turns=["Vacation is 40 days for everyone."])
    assert event.details["decision"] == "no_passages" and not event.passed
    assert run.answer.startswith("The documents don't say. The closest passages:\n[1] handbook/leave.md, \"Vacation\"")


async def test_a_refusal_cannot_smuggle_in_claims(handbook):
    run, event = await grounded_run(handbook, "The documents don't say it, but everyone gets a company car [1].")
    assert event.details["decision"] == "unsupported" and "company car" not in run.answer


async def test_declining_and_small_talk_pass_unchanged(handbook):
    _, event = await grounded_run(handbook, "The documents don't say how much sick leave there is.")
    assert event.passed and event.details["decision"] == "declined"
    run, event = await grounded_run(handbook, "Hello!")
    assert event.passed and event.details["decision"] == "no_claims" and run.answer == "Hello!"


async def test_the_rules_models_answers_pass_the_check(handbook):
    agent = Agent(RulesModel([knowledge_skill()]), [knowledge_plugin(handbook)], checks=[GroundingCheck(handbook)])
    run = await agent.run("Do I have to lock my laptop?")
    event = next(e for e in run.events if e.type == "answer_checked")
    assert event.passed and event.details["decision"] == "supported" and run.answer == event.original
    assert "handbook/security.pdf, page 2" in run.answer
    run = await agent.run("What is the capital of France?")
    event = next(e for e in run.events if e.type == "answer_checked")
    assert event.passed and event.details["decision"] == "declined"


async def test_the_decision_is_stored_with_the_run(handbook, tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        model = ScriptedModel([SEARCH, "New employees get 25 days of paid vacation per year [1]. Free lunch [1]."])
        agent = Agent(model, [knowledge_plugin(handbook)], checks=[GroundingCheck(handbook)], sinks=[store.record])
        run = await agent.run("Vacation?")
        store.flush()
        stored = store.get_run(run.id)
    checked = next(e for e in stored["events"] if e["type"] == "answer_checked")
    assert checked["details"]["decision"] == "partly_supported" and checked["details"]["dropped"] == ["Free lunch [1]."]
    assert stored["answer"] == run.answer and "Free lunch" not in run.answer


def test_without_embeddings_the_check_falls_back_to_words(handbook):
    class Broken:
        id = "broken"

        def embed(self, texts):
            from plugdeck.plugins.knowledge.embeddings import EmbeddingError

            raise EmbeddingError("the endpoint is down")

    from plugdeck.plugins.knowledge.citations import SeenPassage

    passage = SeenPassage("[1]", "abc123abc123", "handbook/leave.md", "Leave > Vacation", "lines 10–18",
                          "New employees get 25 days of paid vacation per year.")
    check = GroundingCheck(embedder=Broken())
    kept = check.verify("New employees get 25 days of paid vacation per year [1].", [passage])
    assert kept.passed and "lexical support only" in kept.details["embedding"]
    dropped = check.verify("New hires are entitled to twenty-five days off annually [1].", [passage])
    assert not dropped.passed  # a paraphrase needs the embeddings to be recognised
