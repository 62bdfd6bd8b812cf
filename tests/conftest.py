"""Fixtures shared by the whole suite: the demo pipeline, a key pair and a signed bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipyard import Pipeline
from shipyard.artifact import generate_key_pair
from shipyard.demo_pipeline import build_pipeline, reference


@pytest.fixture(scope="session")
def demo_pipeline() -> Pipeline:
    """The trained demo pipeline (feature -> model -> rule) on breast-cancer data."""
    return build_pipeline()


@pytest.fixture(scope="session")
def demo_reference() -> dict[str, Any]:
    """The demo's training data as a dict dataset."""
    return reference()


@pytest.fixture()
def demo_rows(demo_reference: dict[str, Any]) -> dict[str, Any]:
    """Five rows of demo input as plain column lists."""
    return {"tumours": {name: values[:5] for name, values in demo_reference["tumours"].items()}}


@pytest.fixture(scope="session")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh Ed25519 (private, public) PEM key pair."""
    return generate_key_pair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def signed_bundle(
    tmp_path_factory: pytest.TempPathFactory,
    demo_pipeline: Pipeline,
    demo_reference: dict[str, Any],
    key_pair: tuple[Path, Path],
) -> Path:
    """The demo pipeline as a signed bundle with its model in native form (model.skops).

    Do not modify it: copy it first.
    """
    return demo_pipeline.export(
        tmp_path_factory.mktemp("bundle"),
        reference=demo_reference,
        sign_key=key_pair[0],
        backend="native",
    )


@pytest.fixture(scope="session")
def onnx_bundle(
    tmp_path_factory: pytest.TempPathFactory,
    demo_pipeline: Pipeline,
    demo_reference: dict[str, Any],
    key_pair: tuple[Path, Path],
) -> Path:
    """The demo pipeline exported with the default backend (its model as model.onnx)."""
    return demo_pipeline.export(
        tmp_path_factory.mktemp("onnx-bundle"), reference=demo_reference, sign_key=key_pair[0]
    )
