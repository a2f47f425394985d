"""Test helper: a Dagster resource with some fields changed."""

from __future__ import annotations

from typing import Any, TypeVar

import dagster as dg

R = TypeVar("R", bound=dg.ConfigurableResource)


def reconfigured(resource: R, **changes: Any) -> R:
    """A copy of `resource` with `changes`. (`model_copy(update=...)` looks right, but Dagster
    materializes the original configuration: the change is silently lost.)"""
    values = {k: v for k, v in resource.model_dump().items() if v is not None}
    return type(resource)(**{**values, **changes})
