"""Redis stores against a real server: shared limits, breakers and budgets across processes."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from redis.crc import key_slot

from agentmw import BudgetExceededError, RateLimitedError
from agentmw.middleware import Budget, CircuitBreaker, RateLimit
from agentmw.stores import LimiterStore, RedisBreakerStore, RedisLedger, RedisRateLimitStore
from agentmw.stores.breaker import BreakerStore
from agentmw.stores.circuit import BreakerConfig, BreakerState, Outcome
from agentmw.stores.gcra import Rate
from agentmw.stores.ledger import Ledger
from agentmw.testing import capture_events

WORKER = Path(__file__).with_name("redis_worker.py")
ZERO = Decimal(0)
RPM, TPM = Rate("rpm", 1.0, 2.0), Rate("tpm", 10.0, 20.0)


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix; its keys are deleted afterwards (db 15 is shared)."""
    name = f"t8-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    found = list(client.scan_iter(match=f"{{{name}:*"))
    if found:
        client.delete(*found)
    client.close()


def _run(fn: Any, mode: str) -> Any:
    return asyncio.run(fn()) if mode == "async" else fn()


# -- protocol conformance and basics -------------------------------------------------------
def test_stores_implement_the_protocols(redis_url: str, prefix: str) -> None:
    assert isinstance(RedisRateLimitStore(redis_url, prefix=prefix), LimiterStore)
    assert isinstance(RedisBreakerStore(redis_url, prefix=prefix), BreakerStore)
    assert isinstance(RedisLedger(redis_url, prefix=prefix), Ledger)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="on_unavailable"):
        RedisLedger("redis://127.0.0.1:1", on_unavailable="maybe")
    with pytest.raises(ValueError, match="prefix"):
        RedisLedger("redis://127.0.0.1:1", prefix="a{b}")
    with pytest.raises(ValueError, match="socket_timeout"):
        RedisBreakerStore("redis://127.0.0.1:1", socket_timeout=0)
    with pytest.raises(TypeError, match="client_or_url"):
        RedisRateLimitStore(42)


def test_client_kind_must_match_the_method(redis_url: str, prefix: str) -> None:
    store = RedisRateLimitStore(redis.asyncio.Redis.from_url(redis_url), prefix=prefix)
    with pytest.raises(TypeError, match=r"sync methods need a redis\.Redis"):
        store.acquire("k", [(RPM, 1.0)], 0.0)
    book = RedisLedger(redis.Redis.from_url(redis_url), prefix=prefix)
    with pytest.raises(TypeError, match=r"async methods need a redis\.asyncio\.Redis"):
        asyncio.run(book.aspent("k"))


def test_missing_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"agentmw\[redis\]"):
        RedisLedger("redis://127.0.0.1:6379")


def test_limiter_reserves_all_dimensions_or_none(redis_url: str, prefix: str, mode: str) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)

    async def body() -> None:
        acquire = store.aacquire if mode == "async" else None
        for demands, admitted in [
            ([(RPM, 1.0), (TPM, 15.0)], True),
            ([(RPM, 1.0), (TPM, 15.0)], False),  # tokens short: the request is not taken
            ([(RPM, 1.0), (TPM, 5.0)], True),  # ...so a smaller call still gets one
            ([(RPM, 1.0)], False),  # both requests are gone now
        ]:
            wait = await acquire("k", demands, 0.0) if acquire else store.acquire("k", demands, 0)
            assert (wait == 0.0) is admitted, demands

    if mode == "async":
        asyncio.run(body())
    else:
        asyncio.run(body())
    # Reconcile: refunding the tokens makes room again; a charge takes it away.
    store.adjust("k", [(TPM, -20.0)], 0.0)
    assert store.wait_time("k", [(TPM, 20.0)], 0.0) == 0.0
    assert store.wait_time("k", [(TPM, 20.0)], 0.0) == 0.0  # wait_time records nothing
    store.adjust("k", [(TPM, 10.0)], 0.0)
    assert 0.9 < store.wait_time("k", [(TPM, 20.0)], 0.0) <= 1.0


