"""RAG passage format on the sample pack's CPU subset: how many words of each retrieved chunk
the model is shown, and whether the best passage comes first or last (nearest the question).

Changes `infuse.rag`'s module settings for this process only (this script is the one place
that does), then runs `infuse.eval.evaluate` with the rag method and prints one line per run:

    python bench/rag_passages.py 60 first cpu     # the current format
    python bench/rag_passages.py 100 last all     # 100-word windows, best passage last, all 48
Results: bench/results/lora_facts_cpu_subset.md.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import infuse.rag as rag  # noqa: E402
from infuse.eval import MethodOptions, evaluate  # noqa: E402
from infuse.eval.questions import load_questions  # noqa: E402
from infuse.samples import sample_pack  # noqa: E402

words, order, subset = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rag.PASSAGE_MAX_WORDS = words
orig_pt = rag.passage_text
rag.passage_text = lambda hit, question="", max_words=words: orig_pt(hit, question, max_words)
orig_bm = rag.build_messages
if order == "last":
    rag.build_messages = lambda q, hits, *a, **k: orig_bm(q, list(reversed(hits)), *a, **k)
p = sample_pack()
qs = [q for q in load_questions(p.questions) if subset == "all" or "cpu" in q.tags]
t = time.time()
options = MethodOptions(knowledge=list(p.documents), kb="/tmp/rag-passages-kb", max_new_tokens=32)
res = evaluate(qs, methods=["rag"], options=options, forgetting=False)
m = res.methods[0]
marks = "".join("+" if r.correct >= 1 else ("d" if r.no_answer else "-") for r in res.results_for("rag"))
print(f"words={words} order={order} subset={subset} acc={m.accuracy:.3f} hall={m.hallucination_rate} wdec={m.wrong_decline_rate:.3f} {marks} {time.time()-t:.0f}s")
for q, r in zip(qs, res.results_for("rag")):
    if r.correct < 1:
        print("   ", q.id, q.answer, "|", r.answer[:100])
