"""The one validation kit for the project's hand-edited YAML files (roster, DM sequences).

ruamel.yaml's round-trip loader remembers the line of every key, value and list item; a
pydantic model (`YamlModel`) checks shape and types; each pydantic error's `loc` is looked up
in the loaded tree, so every problem reads `file:line: dotted.field.path: message`, and all of
a file's problems are reported at once (three typos should not take three deploys to fix).

Domain rules stay with the domain: validators on the models (raise ValueError with the
message), or post-checks on the loaded tree that call `YamlChecker.report` with a line from
`key_line` / `value_line` / `item_line` / `node_line`. The value validators are in
waifugen_assets.core.yaml_values, re-exported here so a file's models import one kit.
Core layer: no project imports beyond the kit.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.reader import ReaderError

from waifugen_assets.core.yaml_values import (
    UNSAFE_CHARACTERS,
    Bool,
    DisplayParagraph,
    DisplayText,
    OptionalText,
    Slug,
    Text,
    YamlModel,
    at_least_one,
    boolean,
    describe,
    display_text,
    format_version,
    integer,
    listing,
    mapping,
    number,
    one_of,
    optional_text,
    quote,
    show,
    slug,
    text,
    valid,
)

# Public names, with the value validators of yaml_values: a file's models import one kit.
__all__ = [
    "MAX_DEPTH",
    "UNSAFE_CHARACTERS",
    "Bool",
    "DisplayParagraph",
    "DisplayText",
    "OptionalText",
    "Slug",
    "Text",
    "YamlChecker",
    "YamlError",
    "YamlIssue",
    "YamlModel",
    "at_least_one",
    "boolean",
    "describe",
    "display_text",
    "format_version",
    "integer",
    "item_line",
    "join",
    "key_line",
    "listing",
    "mapping",
    "node_line",
    "number",
    "one_of",
    "optional_text",
    "quote",
    "show",
    "slug",
    "text",
    "valid",
    "value_line",
]

M = TypeVar("M", bound=BaseModel)

# Path segments that need no quoting in a field path (anything else is shown repr()-quoted,
# which also keeps a stray newline in a key from breaking the one-line format).
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
MAX_DEPTH = 32  # nesting far beyond any of the project's files; ruamel composes recursively


# --- issues -------------------------------------------------------------------------------


@dataclass(frozen=True)
class YamlIssue:
    """One problem in a file, printed as `file:line: field: message`."""

    file: str
    line: int | None  # 1-based; None when the problem has no place (file missing, empty)
    field: str  # e.g. "characters[2].slots[1]"; "" for file-level problems
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        text = " ".join(f"{where}:{field} {self.message}".splitlines())  # one issue, one line
        # and no character that acts on a terminal, whatever the input (or ruamel) put there
        return UNSAFE_CHARACTERS.sub(lambda found: f"\\u{ord(found[0]):04x}", text)


class YamlError(ValueError):
    """The file is unusable; `.issues` lists every problem found, in file order."""

    def __init__(self, issues: Sequence[YamlIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


# --- lines --------------------------------------------------------------------------------


def node_line(node: Any) -> int | None:
    lc = getattr(node, "lc", None)
    return None if lc is None else int(lc.line) + 1


def key_line(node: Any, key: Any) -> int | None:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):  # a key merged in with `<<: *anchor`
        return node_line(node)


def value_line(node: Any, key: Any) -> int | None:
    # A null value has no token of its own; ruamel places it where the next token starts.
    if node.get(key) is None:
        return key_line(node, key)
    try:
        return int(node.lc.value(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return node_line(node)


def item_line(node: Any, index: int) -> int | None:
    try:
        return int(node.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return node_line(node)


def join(path: str, key: Any) -> str:
    """`path.key`, with a key that is not a plain word quoted."""
    segment = key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else quote(show(key))
    return f"{path}.{segment}" if path else segment


# --- pydantic locations in the loaded tree ------------------------------------------------

_KEY = "[key]"  # pydantic's marker for an error in a mapping's key rather than its value
_ABSENT: Any = object()
_UNKNOWN = ("extra_forbidden", "invalid_key")
_TYPE_WORDS = {  # pydantic's own type errors (plain `int`, `str`... fields) in the kit's words
    "int_type": "must be a whole number", "float_type": "must be a number",
    "bool_type": "must be true or false", "string_type": "must be text",
    "model_type": "must be a mapping", "dict_type": "must be a mapping",
    "list_type": "must be a list", "tuple_type": "must be a list",
}


def _on_key(error: ErrorDetails) -> bool:
    """Whether the error is about a mapping's key (pydantic appends "[key]" to its loc)."""
    return error["loc"][-1:] == (_KEY,) and error["type"] not in (*_UNKNOWN, "missing")


