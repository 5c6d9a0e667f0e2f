"""Evaluation suites by name. Add one by subclassing `Suite` and listing it here."""

from __future__ import annotations

from ..errors import BadInputError
from .base import Item, Suite
from .ifeval import IFEvalSuite
from .knowledge import KnowledgeSuite
from .math import GSM8KSuite, MathSuite
from .qa import QASuite

SUITES: dict[str, type[Suite]] = {
    suite.name: suite for suite in (IFEvalSuite, GSM8KSuite, QASuite, MathSuite, KnowledgeSuite)
}


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]()
    except KeyError:
        raise BadInputError(f"unknown suite '{name}'; choose one of {', '.join(SUITES)}") from None


__all__ = ["SUITES", "Item", "Suite", "get_suite"]
