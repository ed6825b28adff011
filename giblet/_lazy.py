"""Lazy package exports (PEP 562): a stage imports only the modules it uses, not every sibling's
dependencies (the codec's transformers, k-means' scikit-learn...), which saves seconds per process."""

from __future__ import annotations

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package, modules):
    """``(__getattr__, __dir__, __all__)`` for a package whose names live in ``modules``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    modules : dict of str to sequence of str
        Submodule (relative to the package) -> the names the package exports from it.
    """
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in names}

    def __getattr__(name):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    def __dir__():
        return sorted(where)

    return __getattr__, __dir__, sorted(where)
