"""Count sync/async twin pairs and the lines of their async halves.

A twin pair is an `async def a<x>` (or `_a<x>`, `__a<x>__`) beside a `def <x>` in the same class
or module; its async lines are the async function's lines. Usage:

    python scripts/count_twins.py [PACKAGE_DIR [N]]   # N: list the N longest async twins
"""

import ast
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "agentmw")
pairs = 0
lines = 0
detail = []


def scan(body, where):
    global pairs, lines
    funcs = {n.name: n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for name, node in funcs.items():
        if not isinstance(node, ast.AsyncFunctionDef) and not (
            isinstance(node, ast.FunctionDef)
            and any(isinstance(x, (ast.Await, ast.AsyncFor, ast.AsyncWith)) for x in ast.walk(node))
        ):
            continue
        bare = name.lstrip("_")
        prefix = name[: len(name) - len(bare)]
        if not bare.startswith("a"):
            continue
        twin = prefix + bare[1:]
        if twin in funcs and twin != name:
            n = node.end_lineno - node.lineno + 1
            pairs += 1
            lines += n
            detail.append((n, where, name))
    for n in body:
        if isinstance(n, ast.ClassDef):
            scan(n.body, f"{where}:{n.name}")


for path in sorted(root.rglob("*.py")):
    tree = ast.parse(path.read_text())
    scan(tree.body, str(path))
for d in sorted(detail, reverse=True)[: int(sys.argv[2]) if len(sys.argv) > 2 else 0]:
    print(*d)
print(f"pairs={pairs} async_twin_lines={lines}")
