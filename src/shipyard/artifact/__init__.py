"""The artifact service: build signed bundles and manage signing keys."""

from ._build import build, write_bundle
from ._keys import generate_key_pair, load_private_key

__all__ = ["build", "generate_key_pair", "load_private_key", "write_bundle"]
