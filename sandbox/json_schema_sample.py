"""An instance of a JSON schema, filled with persona-flavoured text: structured LLM output.

Covers what models are asked for in practice (and what pydantic's model_json_schema emits):
type (incl. lists), properties/required, items/prefixItems, min/maxItems, uniqueItems,
min/maxLength, enum/const, minimum/maximum (incl. exclusive) and multipleOf, anyOf/oneOf
(first non-null branch), allOf (merged), local $ref/$defs, and common string formats.
`pattern` is not honoured: no general way to invent a string matching a regex.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from typing import Any

from sandbox.persona_text import PersonaVoice

_SHORT = ("title", "headline", "name", "hook", "subject", "label", "topic", "mood")
_LONG = ("script", "body", "content", "story", "transcript", "article")


class SchemaSampler:
    def __init__(self, root: dict[str, Any], voice: PersonaVoice) -> None:
        self.root = root
        self.voice = voice
        self.rng = voice.rng

    def sample(self, schema: Any = None, name: str = "") -> Any:
        schema = self.root if schema is None else schema
        if schema is True or schema == {}:
            return self._string({}, name)
        if not isinstance(schema, dict):
            return None
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = [self._resolve(s) for s in schema[key]]
                usable = [s for s in options if s.get("type") != "null"] or options
                return self.sample(usable[0], name)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema)
        if kind == "array":
            return self._array(schema, name)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, name)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise ValueError(f"only local $ref is supported, not {ref!r}")
            target: Any = self.root
            for part in filter(None, ref[1:].split("/")):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        if schema.get("allOf"):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part)
                props = {**merged.get("properties", {}), **part.get("properties", {})}
                required = [*merged.get("required", []), *part.get("required", [])]
                merged = {**merged, **part, "properties": props, "required": required}
            schema = merged
        return schema

    def _object(self, schema: dict[str, Any]) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        out = {key: self.sample(sub, key) for key, sub in props.items()}
        for key in schema.get("required", []):
            if key not in out:
                out[key] = self._string({}, key)
        if not out and schema.get("additionalProperties") is not False:
            out["text"] = self.voice.paragraph()
        return out

    def _array(self, schema: dict[str, Any], name: str) -> list[Any]:
        prefix: list[Any] = schema.get("prefixItems", [])
        low = max(int(schema.get("minItems", 0)), len(prefix))
        # A tuple (prefixItems without items) has exactly its listed items unless told more.
        default_high = low if prefix and "items" not in schema else max(low, 5)
        high = int(schema.get("maxItems", default_high))
        if schema.get("items") is False:  # nothing allowed past the prefix
            high = min(high, len(prefix))
        count = self.rng.randint(max(low, min(3, high)), max(low, high))
        items = schema.get("items", {})
        out: list[Any] = []
        for index in range(count):
            sub = prefix[index] if index < len(prefix) else items
            value = self.sample(sub, name)
            for _ in range(8):  # small vocabularies repeat: draw again, as a model would vary
                if value not in out:
                    break
                value = self.sample(sub, name)
            if value in out and len(out) >= low:
                break  # no distinct value left; stop short rather than repeat
            if value in out and isinstance(value, str) and schema.get("uniqueItems"):
                value = f"{value}{len(out) + 1}"  # minItems still needs a distinct string
            out.append(value)
        return out

    def _integer(self, schema: dict[str, Any]) -> int:
        low, high = _bounds(schema, integer=True)
        step = schema.get("multipleOf")
        if step:
            first, last = math.ceil(low / step), math.floor(high / step)
            return int(self.rng.randint(first, max(first, last)) * step)
        return self.rng.randint(int(low), int(high))

    def _number(self, schema: dict[str, Any]) -> float:
        low, high = _bounds(schema, integer=False)
        step = schema.get("multipleOf")
        if step:
            first, last = math.ceil(low / step), math.floor(high / step)
            return self.rng.randint(first, max(first, last)) * step
        value = round(self.rng.uniform(low, high), 2)
        return min(max(value, low), high)

    def _string(self, schema: dict[str, Any], name: str) -> str:
        text = self._string_by_format(schema.get("format")) or self._string_by_name(name)
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        while len(text) < low:
            text = f"{text} {self.voice.sentence()}".strip()
        if high is not None and len(text) > high:
            text = _shorten(text, int(high), low)
        return text

    def _string_by_format(self, fmt: str | None) -> str | None:
        rng = self.rng
        stamp = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(
            365 * 86400))
        word = re.sub(r"[^a-z0-9]", "", self.voice.word().lower()) or "hello"
        return {
            "date-time": stamp.isoformat().replace("+00:00", "Z"),
            "date": stamp.date().isoformat(),
            "time": stamp.time().isoformat() + "Z",
            "email": f"{word}@example.com",
            "uri": f"https://example.com/{word}",
            "url": f"https://example.com/{word}",
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        }.get(fmt or "")

    def _string_by_name(self, name: str) -> str:
        key = name.lower()
        if "hashtag" in key or key in ("tags", "tag"):
            return self.voice.hashtag()
        if any(part in key for part in _SHORT):
            return self.voice.title()
        if any(part in key for part in _LONG):
            return self.voice.paragraph(self.rng.randint(2, 4))
        if key in ("keywords", "keyword", "words", "topics"):
            return self.voice.word()
        return self.voice.paragraph(self.rng.randint(1, 2), opener=False)


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind:
        return str(kind)
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[float, float]:
    nudge = 1 if integer else 0.01
    low, high = schema.get("minimum"), schema.get("maximum")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    # Draft 4 spells exclusivity as a boolean beside minimum/maximum; later drafts as a number.
    if isinstance(ex_low, bool):
        low = low + nudge if ex_low and low is not None else low
    elif ex_low is not None:
        low = ex_low + nudge
    if isinstance(ex_high, bool):
        high = high - nudge if ex_high and high is not None else high
    elif ex_high is not None:
        high = ex_high - nudge
    if low is None:
        low = 0 if high is None or high >= 0 else high - 100
    if high is None:
        high = low + 100
    if integer:
        low, high = math.ceil(low), math.floor(high)
    return low, max(low, high)


def _shorten(text: str, high: int, low: int) -> str:
    """At most `high` characters, cut after a sentence or else a word when that keeps >= `low`."""
    cut = text[:high]
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", cut)]
    if ends and ends[-1] >= max(low, 1):
        return cut[:ends[-1]]
    if len(text) > high and " " in cut:
        at_word = cut.rsplit(" ", 1)[0].rstrip(" ,;:-")
        if len(at_word) >= max(low, 1):
            return at_word
    return cut
