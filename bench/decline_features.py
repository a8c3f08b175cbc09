"""Collect what RAG's decline rules look at, per question, with the model's ungated answer.

    python bench/decline_features.py --questions Q.jsonl --docs DOCS... --output F.json

For every question: hybrid retrieval (k=5) from a fresh knowledge base of DOCS, the passages
the model is given, the question's key terms that no given passage holds (each with whether
the word is a common English word (`infuse.knowledge.words.common_words`), and whether
it occurs anywhere in the knowledge base), the best similarity, and the model's answer with
no pre-generation gate (RAG with `max_missing_terms=None`), scored against the reference.
`bench/calibrate_decline.py` reads the file and chooses the rule; collecting once and
choosing many times keeps the model out of the search.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_WORD = re.compile(r"[a-z0-9]+")


def main() -> None:
    from infuse.answer import AnswerOptions
    from infuse.eval import scoring
    from infuse.eval.questions import load_questions
    from infuse.knowledge.kb import KnowledgeBase
    from infuse.knowledge.reading import read_paths
    from infuse.knowledge.words import common_words
    from infuse.rag import PASSAGES_GIVEN, RagSession, _stem, extract_answer, key_terms

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", required=True)
    parser.add_argument("--docs", nargs="+", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads for the packaged model (1 on a busy machine)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    vocabulary = common_words()
    questions = load_questions(args.questions)
    corpus_stems = {
        _stem(word)
        for doc in read_paths(args.docs).documents
        for word in _WORD.findall(doc.text.lower())
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Path(tmp) / "kb", create=True)
        kb.add(args.docs)
        model = args.model
        if args.threads and args.model is None:
            from infuse.llm.llamacpp import LlamaCppChatModel
            from infuse.models import DEFAULT_MODEL, resolve_gguf

            model = LlamaCppChatModel(resolve_gguf(DEFAULT_MODEL), name=DEFAULT_MODEL, n_threads=args.threads)
        session = RagSession(kb, model, max_missing_terms=None, max_new_tokens=args.max_new_tokens)
        for number, q in enumerate(questions, start=1):
            started = time.perf_counter()
            answer = session.answer_with(q.question, AnswerOptions())
            passages = answer.facts.get("passages", [])
            given = [p["text"] for p in passages if p.get("given")]
            given_stems = {_stem(w) for text in given for w in _WORD.findall(text.lower())}
            words = {}
            for word in _WORD.findall(q.question.lower()):
                words.setdefault(_stem(word), word)
            missing = [
                {
                    "stem": stem,
                    "word": words.get(stem, stem),
                    "common": words.get(stem, stem) in vocabulary,
                    "in_corpus": stem in corpus_stems,
                }
                for stem in key_terms(q.question)
                if stem not in given_stems
            ]
            raw = answer.facts.get("raw_answer", answer.text)
            text = extract_answer(raw) if "raw_answer" in answer.facts else answer.text
            refs = q.references
            answered_right = bool(refs) and not scoring.is_no_answer(text) and bool(
                scoring.contains_answer(text, refs)
            ) and not scoring.contradicts(text, refs, q.question)
            sims = [p.get("similarity") for p in passages if p.get("similarity") is not None]
            rows.append({
                "id": q.id,
                "question": q.question,
                "answerable": q.answerable,
                "reference": refs[:1],
                "tags": q.tags,
                "missing": missing,
                "top_similarity": round(max(sims), 4) if sims else None,
                "top_score": passages[0]["score"] if passages else None,
                "retrieved": bool(refs) and scoring.answer_in_context(given, refs),
                "passages": given[:PASSAGES_GIVEN],
                "answer": text,
                "raw": raw,
                "model_declined": scoring.is_no_answer(text),
                "answered_right": answered_right,
                "declined_because": answer.facts.get("declined_because"),
                "seconds": round(time.perf_counter() - started, 2),
            })
            print(f"{number}/{len(questions)} {q.id} right={answered_right} {text[:60]!r}", file=sys.stderr)
        session.close()
        kb.close()
    Path(args.output).write_text(json.dumps({"questions": args.questions, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
