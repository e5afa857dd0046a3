"""Count sync/async twin pairs and the lines of their async halves.

A twin pair is an `async def a<x>` (or `_a<x>`) beside a `def <x>` (or `_<x>`) in the same class
or module (a sync function that awaits counts as async); its async lines are the async
function's lines, decorators excluded. Usage:

    python scripts/count_twins.py [PACKAGE_DIR [N]]   # N: also list the N longest async twins
"""

from __future__ import annotations

import ast
import pathlib
import sys

AWAITS = (ast.Await, ast.AsyncFor, ast.AsyncWith)


def _is_async(node: ast.AST) -> bool:
    if isinstance(node, ast.AsyncFunctionDef):
        return True
    return isinstance(node, ast.FunctionDef) and any(isinstance(x, AWAITS) for x in ast.walk(node))


def scan(body: list[ast.stmt], where: str, found: list[tuple[int, str, str]]) -> None:
    funcs = {n.name: n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for name, node in funcs.items():
        bare = name.lstrip("_")
        prefix = name[: len(name) - len(bare)]
        if not bare.startswith("a") or not _is_async(node):
            continue
        twin = prefix + bare[1:]
        if twin in funcs and twin != name:
            assert node.end_lineno is not None
            found.append((node.end_lineno - node.lineno + 1, where, name))
    for child in body:
        if isinstance(child, ast.ClassDef):
            scan(child.body, f"{where}:{child.name}", found)


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "agentmw")
    listed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    found: list[tuple[int, str, str]] = []
    for path in sorted(root.rglob("*.py")):
        scan(ast.parse(path.read_text()).body, str(path), found)
    for lines, where, name in sorted(found, reverse=True)[:listed]:
        print(lines, where, name)
    print(f"pairs={len(found)} async_twin_lines={sum(n for n, _, _ in found)}")


if __name__ == "__main__":
    main()