def test_cooldown_pauses_the_key_for_every_store(redis_url: str, prefix: str, mode: str) -> None:
    first = RedisRateLimitStore(redis_url, prefix=prefix)
    second = RedisRateLimitStore(redis_url, prefix=prefix)  # another replica
    if mode == "async":
        asyncio.run(first.acooldown("k", first._clock() + 5.0))
        wait = asyncio.run(second.aacquire("k", [(RPM, 1.0)], 0.0))
    else:
        first.cooldown("k", first._clock() + 5.0)
        wait = second.acquire("k", [(RPM, 1.0)], 0.0)
    assert 4.5 < wait <= 5.0
    assert second.acquire("other", [(RPM, 1.0)], 0.0) == 0.0


def test_rate_limit_layer_with_redis_store(redis_url: str, prefix: str) -> None:
    limit = RateLimit(
        rpm=60, burst=2 / 60, max_wait=0, store=RedisRateLimitStore(redis_url, prefix=prefix)
    )
    limit.acquire(key="m")
    limit.acquire(key="m")
    with pytest.raises(RateLimitedError):
        limit.acquire(key="m")


def test_keys_of_one_limiter_key_share_a_cluster_slot(redis_url: str, prefix: str) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)
    dims = [Rate(d, 1.0, 5.0) for d in ("rpm", "tpm", "input_tpm", "output_tpm")]
    store.acquire("gpt-4o", [(r, 1.0) for r in dims], 0.0)
    store.cooldown("gpt-4o", store._clock() + 1.0)
    # decode_responses is off, so the keys are bytes (the stubs say `bytes | str`).
    written = cast(list[bytes], redis.Redis.from_url(redis_url).keys(f"{{{prefix}:gpt-4o}}*"))
    assert len(written) == 5  # the cooldown and four dimensions, all tagged
    slots = {key_slot(k) for k in written}
    slots |= {key_slot(k.encode()) for k in store.keys("gpt-4o", [r.dimension for r in dims])}
    slots |= {
        key_slot(k.encode())
        for k in RedisBreakerStore(redis_url, prefix=prefix).keys("b", "gpt-4o")
    }
    slots.add(key_slot(RedisLedger(redis_url, prefix=prefix).redis_key("gpt-4o").encode()))
    assert slots == {key_slot(f"{prefix}:gpt-4o".encode())}


# -- breaker -------------------------------------------------------------------------------
def test_breaker_half_open_probes_are_counted_fleet_wide(
    redis_url: str, prefix: str, mode: str
) -> None:
    config = BreakerConfig(failure_threshold=2, recovery_timeout=0.05, half_open_max_calls=2)
    a, b = (RedisBreakerStore(redis_url, prefix=prefix) for _ in range(2))

    async def body() -> None:
        async def acquire(s: RedisBreakerStore) -> Any:
            return (
                await s.aacquire("n", "k", config, 0.0)
                if mode == "async"
                else s.acquire("n", "k", config, 0.0)
            )

        async def record(s: RedisBreakerStore, p: Any, outcome: Any) -> Any:
            if mode == "async":
                return await s.arecord("n", "k", config, 0.0, p, outcome)
            return s.record("n", "k", config, 0.0, p, outcome)

        permit = await acquire(a)
        assert await record(a, permit, "failure") is None
        assert await record(b, permit, "failure") is BreakerState.OPEN
        refused = await acquire(b)
        assert not refused.allowed
        assert 0 < refused.retry_after <= 0.05
        await asyncio.sleep(0.06)
        p1 = await acquire(a)
        assert p1.probe
        assert p1.transition is BreakerState.HALF_OPEN
        p2 = await acquire(b)
        assert p2.probe
        assert p2.transition is None
        assert not (await acquire(a)).allowed  # two probes out, fleet-wide
        assert await record(b, p2, "release") is None  # a released permit goes back
        p3 = await acquire(a)
        assert p3.allowed
        assert await record(a, p1, "success") is None
        assert await record(b, p3, "success") is BreakerState.CLOSED
        assert await record(a, permit, "failure") is None  # a straggler of gen 0

    asyncio.run(body())
    assert a.state("n", "k", config, 0.0) is BreakerState.CLOSED


