"""What every section model shares: the strict base model, the numeric field types, merging a user's
map of named sections over the built-in ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

PositiveSeconds = Annotated[float, Field(gt=0)]
NonNegativeSeconds = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def merge_over_defaults(value: Any, defaults: Mapping[str, Mapping[str, Any]]) -> Any:
    """A user's map of named sections laid over the built-in ones, field by field. Anything that is
    not a map of maps is returned unchanged, so validation reports it with the user's own shape."""
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        return value
    merged: dict[str, Any] = {name: dict(section) for name, section in defaults.items()}
    for name, section in value.items():
        merged[name] = {**merged.get(name, {}), **section}
    return merged


class _Model(BaseModel):
    # Docstrings under fields become their descriptions (scripts/gen_config_docs.py prints them).
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True
    )
