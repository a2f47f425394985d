"""The one validation kit for the project's hand-edited YAML files (roster, DM sequences).

ruamel.yaml's round-trip loader remembers the line of every key, value and list item; a
pydantic model (`YamlModel`) checks shape and types; each pydantic error's `loc` is looked up
in the loaded tree, so every problem reads `file:line: dotted.field.path: message`, and all of
a file's problems are reported at once (three typos should not take three deploys to fix).

Domain rules stay with the domain: validators on the models (raise ValueError with the
message), or post-checks on the loaded tree that call `YamlChecker.report` with a line from
`key_line` / `value_line` / `item_line` / `node_line`. Core layer: no project imports.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    ValidationError,
)
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Path segments that need no quoting in a field path (anything else is shown repr()-quoted,
# which also keeps a stray newline in a key from breaking the one-line format).
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


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
        text = f"{where}:{field} {self.message}"
        return " ".join(text.splitlines())  # one issue, one line, whatever the input held


class YamlError(ValueError):
    """The file is unusable; `.issues` lists every problem found, in file order."""

    def __init__(self, issues: Sequence[YamlIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


# --- values and field validators ---------------------------------------------------------


def quote(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def describe(value: Any) -> str:
    """A value as YAML would name it, for "(got ...)" in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {quote(value)}"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, date):
        return f"date {value.isoformat()}"
    return f"{type(value).__name__} value"


# Validators take the raw YAML value and return the clean one or raise ValueError with the
# message. As PlainValidator they replace pydantic's coercion, so `age: "25"`, `age: true`
# and an explicit `null` are refused in the project's wording.


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be text (got {describe(value)})")
    if not value.strip():
        raise ValueError("must not be empty")
    return str(value)  # drop ruamel's scalar-string subclasses


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def slug(value: Any) -> str:
    value = text(value)
    if not _SLUG.fullmatch(value):
        raise ValueError("must be a slug: lowercase letters and digits in words joined by "
                         f"single hyphens (got {quote(value)})")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false (got {describe(value)})")
    return value


def integer(low: int | None = None, high: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        # bool is an int in Python, but `age: true` is surely a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number (got {describe(value)})")
        if low is not None and high is not None and not low <= value <= high:
            raise ValueError(f"must be between {low} and {high} (got {value})")
        if (low is not None and value < low) or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"at most {high}"
            raise ValueError(f"must be {bound} (got {value})")
        return int(value)

    return convert


def number(low: float, high: float) -> Callable[[Any], float]:
    """An int stays an int (a share of 40 is stored as 40); NaN and infinities are refused."""

    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number (got {describe(value)})")
        if not low <= value <= high:  # also false for NaN; no float() so huge ints cannot overflow
            raise ValueError(f"must be between {low:g} and {high:g} (got {value})")
        return int(value) if isinstance(value, int) else float(value)

    return convert


def one_of(options: Sequence[str]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"must be one of {', '.join(options)} (got {describe(value)})")
        return str(value)

    return convert


def format_version(supported: int, low: int | None = None) -> Callable[[Any], int]:
    """The file's `version:`; anything but `supported` is a file for another release."""
    whole = integer(low)

    def convert(value: Any) -> int:
        version = whole(value)
        if version != supported:
            raise ValueError(f"unsupported version {version} (this release reads version "
                             f"{supported})")
        return version

    return convert


def valid(convert: Callable[[Any], T], value: Any) -> T | None:
    """`convert(value)`, or None if it is invalid (post-checks skip what was reported)."""
    try:
        return convert(value)
    except ValueError:
        return None


# Shape guards for containers, run before pydantic looks inside, so a wrong shape gets the
# field's own wording ("must be a list of steps (got mapping)").


def _shape(accepts: Callable[[Any], bool], what: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if accepts(value):
            return value
        raise ValueError(f"must be {what} (got {describe(value)})")

    return BeforeValidator(check)


def mapping(what: str, *, null: bool = False) -> BeforeValidator:
    """Must be a mapping, described as `what`; `null=True` also lets an explicit null through."""
    return _shape(lambda value: isinstance(value, Mapping) or (null and value is None), what)


def listing(what: str) -> BeforeValidator:
    return _shape(lambda value: isinstance(value, list), what)


def at_least_one(what: str) -> AfterValidator:
    """Runs once the items are valid; an empty list or mapping has no item to be wrong."""

    def check(value: Any) -> Any:
        if not value:
            raise ValueError(f"must list at least one {what}")
        return value

    return AfterValidator(check)


Text = Annotated[str, PlainValidator(text)]
OptionalText = Annotated[str | None, PlainValidator(optional_text)]
Slug = Annotated[str, PlainValidator(slug)]
Bool = Annotated[bool, PlainValidator(boolean)]


class YamlModel(BaseModel):
    """Base for the file models: unknown keys are errors and plain types are strict (no
    "25" for 25, no `true` for 1), so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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
    segment = key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else quote(str(key))
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
            key = item if item in node else next((k for k in node if str(k) == str(item)), _ABSENT)
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
    close = difflib.get_close_matches(str(key), allowed, n=1)
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
            doc = YAML(typ="rt").load(text)  # a duplicate key is a syntax error here
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
