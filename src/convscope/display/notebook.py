"""Is this code running in a Jupyter kernel? (IPython in a terminal is not one.)"""

from __future__ import annotations

import sys


def in_notebook() -> bool:
    """True inside a Jupyter or Colab kernel, where rich output and in-place updates work.

    Only looks at IPython when something already imported it: a terminal run never pays for it.
    ipykernel's shells (Jupyter, Colab, VS Code) carry a `kernel`; the terminal IPython shell does not.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
