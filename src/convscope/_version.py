"""The version, in one place: the package, run metadata, exports and the server all read it from here.

A module of its own (not `convscope/__init__.py`) so that reading it imports nothing else of the package."""

__version__ = "0.1.0"
