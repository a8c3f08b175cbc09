"""The dataset layer: load any instruction data, convert it to conversations, template, mask.

Public names (imported lazily, so `import infuse.data` stays cheap):
`load_dataset_file`, `to_conversations`, `to_sharegpt`, `standardize_sharegpt`,
`get_chat_template`, `render_conversation`, `encode_conversation`, `encode_conversations`,
`train_on_responses_only`, `convert_file` and `inspect_file` (the `infuse data convert` and
`infuse data inspect` twins).
"""

from __future__ import annotations

from infuse.exports import lazy_exports

_EXPORTS = {
    "synthesize_qa": "infuse.data.synth",
    "load_dataset_file": "infuse.data.loading",
    "to_conversations": "infuse.data.loading",
    "detect_format": "infuse.data.loading",
    "LoadedData": "infuse.data.loading",
    "to_sharegpt": "infuse.data.sharegpt",
    "standardize_sharegpt": "infuse.data.sharegpt",
    "extend_conversations": "infuse.data.sharegpt",
    "get_chat_template": "infuse.data.templates",
    "detect_template": "infuse.data.templates",
    "BUILTIN_TEMPLATES": "infuse.data.templates",
    "EncodedConversation": "infuse.data.masking",
    "masked_share": "infuse.data.masking",
    "summarize_labels": "infuse.data.masking",
    "guess_template_parts": "infuse.data.responses_only",
    "render_conversation": "infuse.data.templates",
    "encode_conversation": "infuse.data.masking",
    "encode_conversations": "infuse.data.masking",
    "train_on_responses_only": "infuse.data.responses_only",
    "convert_file": "infuse.data.convert",
    "ConvertResult": "infuse.data.convert",
    "inspect_file": "infuse.data.inspection",
    "InspectReport": "infuse.data.inspection",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
