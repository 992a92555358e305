"""The version, in one place: the package metadata (pyproject.toml reads it from here), run metadata, exports
and the server.

A module of its own (not `convscope/__init__.py`) so that reading it imports nothing else of the package."""

__version__ = "0.1.0"
