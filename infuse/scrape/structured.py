"""Records from a page by a JSON Schema, through any `ChatModel`, with evidence for every field.

The model is asked for the schema *with evidence*: every leaf field becomes
`{"value": ..., "evidence": "<exact quote from the page>"}` (`evidence_schema`). The answer
is parsed and validated (a bad answer is retried with the error, a bounded number of times),
then every field is checked: its evidence quote must occur in the page text and its value in
its quote, or the value is set to null and the field is flagged. A small model that invents a
price therefore yields `price: null` and a flag, never a made-up number.

Long pages are cut into chunks on paragraph boundaries; each chunk is extracted alone and
the results merged (objects: the first non-null value per field; lists: concatenated, with
repeats dropped). Structured output goes through `ChatModel.generate(..., response_format=)`
(constrained decoding locally, the JSON-schema response format on servers); a model whose
`generate` lacks that argument still gets the schema in the prompt and the same checks.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import BackendError, ConfigError

SYSTEM_PROMPT = (
    "You extract facts from one web page into JSON that follows the given JSON Schema. "
    'Every field is an object {"value": ..., "evidence": ...}: "evidence" is a short quote '
    "copied exactly, word for word, from the page, that contains the value. Use only what the "
    "page says. When the page does not say, give null for both value and evidence. "
    "Answer with the JSON only."
)
LEAF_TYPES = {"string", "number", "integer", "boolean", "null"}


def load_schema(spec: str | Path | dict | type) -> dict[str, Any]:
    """A JSON Schema from a dict, a .json file, a pydantic model class, or "module:Model".

    `$ref`s into `$defs` are inlined (the evidence wrapping needs the whole tree).
    Raises ConfigError naming the file or model.
    """
    if isinstance(spec, dict):
        schema = spec
    elif isinstance(spec, type) and hasattr(spec, "model_json_schema"):
        schema = spec.model_json_schema()
    elif isinstance(spec, (str, Path)) and Path(spec).is_file():
        try:
            schema = json.loads(Path(spec).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"--schema {spec}: not JSON ({error.msg}, line {error.lineno})."
            ) from error
    elif isinstance(spec, str) and ":" in spec:
        module_name, _, name = spec.partition(":")
        try:
            model = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as error:
            raise ConfigError(
                f"--schema {spec}: cannot import {name} from {module_name} ({error})."
            ) from error
        if not hasattr(model, "model_json_schema"):
            raise ConfigError(f"--schema {spec}: {name} is not a pydantic model.")
        schema = model.model_json_schema()
    else:
        raise ConfigError(
            f"--schema {spec}: no such file; give a .json JSON Schema or module:PydanticModel."
        )
    if not isinstance(schema, dict) or schema.get("type") not in ("object", "array"):
        raise ConfigError(f"--schema {spec}: the top level must be an object or array schema.")
    return _inline_refs(schema, schema.get("$defs", schema.get("definitions", {})))


def _inline_refs(node: Any, definitions: dict[str, Any], depth: int = 0) -> Any:
    if depth > 32:
        raise ConfigError(
            "--schema: $ref nesting deeper than 32 (a recursive model is not supported)."
        )
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in definitions:
                raise ConfigError(f"--schema: $ref {node['$ref']} is not in $defs.")
            return _inline_refs(definitions[name], definitions, depth + 1)
        return {
            key: _inline_refs(value, definitions, depth)
            for key, value in node.items()
            if key not in ("$defs", "definitions")
        }
    if isinstance(node, list):
        return [_inline_refs(item, definitions, depth) for item in node]
    return node


def _is_leaf(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(kind) <= LEAF_TYPES
    if kind in LEAF_TYPES or "enum" in schema or "const" in schema:
        return True
    options = schema.get("anyOf") or schema.get("oneOf")
    return bool(options) and all(_is_leaf(option) for option in options)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    schema = {key: value for key, value in schema.items() if key not in ("title", "default")}
    if "anyOf" in schema or "oneOf" in schema:
        key = "anyOf" if "anyOf" in schema else "oneOf"
        options = schema[key]
        if not any(option.get("type") == "null" for option in options):
            schema[key] = [*options, {"type": "null"}]
        return schema
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    kind = schema.get("type")
    if isinstance(kind, str) and kind != "null":
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    return schema


def evidence_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every leaf field replaced by {"value": leaf or null, "evidence": quote or null}."""
    if _is_leaf(schema):
        return {
            "type": "object",
            "properties": {"value": _nullable(schema), "evidence": {"type": ["string", "null"]}},
            "required": ["value", "evidence"],
            "additionalProperties": False,
        }
    if schema.get("type") == "array":
        wrapped = {
            "type": "array",
            "items": evidence_schema(schema.get("items", {"type": "string"})),
        }
        for key in ("minItems", "maxItems"):
            if key in schema:
                wrapped[key] = schema[key]
        return wrapped
    properties = schema.get("properties", {})
    return {
        "type": "object",
        "properties": {name: evidence_schema(sub) for name, sub in properties.items()},
        "required": list(properties),
        "additionalProperties": False,
    }


