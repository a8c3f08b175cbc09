"""Generation: one interface over local transformers models and OpenAI-compatible servers."""
