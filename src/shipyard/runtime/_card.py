"""Model cards: who owns a model, what it is for, how it was validated, what it must not do.

A card is given at export (``Pipeline(..., model_card={...})``, kept in metadata.json and so
locked by the signature) and may be completed at registration (approval references come
after validation), where the registry keeps the merged card beside the version. Standard
library only; not copied into bundles (a bundle carries its card as data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import UsageError

# Each field with what it holds; ``validation_metrics`` maps a metric's name to a number.
FIELDS = {
    "owner": "who answers for the model (a person or team)",
    "intended_use": "what the model is for, and for whom",
    "validation_metrics": "metric name -> number, measured on held-out data",
    "limitations": "what it must not be used for, and known weaknesses",
    "approvals": "references of the approvals it holds (a list of text)",
}


def check_model_card(card: Any, where: str = "model card") -> dict[str, Any]:
    """The card as plain data; raises UsageError naming the field that is wrong."""
    if not isinstance(card, Mapping):
        raise UsageError(f"{where} must be a mapping of {', '.join(FIELDS)}")
    unknown = sorted(str(k) for k in card if k not in FIELDS)
    if unknown:
        raise UsageError(
            f"{where}: unknown field(s) {', '.join(unknown)} (fields: {', '.join(FIELDS)})"
        )
    checked: dict[str, Any] = {}
    for name, value in card.items():
        if name == "validation_metrics":
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
                for k, v in value.items()
            ):
                raise UsageError(f"{where}: validation_metrics must map metric names to numbers")
            checked[name] = {k: value[k] for k in sorted(value)}
        elif name == "approvals":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where}: approvals must be a list of text")
            checked[name] = list(value)
        elif name == "limitations" and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where}: limitations must be text or a list of text")
            checked[name] = list(value)
        else:
            if not isinstance(value, str):
                raise UsageError(f"{where}: {name} must be text")
            checked[name] = value
    return checked


def merge_model_cards(exported: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle's card completed by one given later: its fields win, approvals add up."""
    merged = {**exported, **given}
    if "approvals" in exported and "approvals" in given:
        merged["approvals"] = [
            *exported["approvals"],
            *(a for a in given["approvals"] if a not in exported["approvals"]),
        ]
    return merged
