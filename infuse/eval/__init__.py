"""Evaluation: one question set through every method (base, RAG, CAG, LoRA, LoRA+RAG), scored,
timed, diagnosed and reported (terminal table, JSON, self-contained HTML).

    evaluate(questions, methods=..., options=MethodOptions(...), output_dir=...) -> EvalResults
        (MethodOptions and build_methods live in `infuse.methods`; eval runs and scores)
    run_eval(questions, methods) -> EvalResults          the runner on your own method objects
    load_questions(path) -> list[EvalQuestion]

Light to import: models, matplotlib and rich load inside the functions that need them.
"""

from infuse.eval.evaluate import evaluate
from infuse.eval.methods import FunctionMethod, Method, SkippedMethod
from infuse.eval.questions import EvalQuestion, load_questions
from infuse.eval.results import EvalResults, MethodSummary, QuestionResult
from infuse.eval.runner import run_eval
from infuse.methods import METHOD_NAMES, MethodOptions, build_methods  # built there, kept here

__all__ = [
    "METHOD_NAMES",
    "EvalQuestion",
    "EvalResults",
    "FunctionMethod",
    "Method",
    "MethodOptions",
    "MethodSummary",
    "QuestionResult",
    "SkippedMethod",
    "build_methods",
    "evaluate",
    "load_questions",
    "run_eval",
]
