"""Check the calibration question set against the text infuse's reader extracts.

    PYTHONPATH=$PWD python bench/calibration/check_questions.py [--questions Q] [--docs DIR]

Reads every file under the docs folder with `infuse.knowledge.read_paths` (the same reader
the knowledge base, CAG and eval use) and checks, case-insensitively and with whitespace
runs collapsed to one space:

- answerable rows: `source` names a file that was read, and the answer or one of its
  `aliases` occurs in that file's extracted text (as a whole token sequence: "no" does not
  match inside "not"). A yes/no answer counts only when an alias that states the fact
  occurs too, so that the bare word cannot pass the check by chance;
- unanswerable rows (`"answer": null`): every string in `absent` (the terms that would have to
  be there if the set stated the fact) occurs in no extracted text of the whole set;
- ids are unique, every file read has at least one question, and no file is skipped;
- `retrieval_queries.jsonl` and `retrieval_qrels.tsv` (for `infuse eval retrieval`) hold
  exactly the answerable questions, each judged relevant to its `source` file.

Prints one line per failure and a summary; exits 1 when anything failed. For information (not
checked) it also counts the questions by how many of their key terms (`infuse.rag.key_terms`,
the terms RAG's decline rule looks for) are in no text of their source file (answerable) or
of the whole set (unanswerable): an upper bound on what the decline rule can see, since the
passages RAG gives are a part of that text.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
YES_NO = {"yes", "no"}


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def occurs(needle: str, haystack: str) -> bool:
    """`needle` in `haystack` (both normalised), not glued to a word character on either side."""
    needle = normalise(needle)
    if not needle:
        return False
    before = r"(?<!\w)" if needle[0].isalnum() or needle[0] == "_" else ""
    after = r"(?!\w)" if needle[-1].isalnum() or needle[-1] == "_" else ""
    return re.search(before + re.escape(needle) + after, haystack) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", default=str(HERE / "questions.jsonl"))
    parser.add_argument("--docs", default=str(HERE / "third_party" / "docs"))
    args = parser.parse_args()

    from infuse.knowledge import read_paths
    from infuse.rag import missing_question_terms

    result = read_paths([args.docs])
    texts: dict[str, str] = {}
    for document in result.documents:
        name = Path(document.source).name
        texts[name] = texts.get(name, "") + " " + normalise(document.text)
    everything = " ".join(texts.values())
    missing: dict[str, Counter[int]] = {"answerable": Counter(), "unanswerable": Counter()}
    failures = [f"{item['path']}: skipped ({item['reason']})" for item in result.skipped]

    rows = [json.loads(line) for line in Path(args.questions).read_text().splitlines() if line.strip()]
    ids = Counter(row["id"] for row in rows)
    failures += [f"{qid}: id used {n} times" for qid, n in ids.items() if n > 1]
    asked: Counter[str] = Counter()
    kinds: Counter[tuple[str, bool]] = Counter()
    for row in rows:
        qid, tags = row["id"], row.get("tags") or []
        answerable = row.get("answer") is not None
        kinds["answerable" if answerable else "unanswerable", "cpu" in tags] += 1
        if answerable:
            source = row.get("source")
            if source not in texts:
                failures.append(f"{qid}: source {source!r} is not a file that was read")
                continue
            asked[source] += 1
            missing["answerable"][min(3, len(missing_question_terms(row["question"], [texts[source]])))] += 1
            references = [str(row["answer"]), *row.get("aliases", [])]
            found = [ref for ref in references if occurs(ref, texts[source])]
            if normalise(str(row["answer"])) in YES_NO:
                found = [ref for ref in found if normalise(ref) not in YES_NO]
            if not found and normalise(str(row["answer"])) in YES_NO:
                failures.append(f"{qid}: a yes/no answer needs an alias stating the fact that occurs in {source}")
            elif not found:
                failures.append(f"{qid}: none of {references} occurs in {source}")
        else:
            if "unanswerable" not in tags:
                failures.append(f"{qid}: answer is null but the row is not tagged unanswerable")
            missing["unanswerable"][min(3, len(missing_question_terms(row["question"], [everything])))] += 1
            absent = row.get("absent") or []
            if not absent:
                failures.append(f"{qid}: unanswerable row names no 'absent' terms to check")
            for term in absent:
                if normalise(term) in everything:
                    where = [name for name, text in texts.items() if normalise(term) in text]
                    failures.append(f"{qid}: 'absent' term {term!r} occurs in {', '.join(where)}")
    queries = {
        (query["_id"], query["text"])
        for query in map(json.loads, (HERE / "retrieval_queries.jsonl").read_text().splitlines())
    }
    qrels = {tuple(line.split("\t")) for line in (HERE / "retrieval_qrels.tsv").read_text().splitlines()[1:]}
    answerable_rows = [row for row in rows if row.get("answer") is not None]
    if queries != {(row["id"], row["question"]) for row in answerable_rows}:
        failures.append("retrieval_queries.jsonl: not the answerable questions of the question file")
    if qrels != {(row["id"], row["source"], "1") for row in answerable_rows}:
        failures.append("retrieval_qrels.tsv: not one (id, source, 1) row per answerable question")
    unasked = sorted(name for name in texts if name not in asked and name != "copyright")
    failures += [f"{name}: no question asks about this file" for name in unasked]

    print(f"{len(result.documents)} documents read from {len(result.files)} files, "
          f"{len(result.skipped)} skipped")
    print(f"{len(rows)} questions: " + ", ".join(
        f"{kinds[kind, False] + kinds[kind, True]} {kind} ({kinds[kind, True]} tagged cpu)"
        for kind in ("answerable", "unanswerable")
    ))
    print("questions per source: " + ", ".join(f"{name} {n}" for name, n in sorted(asked.items())))
    for kind, counts in missing.items():
        where = "its source file" if kind == "answerable" else "the whole set"
        print(f"{kind}: key terms in no text of {where}: " + ", ".join(
            f"{label} {counts[n]}" for n, label in ((0, "none"), (1, "1"), (2, "2"), (3, "3+"))
        ))
    for failure in failures:
        print("FAIL", failure)
    print("all checks passed" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
