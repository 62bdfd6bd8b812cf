"""The bundle writer: sign a bundle's files, write the archive, and manage signing keys.

It works on files and bytes and never imports ``shipyard.pipeline``: ``Pipeline.export``
composes compile (``shipyard.pipeline``), ``sign_files`` and ``write_bundle``.
"""

from ._bundle import sign_files, write_bundle
from ._keys import generate_key_pair, load_private_key

__all__ = ["generate_key_pair", "load_private_key", "sign_files", "write_bundle"]
