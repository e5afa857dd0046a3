"""The architecture, enforced: the core is a leaf, no import cycles, import-linter contracts."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import grimp

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "agentmw"
ABOVE_THE_CORE = ("agentmw.middleware", "agentmw.stores", "agentmw.integrations", "agentmw.presets")


def _imported_modules(path: pathlib.Path) -> list[tuple[int, str]]:
    """Every module `path` imports, at any depth (functions and TYPE_CHECKING blocks too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_the_core_imports_no_layer_store_integration_or_preset() -> None:
    leaks = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in sorted((PACKAGE / "core").rglob("*.py"))
        for line, module in _imported_modules(path)
        if module.startswith(ABOVE_THE_CORE)
    ]
    assert leaks == []


def test_the_package_has_no_import_cycle() -> None:
    graph = grimp.build_graph("agentmw", exclude_type_checking_imports=True)
    cycles = {
        tuple(sorted((module, imported)))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.find_shortest_chain(importer=imported, imported=module)
    }
    assert sorted(cycles) == []


def test_the_import_contracts_hold() -> None:
    exe = pathlib.Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(exe), "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout
