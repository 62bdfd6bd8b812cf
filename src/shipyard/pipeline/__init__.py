"""Pipelines: what a data scientist defines (tables, nodes, outputs), and their bundle files.

``compile_files`` turns a pipeline into its bundle's files; ``Pipeline.export`` signs and
writes them with ``shipyard.artifact``.
"""

from ._compile import compile_files
from ._flavors import OnnxModel
from ._genai import (
    GenAINode,
    KnowledgeNode,
    LlmNode,
    ParseNode,
    PromptNode,
    RetrieveNode,
    knowledge,
    llm,
    parse_answer,
    prompt,
    retrieve,
)
from ._nodes import FunctionNode, ModelNode, Node, feature, model, rule
from ._pipeline import Pipeline
from ._schema import Column, Table

__all__ = [
    "Column",
    "FunctionNode",
    "GenAINode",
    "KnowledgeNode",
    "LlmNode",
    "ModelNode",
    "Node",
    "OnnxModel",
    "ParseNode",
    "Pipeline",
    "PromptNode",
    "RetrieveNode",
    "Table",
    "compile_files",
    "feature",
    "knowledge",
    "llm",
    "model",
    "parse_answer",
    "prompt",
    "retrieve",
    "rule",
]
