"""Value validators of the YAML kit (waifugen_assets.core.yaml_check, which re-exports them).

Each takes the raw YAML value and returns the clean one or raises ValueError with the message;
as PlainValidator they replace pydantic's coercion, so `age: "25"`, `age: true` and an explicit
`null` are refused in the project's wording. Core layer: no project imports.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainValidator

T = TypeVar("T")

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Characters that act on a terminal or reorder text instead of showing (C0/C1 controls, DEL,
# bidi embeddings/overrides/isolates, line and paragraph separators): never taken in display
# text, never printed raw in a message.
UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e"
                                 "\u2066-\u2069]")
_LONG_INT = 10**100  # shown by its size: Python will not print an int over 4300 digits


def quote(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def show(value: Any) -> str:
    """str(value), a very long int (from a hex literal: ruamel reads any length) by its size."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _LONG_INT:
        return f"an integer of {int(abs(value).bit_length() * 0.30103) + 1} digits or so"
    try:
        return str(value)
    except ValueError:  # such an int inside a key (a tuple)
        return f"{type(value).__name__} value"


def describe(value: Any) -> str:
    """A value as YAML would name it, for "(got ...)" in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}" if abs(value) < _LONG_INT else show(value)
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


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be text (got {describe(value)})")
    if not value.strip():
        raise ValueError("must not be empty")
    return str(value)  # drop ruamel's scalar-string subclasses


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def display_text(value: Any, *, newlines: bool = False) -> str:
    """Text printed on terminals or shown in captions: no control or bidi formatting
    characters, which could rewrite a terminal line or reorder what is read. `newlines=True`
    lets line feeds through (a paragraph). The message names the code point, never echoes it."""
    value = text(value)
    if found := (_UNSAFE_BUT_NEWLINE if newlines else UNSAFE_CHARACTERS).search(value):
        code = f"U+{ord(found[0]):04X}"
        name = unicodedata.name(found[0], "") or "a control character"
        raise ValueError(f"must not contain {code} ({name}) at character {found.start() + 1}: "
                         "control and bidi formatting characters are not allowed")
    return value


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
            raise ValueError(f"must be between {low} and {high} (got {show(value)})")
        if (low is not None and value < low) or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"at most {high}"
            raise ValueError(f"must be {bound} (got {show(value)})")
        return int(value)

    return convert


def number(low: float, high: float) -> Callable[[Any], float]:
    """An int stays an int (a share of 40 is stored as 40); NaN and infinities are refused."""

    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number (got {describe(value)})")
        if not low <= value <= high:  # also false for NaN; no float() so huge ints cannot overflow
            raise ValueError(f"must be between {low:g} and {high:g} (got {show(value)})")
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
            raise ValueError(f"unsupported version {show(version)} (this release reads "
                             f"version {supported})")
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
DisplayText = Annotated[str, PlainValidator(display_text)]
DisplayParagraph = Annotated[str, PlainValidator(lambda value: display_text(value, newlines=True))]
Slug = Annotated[str, PlainValidator(slug)]
Bool = Annotated[bool, PlainValidator(boolean)]


class YamlModel(BaseModel):
    """Base for the file models: unknown keys are errors and plain types are strict (no
    "25" for 25, no `true` for 1), so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
