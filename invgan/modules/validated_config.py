"""The base of the recipes' frozen loss configs: every value is validated once, on construction,
and the recipe's code reads the config afterwards without checking again.

A config built from YAML (`_target_`) and one built in code pass the same checks: the type
hints and range rules of `invgan.utils.config_checks` (which `check_config` also applies to
the whole composed config before anything is built), then the recipe's own rules in `check`.
Every message names the full config key (`<KEY>.<field>`), the value and what to set instead.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from invgan.utils.config_checks import ConfigValueError, check_arguments


@dataclass(frozen=True)
class ValidatedConfig:
    """Frozen options of one recipe, refused on construction when a value cannot work."""

    # Where the fields live in the composed config (`model.loss` for InvGAN's loss node,
    # `model` for the recipes whose weights are the module's own arguments).
    KEY: ClassVar[str] = "model"

    def __post_init__(self) -> None:
        check_arguments(self.KEY, type(self), self.values())
        self.check()

    def values(self) -> dict[str, Any]:
        """The fields by name."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def key(self, name: str) -> str:
        """The full config key of field `name`."""
        return f"{self.KEY}.{name}"

    def check(self) -> None:
        """The recipe's own rules, run once every value has the right kind and range."""

    @staticmethod
    def refuse(problem: str | None) -> None:
        """Raise `ConfigValueError` with `problem`, when there is one."""
        if problem:
            raise ConfigValueError(problem)
