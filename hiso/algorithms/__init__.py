"""The algorithm components, one module each; importing this package registers every one, in the
order error messages list them."""

import importlib

from hiso.algorithms.base import REGISTRY, Algorithm, Workspace, algorithm_class

MODULES = ("hiso", "decomfl", "mezo", "fedavg", "adaptive", "fedzo", "fedkseed", "fedkseed_pro")
for _module in MODULES:
    importlib.import_module(f"hiso.algorithms.{_module}")

__all__ = ["REGISTRY", "Algorithm", "Workspace", "algorithm_class"]
