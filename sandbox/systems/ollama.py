"""Ollama: /api/chat, /api/generate (NDJSON streaming by default), /api/tags, /api/version.

Answers are invented, not inferred: text in the persona of the system prompt, or JSON that
fits the requested schema, chosen by an RNG keyed on the request content, so the same
request always gets the same answer (whatever `stream` says) and each character its own
voice. Errors are Ollama's: {"error": "..."} with 400 for bad requests, 404 for an unknown
model (the python client raises ollama.ResponseError with that status).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox.json_schema_sample import SchemaSampler
from sandbox.persona_text import PersonaVoice
from sandbox.system import System, SystemContext

VERSION = "0.12.6"
MODIFIED_AT = "2025-05-01T09:30:00.123456789Z"
NS_PER_MS = 1_000_000


def _model(name: str, size: int, family: str, params: str) -> dict[str, Any]:
    return {
        "name": name, "model": name, "modified_at": MODIFIED_AT, "size": size,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {"parent_model": "", "format": "gguf", "family": family,
                    "families": [family], "parameter_size": params,
                    "quantization_level": "Q4_K_M"},
    }


MODELS = {m["name"]: m for m in (
    _model("llama3.1:8b", 4_920_753_328, "llama", "8.0B"),
    _model("qwen2.5:7b", 4_683_087_332, "qwen2", "7.6B"),
)}

# Field -> (JSON types Go's decoder accepts, the Go type its error message names).
_STR, _BOOL, _MAP = ((str,), "string"), ((bool,), "bool"), ((dict,), "map[string]interface {}")
_DURATION = ((str, int, float), "*api.Duration")
_CHAT_FIELDS = {"model": _STR, "messages": ((list,), "[]api.Message"), "stream": _BOOL,
                "options": _MAP, "tools": ((list,), "api.Tools"), "keep_alive": _DURATION,
                "think": ((bool, str), "*api.ThinkValue")}
_GENERATE_FIELDS = {"model": _STR, "prompt": _STR, "suffix": _STR, "system": _STR,
                    "template": _STR, "context": ((list,), "[]int"), "stream": _BOOL,
                    "raw": _BOOL, "images": ((list,), "[]api.ImageData"), "options": _MAP,
                    "keep_alive": _DURATION, "think": ((bool, str), "*api.ThinkValue")}
_TOKEN = re.compile(r"\s*\S+")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def _read_json(request: Request, fields: dict[str, tuple[tuple[type, ...], str]],
                     struct: str) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("missing request body")
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:  # worded like Go's encoding/json
        if exc.pos >= len(exc.doc.rstrip()):
            raise BadRequest("unexpected EOF") from None
        char = exc.doc[exc.pos]
        raise BadRequest(f"invalid character {char!r} looking for beginning of value") from None
    except UnicodeDecodeError:
        raise BadRequest("invalid character looking for beginning of value") from None
    if not isinstance(body, dict):
        raise BadRequest(f"json: cannot unmarshal {_json_kind(body)} into Go value of type "
                         f"api.{struct}")
    for name, (kinds, go_type) in fields.items():
        value = body.get(name)
        fits = bool in kinds if isinstance(value, bool) else isinstance(value, kinds)
        if value is not None and not fits:
            raise BadRequest(f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                             f"{struct}.{name} of type {go_type}")
    return body


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def _check_model(body: dict[str, Any]) -> str:
    name = body.get("model")
    if not name:
        raise BadRequest("model is required")
    full = name if ":" in name else f"{name}:latest"
    if full not in MODELS:
        raise BadRequest(f'model "{name}" not found, try pulling it first', 404)
    return full


def _format(body: dict[str, Any]) -> Any:
    fmt = body.get("format")
    if fmt in (None, ""):
        return None
    if fmt == "json" or isinstance(fmt, dict):
        return fmt
    raise BadRequest('invalid format: expected "json" or a valid JSON schema')


def _options(body: dict[str, Any]) -> tuple[int | None, list[str]]:
    options = body.get("options") or {}
    limit = options.get("num_predict")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise BadRequest("json: cannot unmarshal value into Go struct field "
                         "Options.num_predict of type int")
    stop = options.get("stop") or []
    stop = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]
    return (limit if limit and limit > 0 else None), stop


def _answer(rng: random.Random, persona: str, prompt: str, fmt: Any) -> str:
    voice = PersonaVoice(persona, prompt, rng)
    if isinstance(fmt, dict):
        return json.dumps(SchemaSampler(fmt, voice).sample())
    if fmt == "json":
        return json.dumps({"text": voice.paragraph()})
    return voice.paragraph()


def _generate_tokens(text: str, limit: int | None, stop: list[str]) -> tuple[list[str], str]:
    for marker in stop:
        if marker and marker in text:
            text = text[:text.index(marker)]
    tokens = _TOKEN.findall(text)
    if limit is not None and len(tokens) > limit:
        return tokens[:limit], "length"
    return tokens, "stop"


def _stats(rng: random.Random, prompt_text: str, eval_count: int) -> dict[str, int]:
    prompt_count = max(1, round(len(_TOKEN.findall(prompt_text)) * 1.3))
    load = rng.randint(15, 60) * NS_PER_MS
    prompt_ns = prompt_count * rng.randint(300_000, 600_000)
    eval_ns = eval_count * rng.randint(15, 30) * NS_PER_MS
    return {
        "total_duration": load + prompt_ns + eval_ns + rng.randint(1, 5) * NS_PER_MS,
        "load_duration": load, "prompt_eval_count": prompt_count,
        "prompt_eval_duration": prompt_ns, "eval_count": eval_count, "eval_duration": eval_ns,
    }


def _respond(stream: bool, model: str, tokens: list[str], final: dict[str, Any],
             chunk: Any) -> Response:
    """One JSON object, or NDJSON: a chunk per token then the done object."""
    if not stream:
        return JSONResponse(final)

    async def lines() -> AsyncIterator[bytes]:
        for token in tokens:
            piece = {"model": model, "created_at": _now(), **chunk(token), "done": False}
            yield json.dumps(piece).encode() + b"\n"
        yield json.dumps({**final, "created_at": _now(), **chunk("")}).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _check_messages(messages: Any) -> None:
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role", ""), str) \
                or not isinstance(message.get("content", ""), str):
            raise BadRequest("json: cannot unmarshal into Go struct field "
                             "ChatRequest.messages of type api.Message")


def _unloaded(body: dict[str, Any]) -> str:
    """done_reason of a request with nothing to answer: Ollama loads (or with keep_alive 0
    unloads) the model."""
    return "unload" if body.get("keep_alive") in (0, "0", "0s") else "load"


def _error(exc: BadRequest) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


class OllamaSystem:
    """Ollama's HTTP API with two models whose answers are invented: deterministic persona
    text or schema-shaped JSON, streamed as NDJSON or whole."""

    def __init__(self, ctx: SystemContext) -> None:
        self.ctx = ctx
        self.state = ctx.state

    # --- API routes ----------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        try:
            body = await _read_json(request, _CHAT_FIELDS, "ChatRequest")
            _check_model(body)
            fmt = _format(body)
            limit, stop = _options(body)
            messages = body.get("messages") or []
            _check_messages(messages)
        except BadRequest as exc:
            return _error(exc)
        if not messages:
            return JSONResponse({"model": body["model"], "created_at": _now(),
                                 "message": {"role": "assistant", "content": ""},
                                 "done_reason": _unloaded(body), "done": True})
        persona = "\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        key = {k: body.get(k) for k in ("model", "messages", "format", "options", "tools")}
        rng = self.ctx.rng("chat", key)
        tokens, reason = _generate_tokens(_answer(rng, persona, users[-1] if users else "", fmt),
                                          limit, stop)
        prompt_text = " ".join(m.get("content", "") for m in messages)
        final = {"model": body["model"], "created_at": _now(),
                 "message": {"role": "assistant", "content": "".join(tokens)},
                 "done_reason": reason, "done": True, **_stats(rng, prompt_text, len(tokens))}
        return _respond(body.get("stream", True) is not False, body["model"], tokens, final,
                        lambda t: {"message": {"role": "assistant", "content": t}})

    async def generate(self, request: Request) -> Response:
        try:
            body = await _read_json(request, _GENERATE_FIELDS, "GenerateRequest")
            _check_model(body)
            fmt = _format(body)
            limit, stop = _options(body)
        except BadRequest as exc:
            return _error(exc)
        prompt, system = body.get("prompt", ""), body.get("system", "")
        if not prompt:
            return JSONResponse({"model": body["model"], "created_at": _now(), "response": "",
                                 "done": True, "done_reason": _unloaded(body)})
        key = {k: body.get(k) for k in ("model", "prompt", "system", "format", "options",
                                        "suffix", "context")}
        rng = self.ctx.rng("generate", key)
        tokens, reason = _generate_tokens(_answer(rng, system, prompt, fmt), limit, stop)
        stats = _stats(rng, f"{system} {prompt}", len(tokens))
        final: dict[str, Any] = {"model": body["model"], "created_at": _now(),
                                 "response": "".join(tokens), "done": True,
                                 "done_reason": reason}
        if not body.get("raw"):
            count = stats["prompt_eval_count"] + stats["eval_count"]
            final["context"] = [rng.randrange(1, 128_000) for _ in range(count)]
        final.update(stats)
        return _respond(body.get("stream", True) is not False, body["model"], tokens, final,
                        lambda t: {"response": t})

    @staticmethod
    async def tags(request: Request) -> Response:
        return JSONResponse({"models": list(MODELS.values())})

    @staticmethod
    async def version(request: Request) -> Response:
        return JSONResponse({"version": VERSION})

    @staticmethod
    async def running(request: Request) -> Response:
        return JSONResponse({"models": []})

    @staticmethod
    async def root(request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    @staticmethod
    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("404 page not found", status_code=404)  # Go's default

    @staticmethod
    async def not_allowed(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("405 method not allowed", status_code=405)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.root, methods=["GET", "HEAD"]),
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/generate", self.generate, methods=["POST"]),
            Route("/api/tags", self.tags, methods=["GET", "HEAD"]),
            Route("/api/version", self.version, methods=["GET", "HEAD"]),
            Route("/api/ps", self.running, methods=["GET"]),
        ]

    def system(self) -> System:
        app = Starlette(routes=self.routes(),
                        exception_handlers={404: self.not_found, 405: self.not_allowed})
        return System(app=app)


def create(ctx: SystemContext) -> System:
    return OllamaSystem(ctx).system()
