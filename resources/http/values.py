"""Reading numbers out of JSON bodies that are not always typed the same way."""

from __future__ import annotations

from typing import Any


def json_int(value: Any) -> int | None:
    """An int from a JSON value: ints, integral floats and digit strings ("123", "-5");
    None for anything else, booleans included (JSON true is not 1 for an API's counter)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
