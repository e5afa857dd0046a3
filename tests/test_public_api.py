"""The public surface: `__all__` lists are sorted, complete and resolvable."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import agentmw
import agentmw.middleware
import agentmw.stores


def _private_modules(package: ModuleType) -> list[ModuleType]:
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.startswith("_") and not info.name.startswith("__")
    ]


def _surface(module: ModuleType) -> set[str]:
    """A module's declared `__all__`, else the public classes and functions it defines."""
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return set(declared)
    return {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__ == module.__name__
    }


@pytest.mark.parametrize("package", [agentmw, agentmw.middleware, agentmw.stores])
def test_all_is_sorted_unique_and_resolves(package: ModuleType) -> None:
    names = list(package.__all__)
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(package, name), f"{package.__name__}.{name} is in __all__ but missing"


def test_every_public_name_of_the_core_modules_is_exported() -> None:
    exported = set(agentmw.__all__)
    for module in _private_modules(agentmw):
        missing = _surface(module) - exported
        assert not missing, f"{module.__name__} defines public {sorted(missing)} not in __all__"


def test_every_layer_is_exported_from_agentmw_middleware() -> None:
    exported = set(agentmw.middleware.__all__)
    for info in pkgutil.iter_modules(agentmw.middleware.__path__):
        module = importlib.import_module(f"agentmw.middleware.{info.name}")
        layers = {
            name
            for name, obj in vars(module).items()
            if inspect.isclass(obj)
            and issubclass(obj, agentmw.Middleware)
            and obj.__module__ == module.__name__
        }
        assert layers <= exported, f"{sorted(layers - exported)} not in agentmw.middleware"


def test_version() -> None:
    assert agentmw.__version__ == "0.1.0"
