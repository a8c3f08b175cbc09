"""Grounded RAG and CAG with small models: answers cut from the reply, checked against the
passages, and declines that come from evidence (missing question terms, ungrounded answers)."""

from __future__ import annotations

import pytest
from scripted_model import ScriptedModel

from infuse.answer import Answer
from infuse.knowledge.kb import KnowledgeBase
from infuse.knowledge.retrieval import SearchSettings
from infuse.rag import (
    NO_ANSWER,
    RagSession,
    extract_answer,
    grounding_problem,
    missing_question_terms,
)


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    from knowledge.conftest import build_tiny_embedder

    from infuse.knowledge.embeddings import Embedder

    root = tmp_path_factory.mktemp("grounding")
    embedder = Embedder(str(build_tiny_embedder(root / "embedder")), device="cpu")
    docs = root / "docs"
    docs.mkdir()
    (docs / "policies.md").write_text(
        "# Policies\n\n## Refunds\n\nThe refund window is 45 days. A restocking fee of 12 percent "
        "applies to opened devices.\n"
    )
    (docs / "office.txt").write_text("Our office is in Springfield, next to the river.")
    knowledge = KnowledgeBase(root / "kb", create=True, embedder=embedder)
    knowledge.add([docs])
    yield knowledge
    knowledge.close()


def test_extract_answer_keeps_the_list_after_a_colon():
    assert extract_answer("The routines are:\n1. malloc()\n2. realloc()\n3. free()") == (
        "The routines are: malloc(), realloc(), free()."
    )
    assert extract_answer("The easy way:\n\n    apt-get install fcgiwrap\n") == (
        "The easy way: apt-get install fcgiwrap."
    )


def test_inflections_of_an_everyday_word_match_and_identifiers_stay_whole():
    passages = ["The command: apt-get install fcgiwrap.", "The upstream directives are listed."]
    assert missing_question_terms("Which command installs fcgiwrap?", passages) == []
    assert missing_question_terms("Which upstream directive is listed?", passages) == []
    assert missing_question_terms("What is EPOCHSECONDS?", ["seconds since the Epoch"]) == ["epochsecond"]


def test_grounding_counts_an_answers_own_terms_and_takes_a_yes_no_restatement():
    passages = ["EPOCHSECONDS: each time this parameter is referenced, it expands to the number of "
                "seconds since the Unix Epoch.", "SQLite does not use configuration files."]
    question = "Which variable gives the number of seconds since the Unix Epoch?"
    answer = "The variable EPOCHSECONDS is used to keep track of the seconds since the Unix Epoch."
    assert grounding_problem(answer, question, passages) is None  # "keep track" is phrasing
    assert grounding_problem("The variable EPOCHREALTIME does.", question, passages)  # not "epoch"
    assert grounding_problem("No, SQLite does not use configuration files.",
                             "Does SQLite use configuration files?", passages) is None


def test_extract_answer_cuts_echoed_headers_citations_and_repeats():
    assert extract_answer("Answer: The refund window is 45 days [1]. The refund window is 45") == (
        "The refund window is 45 days."
    )
    assert extract_answer("\n\nText: 45 days.\nText: 45 days.") == "45 days."
    assert extract_answer("It is 45 days.") == "It is 45 days."


def test_grounding_rejects_numbers_and_words_no_passage_holds():
    passages = ["The refund window is 45 days.", "Our office is in Springfield."]
    question = "How long is the refund window?"
    assert grounding_problem("The refund window is 45 days.", question, passages) is None
    assert "60" in grounding_problem("The refund window is 60 days.", question, passages)
    assert grounding_problem("Ask the friendly support wizard.", question, passages)
    assert grounding_problem("The refund window.", question, passages)  # nothing new said


def test_grounding_wants_a_measure_with_the_unit_a_passage_gives_it():
    passages = ["SEV1 pages must be acknowledged within 7 minutes.", "Escalate after 2 hours.",
                "A restocking fee of 12% applies."]
    question = "Within how many minutes must a SEV1 page be acknowledged?"
    assert "2 min" in grounding_problem("It must be acknowledged within 2 minutes.", question, passages)
    assert grounding_problem("It must be acknowledged within 7 minutes.", question, passages) is None
    assert grounding_problem("Within a 7-minute window.", question, passages) is None
    assert grounding_problem("The fee is 12 percent.", "What is the restocking fee?", passages) is None
    assert grounding_problem("It must be acknowledged within 2 minutes.", question, passages,
                             units=False) is None  # the number alone is in a passage


def test_missing_question_terms_name_what_no_passage_speaks_of():
    passages = ["Nimbus Orchard Labs was founded in 2016 in Ghent."]
    assert missing_question_terms("In which year was Nimbus Orchard Labs founded?", passages) == []
    assert missing_question_terms("What was Nimbus Orchard Labs' revenue last year?", passages) == [
        "reven"
    ]


