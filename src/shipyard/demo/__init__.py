"""``shipyard demo``: the whole journey (train, export, verify, promote, score, serve, an app
beside the model, GenAI, monitoring, a deploy render) in one go.

The command line is its only user: the ``demo`` command builds a ``Display`` from its own
console, views and progress bar and calls ``run_demo``. ``build_pipeline`` and
``reference`` are the demo's tumour-triage pipeline and its training data
(``shipyard artifact build shipyard.demo:build_pipeline --reference shipyard.demo:reference``);
they need scikit-learn (the ``sklearn`` extra).
"""

from ._display import Display, RegistryViews
from ._journey import run_demo
from ._pipeline import build_pipeline, reference

__all__ = ["Display", "RegistryViews", "build_pipeline", "reference", "run_demo"]
