"""GenAI nodes: prompt templates, LLM settings, knowledge sets with retrieval, answer checks.

Each node locks what it needs into ``objects/NODE/`` of the bundle, in files a production
system can take on their own (``shipyard artifact extract BUNDLE NODE``):

    prompt      prompt.json + one .jinja template per message (Jinja2, sandboxed, strict)
    llm         llm.json: model, seed, temperature, top_k, top_p, max_tokens, stop,
                response_format, timeout, retries, on_error (never the endpoint or a key)
    knowledge   files/… as given, chunks.json, a BM25 index (index.json + .npy arrays)
    retrieve    nothing: it names its knowledge node, top_k and separator in metadata
    parse       schema.json: the JSON schema an answer must fit and the fallback value

Every check runs when the node is made or the pipeline is built, and raises GraphError
naming the node and what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from ..errors import GraphError
from ..runtime import (
    build_index,
    chunk_text,
    npy_bytes,
    prompt_environment,
    unsupported,
    violation,
)
from ._nodes import Node
from ._schema import check_identifier

ROLES = ("system", "user", "assistant")
ON_ERROR = ("raise", "null")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")

Spec = dict[str, Any]
BundleFiles = tuple[Spec, dict[str, bytes], list[str]]


@dataclass
class GenAINode(Node):
    """A node of the GenAI kinds: checks its inputs' types and writes its own bundle files."""

    def check_graph(
        self, refs: Sequence[str], dtype_of: Callable[[str], str], nodes: Mapping[str, Node]
    ) -> None:
        """Raise GraphError when what the node reads cannot work (called at every build)."""
        for (arg, _), ref in zip(self.inputs.items(), refs, strict=True):
            dtype = dtype_of(ref)
            if dtype != "string":
                raise GraphError(f"type clash: {self.label} input '{arg}' is {dtype}, not string")

    def bundle_files(self, refs: Sequence[str], nodes: Mapping[str, Node]) -> BundleFiles:
        """(metadata spec fields, files under ``objects/NAME/``, packages the runtime needs)."""
        raise NotImplementedError

    @property
    def folder(self) -> str:
        return f"objects/{self.name}"


def _text(document: Any) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


# -- prompt -------------------------------------------------------------------------------


@dataclass
class PromptNode(GenAINode):
    """A Jinja2 template (text) or list of them (chat), rendered per row from its variables."""

    form: str = "text"
    messages: list[tuple[str, str]] = field(default_factory=list)  # (role, template)

    def check_graph(
        self, refs: Sequence[str], dtype_of: Callable[[str], str], nodes: Mapping[str, Node]
    ) -> None:
        pass  # a variable may be of any type: it renders as text

    def bundle_files(self, refs: Sequence[str], nodes: Mapping[str, Node]) -> BundleFiles:
        names = _template_files(self.form, [role for role, _ in self.messages])
        files = {
            f"{self.folder}/{name}": template.encode()
            for name, (_, template) in zip(names, self.messages, strict=True)
        }
        document = {
            "form": self.form,
            "engine": "jinja2 sandboxed, StrictUndefined",
            "messages": [
                {"role": role, "file": name}
                for name, (role, _) in zip(names, self.messages, strict=True)
            ],
            "variables": dict(zip(self.inputs, refs, strict=True)),
        }
        files[f"{self.folder}/prompt.json"] = _text(document)
        spec = {
            "args": list(self.inputs),
            "params": {},
            "file": f"{self.folder}/prompt.json",
            "form": self.form,
            "templates": [f"{self.folder}/{name}" for name in names],
        }
        return spec, files, ["jinja2"]


def _template_files(form: str, roles: Sequence[str]) -> list[str]:
    if form == "text":
        return ["template.jinja"]
    names = []
    for i, role in enumerate(roles):
        repeated = roles.count(role) > 1
        names.append(f"{role}-{roles[: i + 1].count(role)}.jinja" if repeated else f"{role}.jinja")
    return names


