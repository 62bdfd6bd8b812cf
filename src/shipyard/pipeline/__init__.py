"""Pipelines: what a data scientist defines (tables, nodes, outputs)."""

from ._flavors import OnnxModel
from ._nodes import FunctionNode, ModelNode, Node, feature, model, rule
from ._pipeline import Pipeline
from ._schema import Column, Table

__all__ = [
    "Column",
    "FunctionNode",
    "ModelNode",
    "Node",
    "OnnxModel",
    "Pipeline",
    "Table",
    "feature",
    "model",
    "rule",
]
