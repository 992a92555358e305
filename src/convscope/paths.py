"""Where convscope keeps what it fetches or builds once per machine: `$XDG_CACHE_HOME/convscope`, else
`~/.cache/convscope`. Named datasets (data/download.py) and the compiled kernels (models/native.py) live under it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def cache_root(env: Mapping[str, str]) -> Path:
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "convscope"
    return Path.home() / ".cache" / "convscope"
