"""The Ollama stand-in, driven by the official python client and raw HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import ollama
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waifugen_assets.planning.plans import PLAN_SCHEMA

MODEL = "llama3.1:8b"
AIKO = ("You are Aiko, a virtual creator. Persona: ramen critic, retro arcade gamer, "
        "rainy Tokyo nights, cats.")
MINA = "You are Mina, a virtual creator. Persona: alpine hiking, sourdough baking, jazz vinyl."
# Shaped like pydantic's model_json_schema(): $defs/$ref, Optional as anyOf-with-null, enums.
PYDANTIC_STYLE_SCHEMA: dict[str, Any] = {
    "$defs": {
        "Slot": {
            "type": "object", "title": "Slot",
            "properties": {
                "hook": {"type": "string", "minLength": 10, "maxLength": 40},
                "tier": {"enum": ["standard", "premium"], "type": "string"},
                "duration_seconds": {"type": "integer", "minimum": 8, "maximum": 30},
                "energy": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "sponsored": {"type": "boolean"},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            },
            "required": ["hook", "tier", "duration_seconds", "energy", "sponsored"],
        },
    },
    "type": "object",
    "properties": {
        "slots": {"type": "array", "items": {"$ref": "#/$defs/Slot"}, "minItems": 2,
                  "maxItems": 2},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True,
                 "minItems": 4},
        "published_at": {"type": "string", "format": "date-time"},
    },
    "required": ["slots", "tags", "published_at"],
}

MISC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "kind": {"const": "reel"},
        "score": {"type": ["number", "null"], "minimum": 2.5, "maximum": 3, "multipleOf": 0.25},
        "count": {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 13},
        "grid": {"type": "array", "minItems": 2, "maxItems": 2,
                 "items": {"type": "array", "items": {"type": "integer", "maximum": -50}}},
        "pair": {"type": "array", "prefixItems": [{"type": "string", "format": "date"},
                                                  {"type": "boolean"}]},
        "contact": {"type": "string", "format": "email"},
        "merged": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}},
                              "required": ["a"]},
                             {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
        "caption": {"type": "string", "minLength": 120, "maxLength": 140},
    },
    "required": ["kind", "score", "count", "grid", "pair", "contact", "merged", "caption"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def client(sandbox_server: Any) -> ollama.Client:
    return ollama.Client(host=sandbox_server.url + "/ollama")


@pytest.fixture(scope="module")
def http(sandbox_server: Any) -> Iterator[httpx.Client]:
    """Raw HTTP to the Ollama mount (one client: building one costs ~30 ms of TLS setup)."""
    with httpx.Client(base_url=sandbox_server.url + "/ollama") as client:
        yield client


def chat(client: ollama.Client, system: str, user: str, **kwargs: Any) -> ollama.ChatResponse:
    return client.chat(model=MODEL, messages=[{"role": "system", "content": system},
                                              {"role": "user", "content": user}], **kwargs)


def test_list_version_and_root(client: ollama.Client, http: httpx.Client) -> None:
    names = {m.model for m in client.list().models}
    assert {"llama3.1:8b", "qwen2.5:7b"} <= names
    raw = http.get("/api/tags").json()["models"][0]
    assert raw["name"] == raw["model"]
    assert len(raw["digest"]) == 64
    assert raw["size"] > 10**9
    assert set(raw["details"]) >= {"format", "family", "families", "parameter_size",
                                   "quantization_level"}
    assert http.get("/api/version").json()["version"]
    assert http.get("/").text == "Ollama is running"


def test_chat_answers_like_ollama(client: ollama.Client) -> None:
    response = chat(client, AIKO, "Plan a video about breakfast.")
    assert response.model == MODEL
    assert response.done is True
    assert response.done_reason == "stop"
    assert response.message.role == "assistant"
    assert len(response.message.content or "") > 40
    assert response.eval_count
    assert response.prompt_eval_count
    assert response.total_duration
    assert response.total_duration > response.eval_duration > 0
    assert response.created_at
    assert response.created_at.endswith("Z")


def test_generate_answers_like_ollama(client: ollama.Client) -> None:
    response = client.generate(model="qwen2.5:7b", system=MINA, prompt="Say hi to my followers")
    assert response.done is True
    assert response.done_reason == "stop"
    assert response.response
    assert "Mina" in response.response
    assert response.context
    assert len(response.context) == (response.prompt_eval_count or 0) \
        + (response.eval_count or 0)


def test_same_request_same_text_and_personas_differ(client: ollama.Client) -> None:
    first = chat(client, AIKO, "Plan a video about breakfast.").message.content
    again = chat(client, AIKO, "Plan a video about breakfast.").message.content
    other = chat(client, MINA, "Plan a video about breakfast.").message.content
    assert first == again
    assert first != other
    assert "Aiko" in (first or "")
    assert "Mina" in (other or "")
    # Persona-aware: each text uses its own persona's words, not the other's.
    aiko_words = ("ramen", "critic", "retro", "arcade", "gamer", "rainy", "tokyo", "nights",
                  "cats")
    assert any(w in (first or "").lower() for w in aiko_words)
    assert any(w in (other or "").lower() for w in ("alpine", "hiking", "sourdough", "baking",
                                                    "jazz", "vinyl"))
    assert "sourdough" not in (first or "")
    assert "ramen" not in (other or "")


@pytest.mark.parametrize("schema", [PLAN_SCHEMA, PYDANTIC_STYLE_SCHEMA, MISC_SCHEMA],
                         ids=["plan", "pydantic", "misc"])
@pytest.mark.parametrize("persona", [AIKO, MINA])
def test_json_schema_format_is_honoured(client: ollama.Client, schema: dict[str, Any],
                                        persona: str) -> None:
    content = chat(client, persona, "Plan video 1 as JSON.", format=schema,
                   options={"seed": 3}).message.content
    data = json.loads(content or "")
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(data)
    if "hashtags" in data:
        assert all(tag.startswith("#") and len(tag) > 1 for tag in data["hashtags"])
        assert len(set(data["hashtags"])) == len(data["hashtags"])


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(persona=st.text(min_size=0, max_size=80), max_length=st.integers(1, 60),
       min_items=st.integers(0, 4), extra=st.integers(0, 3))
def test_any_persona_gets_schema_valid_json(client: ollama.Client, persona: str,
                                            max_length: int, min_items: int, extra: int) -> None:
    schema = {"type": "object", "properties": {
        "title": {"type": "string", "maxLength": max_length},
        "hashtags": {"type": "array", "items": {"type": "string", "maxLength": 30},
                     "minItems": min_items, "maxItems": min_items + extra, "uniqueItems": True},
        "rating": {"type": "integer", "minimum": -5, "exclusiveMaximum": 5},
    }, "required": ["title", "hashtags", "rating"]}
    content = chat(client, persona, "Plan it.", format=schema).message.content
    jsonschema.Draft202012Validator(schema).validate(json.loads(content or ""))


def test_format_json_gives_an_object(client: ollama.Client) -> None:
    content = chat(client, AIKO, "Describe your day as JSON.", format="json").message.content
    assert isinstance(json.loads(content or ""), dict)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/chat", {"model": MODEL, "messages": [{"role": "system", "content": AIKO},
                                                {"role": "user", "content": "hello"}]},
     "message"),
    ("/api/generate", {"model": MODEL, "system": AIKO, "prompt": "hello"}, "response"),
])
def test_streaming_is_the_default_and_ndjson(http: httpx.Client, path: str,
                                             body: dict[str, Any], field: str) -> None:
    url = path
    with http.stream("POST", url, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert len(lines) > 3
    *chunks, final = lines
    assert all(c["done"] is False and c["model"] == MODEL and "created_at" in c for c in chunks)
    assert final["done"] is True
    assert final["done_reason"] == "stop"
    assert final["eval_count"] == len(chunks)
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                "eval_duration"):
        assert isinstance(final[key], int)
        assert final[key] > 0

    def text(obj: dict[str, Any]) -> str:
        return obj["message"]["content"] if field == "message" else obj["response"]

    whole = http.post(url, json={**body, "stream": False}).json()
    assert "".join(text(c) for c in chunks) == text(whole)
    assert text(final) == ""


def test_num_predict_stops_with_length(client: ollama.Client) -> None:
    response = chat(client, AIKO, "Tell me a long story.", options={"num_predict": 5})
    assert response.done_reason == "length"
    assert response.eval_count == 5
    assert len((response.message.content or "").split()) == 5


def test_unknown_model_is_404(client: ollama.Client, http: httpx.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="mystery:1b", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "mystery:1b" not found, try pulling it first'
    raw = http.post("/api/generate",
                     json={"model": "mystery", "prompt": "hi", "stream": False})
    assert raw.status_code == 404
    assert raw.json() == {"error": 'model "mystery" not found, try pulling it first'}


@pytest.mark.parametrize(("path", "content", "message"), [
    ("/api/chat", b"", "missing request body"),
    ("/api/chat", b'{"model": "llama3.1:8b", "messages": [', "unexpected EOF"),
    ("/api/chat", b"not json", "invalid character 'n' looking for beginning of value"),
    ("/api/chat", b'{"messages": []}', "model is required"),
    ("/api/chat", b'{"model": "llama3.1:8b", "messages": "hi"}', "cannot unmarshal string"),
    ("/api/chat", b'{"model": "llama3.1:8b", "messages": [{"role": "user", "content": 3}]}',
     "cannot unmarshal"),
    ("/api/chat", b'{"model": "llama3.1:8b", "messages": [], "format": "yaml"}',
     "invalid format"),
    ("/api/generate", b'{"model": "llama3.1:8b", "prompt": 42}', "cannot unmarshal number"),
    ("/api/generate", b'{"model": "llama3.1:8b", "prompt": "x", "stream": "yes"}',
     "GenerateRequest.stream of type bool"),
])
def test_bad_requests_are_400(http: httpx.Client, path: str, content: bytes,
                              message: str) -> None:
    response = http.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_empty_messages_load_the_model(http: httpx.Client) -> None:
    url = "/api/chat"
    loaded = http.post(url, json={"model": MODEL, "messages": []}).json()
    assert loaded["done"] is True
    assert loaded["done_reason"] == "load"
    unloaded = http.post(url, json={"model": MODEL, "messages": [], "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload"


def test_requests_from_the_client_are_journaled(sandbox_server: Any) -> None:
    probe = uuid.uuid4().hex
    client = ollama.Client(host=sandbox_server.url + "/ollama", headers={"X-Probe": probe})
    chat(client, AIKO, "journal me", format=PLAN_SCHEMA)
    [entry] = [e for e in sandbox_server.journal("ollama") if e["headers"].get("x-probe") == probe]
    assert entry["path"] == "/api/chat"
    assert entry["status"] == 200
    assert entry["body"]["format"] == PLAN_SCHEMA
    assert entry["body"]["messages"][1]["content"] == "journal me"