def prompt(
    name: str,
    template: str | Mapping[str, str] | Sequence[Mapping[str, str] | tuple[str, str]],
    *,
    variables: Mapping[str, str] | Sequence[str] | None = None,
    description: str = "",
) -> PromptNode:
    """Make a prompt node: a Jinja2 template rendered per row, sandboxed, strict.

    ``template`` is text, or a chat: ``{"system": ..., "user": ...}`` or a list of
    ``{"role", "content"}`` (roles system, user, assistant). ``variables`` maps each
    template variable to a reference (a node or ``table.column``); a list of references
    names each variable after its column; None reads each variable the template uses from
    the node or column of that name. A variable the template reads but ``variables`` does
    not declare, one declared but never read, or a template that does not compile raises
    GraphError; a reference the pipeline does not know raises GraphError when it is built.
    """
    what = f"prompt '{name}'"
    messages, form = _messages(what, template)
    environment = prompt_environment()
    from jinja2 import TemplateSyntaxError, meta

    used: set[str] = set()
    for role, text in messages:
        try:
            used |= meta.find_undeclared_variables(environment.parse(text))
        except TemplateSyntaxError as exc:
            where = "template" if form == "text" else f"{role} template"
            raise GraphError(
                f"{what}: the {where} does not compile (line {exc.lineno}: {exc.message})"
            ) from None
    if variables is None:
        mapping: dict[str, str | None] = dict.fromkeys(sorted(used))
    elif isinstance(variables, Mapping):
        mapping = {str(k): str(v) for k, v in variables.items()}
    else:
        mapping = {}
        for ref in variables:
            variable = str(ref).split(".")[-1]
            if variable in mapping:
                raise GraphError(f"{what}: two variables are named '{variable}'")
            mapping[variable] = str(ref)
    for variable in mapping:
        check_identifier(variable, f"{what} variable")
    undeclared = sorted(used - set(mapping))
    if undeclared:
        declared = ", ".join(mapping) or "none"
        raise GraphError(
            f"{what}: the template reads '{undeclared[0]}', which is not a declared variable "
            f"(declared: {declared})"
        )
    unread = [v for v in mapping if v not in used]
    if unread:
        raise GraphError(
            f"{what}: variable '{unread[0]}' is declared but the template never reads it"
        )
    return PromptNode(
        name=name,
        kind="prompt",
        inputs=mapping,
        dtype="string",
        description=description,
        form=form,
        messages=messages,
    )


