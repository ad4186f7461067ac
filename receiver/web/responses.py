"""What every `/api/...` answer is built from: the response model base, the error body, and the
one way a pydantic validation error is put into words (API parameters, replay filters, CLI
options all read the same sentence).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails


class Resource(BaseModel):
    model_config = ConfigDict(frozen=True)


class ApiErrorBody(Resource):
    """Every refused `/api/...` request."""

    error: str = Field(description="Machine-readable name, e.g. `invalid_parameter`.")
    message: str = Field(description="What is wrong, naming the parameter concerned.")


def describe(error: ErrorDetails, *, name: str | None = None, show_input: bool = True) -> str:
    """One precise sentence for one pydantic error, starting with the parameter's name.

    `name` replaces the dotted location (an environment variable, a CLI option); `show_input`
    False leaves the offending value out, for inputs that may hold a secret.
    """
    where = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
    if name is not None:
        where = name
    if error["type"] == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
        kind_shows_input = error["type"] not in ("missing", "extra_forbidden")
        if show_input and kind_shows_input and "input" in error:
            message += f", got {error['input']!r}"
    return f"{where}: {message}" if where else message


def explain(exc: ValidationError) -> str:
    """The first problem of a validation error, as `describe` words it."""
    return describe(exc.errors(include_url=False)[0])