def normalise(text: str) -> str:
    """Text compared for evidence: Markdown marks dropped, whitespace collapsed, case folded."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [label](url) -> label
    text = re.sub(r"[*_`|#>]+", " ", text)
    return " ".join(text.split()).casefold()


def _value_in_quote(value: Any, quote: str) -> bool:
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, (int, float)):
        number = f"{value:.10g}"
        digits = quote.replace(",", "").replace("\u202f", "").replace(" ", "")
        return number in digits or (number.endswith(".0") and number[:-2] in digits)
    return normalise(str(value)) in quote


@dataclass
class ExtractionResult:
    """One page's record: `data` (schema-shaped, unverified fields nulled), the evidence quote
    per field path, and `flags` for every field that was nulled or failed validation."""

    url: str
    data: Any = None
    evidence: dict[str, str] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_evidence(
    answer: Any, schema: dict[str, Any], page_text: str, result: ExtractionResult, path: str = ""
) -> Any:
    """Unwrap an evidence-shaped answer into plain data, nulling fields whose quote is not in the page."""
    if _is_leaf(schema):
        if not isinstance(answer, dict):
            return None
        value, quote = answer.get("value"), answer.get("evidence")
        if value is None:
            return None
        where = path or "(value)"
        normal_quote = normalise(quote or "")
        if not normal_quote:
            result.flags.append(
                {"field": where, "reason": "no evidence quote; value nulled", "value": value}
            )
            return None
        if normal_quote not in page_text:
            result.flags.append(
                {
                    "field": where,
                    "reason": "evidence not found in the page; value nulled",
                    "value": value,
                    "evidence": quote,
                }
            )
            return None
        if not _value_in_quote(value, normal_quote):
            result.flags.append(
                {
                    "field": where,
                    "reason": "value not in its evidence quote; value nulled",
                    "value": value,
                    "evidence": quote,
                }
            )
            return None
        result.evidence[where] = quote
        return value
    if schema.get("type") == "array":
        items = schema.get("items", {"type": "string"})
        checked = [
            check_evidence(item, items, page_text, result, f"{path}[{index}]")
            for index, item in enumerate(answer or [])
        ]
        return [item for item in checked if item is not None]  # an unproven item is no item
    if not isinstance(answer, dict):
        return None
    return {
        name: check_evidence(
            answer.get(name), sub, page_text, result, f"{path}.{name}" if path else name
        )
        for name, sub in schema.get("properties", {}).items()
    }


def split_text(text: str, max_chars: int) -> list[str]:
    """Paragraph-aligned pieces of at most `max_chars` (a longer paragraph is cut)."""
    pieces: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        while len(paragraph) > max_chars:
            pieces += [current] if current else []
            current = ""
            pieces.append(paragraph[:max_chars])
            paragraph = paragraph[max_chars:]
        if current and len(current) + len(paragraph) + 2 > max_chars:
            pieces.append(current)
            current = paragraph
        else:
            current = f"{current}\n\n{paragraph}" if current else paragraph
    if current.strip():
        pieces.append(current)
    return pieces or [""]


def merge(first: Any, second: Any) -> Any:
    """Merge two chunk results: objects field by field (first non-null wins), lists concatenated."""
    if first is None:
        return second
    if second is None:
        return first
    if isinstance(first, dict) and isinstance(second, dict):
        return {
            key: merge(first.get(key), second.get(key)) for key in dict.fromkeys([*first, *second])
        }
    if isinstance(first, list) and isinstance(second, list):
        seen = {json.dumps(item, sort_keys=True, default=str) for item in first}
        return first + [
            item for item in second if json.dumps(item, sort_keys=True, default=str) not in seen
        ]
    return first


def _strip_fences(text: str) -> str:
    text = text.strip()
    match = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.S)
    return match.group(1) if match else text


def _accepts_response_format(model: Any) -> bool:
    try:
        parameters = inspect.signature(model.generate).parameters
    except (TypeError, ValueError):
        return False
    return "response_format" in parameters or any(
        p.kind is p.VAR_KEYWORD for p in parameters.values()
    )


def _ask(
    model: Any,
    schema: dict[str, Any],
    wrapped: dict[str, Any],
    url: str,
    chunk: str,
    *,
    max_retries: int,
    max_new_tokens: int,
    result: ExtractionResult,
) -> Any:
    """One chunk: ask, parse, validate; retry with the error; return the checked data or None."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(wrapped)
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"JSON Schema:\n{json.dumps(wrapped)}\n\nPage {url}:\n\n{chunk}",
        },
    ]
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "temperature": 0.0}
    if _accepts_response_format(model):
        options["response_format"] = wrapped
    problem = ""
    for _attempt in range(max_retries + 1):
        result.attempts += 1
        text = ""
        try:
            text = model.generate(messages, **options).text
            answer = json.loads(_strip_fences(text))
            errors = sorted(validator.iter_errors(answer), key=lambda error: list(error.path))
            if not errors:
                return check_evidence(answer, schema, normalise(chunk), result)
            where = "/".join(str(part) for part in errors[0].path) or "(top level)"
            problem = f"the JSON does not match the schema at {where}: {errors[0].message}"
        except json.JSONDecodeError as error:
            problem = f"the answer is not JSON ({error.msg} at character {error.pos})"
        except BackendError as error:
            problem = str(error)
        messages = [
            *messages[:2],
            {"role": "assistant", "content": text[:2000]},
            {
                "role": "user",
                "content": f"That answer is wrong: {problem}. Answer again with only JSON that follows the schema.",
            },
        ]
    result.flags.append(
        {
            "field": "(page part)",
            "reason": f"no valid answer after {max_retries + 1} attempts: {problem}",
        }
    )
    return None


def extract_record(
    text: str,
    *,
    url: str,
    schema: dict[str, Any],
    model: Any,
    max_retries: int = 2,
    chunk_chars: int = 6000,
    max_new_tokens: int = 1024,
) -> ExtractionResult:
    """The schema's record from one page's text (see the module docstring)."""
    result = ExtractionResult(url=url)
    wrapped = evidence_schema(schema)
    for chunk in split_text(text, chunk_chars):
        part = _ask(
            model,
            schema,
            wrapped,
            url,
            chunk,
            max_retries=max_retries,
            max_new_tokens=max_new_tokens,
            result=result,
        )
        result.data = merge(result.data, copy.deepcopy(part))
    # A field nulled in one part of the page but proven in another is not a problem.
    result.flags = [flag for flag in result.flags if flag["field"] not in result.evidence]
    if result.data is None:
        result.error = result.flags[-1]["reason"] if result.flags else "no answer"
    return result