def _walk(doc: Any, loc: tuple[int | str, ...]) -> tuple[str, list[tuple[Any, Any]]]:
    """The field path of `loc`, and the (container, key) steps of it found in the tree."""
    path, steps, node = "", [], doc
    for item in loc:
        key: Any = _ABSENT
        if isinstance(node, Mapping):  # pydantic names a key like `[a, b]` by its str()
            key = item if item in node else next(
                (k for k in node if show(k) == show(item)), _ABSENT)
        elif isinstance(node, list) and item in range(len(node)):
            key = item
        if key is _ABSENT:  # not in the tree (a missing field); name it as pydantic did
            node = _ABSENT
            path = f"{path}[{item}]" if isinstance(item, int) else join(path, item)
            continue
        path = f"{path}[{key}]" if isinstance(node, list) else join(path, key)
        steps.append((node, key))
        node = node[key]
    return path, steps


def _step_line(container: Any, key: Any, at: Literal["key", "value", "node"]) -> int | None:
    if at == "node" and hasattr(container[key], "lc"):
        return node_line(container[key])
    if isinstance(container, list):
        return item_line(container, key)
    return key_line(container, key) if at == "key" else value_line(container, key)


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """The keys the model allows at `loc` (a mapping), in declaration order; () if unknown."""
    kind: Any = model
    for item in (*loc, None):
        while True:  # Annotated[X, ...] -> X; X | None -> X
            origin = get_origin(kind)
            if origin is Annotated:
                kind = get_args(kind)[0]
            elif origin in (Union, types.UnionType):
                kind = next((a for a in get_args(kind) if a is not type(None)), None)
            else:
                break
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names = {field.alias or name: field for name, field in kind.model_fields.items()}
            if item is None:
                return tuple(names)
            kind = names[item].annotation if item in names else None
        elif get_origin(kind) in (list, tuple) and get_args(kind):
            kind = get_args(kind)[0]
        elif get_origin(kind) is dict and len(get_args(kind)) == 2:
            kind = get_args(kind)[1]
        else:
            return ()
    return ()  # pragma: no cover - the loop returns at the trailing None


def _unknown_field(key: Any, allowed: tuple[str, ...]) -> str:
    if not allowed:
        return "unknown field"
    close = difflib.get_close_matches(show(key), allowed, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(allowed)}"
    return f"unknown field ({hint})"


def _message(error: ErrorDetails) -> str:
    if error["type"] in ("value_error", "assertion_error") and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])  # a validator's own message
    words = _TYPE_WORDS.get(error["type"]) or error["msg"][:1].lower() + error["msg"][1:]
    return f"{words} (got {describe(error.get('input'))})"


