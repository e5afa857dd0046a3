"""RedisConcurrencyStore against a real server: leases, expiry, a fleet-wide cap, outages."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from redis.crc import key_slot

from agentmw import Agent
from agentmw.errors import ConcurrencyLimitError
from agentmw.middleware import Concurrency
from agentmw.stores import (
    ConcurrencyStore,
    RedisBreakerStore,
    RedisConcurrencyStore,
    RedisRateLimitStore,
)
from agentmw.stores.redis._concurrency_lua import ACQUIRE, RELEASE, RENEW
from agentmw.testing import ScriptedModel, capture_events
from tests.stores.test_redis import _Server
from tests.stores.test_redis_plans import URL, FakeRedis, run

WORKER = Path(__file__).with_name("redis_concurrency_worker.py")


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix; its keys are deleted afterwards (db 15 is shared)."""
    name = f"cc-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    found = list(client.scan_iter(match=f"{{{name}:*"))
    if found:
        client.delete(*found)
    client.close()


async def _do(mode: str, store: RedisConcurrencyStore, method: str, *args: Any) -> Any:
    if mode == "async":
        return await getattr(store, f"a{method}")(*args)
    return getattr(store, method)(*args)


# -- the store -----------------------------------------------------------------------------
async def test_leases_up_to_the_limit(redis_url: str, prefix: str, mode: str) -> None:
    store = RedisConcurrencyStore(redis_url, prefix=prefix, poll_interval=0.2)
    assert isinstance(store, ConcurrencyStore)
    assert store.renewal_interval() == pytest.approx(10.0 / 3)
    assert await _do(mode, store, "acquire", "k", 2, "a") == 0.0
    assert await _do(mode, store, "acquire", "k", 2, "a") == 0.0  # held already: still one
    assert await _do(mode, store, "acquire", "k", 2, "b") == 0.0
    pause = await _do(mode, store, "acquire", "k", 2, "c")
    assert pause == pytest.approx(0.2)  # capped by poll_interval (the leases last 10 s)
    assert await _do(mode, store, "in_flight", "k") == 2
    assert await _do(mode, store, "acquire", "other", 2, "c") == 0.0  # keys are independent
    await _do(mode, store, "release", "k", "a")
    await _do(mode, store, "release", "k", "a")  # twice is harmless
    assert await _do(mode, store, "in_flight", "k") == 1
    assert await _do(mode, store, "acquire", "k", 2, "c") == 0.0
    assert await _do(mode, store, "renew", "k", "c") is True
    assert await _do(mode, store, "renew", "k", "never-taken") is False


async def test_leases_expire_and_are_never_revived(redis_url: str, prefix: str, mode: str) -> None:
    store = RedisConcurrencyStore(redis_url, prefix=prefix, lease_ttl=0.2)
    assert await _do(mode, store, "acquire", "k", 1, "dead") == 0.0
    pause = await _do(mode, store, "acquire", "k", 1, "next")
    assert 0.1 < pause <= 0.2  # when the dead holder's lease runs out
    await asyncio.sleep(0.25)
    assert await _do(mode, store, "in_flight", "k") == 0
    assert await _do(mode, store, "renew", "k", "dead") is False  # too late
    assert await _do(mode, store, "acquire", "k", 1, "next") == 0.0
    ttl = redis.Redis.from_url(redis_url).pttl(store.redis_key("k"))
    assert 0 < ttl <= 200  # the set goes away with its last lease


def test_keys_share_the_cluster_slot_of_their_key(redis_url: str, prefix: str) -> None:
    store = RedisConcurrencyStore(redis_url, prefix=prefix)
    store.acquire("gpt-4o", 1, "a")
    written = list(redis.Redis.from_url(redis_url).scan_iter(match=f"{{{prefix}:gpt-4o}}*"))
    assert written == [store.redis_key("gpt-4o").encode()]
    slots = {key_slot(store.redis_key("gpt-4o").encode())}
    slots |= {
        key_slot(k.encode())
        for k in RedisRateLimitStore(redis_url, prefix=prefix).keys("gpt-4o", ["rpm"])
    }
    slots |= {
        key_slot(k.encode())
        for k in RedisBreakerStore(redis_url, prefix=prefix).keys("b", "gpt-4o")
    }
    assert slots == {key_slot(f"{prefix}:gpt-4o".encode())}


def test_both_drivers_send_the_same_commands(mode: str) -> None:
    store = RedisConcurrencyStore(URL, prefix="p", lease_ttl=2.0, poll_interval=0.5)
    fake = FakeRedis(store._conn, [0, 120, 1, 0])
    conn = store._conn
    assert run(conn, store._acquire("k", 3, "l1"), mode) == 0.0
    assert run(conn, store._acquire("k", 3, "l2"), mode) == 0.12
    assert run(conn, store._release("k", "l1"), mode) is None
    assert run(conn, store._renew("k", "l2"), mode) is False
    assert fake.sent == [
        (["{p:k}:cc"], [3, "l1", 2000]),
        (["{p:k}:cc"], [3, "l2", 2000]),
        (["{p:k}:cc"], ["l1"]),
        (["{p:k}:cc"], ["l2", 2000]),
    ]
    assert {ACQUIRE, RELEASE, RENEW}  # the scripts the fake stood in for


# -- the layer on Redis --------------------------------------------------------------------
async def test_a_long_call_keeps_its_slot_by_renewing(
    redis_url: str, prefix: str, mode: str
) -> None:
    holder = Concurrency(1, store=RedisConcurrencyStore(redis_url, prefix=prefix, lease_ttl=0.15))
    other = Concurrency(  # another replica on the same Redis key
        1, max_wait=0, store=RedisConcurrencyStore(redis_url, prefix=prefix, lease_ttl=0.15)
    )
    refused: list[bool] = []

    async def probe() -> None:
        await asyncio.sleep(0.1)
        for _ in range(4):  # 0.1 s to 0.5 s into the call: past three lease lifetimes
            try:
                async with other.aslot("m"):
                    refused.append(False)
            except ConcurrencyLimitError:
                refused.append(True)
            await asyncio.sleep(0.1)

    with capture_events() as events:
        if mode == "sync":
            checker = asyncio.create_task(probe())
            await asyncio.to_thread(_hold_sync, holder, 0.6)
            await checker
        else:
            async with holder.aslot("m"):
                await probe()
                await asyncio.sleep(0.1)
    assert refused == [True] * 4
    assert events.named("concurrency.lease_lost") == []
    async with other.aslot("m"):  # given back at the end
        pass


def _hold_sync(cap: Concurrency, seconds: float) -> None:
    with cap.slot("m"):
        time.sleep(seconds)


async def test_a_session_call_through_the_redis_store(
    redis_url: str, prefix: str, mode: str
) -> None:
    cap = Concurrency(1, max_wait=0, store=RedisConcurrencyStore(redis_url, prefix=prefix))
    model = ScriptedModel(["ok"], repeat_last=True)
    with Agent("a", stack=[cap]).session() as s:
        for _ in range(3):  # each call gives its slot back
            if mode == "sync":
                s.run_turn(model, model="m")
            else:
                await s.arun_turn(model.acall, model="m")
    assert len(model.calls) == 3
    assert cap.in_flight("m") == 0


# -- processes -----------------------------------------------------------------------------
def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True)


def test_four_processes_never_exceed_the_cap(redis_url: str, prefix: str) -> None:
    cap, calls = 3, 50
    procs = [
        _spawn("calls", redis_url, prefix, m, str(calls), str(cap)) for m in ("sync", "async") * 2
    ]
    results = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        results.append(json.loads(stdout))
    seen = [n for r in results for n in r["seen"]]
    spans = [(a, b) for r in results for a, b in r["spans"]]
    assert len(seen) == len(spans) == 4 * calls
    assert max(seen) == cap  # the fleet filled the cap, and never went past it
    # The same from the times each holder noted inside its slot (one clock on one host).
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    inside = overlap = 0
    for _, step in edges:
        inside += step
        overlap = max(overlap, inside)
    assert overlap <= cap
    assert redis.Redis.from_url(redis_url).zcard(f"{{{prefix}:shared}}:cc") == 0


def test_a_killed_holder_gives_its_slot_back_when_its_lease_expires(
    redis_url: str, prefix: str
) -> None:
    ttl, leases_key = 1.5, f"{{{prefix}:shared}}:cc"
    holder = _spawn("hold", redis_url, prefix, str(ttl))
    try:
        assert holder.stdout is not None
        assert json.loads(holder.stdout.readline()) == {"held": True}
        time.sleep(0.6)  # it renews meanwhile (every ttl / 3)
        client = redis.Redis.from_url(redis_url)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(5)
        killed = time.monotonic()
        # decode_responses is off: members are bytes, scores floats (the stubs are looser).
        leases = cast(list[tuple[bytes, float]], client.zrange(leases_key, 0, -1, withscores=True))
        ((lease, expiry_ms),) = leases
    finally:
        if holder.poll() is None:
            holder.kill()
    store = RedisConcurrencyStore(redis_url, prefix=prefix, lease_ttl=ttl, poll_interval=0.05)
    refusing = Concurrency(1, max_wait=0, store=store)
    with pytest.raises(ConcurrencyLimitError), refusing.slot("shared"):  # the dead lease counts
        pass
    with capture_events() as events, Concurrency(1, max_wait=5, store=store).slot("shared"):
        back = time.monotonic() - killed
        seconds, micros = client.time()
        assert seconds * 1000 + micros / 1000 >= expiry_ms  # not before the lease expired
        assert client.zscore(leases_key, lease) is None
    assert ttl * 2 / 3 - 0.2 <= back <= ttl + 0.5  # last renewed at most ttl / 3 before the kill
    (waited,) = events.named("concurrency.waited")
    assert waited.data["key"] == "shared"


# -- outage --------------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    srv = _Server(tmp_path)
    srv.start()
    yield srv
    srv.kill()


async def test_outage_follows_on_unavailable(server: _Server, mode: str) -> None:
    opts: dict[str, Any] = {
        "socket_timeout": 0.2,
        "socket_connect_timeout": 0.2,
        "retry_interval": 0.05,
    }
    loose = Concurrency(1, max_wait=0, store=RedisConcurrencyStore(server.url, **opts))
    strict = Concurrency(
        1, max_wait=0, store=RedisConcurrencyStore(server.url, on_unavailable="deny", **opts)
    )

    async def enter(cap: Concurrency, inner: Any = None) -> str:
        if mode == "async":
            async with cap.aslot("m"):
                return await inner() if inner else "in"
        with cap.slot("m"):
            return await inner() if inner else "in"

    with capture_events() as events:
        assert await enter(loose) == "in"
        server.kill()  # Redis dies
        started = time.monotonic()
        # "allow": a process-local cap decides, so the cap still holds in this process.
        with pytest.raises(ConcurrencyLimitError):
            await enter(loose, lambda: enter(loose))
        assert await enter(loose) == "in"
        # "deny": refused at once, with the store's retry interval as the hint.
        with pytest.raises(ConcurrencyLimitError, match="unavailable") as info:
            await enter(strict)
        assert time.monotonic() - started < 2.0  # nothing hangs
        server.start()
        await asyncio.sleep(0.1)
        assert await enter(loose) == "in"
        assert await enter(strict) == "in"
    assert info.value.reason == "unavailable"
    assert info.value.retry_after == 0.05
    names = [e.name for e in events]
    assert names.count("store.unavailable") == 2
    assert names.count("store.available") == 2
    reasons = [e.data["reason"] for e in events.named("concurrency.refused")]
    assert reasons == ["max_wait", "unavailable"]
    assert loose.store.in_flight("m") == 0
