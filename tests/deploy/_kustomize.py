"""What the tests know of Kustomize, which is not installed here: the references of a
kustomization, and the overlays applied as Kustomize would for the fields Shipyard renders.

``check_references`` fails a kustomization that names a file or folder that does not
exist, patches an object no resource of it defines, or renames an image no container
uses. ``build`` applies an overlay (namespace, labels, images, strategic-merge patches,
for the kinds of field these files hold: maps merge, lists of named items merge by name
with a patch's new items first, other lists are replaced) to its resources. Neither is
Kustomize; where ``kubectl`` is on PATH, test_validate and test_llm_key check that
``kubectl kustomize`` builds the same objects as ``build``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path
    return document


def _resources(folder: Path) -> list[dict[str, Any]]:
    """Every object a kustomization's resources define, its bases' first."""
    kustomization = _load(folder / "kustomization.yaml")
    found = []
    for entry in kustomization.get("resources", []):
        target = (folder / entry).resolve()
        if target.is_dir():
            found += build(target)
        else:
            found.append(_load(target))
    return found


def check_references(folder: Path) -> list[str]:
    """What is wrong with the kustomization in ``folder`` (and its bases); [] when nothing."""
    problems = []
    kustomization = _load(folder / "kustomization.yaml")
    for entry in kustomization.get("resources", []):
        target = (folder / entry).resolve()
        if target.is_dir():
            if not (target / "kustomization.yaml").is_file():
                problems.append(f"{folder}: resource folder {entry} has no kustomization.yaml")
            else:
                problems += check_references(target)
        elif not target.is_file():
            problems.append(f"{folder}: resource {entry} does not exist")
    if problems:
        return problems
    objects = {(o["kind"], o["metadata"]["name"]) for o in _resources(folder)}
    for patch in kustomization.get("patches", []):
        path = folder / patch["path"]
        if not path.is_file():
            problems.append(f"{folder}: patch {patch['path']} does not exist")
            continue
        document = _load(path)
        key = (document["kind"], document["metadata"]["name"])
        if key not in objects:
            problems.append(f"{folder}: patch {patch['path']} patches {key}, which is not defined")
    images = {container["image"] for o in _resources(folder) for container in _containers(o)}
    for image in kustomization.get("images", []):
        if image["name"] not in images:
            problems.append(f"{folder}: image {image['name']} is used by no container")
    return problems


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", []))


def merge(base: Any, patch: Any) -> Any:
    """A strategic merge of ``patch`` into ``base``, for the shapes Shipyard's patches use."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        merged_list = [copy.deepcopy(i) for i in base]
        names = [i["name"] for i in merged_list]
        added = []
        for item in patch:
            if item["name"] in names:
                index = names.index(item["name"])
                merged_list[index] = merge(merged_list[index], item)
            else:
                added.append(copy.deepcopy(item))
        return added + merged_list  # Kustomize puts a patch's new items first
    return copy.deepcopy(patch)


def _image(reference: str, rule: dict[str, Any]) -> str:
    name = rule.get("newName", rule["name"])
    if "digest" in rule:
        return f"{name}@{rule['digest']}"
    return f"{name}:{rule['newTag']}" if "newTag" in rule else name


def build(folder: Path) -> list[dict[str, Any]]:
    """The objects the kustomization in ``folder`` produces (see the module's docstring)."""
    kustomization = _load(folder / "kustomization.yaml")
    objects = _resources(folder)
    for patch in kustomization.get("patches", []):
        document = _load(folder / patch["path"])
        for index, found in enumerate(objects):
            if (found["kind"], found["metadata"]["name"]) == (
                document["kind"],
                document["metadata"]["name"],
            ):
                objects[index] = merge(found, document)
    for rule in kustomization.get("images", []):
        for found in objects:
            for container in _containers(found):
                if container["image"].split("@")[0].split(":")[0] == rule["name"]:
                    container["image"] = _image(container["image"], rule)
    for entry in kustomization.get("labels", []):
        for found in objects:
            found["metadata"].setdefault("labels", {}).update(entry["pairs"])
            template = found.get("spec", {}).get("template")
            if entry.get("includeTemplates") and template is not None:
                template["metadata"].setdefault("labels", {}).update(entry["pairs"])
    namespace = kustomization.get("namespace")
    if namespace:
        for found in objects:
            if found["kind"] != "Namespace":
                found["metadata"]["namespace"] = namespace
    return objects
