"""Question generation reads what the knowledge base reads: quickstart on a folder of HTML, text
and a real PDF with no questions.jsonl gets past the reading (it crashed on `not UTF-8`)."""

from __future__ import annotations

import json
from pathlib import Path

from scripted_chat import ScriptedChatServer

from infuse.llm import load_chat_model
from infuse.quickstart import _ensure_questions, plan_quickstart

PAIRS = {
    "rocket": "Q: What was the first flight of the rocket?\nA: a great distribution success\n",
    "gateway": "Q: Which port does the gateway listen on?\nA: 8731\n",
    "Backups": "Q: At what time do the backups run?\nA: 02:00\n",
}


def make_pdf(path: Path) -> None:
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(TTFont("Vera", str(Path(reportlab.__file__).parent / "fonts" / "Vera.ttf")))
    pdf = canvas.Canvas(str(path))
    pdf.setFont("Vera", 12)
    pdf.drawString(72, 760, "The \ufb01rst \ufb02ight of the rocket was a great distri-")
    pdf.drawString(72, 744, "bution success.")
    pdf.showPage()
    pdf.save()


def reply(messages):
    user = messages[-1]["content"]
    return next((text for key, text in PAIRS.items() if key in user), "no pairs")


def test_quickstart_generates_questions_from_html_text_and_a_real_pdf(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    make_pdf(folder / "manual.pdf")
    (folder / "page.html").write_text(
        "<html><body><div>The gateway listens on port 8731.</div></body></html>", encoding="utf-8")
    (folder / "ops.txt").write_text("Backups run at 02:00 every night.", encoding="utf-8")
    plan = plan_quickstart(folder, output=tmp_path / "out", on_gpu=False)
    assert sorted(path.name for path in plan.documents) == ["manual.pdf", "ops.txt", "page.html"]
    said = []
    with ScriptedChatServer(reply) as server:
        _ensure_questions(plan, said.append, chat_model=load_chat_model("w", base_url=server.base_url))
        prompts = [request["messages"][-1]["content"] for request in server.requests]
    assert len(prompts) == 3
    assert any("first flight of the rocket was a great distribution success" in p for p in prompts)
    assert not any("%PDF" in p or "<div>" in p for p in prompts)
    rows = [json.loads(line) for path in (plan.train_data, plan.questions)
            for line in Path(path).read_text(encoding="utf-8").splitlines()]
    written = [row for row in rows if "from-model" in row.get("tags", [])]
    assert sorted(row["answer"] for row in written) == ["02:00", "8731", "a great distribution success"]
    assert {row["source"] for row in written} == {"manual.pdf", "page.html", "ops.txt"}
    assert any("generated 4 question/answer pairs in " in line and ": the model wrote 3 usable "
               "ones from the 3 of 3 passages it read, plus 1 read off the text; they cover 3 of 3 "
               "documents: 3 to train the LoRA, 1 held out for the eval" in line for line in said)
    unanswerable = [row for row in rows if row["answer"] is None]
    assert len(unanswerable) == 2 and all("unanswerable" in row["tags"] for row in unanswerable)