def test_question_about_something_absent_is_declined_without_asking_the_model(kb):
    model = ScriptedModel("The CEO earns 2 million.")
    session = RagSession(kb, model, retrieval=SearchSettings(k=2))
    result = session.answer("What is the refund window for the Kubernetes_operator licence?")
    assert result.no_answer and result.text == NO_ANSWER and model.calls == []
    assert "kubernete" in result.facts["declined_because"]


def test_everyday_words_of_a_question_need_not_be_in_the_passages(kb):
    """'my' or 'exactly' are how a user asks; the model is asked, and its answer is checked."""
    assert missing_question_terms("How long is my refund window exactly?",
                                  ["The refund window is 45 days."], everyday=False) == []
    right = RagSession(kb, ScriptedModel("45 days."), retrieval=SearchSettings(k=2))
    assert not right.answer("How long is my refund window, then?").no_answer
    invented = ScriptedModel("The CEO earns 2 million.")
    session = RagSession(kb, invented, retrieval=SearchSettings(k=2))
    result = session.answer("What is the salary of the chief executive?")
    assert not invented.calls and result.no_answer  # "salary" is a topic no passage holds
    assert "salar" in result.facts["declined_because"]


def test_invented_number_is_declined_and_grounded_answer_kept(kb):
    question = "How long is the refund window?"
    invented = RagSession(kb, ScriptedModel("The refund window is 60 days."), retrieval=SearchSettings(k=2))
    result = invented.answer(question)
    assert result.no_answer and "60" in result.facts["declined_because"]
    assert result.facts["raw_answer"] == "The refund window is 60 days."
    right = RagSession(kb, ScriptedModel("Answer: 45 days.\nAnswer: 45 days."), retrieval=SearchSettings(k=2))
    result = right.answer(question)
    assert not result.no_answer and result.text == "45 days."


def test_only_the_passages_given_are_shown_and_marked(kb):
    model = ScriptedModel("The refund window is 45 days.")
    session = RagSession(kb, model, passages_given=1, retrieval=SearchSettings(k=2))
    result = session.answer("How long is the refund window?")
    passages = result.facts["passages"]
    assert [p["given"] for p in passages] == [True, False]
    assert passages[0]["text"] in model.calls[0][0]["content"] or "45 days" in model.calls[0][0]["content"]
    assert passages[1]["text"].split("\n")[-1] not in model.calls[0][0]["content"]


def test_grounding_can_be_turned_off(kb):
    session = RagSession(kb, ScriptedModel("Ask the wizard."), grounded=False, retrieval=SearchSettings(k=2))
    assert session.answer("How long is the refund window?").text == "Ask the wizard."


class ScriptedCagSession:
    """What CagMethod needs of a CAG session: the knowledge text and answer()."""

    def __init__(self, knowledge: str, reply: str):
        self.system = knowledge
        self.reply = reply
        self.asked: list[str] = []

    def answer(self, question, **options):
        self.asked.append(question)
        return Answer(text=self.reply, method="cag", facts={})


def test_cag_declines_from_the_whole_knowledge():
    from infuse.methods.cag import CagMethod

    knowledge = "The refund window is 45 days. Our office is in Springfield."
    invented = CagMethod(ScriptedCagSession(knowledge, "The refund window is 90 days."))
    result = invented.answer("How long is the refund window?")
    assert result.no_answer and "90" in result.facts["declined_because"]
    absent = CagMethod(ScriptedCagSession(knowledge, "anything"))
    result = absent.answer("Who is the chief financial officer?")
    assert result.no_answer and absent.session.asked == []
    right = CagMethod(ScriptedCagSession(knowledge, "The refund window is 45 days. It is 45 days."))
    result = right.answer("How long is the refund window?")
    assert not result.no_answer and result.text == "The refund window is 45 days."


def test_a_missing_everyday_term_needs_an_answer_that_names_something_the_passages_hold(kb):
    vague = RagSession(kb, ScriptedModel("The office is next to the river."), retrieval=SearchSettings(k=2))
    result = vague.answer("Which way is the team's office?")
    assert result.no_answer and "names nothing specific" in result.facts["declined_because"]
    # a topic word ("revenue"), unlike a phrasing word ("way"), must be in the passages
    early = ScriptedModel("The office revenue is next to the river.")
    result = RagSession(kb, early, retrieval=SearchSettings(k=2)).answer("What is the revenue of the office?")
    assert result.no_answer and "reven" in result.facts["declined_because"] and early.calls == []
    named = RagSession(kb, ScriptedModel("It is in Springfield."), retrieval=SearchSettings(k=2))
    result = named.answer("In which town does the team have its office?")
    assert not result.no_answer and result.text == "It is in Springfield."
