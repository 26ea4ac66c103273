"""Typed rules: each type carries its one rule and its words (pydantic, strict: a bool is not an int, a string
is not a number); ``one_line`` turns pydantic's list of errors into the one line every caller shows."""

import difflib
import reprlib
from collections import Counter
from typing import Annotated, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    WrapValidator,
    model_validator,
)


class Refusal(ValueError):
    """A broken rule in its own words, raised inside a validator; one_line adds what was given."""


class UnknownKey(ValueError):
    """A key a model does not have; one_line names it by its whole path, with the key it may mean."""

    def __init__(self, key, allowed: list):
        close = difflib.get_close_matches(str(key), allowed, n=1)
        self.key, self.allowed = str(key), allowed
        self.hint = f" (did you mean '{close[0]}'?)" if close else ""


def ruled(kind, rule: str, *constraints):
    """``kind`` under ``constraints``; whatever it refuses is refused with ``rule`` ('must be ...')."""

    def check(value, handler):
        try:
            return handler(value)
        except ValidationError:
            raise Refusal(rule) from None

    return Annotated[kind, *constraints, WrapValidator(check), Field(description=rule)]


def Int(lo: int, hi: int | None = None):
    words = f"must be an integer in {lo}..{hi}" if hi is not None else f"must be an integer >= {lo}"
    return ruled(StrictInt, words, Field(ge=lo, le=hi))


def Number(lo: float, hi: float | None = None, above: bool = False):
    """A finite number; an int stays an int and a float a float (a run's key hashes the value as given)."""
    words = f"must be a finite number {'>' if above else '>='} {lo:g}" + (
        f" and <= {hi:g}" if hi is not None else ""
    )
    bounds = Field(gt=lo, le=hi, allow_inf_nan=False) if above else Field(ge=lo, le=hi, allow_inf_nan=False)
    return ruled(Union[StrictInt, StrictFloat], words, bounds)


def OneOf(*options):
    return ruled(Literal[options], f"must be one of {', '.join(map(str, options))}")


MAX_LIST_ITEMS = 1000


def _a_list(value):
    if not isinstance(value, list) or not value:
        raise Refusal("must be a non-empty list")
    if len(value) > MAX_LIST_ITEMS:
        raise Refusal(f"must hold at most {MAX_LIST_ITEMS} entries")
    return value


def _distinct(values):  # one pass over a Counter: linear, however long the list
    dupes = sorted(repr(v) for v, n in Counter(values).items() if n > 1)
    if dupes:
        raise Refusal(f"must not repeat values (repeated: {', '.join(dupes[:10])})")
    return values


def Listed(item):
    """A non-empty list of at most MAX_LIST_ITEMS distinct ``item``s (each refused with its own rule)."""
    return Annotated[list[item], BeforeValidator(_a_list), AfterValidator(_distinct)]


def Distinct(item, what: str):
    """A list (or tuple) of distinct ``item``s (``what``), held as a tuple."""
    as_tuple = BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)
    return ruled(tuple[item, ...], f"must be a list of distinct {what}", as_tuple, AfterValidator(_distinct))


class Strict(BaseModel):
    """A typed mapping: strict types, and an unknown key refused with a hint at the key it may mean."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data):
        if not isinstance(data, dict):
            raise Refusal("must be a mapping")
        for key in data:
            if key not in cls.model_fields:
                raise UnknownKey(key, list(cls.model_fields))
        return data


def one_line(exc: ValidationError, label: str = "{}") -> str:
    """Every problem of ``exc`` in one line, joined by '; ': '<label>: <rule>, got <value> (<type>)',
    ``label`` formatted with the dotted key ('stages.table1.seeds[0]'); a rule across fields in its words."""
    return "; ".join(dict.fromkeys(_problem(err, label) for err in exc.errors(include_url=False)))


def _problem(err: dict, label: str) -> str:
    kind, error = err["type"], (err.get("ctx") or {}).get("error")
    loc = (f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"] if p != "[key]")
    where = "".join(loc).lstrip(".")
    if isinstance(error, UnknownKey) or kind == "unexpected_keyword_argument":
        key = ".".join(k for k in (where, getattr(error, "key", "")) if k)
        name = f"field {key!r}" if label == "{}" else label.format(key)
        return f"unknown {name}" + (f"{error.hint}; allowed: {', '.join(error.allowed)}" if error else "")
    head = label.format(where) if where or "{" not in label else ""
    if kind == "missing":
        return f"{head} is required"
    if kind == "value_error" and not isinstance(error, Refusal):
        text = str(error)
    else:  # reprlib bounds the value: an error message never expands a huge one
        given = reprlib.repr(err["input"])
        given = given if len(given) <= 80 else given[:77] + "..."
        text = f"{error or err['msg']}, got {given} ({type(err['input']).__name__})"
    return f"{head}: {text}" if head else text
