"""Config values against type hints: whether a value read from a config (None, a bool, a
number, a string, a list or a mapping) fits the hint of the parameter it is passed to, the hint
in words for error messages, and the hinted parameters of what a `_target_` builds."""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import os
import types
import typing
from collections.abc import Callable
from pathlib import PurePath
from typing import Any


def is_number(value: Any) -> bool:
    """Whether a value is an int or a float (a bool is neither, here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


_SEQUENCES = (
    list,
    tuple,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Iterable,
    collections.abc.Collection,
)
_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def accepts(annotation: Any, value: Any) -> bool:
    """Whether a config value (None, bool, number, string, list or dict) fits a type hint."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in (Any, object) or isinstance(annotation, typing.TypeVar):
        return True
    if origin is typing.Annotated:
        return accepts(arguments[0], value)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(argument, value) for argument in arguments)
    if origin is typing.Literal:
        return any(type(value) is type(a) and value == a for a in arguments)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return is_number(value)
    if annotation is str:
        return isinstance(value, str)
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            return len(value) == len(arguments) and all(map(accepts, arguments, value))
        item = arguments[0] if arguments else Any
        return all(accepts(item, v) for v in value)
    if annotation in (dict, collections.abc.Mapping) or origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if inspect.isclass(annotation) and issubclass(annotation, os.PathLike | PurePath):
        return isinstance(value, str)
    # Anything else (a network, an optimizer factory, a tensor, a timedelta) is built from a
    # node of its own: no scalar from a config can be one.
    return isinstance(value, dict)


def describe(annotation: Any) -> str:
    """A type hint in words: `an integer or null`, `a list of 2 numbers`, `one of 'a', 'b'`."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return describe(arguments[0])
    if origin in (typing.Union, types.UnionType):
        # Literal members merge into one list of choices: `one of 16, 32, 'bf16' or null`.
        literals = [a for a in arguments if typing.get_origin(a) is typing.Literal]
        choices = [choice for literal in literals for choice in typing.get_args(literal)]
        others = [describe(a) for a in arguments if a not in literals]
        if choices:
            others.insert(0, describe(typing.Literal[tuple(choices)]))
        return " or ".join(dict.fromkeys(others))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in arguments)
    simple = {type(None): "null", bool: "true or false", int: "an integer", float: "a number"}
    if annotation in simple:
        return simple[annotation]
    if annotation is str or (
        inspect.isclass(annotation) and issubclass(annotation, os.PathLike | PurePath)
    ):
        return "a string"
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            items = {_PLURALS.get(a, "values") for a in arguments}
            return f"a list of {len(arguments)} {items.pop() if len(items) == 1 else 'values'}"
        item = arguments[0] if arguments else Any
        if typing.get_origin(item) is typing.Literal:
            return f"a list of {describe(item).replace('one of', 'values among')}"
        return f"a list of {_PLURALS.get(item, 'values')}"
    if annotation in (dict, collections.abc.Mapping) or origin in (dict, collections.abc.Mapping):
        return "a mapping"
    return f"a config node that builds {getattr(annotation, '__name__', annotation)}"


def _hints_of(function: Callable[..., Any]) -> dict[str, Any]:
    """Type hints of `function`'s parameters; those that do not resolve are left out."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # forward references into other packages: check the others
        hints: dict[str, Any] = {}
        namespace = getattr(inspect.unwrap(function), "__globals__", {})
        for name, hint in getattr(function, "__annotations__", {}).items():
            try:
                hints[name] = eval(hint, namespace) if isinstance(hint, str) else hint
            except Exception:
                continue
        return hints


@functools.cache
def parameter_types(target: Callable[..., Any]) -> dict[str, Any]:
    """The hinted parameters that `target` accepts: a function's own, or a class's `__init__`
    ones and, while an `__init__` passes `**kwargs` on, its base classes'."""
    if not inspect.isclass(target):
        return _hints_of(target)
    if dataclasses.is_dataclass(target):
        hints = _hints_of(target)
        return {f.name: hints[f.name] for f in dataclasses.fields(target) if f.name in hints}
    found: dict[str, Any] = {}
    for cls in target.__mro__:
        if "__init__" not in vars(cls) or cls is object:
            continue
        init = vars(cls)["__init__"]
        for name, hint in _hints_of(init).items():
            found.setdefault(name, hint)
        parameters = inspect.signature(init).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    found.pop("return", None)
    return found


def lists_choices(annotation: Any) -> bool:
    """Whether a hint lists the values it allows (a `Literal`, alone or in a union)."""
    arguments = typing.get_args(annotation)
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    members = arguments if union else (annotation,)
    return any(typing.get_origin(member) is typing.Literal for member in members)
