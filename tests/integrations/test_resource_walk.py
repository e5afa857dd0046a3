"""No silent bypass: walk the installed SDKs' resource trees and call every model-calling method.

A method is model-calling when it takes a `model` (or `base_model`) or is a known run of a
model without one (Assistants runs), unless `NOT_CALLS` says why not. Each one is called on an
instrumented client against the stub: it must run as a turn (the spy sees it) or warn
`UninstrumentedCallWarning`. A method a new SDK version adds is walked the same way, so it
cannot slip by. The walk covers the sync and async clients and every `with_raw_response` /
`with_streaming_response` wrapper.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai.types import HttpOptions

from agentmw import Stack
from agentmw.errors import UninstrumentedCallWarning
from agentmw.integrations import instrument

from .sdk import Spy
from .stub import Reply, StubServer

# Model runs whose signature names no model (the Assistants API's runs).
EXTRA = re.compile(r"threads\.(runs\.(create\w*|stream|submit_tool_outputs\w*)|create_and_run\w*)$")
# Methods that take a model but call none, with the reason.
NOT_CALLS = {
    "models.retrieve": "reads a model's metadata",
    "models.delete": "deletes a fine-tuned model",
    "models.get": "reads a model's metadata",
    "models.update": "renames a tuned model",
    "count_tokens": "counts tokens, runs no model (free)",
    "compute_tokens": "counts tokens, runs no model (free)",
    "input_tokens.count": "counts tokens, runs no model (free)",
    "agents.create": "stores an agent configuration",
    "agents.update": "stores an agent configuration",
    "assistants.create": "stores an assistant configuration",
    "assistants.update": "stores an assistant configuration",
    "fine_tuning.jobs.create": "starts a training job, not a model call",
    "realtime.sessions.create": "mints a session token",
    "realtime.calls.accept": "configures a SIP call's session",
    "audio.voices.create": "stores a custom voice",
    "caches.create": "stores cached content",
    "chats.create": "builds a chat object; its sends go through models.generate_content",
    "messages.thread": "builds a thread object; its sends go through beta.messages.create",
    "chat.completions.list": "lists stored completions",
    "rate_limits.list": "lists rate limits",
    "get_api_list": "the client's paging helper",
}
_ARGS: dict[str, Any] = {
    "messages": [{"role": "user", "content": "hi"}],
    "model": "m",
    "base_model": "m",
    "max_tokens": 8,
    "input": "hi",
    "inputs": [],
    "prompt": "hi",
    "contents": "hi",
    "file": ("a.wav", b"RIFF", "audio/wav"),
    "image": ("a.png", b"\x89PNG", "image/png"),
    "voice": "alloy",
    "tools": [],
    "params": {},
    "questions": [],
    "reference_images": [],
    "upscale_factor": "x2",
    "src": "gs://bucket/in.jsonl",
    "training_dataset": {"gcs_uri": "gs://bucket/train.jsonl"},
    "source": {"prompt": "hi"},
}
_HTTP = httpx2.Client()  # shared by the google-genai clients (a pool costs a TLS context)
_REPLY = Reply(body={"id": "x", "object": "x", "status": "completed", "name": "operations/x"})


def _is_resource(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith(("openai.resources", "anthropic.resources", "google.genai"))


def walk(obj: Any, path: str, seen: dict[int, Any]) -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every public method under `obj`: (dotted path, bound callable)."""
    cls = type(obj)
    names = {n for n in dir(cls) if not n.startswith("_")} | {
        n for n in vars(obj) if not n.startswith("_")
    }
    for name in sorted(names):
        static = inspect.getattr_static(cls, name, None)  # the class's: a cache hides it
        if isinstance(static, property) or type(static).__name__ == "cached_property":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # google-genai's "experimental" notices
                try:
                    child = getattr(obj, name)
                except Exception:
                    continue
            if _is_resource(child) and id(child) not in seen:
                seen[id(child)] = child  # kept alive: an id is never reused in one walk
                yield from walk(child, f"{path}{name}.", seen)
            continue
        value = getattr(obj, name, None)
        if (
            callable(value)
            and not isinstance(value, type)
            and (inspect.ismethod(value) or inspect.isfunction(value))
        ):
            yield f"{path}{name}", value


def model_calling(path: str, method: Callable[..., Any]) -> bool:
    bare = path.replace("with_raw_response.", "").replace("with_streaming_response.", "")
    if any(bare.endswith(skip) for skip in NOT_CALLS):
        return False
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "model" in params or "base_model" in params or EXTRA.search(bare) is not None


def _args(method: Callable[..., Any]) -> dict[str, Any]:
    args = {}
    for name, param in inspect.signature(method).parameters.items():
        if param.default is inspect.Parameter.empty and param.kind in (
            param.KEYWORD_ONLY,
            param.POSITIONAL_OR_KEYWORD,
        ):
            args[name] = _ARGS.get(name, "x")
    for name in ("model", "input"):  # optional in the signature, needed by some helpers
        if name in inspect.signature(method).parameters:
            args[name] = _ARGS[name]
    return args


def _resolve(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = getattr(root, part)
    return root


async def _call(method: Callable[..., Any], connect: bool) -> None:
    try:
        result = method(**_args(method))
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, 10)
        if connect:  # a websocket session: calling it is enough, never open it
            return
        if hasattr(result, "__aenter__"):
            async with result as inner:
                if hasattr(inner, "__aiter__"):
                    async for _ in inner:
                        break
        elif hasattr(result, "__enter__"):
            with result:
                pass
        elif hasattr(result, "__aiter__"):
            async for _ in result:
                break
        elif hasattr(result, "__next__"):
            next(result, None)
    except Exception:  # the stub's body fits no schema: what matters happened before
        pass


def clients(sdk: str, base: str) -> list[Any]:
    if sdk == "openai":
        opts: dict[str, Any] = {"api_key": "k", "max_retries": 0, "timeout": 5}
        return [
            openai.OpenAI(base_url=f"{base}/v1", **opts),
            openai.AsyncOpenAI(base_url=f"{base}/v1", **opts),
        ]
    if sdk == "anthropic":
        opts = {"api_key": "k", "max_retries": 0, "timeout": 5}
        return [
            anthropic.Anthropic(base_url=base, **opts),
            anthropic.AsyncAnthropic(base_url=base, **opts),
        ]
    options = HttpOptions(base_url=base, api_version="v1beta", httpx_client=_HTTP)
    return [genai.Client(api_key="k", http_options=options)]


def found(sdk: str, base: str) -> list[tuple[int, str]]:
    """(client index, path) of every model-calling method the walk finds."""
    out = []
    for index, root in enumerate(clients(sdk, base)):
        for path, method in walk(root, "", {}):
            if model_calling(path, method):
                out.append((index, path))
    return out


@pytest.mark.parametrize(("sdk", "least"), [("openai", 60), ("anthropic", 20), ("google", 20)])
async def test_every_model_calling_method_is_covered_or_warns(
    stub: StubServer, sdk: str, least: int
) -> None:
    stub.default = _REPLY
    methods = found(sdk, stub.url)
    assert len(methods) >= least  # the walk really walked
    bases = clients(sdk, stub.url)
    silent = []
    for index, path in methods:
        spy = Spy()
        # A fresh client per method (each warns once); a copy shares the base's HTTP pool.
        base = bases[index]
        fresh = base.copy() if hasattr(base, "copy") else clients(sdk, stub.url)[index]
        root = instrument(fresh, stack=Stack([spy]))
        method = _resolve(root, path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await _call(method, connect=path.endswith("connect"))
        warned = [w for w in caught if issubclass(w.category, UninstrumentedCallWarning)]
        if not spy.calls and not warned:
            silent.append(f"{'async ' if index else ''}{path}")
    assert silent == [], f"model calls that bypass the stack silently: {silent}"