def _checking_order(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """The errors worth reading, in the order a reader checks a mapping: pydantic lists a
    mapping's unknown keys after its fields, they go first (the typo, then the field it left
    missing); what is under an invalid key is not looked at (`tiktokk: ...` is enough)."""
    bad_keys = {e["loc"][:-1] for e in errors if _on_key(e)}
    out: list[ErrorDetails] = []
    for error in errors:
        loc = error["loc"]
        if not _on_key(error) and any(loc[: len(key)] == key for key in bad_keys):
            continue
        if error["type"] in _UNKNOWN:
            parent = error["loc"][:-1]
            at = next((i for i, e in enumerate(out) if e["loc"][: len(parent)] == parent
                       and e["type"] not in _UNKNOWN), len(out))
            out.insert(at, error)
        else:
            out.append(error)
    return out


# --- loading ------------------------------------------------------------------------------


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before composing, whose recursion it would
    exhaust; ruamel's parser yields events without recursing."""
    depth = 0
    for event in YAML(typ="rt").parse(text):
        depth += isinstance(event, CollectionStartEvent) - isinstance(event, CollectionEndEvent)
        if depth > MAX_DEPTH:
            raise ConstructorError(problem=f"nested more than {MAX_DEPTH} levels deep",
                                   problem_mark=event.start_mark)


class _Constructor(RoundTripConstructor):
    """Whatever a constructor raises on a value it cannot build (`2001-02-30`, 5000 digits;
    `!!float ''` raises IndexError, `!!set` on a scalar AttributeError) becomes a YAML error at
    that value instead of an exception with no place."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        queued = len(self.state_generators)
        with _marked(node):
            data = super().construct_non_recursive_object(node, tag)
        # A mapping or list is filled in later, by a generator: mark its errors the same way.
        self.state_generators[queued:] = [_marking(g, node) for g in self.state_generators[queued:]]
        return data


def _marking(generator: Iterator[Any], node: Any) -> Iterator[Any]:
    with _marked(node):
        yield from generator


@contextmanager
def _marked(node: Any) -> Iterator[None]:
    try:
        yield
    except YAMLError:
        raise
    except Exception as exc:  # ruamel's constructors are not hardened against odd input
        reason = str(exc).split(";")[0] or type(exc).__name__  # not Python's int-digits hint
        raise ConstructorError(problem=f"cannot read this value ({reason})",
                               problem_mark=node.start_mark) from None


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    return yaml


# --- the checker --------------------------------------------------------------------------


class YamlChecker:
    """Collects every issue of one file instead of stopping at the first."""

    def __init__(self, filename: str, issue_type: type[YamlIssue] = YamlIssue) -> None:
        self.filename = filename
        self.issue_type = issue_type
        self._issues: list[YamlIssue] = []

    @property
    def issues(self) -> list[YamlIssue]:
        """In file order; a stable sort keeps problems of one line in the order found."""
        return sorted(self._issues, key=lambda issue: issue.line or 0)

    def report(self, line: int | None, field: str, message: str) -> None:
        self._issues.append(self.issue_type(self.filename, line, field, message))

    def has_issues_under(self, path: str) -> bool:
        """Whether anything at `path` or inside it was reported (e.g. "sequences[1]")."""
        return any(i.field == path or i.field.startswith((f"{path}.", f"{path}["))
                   for i in self._issues)

    def read(self, path: str | os.PathLike[str]) -> tuple[str, bytes] | None:
        """The file's text and bytes, or None after reporting why it cannot be read."""
        line = None
        try:
            data = Path(path).read_bytes()
            return data.decode("utf-8-sig"), data
        except FileNotFoundError:
            problem = "file not found"
        except IsADirectoryError:
            problem = "is a directory, not a file"
        except OSError as exc:
            problem = f"cannot read file: {exc.strerror or exc}"
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            problem = f"not UTF-8 text (bad byte at offset {exc.start})"
        self.report(line, "", problem)
        return None

    def parse(self, text: str, *, expected: str, empty: str) -> CommentedMap | None:
        """The document's top-level mapping, or None after reporting why there is none.

        `expected` describes that mapping ("a mapping with 'version' and 'items'"), `empty`
        says what an empty file should have held.
        """
        try:
            _check_depth(text)
            doc = _yaml().load(text)  # a duplicate key is a syntax error here
        except MarkedYAMLError as exc:
            self._report_yaml_error(exc)
            return None
        except ReaderError as exc:  # a character YAML does not allow; no mark, a position
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            self.report(text.count("\n", 0, exc.position) + 1, "",
                        f"invalid YAML: character U+{code:04X} is not allowed")
            return None
        except YAMLError as exc:  # anything else the parser raises is still the file's fault
            self.report(None, "", f"invalid YAML: {exc}")
            return None
        if isinstance(doc, CommentedMap):
            return doc
        if doc is None:
            self.report(None, "", f"file is empty ({empty})")
        else:  # scalars carry no position; composing again (error path only) finds the node
            line = YAML(typ="rt").compose(text).start_mark.line + 1
            self.report(line, "", f"top level must be {expected} (got {describe(doc)})")
        return None

    def _report_yaml_error(self, exc: MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        parts = []
        if exc.context:  # e.g. "while parsing a flow sequence", and where that began
            began = f" (line {exc.context_mark.line + 1})" if exc.context_mark else ""
            parts.append(f"{exc.context}{began}")
        if exc.problem:
            parts.append(exc.problem)
        where = f" at column {mark.column + 1}" if mark is not None else ""
        line = mark.line + 1 if mark is not None else None
        self.report(line, "", f"invalid YAML{where}: {': '.join(parts)}")

    def validate(self, model: type[M], doc: Any, context: Any = None) -> M | None:
        """`doc` as a `model`, or None after reporting every error with its line.

        `context` reaches validators as `info.context` (e.g. the roster's character ids).
        """
        try:
            return model.model_validate(doc, context=context)
        except ValidationError as exc:
            for error in _checking_order(exc.errors(include_url=False)):
                self._report_error(model, doc, error)
            return None

    def _report_error(self, model: type[BaseModel], doc: Any, error: ErrorDetails) -> None:
        on_key = _on_key(error)
        loc = tuple(error["loc"])[:-1] if on_key else tuple(error["loc"])
        path, steps = _walk(doc, loc)
        wanted = len(loc)  # steps that must be found for the line to be the error's own
        at: Literal["key", "value", "node"] = "key" if on_key else "value"
        if error["type"] == "missing":  # at the first line of the mapping that lacks it
            wanted -= 1
            at = "node"
            message = "required field is missing"
        elif error["type"] in _UNKNOWN:
            at = "key"
            key = steps[-1][1] if steps and len(steps) == wanted else loc[-1]
            message = _unknown_field(key, _fields_at(model, loc[:-1]))
        else:
            message = _message(error)
        if not steps:
            line = node_line(doc)
        elif len(steps) == wanted:
            line = _step_line(*steps[-1], at)
        else:  # only part of the location is in the tree: the deepest part that is
            line = _step_line(*steps[-1], "node")
        self.report(line, path, message)
