"""Files written by an export (and by a sweep's summaries): atomically, with the mode the umask allows."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_file_atomically(out: Path, write) -> None:
    """Let `write` fill a temporary sibling of `out`, give it the mode the umask allows, and rename it to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the exported file is an ordinary run file
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    umask = os.umask(0)  # the only way to read it is to set it, so set it straight back
    os.umask(umask)
    return umask
