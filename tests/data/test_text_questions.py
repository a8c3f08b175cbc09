"""Question/answer pairs read off the text when the model writes none usable."""

from __future__ import annotations

from scripted_chat import ScriptedChatServer

from infuse.data import synth
from infuse.data.text_questions import text_pairs, unanswerable_questions
from infuse.eval.questions import load_questions
from infuse.llm import load_chat_model

THREADS = (
    "# Threads\n\nSQLite supports three different threading modes.\n\n"
    "The default SQLITE_THREADSAFE mode is serialized.\n\n"
    "It is safe to use.\n\n"  # leans on the sentence before: no question from it
    "The usual value is twelve.\n\n"  # names nothing: the usual value of what?
    "The ones starting with lowercase letters are reserved.\n\n"  # which ones?
    "The simplest way to compile Bash is: 1.\n\n"  # a numbered list opens: no number question
    "A transactional database is one in which all changes happen or none do.\n\n"
    "The rate of enhancement for SQLite is approximately 6 increments of Y per year.\n\n"
    "--timeout <seconds>\n: Wait this long for a lock before giving up.\n\n"
    "Reliably detecting races is a difficult problem.\n\n"  # a doing, not a thing: no question
    "Using the cache is the fastest way to rebuild.\n\n"
    "| << 9. Massif: a heap profiler | Up | 11. Lackey: an example tool >> |\n\n"  # cells, no sentence
    "It's worth fixing errors in the order they are reported.\n\n"  # no subject to ask about
    "--I1=<size>,<line size>\n: Specify the size, associativity and line size of the cache.\n\n"
    "Writes (bytes)\n: Like \"Reads (bytes)\", but for writes.\n\n"  # fragments are no answers
    "The GNU General Public License 2.\n\n"  # a title, a citation, a label: not prose
    "Thread Library Documentation, Boost website, 2007.\n\n"
    "Thanks to Adam Borowski for the patch (Closes: #931315) and the fix.\n\n"
    "A different way is as follows: (1) Run Valgrind as normal, but add the flag.\n\n"
    "The 12345 is the process ID of the program.\n\n"
    "Linux on POWER5 is supported.\n\n"  # a state, not a thing to name
    "The VG_ macro is used heavily.\n\n"
    "Helgrind's algorithm is (conceptually) very simple.\n\n"
    "Callgrind creates this line now.\n\n"  # leans on the text around it
    "Using pthread_join to round up threads provides a clear synchronisation point.\n"  # a doing
)


def test_templates_give_grounded_plain_questions():
    pairs = text_pairs(THREADS, max_pairs=10)
    assert ("What is --timeout <seconds>?", "Wait this long for a lock before giving up") in pairs
    assert ("What does SQLite support?", "three different threading modes") in pairs
    assert ("What is the default SQLITE_THREADSAFE mode?", "serialized") in pairs
    assert ("The rate of enhancement for SQLite is approximately how many increments of Y per year?",
            "6 increments") in pairs
    questions = [question for question, _answer in pairs]
    assert not any(q.startswith("What is It") or "transactional" in q for q in questions)
    assert not any("usual value" in q or "ones" in q or "compile" in q for q in questions)
    assert not any("Reliably" in q or "Using the cache" in q or "Massif" in q for q in questions)
    assert not any("worth" in q or "--I1" in q or "Writes" in q for q in questions)
    for label in ("License", "Boost", "Closes", "Run Valgrind", "12345", "POWER5", "VG_", "Helgrind",
                  "Callgrind", "pthread_join"):
        assert not any(label in q for q in questions), label
    for question, answer in pairs:  # every answer is a span of the text the validator accepts
        assert synth.validate_pair(question, answer, THREADS) is None, (question, answer)


def test_unanswerable_questions_ask_about_what_no_document_says():
    made = unanswerable_questions(["What is the default SQLITE_THREADSAFE mode?", "What does SQLite support?"],
                                  THREADS, 5)
    assert len(made) == 2
    for question, note in made:
        term = note.split("'")[1]
        assert term in question and term not in THREADS.lower()


def test_a_model_that_writes_no_usable_pair_is_dropped_for_the_text(tmp_path):
    documents = [(f"doc{i}.md", THREADS.replace("Threads", f"Threads {i}")) for i in range(4)]
    echo = "Q: <question>\nA: <short answer copied from the text>\n"  # what a 135M model wrote
    with ScriptedChatServer(lambda messages: echo) as server:
        result = synth.synthesize_qa(documents, load_chat_model("small", base_url=server.base_url),
                                     max_pairs=6, give_up_after=2, holdout=0.0)
        assert len(server.requests) == 2  # asked twice, then no more
    assert result.stopped == "model_unusable"
    # per_chunk (3) pairs per document; the same questions from the three copies are duplicates
    assert len(result.train) == 3 and result.from_text == 3
    assert [why for _q, _a, why in result.rejected].count("duplicate question") == 9
    assert all(pair.origin == "text" for pair in result.train)
    rows = synth.pair_rows(result.train) + synth.unanswerable_rows(result.train, [], 2)
    path = synth.write_rows(rows, tmp_path / "held.jsonl")
    questions = load_questions(path)
    assert sum(not q.answerable for q in questions) == 2
    assert {"from-text"} <= set(questions[0].tags)


def test_a_text_answer_led_by_a_verb_gains_the_bare_thing_as_an_alias(tmp_path):
    pair = synth.QAPair("What is the simplest method to run PHP?", "to use php-cgi", "php", origin="text")
    row = pair.to_row("t1")
    assert row["aliases"] == ["php-cgi"]
    path = synth.write_rows([row], tmp_path / "held.jsonl")
    question = load_questions(path)[0]
    assert "php-cgi" in question.references
    assert "aliases" not in synth.QAPair("What is the mode?", "serialized", "x", origin="text").to_row("t2")


def test_unanswerable_questions_swap_a_subject_word_never_one_of_an_echoed_sentence():
    echo = "Bash will not allow this value to be decreased below a minimum, and the maximum is what?"
    made = unanswerable_questions([echo, "What does the mkclone script require?"], THREADS, 5)
    assert len(made) == 1
    question, _note = made[0]
    assert question.startswith("What does the ") and "mkclone" not in question
