"""The route table: which runner answers which model, with A/B shares and a shadow.

A ``RouteTable`` is immutable. The app holds one and replaces it whole when the
environment changes (one reference assignment: atomic); a request reads the reference
once when it starts, so it finishes on the versions it started with.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._runner import ModelRunner

if TYPE_CHECKING:
    from ._apps import AppMount


@dataclass(frozen=True)
class ModelRoute:
    """How requests for one model are answered.

    ``live`` are the versions sharing its traffic, with ``shares`` (fractions adding up
    to 1); ``shadow`` gets a copy of each request; ``versions`` are every version held,
    by label (``/v2/models/M/versions/V`` addresses them directly).
    """

    name: str
    live: tuple[ModelRunner, ...]
    shares: tuple[float, ...]
    shadow: ModelRunner | None = None
    versions: Mapping[str, ModelRunner] = field(default_factory=dict)
    _bounds: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.live or len(self.live) != len(self.shares):
            raise ValueError(f"model {self.name}: live versions and shares do not match")
        total, bounds = 0.0, []
        for share in self.shares:
            total += share
            bounds.append(total)
        object.__setattr__(self, "_bounds", tuple(b / total for b in bounds))
        held = {r.version: r for r in (*self.live, *([self.shadow] if self.shadow else []))}
        object.__setattr__(self, "versions", {**held, **self.versions})

    @classmethod
    def single(cls, runner: ModelRunner) -> ModelRoute:
        """One version answering everything."""
        return cls(runner.model, (runner,), (1.0,))

    def pick(self, draw: float) -> ModelRunner:
        """The live version for a uniform ``draw`` in [0, 1)."""
        if len(self.live) == 1:
            return self.live[0]
        index = bisect.bisect_right(self._bounds, draw)
        return self.live[min(index, len(self.live) - 1)]

    @property
    def primary(self) -> ModelRunner:
        """The live version with the largest share (what metadata describes by default)."""
        return max(zip(self.shares, self.live, strict=True), key=lambda pair: pair[0])[1]


@dataclass(frozen=True)
class RouteTable:
    """Every model and app an environment serves, at one revision.

    ``revision`` is None when serving a bundle file; ``capture_rate`` is the share of
    requests to capture (0 to 1), ``llm_calls`` and ``llm_prompts`` whether llm calls and
    their rendered prompts are kept (None leaves the app's capture as it is); ``apps`` are
    the app components, served under ``/apps/NAME/``; ``pinned`` names the models served at
    one version only whatever their ``traffic`` setting (``shipyard serve --pin``).
    """

    project: str
    environment: str
    models: Mapping[str, ModelRoute]
    revision: int | None = None
    capture_rate: float | None = None
    apps: Mapping[str, AppMount] = field(default_factory=dict)
    llm_calls: bool | None = None
    llm_prompts: bool | None = None
    pinned: Mapping[str, str] = field(default_factory=dict)

    def runners(self) -> Iterator[tuple[str, ModelRunner]]:
        """``(role, runner)`` of every version held: live, shadow or addressable."""
        for route in self.models.values():
            live = {id(r) for r in route.live}
            for runner in route.versions.values():
                if id(runner) in live:
                    yield "live", runner
                elif runner is route.shadow:
                    yield "shadow", runner
                else:
                    yield "addressable", runner


def bundle_table(
    runners: Sequence[ModelRunner],
    project: str = "local",
    environment: str = "local",
    capture_rate: float | None = None,
) -> RouteTable:
    """A table serving bundle files directly (no registry): one version per model."""
    return RouteTable(
        project,
        environment,
        {r.model: ModelRoute.single(r) for r in runners},
        capture_rate=capture_rate,
    )
