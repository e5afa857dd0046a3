"""The package as users get it: the wheel's contents, a runtime-only install, optional imports."""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Everything `import agentmw` must leave alone: each extra's packages, and the dev tools.
OPTIONAL = (
    "redis",
    "psycopg",
    "psycopg_pool",
    "openai",
    "anthropic",
    "google.genai",
    "langchain",
    "langchain_core",
    "langgraph",
    "pydantic_ai",
    "agents",
    "mcp",
    "dbos",
    "opentelemetry.sdk",
    "yaml",
    "genai_prices",
)

SMOKE = textwrap.dedent(
    """
    import asyncio, json, sys, tempfile, pathlib

    import agentmw
    optional = {optional!r}
    loaded = sorted(m for m in optional if m in sys.modules)

    from agentmw import Agent, ModelPricing, Stack, Usage, agent_tool, agent_turn, register_pricing
    from agentmw.stores import SqliteSaver

    register_pricing("smoke-model", ModelPricing(input_per_million=1, output_per_million=2))

    @agent_turn(model="smoke-model")
    def ask(prompt: str) -> Usage:
        return Usage(input_tokens=10, output_tokens=5)

    @agent_turn(model="smoke-model")
    async def aask(prompt: str) -> Usage:
        return Usage(input_tokens=10, output_tokens=5)

    runs = []

    @agent_tool
    def lookup(key: str) -> str:
        runs.append(key)
        return key.upper()

    path = pathlib.Path(tempfile.mkdtemp()) / "smoke.db"

    def stack(saver):
        return Stack.default(budget_usd=1, enforce_budget=True, saver=saver)

    async def main():
        saver = SqliteSaver(path)
        agent = Agent("smoke", stack=stack(saver))
        with agent.session("thread-1") as session:
            ask("hello")
            first = lookup("a")
        async with agent.session("thread-2") as asession:
            await aask("hello")
        # The checkpointed tool replays on the same thread without running again.
        with agent.session("thread-1") as again:
            ask("hello")
            replayed = lookup("a")
        saver.close()
        return session, asession, again, first, replayed

    session, asession, again, first, replayed = asyncio.run(main())
    print(json.dumps({{
        "version": agentmw.__version__,
        "loaded": loaded,
        "turns": [session.iterations, asession.iterations, again.iterations],
        "cost": str(session.cost_usd),
        "tool": [first, replayed, runs],
        "states": [session.state.value, asession.state.value, again.state.value],
    }}))
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("agentmw-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_carries_the_package_and_nothing_else(wheel: pathlib.Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = archive.read(metadata).decode()
    assert "agentmw/py.typed" in names
    assert "agentmw/data/pricing.json" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"agentmw", metadata.split("/", 1)[0]}
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/", "docs/"))]
    assert "License-Expression: MIT" in meta
    assert f"Version: {importlib.metadata.version('agentmw')}" in meta


@pytest.mark.slow
def test_a_runtime_only_install_runs_turns_tools_and_checkpoints(
    wheel: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
    )
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    names = {p["name"].lower().replace("_", "-") for p in json.loads(installed.stdout)}
    assert names & {"redis", "psycopg", "openai", "anthropic", "opentelemetry-sdk"} == set()
    script = SMOKE.format(optional=OPTIONAL)
    result = subprocess.run(
        [str(python), "-c", script], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert report["version"] == importlib.metadata.version("agentmw")
    assert report["turns"] == [1, 1, 1]
    assert report["cost"] == "0.00002"
    assert report["tool"] == ["A", "A", ["a"]]
    assert report["states"] == ["completed", "completed", "completed"]


def test_import_agentmw_imports_no_optional_package() -> None:
    # The dev environment has every extra installed: they must still not be imported.
    code = (
        "import sys, agentmw, agentmw.middleware, agentmw.stores, agentmw.integrations\n"
        f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


def test_the_cli_reports_the_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentmw", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"agentmw {importlib.metadata.version('agentmw')}"


def test_make_demo_installs_what_the_docs_examples_need() -> None:
    import tomllib

    makefile = (ROOT / "Makefile").read_text()
    demo = makefile[makefile.index("$(VENV)/.demo:") :].split("\n\n", 1)[0]
    assert "'.[otel,yaml]'" in demo
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("pyyaml") for req in extras["yaml"])


def test_import_agentmw_loads_the_core_only_and_layers_on_first_use() -> None:
    code = (
        "import sys, agentmw\n"
        "heavy = ('pydantic', 'opentelemetry', 'tenacity', 'wrapt', 'agentmw.middleware',"
        " 'agentmw.presets', 'agentmw.stores', 'asyncio', 'logging', 'json', 'tomllib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "stack = agentmw.Stack.default(budget_usd=1)\n"
        "print(len(stack) > 0, 'agentmw.presets' in sys.modules, agentmw.__version__)\n"
        "print(agentmw.Handoff.__name__, 'pydantic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    first, second, third = result.stdout.strip().splitlines()
    assert first == "[]"
    assert second == f"True True {importlib.metadata.version('agentmw')}"
    assert third == "Handoff True"
