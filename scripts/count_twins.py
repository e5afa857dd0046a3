"""Count sync/async twin pairs and the lines of their async halves.

A twin pair is an `async def a<x>` (or `_a<x>`) beside a `def <x>` (or `_<x>`) in the same class
or module (a sync function that awaits counts as async); its async lines are the async
function's lines, decorators excluded; its body lines leave out the signature and docstring
(what can drift is the body). Usage:

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


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if not body:
        return 0
    end = body[-1].end_lineno
    assert end is not None
    return end - body[0].lineno + 1


def scan(body: list[ast.stmt], where: str, found: list[tuple[int, int, str, str]]) -> None:
    funcs = {n.name: n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for name, node in funcs.items():
        bare = name.lstrip("_")
        prefix = name[: len(name) - len(bare)]
        if not bare.startswith("a") or not _is_async(node):
            continue
        twin = prefix + bare[1:]
        if twin in funcs and twin != name:
            assert node.end_lineno is not None
            total = node.end_lineno - node.lineno + 1
            found.append((total, _body_lines(node), where, name))
    for child in body:
        if isinstance(child, ast.ClassDef):
            scan(child.body, f"{where}:{child.name}", found)


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "agentmw")
    listed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    found: list[tuple[int, int, str, str]] = []
    for path in sorted(root.rglob("*.py")):
        scan(ast.parse(path.read_text()).body, str(path), found)
    for lines, body, where, name in sorted(found, reverse=True)[:listed]:
        print(lines, body, where, name)
    total = sum(n for n, _, _, _ in found)
    body = sum(b for _, b, _, _ in found)
    print(f"pairs={len(found)} async_twin_lines={total} async_twin_body_lines={body}")


if __name__ == "__main__":
    main()
