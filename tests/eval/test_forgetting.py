"""The forgetting check: general questions the base model answers right, asked again to the
adapter; the diagnosis fires when the fine-tune made it lose them and stays quiet otherwise."""

from __future__ import annotations

import json

from infuse.answer import Answer
from infuse.eval import diagnosis
from infuse.eval.forgetting import GENERAL_QUESTIONS, check_forgetting
from infuse.eval.questions import load_questions
from infuse.eval.results import EvalResults

GENERAL = load_questions(GENERAL_QUESTIONS)


class Scripted:
    """An answer method replying from a {question: text} dict ("I don't know." otherwise)."""

    def __init__(self, answers: dict[str, str]):
        self.answers = answers

    def answer(self, question: str, **options) -> Answer:
        return Answer(text=self.answers.get(question, "I don't know."), method="scripted")


KNOWS = {q.question: f"It is {q.answer}." for q in GENERAL}


def _results(result) -> EvalResults:
    return EvalResults(questions=[], methods=[], per_question=[],
                       meta={"forgetting": result.to_dict()})


def _finding(result):
    return diagnosis.check_forgetting(_results(result))


def test_packaged_general_questions_load():
    assert len(GENERAL) >= 12 and all(q.answerable for q in GENERAL)


def test_fires_when_the_adapter_lost_what_the_base_knew():
    forgetful = Scripted({q: "Nimbus Orchard Labs." for q in KNOWS})
    result = check_forgetting(Scripted(KNOWS), forgetful)
    assert len(result.known_by_base) == len(GENERAL) and len(result.lost) == len(GENERAL)
    finding = _finding(result)
    assert finding and finding.code == "forgetting" and "100%" in finding.message
    assert "forgetting" in [f.code for f in diagnosis.diagnose(_results(result))]


def test_quiet_when_the_adapter_kept_it_or_the_base_knew_nothing():
    assert _finding(check_forgetting(Scripted(KNOWS), Scripted(KNOWS))) is None
    one_lost = dict(KNOWS, **{GENERAL[0].question: "No idea, sorry."})
    assert _finding(check_forgetting(Scripted(KNOWS), Scripted(one_lost))) is None  # noise
    assert _finding(check_forgetting(Scripted({}), Scripted({}))) is None


def test_a_tiny_adapter_trained_to_forget_is_caught(tiny_model_dir, tmp_path):
    """A real (tiny) base and LoRA: its own answers are the references; an adapter trained on
    the same questions with another answer loses them, one trained with no learning rate not."""
    from infuse.llm.loading import load_local_chat_model
    from infuse.methods.base import ModelMethod
    from infuse.train import RunConfig, train
    from infuse.train.runs import load_run_model

    questions = GENERAL[:4]
    data = tmp_path / "forget.jsonl"
    data.write_text("".join(
        json.dumps({"instruction": q.question, "output": "Zebra zebra."}) + "\n" for q in questions
    ))
    base = ModelMethod("base", load_local_chat_model(str(tiny_model_dir), device="cpu"),
                       system_prompt=None)

    def adapter(name: str, learning_rate: float) -> ModelMethod:
        config = RunConfig(
            model=str(tiny_model_dir), data=str(data), output=str(tmp_path / name),
            max_steps=40, batch_size=2, grad_accum=1, learning_rate=learning_rate, warmup_steps=0,
            lr_schedule="constant", gradient_checkpointing=False, max_seq_len=128, device="cpu",
            eval_split=0.0,
        )
        run_dir = train(config).run_dir
        return ModelMethod(name, load_run_model(run_dir, device="cpu"), system_prompt=None)

    forgot = check_forgetting(base, adapter("forgot", 3e-2), questions, max_new_tokens=6,
                              base_answers=True)
    assert len(forgot.known_by_base) == 4 and _finding(forgot) is not None
    kept = check_forgetting(base, adapter("kept", 1e-12), questions, max_new_tokens=6,
                            base_answers=True)
    assert kept.lost == [] and _finding(kept) is None


def test_replay_rows_keep_the_base_own_right_answers_and_never_the_check_questions():
    from infuse.eval.forgetting import REPLAY_QUESTIONS, replay_rows

    replay = load_questions(REPLAY_QUESTIONS)
    assert not {q.question for q in replay} & {q.question for q in GENERAL}  # the check stays fair
    knows_half = {q.question: f"Surely {q.answer}." for q in replay[::2]}
    asked = []

    def base(question: str) -> str:
        asked.append(question)
        return knows_half.get(question, "A zebra.")

    rows = replay_rows(base)
    assert len(asked) == len(replay)
    assert len(rows) == len(knows_half)  # wrong answers are not taught
    first = rows[0]["messages"]
    assert first[0]["content"] == replay[0].question
    assert first[1]["content"] == f"Surely {replay[0].answer}."  # the base's own wording
    assert {row["augmentation"] for row in rows} == {"replay"}
    assert len(replay_rows(base, count=3)) == 3