def test_breaker_failure_ratio_and_reset(redis_url: str, prefix: str) -> None:
    config = BreakerConfig(failure_threshold=100, failure_ratio=0.5, minimum_calls=4)
    store = RedisBreakerStore(redis_url, prefix=prefix)
    outcomes: list[Outcome] = ["success", "failure", "success", "failure"]
    changes = [
        store.record("n", "k", config, 0.0, store.acquire("n", "k", config, 0.0), o)
        for o in outcomes
    ]
    assert changes == [None, None, None, BreakerState.OPEN]
    store.reset("n")
    assert store.state("n", "k", config, 0.0) is BreakerState.CLOSED


def test_abandoned_probe_is_reissued(redis_url: str, prefix: str) -> None:
    config = BreakerConfig(failure_threshold=1, recovery_timeout=0.05)
    store = RedisBreakerStore(redis_url, prefix=prefix)
    store.record("n", "k", config, 0.0, store.acquire("n", "k", config, 0.0), "failure")

    time.sleep(0.06)
    lost = store.acquire("n", "k", config, 0.0)
    assert lost.probe
    assert not store.acquire("n", "k", config, 0.0).allowed
    time.sleep(0.06)  # the probe's process "died": its permit is reissued
    again = store.acquire("n", "k", config, 0.0)
    assert again.probe
    assert again.generation == lost.generation + 1
    assert store.record("n", "k", config, 0.0, lost, "failure") is None  # too late to count
    assert store.record("n", "k", config, 0.0, again, "success") is BreakerState.CLOSED


# -- ledger --------------------------------------------------------------------------------
def test_ledger_is_exact_in_nano_dollars(redis_url: str, prefix: str, mode: str) -> None:
    book = RedisLedger(redis_url, prefix=prefix)

    async def body() -> None:
        add = book.aadd if mode == "async" else None
        for amount in ["0.1", "0.2", "0.0000000001"]:  # the last rounds up to one nano-dollar
            if add:
                await add("k", Decimal(amount))
            else:
                book.add("k", Decimal(amount))
        refused = (
            await add("k", Decimal("1"), limit=Decimal("1"))
            if add
            else book.add("k", Decimal("1"), limit=Decimal("1"))
        )
        assert not refused.added
        assert refused.total == Decimal("0.300000001")
        spent = await book.aspent("k") if mode == "async" else book.spent("k")
        assert spent == Decimal("0.300000001")

    asyncio.run(body())
    with pytest.raises(TypeError, match="Decimal"):
        book.add("k", 0.1)  # type: ignore[arg-type]


def test_budget_layer_shares_a_redis_ledger(redis_url: str, prefix: str, mode: str) -> None:
    from agentmw import Agent, ModelPricing
    from agentmw.pricing import PricingTable
    from agentmw.testing import ScriptedModel

    budget = Budget(
        0.01, enforce=True, precheck=False, ledger=RedisLedger(redis_url, prefix=prefix)
    )
    other = RedisLedger(redis_url, prefix=prefix)
    other.add(budget.name, Decimal("0.02"))  # another replica spent past the budget
    prices = PricingTable({"m": ModelPricing(input_per_million=1, output_per_million=1)})
    agent = Agent("a", stack=[budget], pricing=prices)
    model = ScriptedModel(["hi"])

    async def go() -> None:
        async with agent.session() as s:
            await s.arun_turn(model.acall, "x", model="m")

    def sync_go() -> None:
        with agent.session() as s:
            s.run_turn(model, "x", model="m")

    with pytest.raises(BudgetExceededError):
        asyncio.run(go()) if mode == "async" else sync_go()
    assert model.calls == []  # refused before the model was called


# -- four processes ------------------------------------------------------------------------
def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True)


