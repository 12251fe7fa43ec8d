"""Turn pydantic validation errors into ConfigErrors naming file, line, key, value and a fix."""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import ConfigError, ConfigErrors
from .yaml_source import YamlDocument

M = TypeVar("M", bound=BaseModel)


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str | None:
    import difflib  # CLI start-up: only an error message needs it

    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _unwrap(annotation: Any) -> list[Any]:
    """All concrete types inside Optional/Union/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the keys at `loc` (for listing allowed names)."""
    current: Any = model
    for part in loc:
        candidates = _unwrap(current)
        nxt = None
        for cand in candidates:
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                field = cand.model_fields.get(part)
                if field is not None:
                    nxt = field.annotation
                    break
            origin = typing.get_origin(cand)
            if origin in (dict, list, tuple) or cand in (dict, list):
                args = typing.get_args(cand)
                if args:
                    nxt = args[-1]
                    break
        if nxt is None:
            return None
        current = nxt
    for cand in _unwrap(current):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic inserts union member tags like 'function-after[...]' or 'literal[...]'; drop them
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p and "]" in p)))


def convert_error(exc: ValidationError, model: type[BaseModel], doc: YamlDocument) -> ConfigErrors:
    errors: list[ConfigError] = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]))
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = doc.line_of(loc)
        kind = err["type"]
        value = err.get("input")
        hint = None
        if kind == "extra_forbidden":
            owner = model_at(model, loc[:-1])
            allowed = sorted(owner.model_fields) if owner else []
            guess = did_you_mean(str(loc[-1]), allowed)
            message = f"unknown key '{loc[-1]}'"
            if guess:
                hint = f"did you mean '{guess}'? (allowed: {', '.join(allowed)})"
            else:
                hint = f"remove it; allowed keys here: {', '.join(allowed)}"
        elif kind == "missing":
            message = "required key is missing"
            hint = f"add '{loc[-1]}:' to the file"
        else:
            msg = err["msg"]
            msg = msg.removeprefix("Value error, ")
            # a whole section (model-level check) is not worth echoing back
            message = msg if isinstance(value, (dict, list)) else f"{msg} (got {value!r})"
            ctx = err.get("ctx") or {}
            expected = ctx.get("expected")
            if expected:
                hint = f"use one of: {expected}"
        errors.append(ConfigError(message, file=doc.path, line=line, key=key, value=value, hint=hint))
    return ConfigErrors(errors)


def validate_document(model: type[M], doc: YamlDocument, *, context: dict | None = None) -> M:
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError("the file must contain a mapping of keys at the top level",
                          file=doc.path, line=1, hint="see configs/ for examples")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise convert_error(exc, model, doc) from None
