"""The Pipeline: named nodes over declared input tables, checked when built."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GraphError
from ..runtime import NUMERIC, check_model_card
from . import _nodes
from ._genai import GenAINode, KnowledgeNode, RetrieveNode
from ._nodes import ModelNode, Node
from ._schema import Table, check_identifier

if TYPE_CHECKING:
    from ..runtime import Executor

_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,3}([a-z][a-z0-9]*)?$")


class Pipeline:
    """A scoring pipeline: input tables, nodes (features, models, rules, GenAI nodes), outputs.

    The graph is checked on every change: unknown references, cycles, duplicate names
    and type clashes raise GraphError saying what and where. ``run`` executes with the
    same executor a bundle carries; ``export`` writes the locked bundle.
    """

    def __init__(
        self,
        name: str,
        version: str,
        inputs: Sequence[Table],
        *,
        nodes: Iterable[Node] = (),
        outputs: Sequence[str] | None = None,
        target: str | None = None,
        description: str = "",
        groups: Sequence[str] = (),
        permissible_purpose: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
        model_card: Mapping[str, Any] | None = None,
    ) -> None:
        check_identifier(name, "pipeline")
        if not isinstance(version, str) or not _VERSION.match(version):
            raise GraphError(f"pipeline '{name}': version {version!r} must look like 1.2.0")
        if not inputs:
            raise GraphError(f"pipeline '{name}' declares no input tables")
        self.name = name
        self.version = version
        self.inputs = list(inputs)
        self.target = target
        self.description = description
        self.groups = list(groups)
        self.permissible_purpose = list(permissible_purpose)
        self.tags = dict(tags or {})
        # Owner, intended use, validation metrics, limitations, approvals (see runtime._card):
        # kept in metadata.json, so the signature locks it with the models.
        self.model_card = check_model_card(model_card or {}, f"pipeline '{name}': model card")
        self._nodes: dict[str, Node] = {}
        self._refs: dict[str, list[str]] = {}
        self._outputs = list(outputs) if outputs is not None else None
        self._compiled: Executor | None = None
        names = [t.name for t in self.inputs]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise GraphError(f"pipeline '{name}': duplicate input table '{sorted(duplicates)[0]}'")
        for node in nodes:
            self._add(node)
        self.check()

    # -- building ----------------------------------------------------------------------

    @property
    def bundle_name(self) -> str:
        """The importable top folder of the bundle: ``<name>_<version with _>``."""
        return f"{self.name}_{re.sub(r'[^A-Za-z0-9]', '_', self.version)}"

    @property
    def nodes(self) -> dict[str, Node]:
        """The nodes by name, in the order they were added."""
        return dict(self._nodes)

    @property
    def outputs(self) -> list[str]:
        """The declared outputs; when none were declared, every node nothing else reads.

        A knowledge node is never an output: retrieve nodes read it.
        """
        if self._outputs is not None:
            return list(self._outputs)
        read = {ref for refs in self._refs.values() for ref in refs if "." not in ref}
        return [
            n
            for n, node in self._nodes.items()
            if n not in read and not isinstance(node, KnowledgeNode)
        ]

    def set_outputs(self, *names: str) -> None:
        """Declare the pipeline's outputs; raises GraphError on an unknown node."""
        previous = self._outputs
        self._outputs = list(names)
        try:
            self.check()
        except GraphError:
            self._outputs = previous
            raise

    def add(self, node: Node) -> Node:
        """Add a node made by ``shipyard.feature``, ``shipyard.rule`` or ``shipyard.model``.

        The graph is checked at once; on error the node is not added.
        """
        self._add(node)
        try:
            self.check()
        except GraphError:
            del self._nodes[node.name]
            self._refs.pop(node.name, None)
            raise
        return node

    def _add(self, node: Node) -> None:
        if not isinstance(node, Node):
            raise GraphError(
                f"pipeline '{self.name}': {node!r} is not a node; make one with shipyard.feature, "
                "shipyard.rule or shipyard.model"
            )
        if node.name in self._nodes:
            raise GraphError(f"pipeline '{self.name}': duplicate node name '{node.name}'")
        if any(t.name == node.name for t in self.inputs):
            raise GraphError(
                f"pipeline '{self.name}': node '{node.name}' has the name of an input table"
            )
        self._nodes[node.name] = node
        self._compiled = None

    def feature(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Decorator: add a feature node (see ``shipyard.feature``)."""
        return self._decorate(_nodes.feature, function, options)

    def rule(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Decorator: add a rule node (see ``shipyard.rule``)."""
        return self._decorate(_nodes.rule, function, options)

    def model(self, name: str, estimator: Any, **options: Any) -> ModelNode:
        """Add a model node (see ``shipyard.model``)."""
        node = _nodes.model(name, estimator, **options)
        self.add(node)
        return node

    def _decorate(
        self, make: Callable[..., Any], function: Callable[..., Any] | None, options: dict[str, Any]
    ) -> Any:
        def wrap(fn: Callable[..., Any]) -> Node:
            node: Node = make(fn, **options)
            self.add(node)
            return node

        return wrap(function) if function is not None else wrap

    # -- checking ----------------------------------------------------------------------

    def _resolve(self, node: Node, ref: str | None, arg: str) -> str:
        """A node input's reference as a node name or ``table.column``."""
        target = ref if ref is not None else arg
        # A model's inputs are slots x0, x1, … in feature order: name the feature instead.
        where = (
            f"{node.label} feature '{target}'"
            if node.kind == "model"
            else f"{node.label} input '{arg}'"
        )
        if "." in target:
            table_name, column = target.split(".", 1)
            table = next((t for t in self.inputs if t.name == table_name), None)
            if table is None:
                raise GraphError(f"{where} refers to unknown table '{table_name}'")
            if table.column(column) is None:
                raise GraphError(f"{where} refers to unknown column '{target}'")
            return target
        if target in self._nodes:
            if isinstance(self._nodes[target], KnowledgeNode):
                raise GraphError(
                    f"{where} refers to knowledge '{target}', which is documents, not a "
                    "column: read it with shipyard.retrieve"
                )
            return target
        holders = [t.name for t in self.inputs if t.column(target) is not None]
        if len(holders) == 1:
            return f"{holders[0]}.{target}"
        if len(holders) > 1:
            options = ", ".join(f"{h}.{target}" for h in holders)
            raise GraphError(f"{where}: '{target}' is ambiguous; say which: {options}")
        if node.kind == "model":
            raise GraphError(f"{where} is neither a node nor an input column")
        raise GraphError(
            f"{where} refers to '{target}', which is neither a node nor an input column"
        )

    def _dtype_of(self, ref: str) -> str:
        if "." in ref:
            table_name, column = ref.split(".", 1)
            table = next(t for t in self.inputs if t.name == table_name)
            col = table.column(column)
            assert col is not None
            return col.type
        return self._nodes[ref].dtype

    def check(self) -> None:
        """Check the whole graph; raise GraphError naming the first problem found."""
        self._refs = {
            node.name: [self._resolve(node, ref, arg) for arg, ref in node.inputs.items()]
            for node in self._nodes.values()
        }
        self._run_order()
        for node in self._nodes.values():
            if isinstance(node, GenAINode):
                node.check_graph(self._refs[node.name], self._dtype_of, self._nodes)
            if isinstance(node, ModelNode):
                frame = _nodes.needs_frame(node.model)
                for ref in self._refs[node.name]:
                    dtype = self._dtype_of(ref)
                    if dtype not in NUMERIC and not frame:
                        raise GraphError(
                            f"type clash: {node.label} takes a numeric matrix "
                            f"but input '{ref}' is {dtype}"
                        )
                    if dtype == "list[float64]" and len(self._refs[node.name]) > 1:
                        raise GraphError(
                            f"type clash: {node.label} input '{ref}' is a list[float64]; "
                            "such an input must be the model's only one"
                        )
        for name in self._outputs or []:
            if name not in self._nodes:
                raise GraphError(f"pipeline '{self.name}': output '{name}' is not a node")
            if isinstance(self._nodes[name], KnowledgeNode):
                raise GraphError(
                    f"pipeline '{self.name}': output '{name}' is a knowledge node; "
                    "name a retrieve node that reads it"
                )

    def _run_order(self) -> list[str]:
        """Nodes in an order where each comes after what it reads; raises GraphError on a cycle."""
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = being visited, 2 = done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name) :] + [name]
                raise GraphError(f"pipeline '{self.name}' has a cycle: {' -> '.join(cycle)}")
            state[name] = 1
            node = self._nodes[name]
            # A retrieve node comes after the knowledge it searches, which is not an input.
            after = [node.knowledge] if isinstance(node, RetrieveNode) else []
            for ref in after + self._refs[name]:
                if "." not in ref and ref in self._nodes:
                    visit(ref, path + [ref])
            state[name] = 2
            order.append(name)

        for name in self._nodes:
            visit(name, [name])
        return order

    def references(self, node: str) -> list[str]:
        """What ``node`` reads, as node names and ``table.column``."""
        return list(self._refs[node])

    def run_order(self) -> list[str]:
        """The nodes in the order the executor runs them."""
        self.check()
        return self._run_order()

    # -- running and exporting ---------------------------------------------------------

    def executor(self) -> Executor:
        """The executor built from this pipeline's bundle files (cached until the graph changes)."""
        if self._compiled is None:
            from ..runtime import Executor
            from ._compile import compile_files

            self._compiled = Executor(compile_files(self))
        return self._compiled

    def run(
        self,
        data: Any,
        outputs: Sequence[str] | None = None,
        app_config: Mapping[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Run the pipeline in-process, exactly as the bundle's ``python_dict.main`` would.

        ``data`` is the dict dataset format (typed, column lists or records); the result is
        ``{output: {"type": ..., "values": [...]}}``. ``outputs`` may name any nodes, and
        only what they need is computed. ``app_config`` is what features and rules that
        read app config see (as a served version's app config); without it they use their
        defaults. Raises SchemaError on bad input.
        """
        executor = self.executor()
        if app_config:
            executor = executor.with_app_config(app_config)
        return executor.run_dict(data, outputs)

    def export(
        self,
        directory: str | Path,
        *,
        reference: Any = None,
        sign_key: str | Path | bytes | None = None,
        created_by: str | None = None,
        backend: str = "auto",
    ) -> Path:
        """Write ``NAME-VERSION.tar.gz`` into ``directory``; return its path.

        ``reference`` (a dict dataset, a pandas DataFrame, or {table: DataFrame}) gives the
        training-data profile and example input, and is where ONNX parity is proven;
        ``sign_key`` is an Ed25519 private key (PEM path or bytes) that signs MANIFEST.json;
        ``backend`` is ``auto`` (ONNX where parity holds), ``onnx`` or ``native``.
        Raises ModelError when a model cannot be saved (or, with ``onnx``, converted),
        SchemaError when ``reference`` does not fit the inputs, SignatureError on a bad
        signing key, UsageError on a bad backend. The archive appears only when complete.
        """
        # Imported here: signing loads cryptography, which running a pipeline never needs.
        from ..artifact import load_private_key, sign_files, write_bundle
        from ._compile import archive_mtime, compile_files

        if sign_key is not None:
            load_private_key(sign_key)  # fail on a bad key before the expensive work
        files = compile_files(self, reference=reference, created_by=created_by, backend=backend)
        signed = sign_files(files, sign_key)
        target = Path(directory) / f"{self.name}-{self.version}.tar.gz"
        return write_bundle(self.bundle_name, signed, target, archive_mtime(signed))

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, {self.version!r}, nodes={list(self._nodes)})"
