"""The public surface: a small root, complete and sorted `__all__` lists, moved names that warn."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import warnings
from types import ModuleType

import pytest

import agentmw
import agentmw.classify
import agentmw.core
import agentmw.errors
import agentmw.events
import agentmw.guardrails
import agentmw.integrations
import agentmw.middleware
import agentmw.permissions
import agentmw.policy
import agentmw.pricing
import agentmw.quality
import agentmw.stores
import agentmw.testing
import agentmw.usage

PUBLIC = [
    agentmw,
    agentmw.classify,
    agentmw.core,
    agentmw.errors,
    agentmw.events,
    agentmw.guardrails,
    agentmw.integrations,
    agentmw.middleware,
    agentmw.permissions,
    agentmw.policy,
    agentmw.pricing,
    agentmw.quality,
    agentmw.stores,
    agentmw.testing,
    agentmw.usage,
]
# Packages whose submodules' public names must all be exported by the package itself.
PACKAGES = [
    agentmw.core,
    agentmw.guardrails,
    agentmw.middleware,
    agentmw.policy,
    agentmw.stores,
]


def _submodules(package: ModuleType) -> list[ModuleType]:
    prefix = package.__name__ + "."
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(package.__path__, prefix)
        if info.name != "agentmw.stores.redis._conn"  # needs redis only at first use
        or importlib.util.find_spec("redis") is not None
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


def _isort_style(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical.
    group = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return group, name


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_all_is_sorted_unique_and_resolves(module: ModuleType) -> None:
    names = list(module.__all__)
    assert names == sorted(names, key=_isort_style)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(module, name), f"{module.__name__}.{name} is in __all__ but missing"


def test_the_root_stays_small() -> None:
    assert len(agentmw.__all__) <= 40


@pytest.mark.parametrize("package", PACKAGES, ids=lambda m: m.__name__)
def test_every_public_name_of_a_package_is_exported_by_it(package: ModuleType) -> None:
    exported = set(package.__all__)
    for module in _submodules(package):
        private = module.__name__.rpartition(".")[2].startswith("_")
        if private and not hasattr(module, "__all__"):
            continue  # a private module's names are internal unless it lists them
        missing = _surface(module) - exported
        assert not missing, f"{module.__name__} exports {sorted(missing)}, {package.__name__} not"


def test_every_layer_is_exported_from_agentmw_middleware() -> None:
    exported = set(agentmw.middleware.__all__)
    for module in _submodules(agentmw.middleware):
        layers = {
            name
            for name, obj in vars(module).items()
            if inspect.isclass(obj)
            and issubclass(obj, agentmw.Middleware)
            and obj.__module__ == module.__name__
            and not name.startswith("_")
        }
        assert layers <= exported, f"{sorted(layers - exported)} not in agentmw.middleware"


def test_every_public_exception_lives_in_agentmw_errors() -> None:
    internal = {"agentmw.cli.db.CliError"}  # the CLI's own exit path, never raised to callers
    found = []
    for module in [agentmw, *_submodules(agentmw)]:
        if any(part.startswith("_") for part in module.__name__.split(".")):
            continue  # a private module's signals (e.g. a store's outage marker) stay inside
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found.append(f"{module.__name__}.{name}")
    strays = [f for f in found if not f.startswith("agentmw.errors.") and f not in internal]
    assert strays == []
    assert set(agentmw.errors.__all__) == {f.rsplit(".", 1)[1] for f in found} - {"CliError"}


@pytest.mark.parametrize("name", sorted(agentmw._MOVED))
def test_a_moved_name_still_imports_from_the_root_with_a_warning(name: str) -> None:
    new_home = importlib.import_module(agentmw._MOVED[name])
    with pytest.warns(DeprecationWarning, match=rf"agentmw\.{name} has moved: import it from "):
        value = getattr(agentmw, name)
    assert value is getattr(new_home, name)
    assert name in new_home.__all__
    assert name not in agentmw.__all__


def test_a_moved_name_warns_at_the_importing_line() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from agentmw import PolicyEngine  # noqa: F401

    assert caught, "no warning"
    for warning in caught:
        assert warning.category is DeprecationWarning
        assert warning.filename == __file__
        assert "agentmw.policy" in str(warning.message)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        agentmw.NoSuchThing  # noqa: B018


def test_version_comes_from_the_package_metadata() -> None:
    assert agentmw.__version__ == importlib.metadata.version("agentmw")