def _messages(
    what: str, template: str | Mapping[str, str] | Sequence[Mapping[str, str] | tuple[str, str]]
) -> tuple[list[tuple[str, str]], str]:
    if isinstance(template, str):
        return [("user", template)], "text"
    if isinstance(template, Mapping):
        pairs = [(str(role), text) for role, text in template.items()]
    else:
        pairs = []
        for item in template:
            if isinstance(item, Mapping):
                pairs.append((str(item.get("role")), item.get("content")))  # type: ignore[arg-type]
            elif isinstance(item, tuple) and len(item) == 2:
                pairs.append((str(item[0]), item[1]))
            else:
                raise GraphError(f"{what}: each message is {{'role', 'content'}}, not {item!r}")
    if not pairs:
        raise GraphError(f"{what}: the chat has no messages")
    for role, text in pairs:
        if role not in ROLES:
            raise GraphError(f"{what}: role {role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(text, str):
            raise GraphError(f"{what}: the {role} message is not text")
    return pairs, "chat"


# -- llm ----------------------------------------------------------------------------------


@dataclass
class LlmNode(GenAINode):
    """A call to an OpenAI-compatible chat endpoint per row, with settings locked in llm.json."""

    settings: dict[str, Any] = field(default_factory=dict)

    def bundle_files(self, refs: Sequence[str], nodes: Mapping[str, Node]) -> BundleFiles:
        source = nodes.get(refs[0])
        chat = isinstance(source, PromptNode) and source.form == "chat"
        spec = {
            "args": ["prompt"],
            "params": {},
            "file": f"{self.folder}/llm.json",
            "messages": chat,
        }
        return spec, {f"{self.folder}/llm.json": _text(self.settings)}, []


def llm(
    name: str,
    *,
    prompt: str,
    model: str,
    seed: int | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    stop: str | Sequence[str] | None = None,
    response_format: Mapping[str, Any] | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    on_error: str = "raise",
    description: str = "",
) -> LlmNode:
    """Make an llm node: one chat completion per row of ``prompt`` (a prompt node or text).

    The settings are locked in the bundle (``llm.json``); None leaves one to the
    endpoint. The endpoint and its key are not: the host gives them when the bundle runs
    (SHIPYARD_LLM_BASE_URL, SHIPYARD_LLM_API_KEY). ``top_k`` is sent as an extra field,
    which vLLM, llama.cpp and Ollama read (OpenAI's own API has none). ``timeout`` is
    seconds per attempt; ``retries`` how often a timeout, 408, 429 or 5xx is tried again;
    ``on_error`` ``raise`` fails the request naming the node, ``null`` answers None for
    that row (a parse node then falls back). Raises GraphError on a setting out of range.
    """
    what = f"llm '{name}'"
    if not isinstance(model, str) or not model.strip():
        raise GraphError(f"{what}: model must be the model's name, not {model!r}")

    def number(option: str, value: Any, low: float, high: float, whole: bool = False) -> None:
        if value is None:
            return
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            kind = "a whole number" if whole else "a number"
            raise GraphError(f"{what}: {option} must be {kind}, not {value!r}")
        if not low <= value <= high:
            raise GraphError(f"{what}: {option} must lie in [{low:g}, {high:g}], not {value!r}")

    number("seed", seed, -(2**63), 2**63 - 1, whole=True)
    number("temperature", temperature, 0.0, 2.0)
    number("top_k", top_k, 1, 1_000_000, whole=True)
    number("top_p", top_p, 0.0, 1.0)
    number("max_tokens", max_tokens, 1, 10_000_000, whole=True)
    number("timeout", timeout, 0.001, 3600.0)
    number("retries", retries, 0, 10, whole=True)
    stops: list[str] | None = None
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(stop)
        if not all(isinstance(s, str) and s for s in stops) or len(stops) > 4:
            raise GraphError(f"{what}: stop is up to 4 non-empty strings, not {stop!r}")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, Mapping) else None
        if kind not in RESPONSE_FORMATS:
            raise GraphError(
                f"{what}: response_format must be {{'type': one of {', '.join(RESPONSE_FORMATS)}}}"
            )
        try:
            json.dumps(response_format)
        except TypeError as exc:
            raise GraphError(f"{what}: response_format must be JSON ({exc})") from None
    if on_error not in ON_ERROR:
        raise GraphError(f"{what}: on_error must be raise or null, not {on_error!r}")
    settings = {
        "api": "openai-chat-completions",
        "model": model,
        "seed": seed,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "stop": stops,
        "response_format": dict(response_format) if response_format is not None else None,
        "timeout": float(timeout),
        "retries": retries,
        "on_error": on_error,
    }
    return LlmNode(
        name=name,
        kind="llm",
        inputs={"prompt": prompt},
        dtype="string",
        description=description,
        settings=settings,
    )


# -- knowledge and retrieval --------------------------------------------------------------


@dataclass
class KnowledgeNode(GenAINode):
    """Documents read when the node is made, chunked and indexed (BM25) when exported."""

    documents: dict[str, bytes] = field(default_factory=dict)
    chunk: int = 200

    def bundle_files(self, refs: Sequence[str], nodes: Mapping[str, Node]) -> BundleFiles:
        chunks = [
            part
            for file, data in self.documents.items()
            for part in chunk_text(file, data.decode("utf-8"), self.chunk)
        ]
        document, arrays = build_index([c["text"] for c in chunks])
        files = {f"{self.folder}/files/{file}": data for file, data in self.documents.items()}
        files[f"{self.folder}/chunks.json"] = _text(chunks)
        files[f"{self.folder}/index.json"] = _text(document)
        for array_name, array in arrays.items():
            files[f"{self.folder}/{array_name}.npy"] = npy_bytes(array)
        spec = {
            "file": f"{self.folder}/index.json",
            "documents": [f"{self.folder}/files/{file}" for file in self.documents],
            "chunk_words": self.chunk,
            "chunks": len(chunks),
            "index": "bm25",
        }
        return spec, files, []