def _results(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        out.append(json.loads(stdout))
    return out


def _most_in_any_window(admitted: list[tuple[float, int]], window: float) -> tuple[int, int]:
    """The most requests and tokens admitted within any `window` seconds (two pointers)."""
    admitted.sort()
    best_n = best_tokens = tokens = start = 0
    for end, (t, n) in enumerate(admitted):
        tokens += n
        while t - admitted[start][0] > window:
            tokens -= admitted[start][1]
            start += 1
        best_n, best_tokens = max(best_n, end - start + 1), max(best_tokens, tokens)
    return best_n, best_tokens


def test_four_processes_share_one_limit(redis_url: str, prefix: str) -> None:
    seconds = 2.5
    procs = [_spawn("limiter", redis_url, prefix, m, str(seconds)) for m in ("sync", "async") * 2]
    admitted: list[tuple[float, int]] = [
        (a[0], a[1]) for r in _results(procs) for a in r["admitted"]
    ]
    assert len(admitted) > 15  # the fleet did run
    # 10 requests/s with a burst of 12; 100 tokens/s with a burst of 120. Timestamps are taken
    # in each process just after admission: allow `slack` seconds of scheduling jitter.
    slack = 0.1
    times = [t for t, _ in admitted]
    span = max(times) - min(times)
    for window in (0.5, 1.0, 2.0, span):
        requests, tokens = _most_in_any_window(list(admitted), window)
        assert requests <= 10 * (window + slack) + 12, (window, requests)
        assert tokens <= 100 * (window + slack) + 120, (window, tokens)
    # Four processes on private limits would admit about four times the fleet's share.
    assert len(admitted) <= 10 * (span + slack) + 12


def test_breaker_opened_in_two_processes_rejects_in_the_other_two(
    redis_url: str, prefix: str
) -> None:
    failing = _results([_spawn("breaker", redis_url, prefix, m, "fail") for m in ("sync", "async")])
    assert [r["outcomes"] for r in failing] == [["failed", "failed"]] * 2
    probing = _results(
        [_spawn("breaker", redis_url, prefix, m, "probe") for m in ("sync", "async")]
    )
    for result in probing:
        assert result["outcomes"] == ["refused"] * 4
        assert result["state"] == "open"


def test_budget_ceiling_holds_across_processes(redis_url: str, prefix: str) -> None:
    procs = [_spawn("ledger", redis_url, prefix, m, "1.00") for m in ("sync", "async") * 2]
    added = [Decimal(a) for r in _results(procs) for a in r["added"]]
    assert sum(added) == Decimal("1.00")  # exactly 100 cents, not one more
    assert RedisLedger(redis_url, prefix=prefix).spent("team") == Decimal("1.00")


def test_budget_hard_cap_holds_across_four_processes(redis_url: str, prefix: str) -> None:
    # Four processes x four threads or tasks, each turn reserving its worst case ($0.0021).
    procs = [_spawn("budget", redis_url, prefix, m, "0.1") for m in ("sync", "async") * 2]
    ran = sum(r["ran"] for r in _results(procs))
    book = RedisLedger(redis_url, prefix=prefix)
    assert ran == 47  # floor(0.1 / 0.0021): not one call more
    assert book.spent("fleet") == Decimal("0.0987") <= Decimal("0.1")
    assert book.reserved("fleet") == 0


# -- reservations ----------------------------------------------------------------------------
def test_ledger_reservations(redis_url: str, prefix: str, mode: str) -> None:
    book = RedisLedger(redis_url, prefix=prefix)
    cap = Decimal("1")

    async def go() -> None:
        first = await book.areserve("k", Decimal("0.6"), limit=cap)
        assert (first.granted, first.spent, first.reserved) == (True, ZERO, ZERO)
        second = await book.areserve("k", Decimal("0.5"), limit=cap)
        assert (second.granted, second.reserved) == (False, Decimal("0.6"))
        assert await book.areserved("k") == Decimal("0.6")
        assert await book.asettle(first, Decimal("0.25")) == Decimal("0.25")
        third = await book.areserve("k", Decimal("0.75"), limit=cap)
        assert (third.granted, third.spent) == (True, Decimal("0.25"))
        await book.arelease(third)
        assert (await book.aspent("k"), await book.areserved("k")) == (Decimal("0.25"), ZERO)

    def sync_go() -> None:
        first = book.reserve("k", Decimal("0.6"), limit=cap)
        assert (first.granted, first.spent, first.reserved) == (True, ZERO, ZERO)
        second = book.reserve("k", Decimal("0.5"), limit=cap)
        assert (second.granted, second.reserved) == (False, Decimal("0.6"))
        assert book.reserved("k") == Decimal("0.6")
        assert book.settle(first, Decimal("0.25")) == Decimal("0.25")
        third = book.reserve("k", Decimal("0.75"), limit=cap)
        assert (third.granted, third.spent) == (True, Decimal("0.25"))
        book.release(third)
        assert (book.spent("k"), book.reserved("k")) == (Decimal("0.25"), ZERO)

    _run(go if mode == "async" else sync_go, mode)


def test_a_hold_lapses_after_hold_timeout(redis_url: str, prefix: str) -> None:
    book = RedisLedger(redis_url, prefix=prefix, hold_timeout=0.05)
    assert book.reserve("k", Decimal("0.9"), limit=Decimal(1)).granted  # its process "dies"
    assert not book.reserve("k", Decimal("0.5"), limit=Decimal(1)).granted
    time.sleep(0.1)
    assert book.reserved("k") == 0
    assert book.reserve("k", Decimal("0.5"), limit=Decimal(1)).granted


def test_hold_timeout_is_validated(redis_url: str) -> None:
    with pytest.raises(ValueError, match="hold_timeout must be"):
        RedisLedger(redis_url, hold_timeout=0)


def test_a_cancelled_turn_releases_its_redis_hold(redis_url: str, prefix: str) -> None:
    from agentmw import Agent, ModelPricing, Usage
    from agentmw.pricing import PricingTable

    book = RedisLedger(redis_url, prefix=prefix)
    prices = PricingTable({"m": ModelPricing(input_per_million=1, output_per_million=2)})
    agent = Agent("a", stack=[Budget(1, enforce=True, ledger=book)], pricing=prices)

    async def main() -> None:
        entered = asyncio.Event()

        async def hang(prompt: str, **_: Any) -> Usage:
            entered.set()
            await asyncio.sleep(60)
            return Usage(0, 0)

        async with agent.session() as s:
            task = asyncio.create_task(s.arun_turn(hang, "x" * 400, model="m", max_tokens=1000))
            await entered.wait()
            assert await book.areserved("Budget") == Decimal("0.0021")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await book.areserved("Budget") == 0

    asyncio.run(main())
    assert book.spent("Budget") == 0


# -- outage --------------------------------------------------------------------------------
def test_reservations_during_an_outage(mode: str) -> None:
    opts: dict[str, Any] = {"socket_timeout": 0.05, "socket_connect_timeout": 0.05}
    deny = RedisLedger("redis://127.0.0.1:1", **opts)
    allow = RedisLedger("redis://127.0.0.1:1", on_unavailable="allow", **opts)
    cap = Decimal(1)

    async def go() -> None:
        refused = await deny.areserve("k", Decimal("0.1"), limit=cap)
        assert (refused.granted, refused.spent) == (False, Decimal("Infinity"))
        held = await allow.areserve("k", Decimal("0.6"), limit=cap)  # held in this process
        assert held.granted
        assert not (await allow.areserve("k", Decimal("0.6"), limit=cap)).granted
        assert await allow.areserved("k") == Decimal("0.6")
        assert await allow.asettle(held, Decimal("0.2")) == Decimal("0.2")
        assert await allow.areserved("k") == ZERO

    def sync_go() -> None:
        refused = deny.reserve("k", Decimal("0.1"), limit=cap)
        assert (refused.granted, refused.spent) == (False, Decimal("Infinity"))
        held = allow.reserve("k", Decimal("0.6"), limit=cap)
        assert held.granted
        assert not allow.reserve("k", Decimal("0.6"), limit=cap).granted
        assert allow.reserved("k") == Decimal("0.6")
        assert allow.settle(held, Decimal("0.2")) == Decimal("0.2")
        assert allow.reserved("k") == ZERO

    _run(go if mode == "async" else sync_go, mode)
    assert allow.pending == {"k": Decimal("0.2")}  # written to Redis once it is back


class _Server:
    """A throwaway redis-server with an fsync-always AOF, so a SIGKILL loses no ack'd write."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    srv = _Server(tmp_path)
    srv.start()
    yield srv
    srv.kill()


def test_a_hold_settled_during_an_outage_is_dropped_once_redis_is_back(
    server: _Server, mode: str
) -> None:
    opts: dict[str, Any] = {"socket_timeout": 0.2, "socket_connect_timeout": 0.2}
    book = RedisLedger(server.url, retry_interval=0.05, **opts)
    held = book.reserve("k", Decimal("0.6"), limit=Decimal(1))
    assert held.granted
    server.kill()

    async def settle() -> Decimal:
        return await book.asettle(held, Decimal("0.25"))

    assert _run(
        settle if mode == "async" else lambda: book.settle(held, Decimal("0.25")), mode
    ) == (Decimal("0.25"))
    assert book.pending == {"k": Decimal("0.25")}
    server.start()  # the AOF kept the hold
    time.sleep(0.06)
    assert book.reserved("k") == ZERO  # the queued drop went first
    assert book.spent("k") == Decimal("0.25")
    assert book.pending == {}


def test_outage_follows_on_unavailable_then_recovers(server: _Server, mode: str) -> None:
    opts: dict[str, Any] = {
        "socket_timeout": 0.2,
        "socket_connect_timeout": 0.2,
        "retry_interval": 0.05,
    }
    limiter = RedisRateLimitStore(server.url, **opts)
    strict = RedisRateLimitStore(server.url, on_unavailable="deny", **opts)
    store = RedisBreakerStore(server.url, **opts)
    breaker = CircuitBreaker("llm", failure_threshold=3, store=store)
    book = RedisLedger(server.url, **opts)  # default: deny
    loose = RedisLedger(server.url, on_unavailable="allow", **opts)
    cent, added, stop = Decimal("0.01"), [0], threading.Event()

    def spend() -> None:  # a replica recording spend all through the outage
        while not stop.is_set():
            book.add("team", cent)
            added[0] += 1
            time.sleep(0.002)

    def ops() -> dict[str, Any]:
        rate = [(RPM, 1.0)]

        async def ok() -> str:
            return "ok"

        async def body() -> dict[str, Any]:
            return {
                "limiter": await limiter.aacquire("k", rate, time.monotonic()),
                "breaker": await breaker.acall(ok),
                "spent": await book.aspent("team"),
                "capped": (await book.aadd("team", cent, limit=Decimal(1000))).added,
                "loose": (await loose.aadd("team", cent, limit=Decimal(1000))).added,
            }

        if mode == "async":
            return asyncio.run(body())
        return {
            "limiter": limiter.acquire("k", rate, time.monotonic()),
            "breaker": breaker.call(lambda: "ok"),
            "spent": book.spent("team"),
            "capped": book.add("team", cent, limit=Decimal(1000)).added,
            "loose": loose.add("team", cent, limit=Decimal(1000)).added,
        }

    spender = threading.Thread(target=spend)
    with capture_events() as events:
        spender.start()
        assert ops()["capped"] is True
        time.sleep(0.1)
        server.kill()  # Redis dies mid-run
        start = time.monotonic()
        down = ops()
        assert time.monotonic() - start < 2.0  # nothing hangs
        assert down["limiter"] == 0.0  # "allow": the local fallback decides
        assert down["breaker"] == "ok"
        assert down["spent"] == Decimal("Infinity")  # "deny": unknown spend is exhausted
        assert down["capped"] is False
        assert down["loose"] is True
        with pytest.raises(RateLimitedError, match="unreachable"):
            strict.acquire("k", [(RPM, 1.0)], 0.0)
        time.sleep(0.2)
        server.start()  # back, with every acknowledged write (AOF)
        time.sleep(0.1)
        up = ops()
        stop.set()
        spender.join()
    assert up["capped"] is True
    assert up["spent"] < Decimal(1000)
    names = [e.name for e in events if e.name.startswith("store.")]
    assert names.count("store.unavailable") >= 4
    assert names.count("store.available") >= 4
    stores = {e.data["store"] for e in events if e.name == "store.available"}
    assert stores == {"redis.rate_limit", "redis.circuit_breaker", "redis.ledger"}
    # Every add of the spender reached Redis: acknowledged ones survived, outage ones replayed.
    book.spent("team")
    assert book.pending == {}
    total = RedisLedger(server.url).spent("team")
    assert total >= cent * (added[0] + 2)  # + the two capped adds that succeeded
