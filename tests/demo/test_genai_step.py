"""``shipyard demo``'s GenAI step: export, extract the prompt and settings, answer through
the local stand-in endpoint, saying that it is one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from shipyard.demo._genai_step import genai_step


@pytest.mark.integration  # a loopback server and the bundle's entry point in a subprocess
def test_the_genai_step_extracts_its_parts_and_answers_through_the_stand_in(
    tmp_path: Path,
) -> None:
    console = Console(record=True, width=200)
    answer = genai_step(tmp_path, console)
    assert answer["decision"]["values"] == ["approve", "refer"]
    assert all(json.loads(c)["valid"] for c in answer["checked"]["values"])
    settings = json.loads((tmp_path / "genai" / "answer" / "llm.json").read_text())
    assert settings["seed"] == 7 and settings["temperature"] == 0.0
    assert (
        (tmp_path / "genai" / "underwriting" / "system.jinja")
        .read_text()
        .startswith("You are an underwriter.")
    )
    assert "local stand-in written for this demo" in console.export_text()
