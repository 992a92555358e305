"""Public names that load their module on first use (PEP 562), so `import convscope` and
`convscope --help` do not pay for torch, NumPy and matplotlib before anything needs them.

A package calls `attach(__name__, {"load": ".data.load", ...})` with each public name and the module that
defines it; type checkers and IDEs read the same names from the package's `if TYPE_CHECKING:` imports.

Several public functions share their name with a submodule (`convscope.report`, `convscope.experiment`,
`convscope.data.load`, `convscope.training.fit`). Importing such a submodule makes Python set the package's
attribute to the module; the package's class refuses that one assignment, so the name stays the function
however the submodule was reached (`import convscope.report.compare` included), as it was when every name
was imported up front. The submodule itself stays in `sys.modules`.
"""

from __future__ import annotations

import importlib
import sys
import types


class LazyPackage(types.ModuleType):
    """A package module whose public names never get replaced by a submodule of the same name."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_lazy_kept", ()):
            return
        super().__setattr__(name, value)


def attach(package: str, exports: dict[str, str], own: tuple[str, ...] = ()) -> None:
    """Make each name of `exports` an attribute of `package`, imported from its module on first use;
    `own` names the package's own definitions that a submodule of the same name must not replace."""
    module = sys.modules[package]
    module.__dict__["_lazy_kept"] = frozenset(exports) | frozenset(own)

    def __getattr__(name: str) -> object:
        source = exports.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source, package), name)
        module.__dict__[name] = value  # the next look-up is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(exports))

    module.__dict__["__getattr__"] = __getattr__
    module.__dict__["__dir__"] = __dir__
    module.__class__ = LazyPackage