def knowledge(
    name: str, files: Sequence[str | Path], *, chunk: int = 200, description: str = ""
) -> KnowledgeNode:
    """Make a knowledge node from UTF-8 text files (Markdown, plain text), read now.

    At export the files are cut into chunks of at most ``chunk`` words along paragraphs,
    indexed for BM25, and locked in the bundle with the index. A retrieve node searches
    it. Raises GraphError for a missing or non-UTF-8 file or two files of one name.
    """
    what = f"knowledge '{name}'"
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 10 <= chunk <= 10_000:
        raise GraphError(f"{what}: chunk must be a whole number of words in [10, 10000]")
    if isinstance(files, str | PurePath) or not files:
        raise GraphError(f"{what}: files must be a list of one or more paths")
    documents: dict[str, bytes] = {}
    for given in files:
        path = Path(given)
        if path.name in documents:
            raise GraphError(f"{what}: two files are named '{path.name}'")
        try:
            data = path.read_bytes()
            data.decode("utf-8")
        except OSError as exc:
            raise GraphError(f"{what}: cannot read '{path}' ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise GraphError(f"{what}: '{path}' is not UTF-8 text") from None
        documents[path.name] = data
    return KnowledgeNode(
        name=name,
        kind="knowledge",
        inputs={},
        dtype="string",
        description=description,
        documents=documents,
        chunk=chunk,
    )


@dataclass
class RetrieveNode(GenAINode):
    """The ``top_k`` passages of a knowledge node that best match each row's query."""

    knowledge: str = ""
    top_k: int = 3
    separator: str = "\n\n"

    def check_graph(
        self, refs: Sequence[str], dtype_of: Callable[[str], str], nodes: Mapping[str, Node]
    ) -> None:
        if not isinstance(nodes.get(self.knowledge), KnowledgeNode):
            raise GraphError(
                f"{self.label} reads '{self.knowledge}', which is not a knowledge node"
            )
        super().check_graph(refs, dtype_of, nodes)

    def bundle_files(self, refs: Sequence[str], nodes: Mapping[str, Node]) -> BundleFiles:
        spec = {
            "args": ["query"],
            "params": {},
            "knowledge": self.knowledge,
            "top_k": self.top_k,
            "separator": self.separator,
        }
        return spec, {}, []


def retrieve(
    name: str,
    *,
    knowledge: str,
    query: str,
    top_k: int = 3,
    separator: str = "\n\n",
    description: str = "",
) -> RetrieveNode:
    """Make a retrieve node: per row, the ``top_k`` BM25 passages of ``knowledge`` for ``query``.

    The passages are joined with ``separator`` into one text, best first (empty when no
    word of the query is in the knowledge). ``query`` is a string node or column.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise GraphError(f"retrieve '{name}': top_k must be a whole number in [1, 100]")
    return RetrieveNode(
        name=name,
        kind="retrieve",
        inputs={"query": query},
        dtype="string",
        description=description,
        knowledge=knowledge,
        top_k=top_k,
        separator=separator,
    )


# -- answer checks ------------------------------------------------------------------------


@dataclass
class ParseNode(GenAINode):
    """An answer parsed as JSON and checked against a schema, or the declared fallback."""

    schema: dict[str, Any] = field(default_factory=dict)
    fallback: Any = None

    def bundle_files(self, refs: Sequence[str], nodes: Mapping[str, Node]) -> BundleFiles:
        document = {"schema": self.schema, "fallback": self.fallback}
        spec = {"args": ["answer"], "params": {}, "file": f"{self.folder}/schema.json"}
        return spec, {f"{self.folder}/schema.json": _text(document)}, []


def parse_answer(
    name: str,
    *,
    answer: str,
    schema: Mapping[str, Any],
    fallback: Any,
    description: str = "",
) -> ParseNode:
    """Make a parse node: each answer read as JSON and checked against ``schema``.

    Its value per row is JSON text: ``{"valid": true, "value": ANSWER}``, or
    ``{"valid": false, "value": FALLBACK, "error": WHY}`` when the answer is not JSON, does
    not fit the schema, or is missing; so the output records every fallback taken. A
    Markdown code fence around the JSON is accepted. Raises GraphError when the schema
    uses a keyword the checker does not know, or ``fallback`` does not fit it.
    """
    what = f"parse '{name}'"
    problem = unsupported(schema)
    if problem:
        raise GraphError(f"{what}: schema {problem}")
    try:
        document = json.loads(json.dumps({"schema": schema, "fallback": fallback}))
    except (TypeError, ValueError) as exc:
        raise GraphError(f"{what}: schema and fallback must be JSON values ({exc})") from None
    broken = violation(document["fallback"], document["schema"])
    if broken:
        raise GraphError(f"{what}: the fallback does not fit the schema ({broken})")
    return ParseNode(
        name=name,
        kind="parse",
        inputs={"answer": answer},
        dtype="string",
        description=description,
        schema=document["schema"],
        fallback=document["fallback"],
    )
