"""YAML as CI files are written by hand: keys in the order given, scripts as literal blocks."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """A safe dumper that writes multi-line text as ``|`` blocks and indents lists."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar(
            "tag:yaml.org,2002:str", value.rstrip("\n") + "\n", style="|"
        )
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)


def dump(document: dict[str, Any], spaced: str | None = None) -> str:
    """``document`` as YAML text, a blank line between its top-level keys and between the
    entries of its ``spaced`` key (GitHub's jobs)."""
    parts = []
    for key, value in document.items():
        if key == spaced:
            entries = [_text_of({name: entry}) for name, entry in value.items()]
            parts.append(f"{key}:\n" + "\n".join(_indented(e) for e in entries))
        else:
            parts.append(_text_of({key: value}))
    return "\n".join(parts)


def _text_of(document: dict[str, Any]) -> str:
    # Wide lines: a wrapped expression or command reads worse than a long line.
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)


def _indented(text: str) -> str:
    return "".join(f"  {line}" if line.strip() else line for line in text.splitlines(True))
