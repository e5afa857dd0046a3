"""RedisRateLimitStore's reserve script against the previous version's, on the same keys.

Replicas of different versions share the buckets (docs/scaling-out.md), so a new `RESERVE` must
read what the previous one wrote and write what it reads: same keys, TATs in microseconds read
with `tonumber`, each key expiring once its bucket is full again. `PREVIOUS_RESERVE` is the
script as released before issue 19 (one GET per key, TATs written with `string.format('%.3f')`).
Also here: the hot path's own details (a flushed script cache, zero refunds, encoded keys).
"""

from __future__ import annotations

import asyncio
import math
import random
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from agentmw.stores import RedisRateLimitStore
from agentmw.stores.gcra import Demand, Rate
from agentmw.stores.redis import limiter as limiter_module
from agentmw.stores.redis._limiter_lua import RESERVE, pack_reserve

# The reserve script of the previous release, verbatim (the fixture of every test below).
PREVIOUS_RESERVE = """
local a = ARGV[1]
local n = #KEYS
local v = {struct.unpack('<' .. string.rep('d', (n - 1) * 3), a, 2)}
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local wait = 0
local cooldown = redis.call('GET', KEYS[1])
if cooldown then wait = tonumber(cooldown) - now end
local tats, olds = {}, {}
for i = 2, n do
  local j = (i - 2) * 3
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local refund = v[j + 3]
  if refund ~= 0 then
    tat = tat + refund
    if tat < now then tat = now end
  end
  olds[i] = tat
  local tolerance = v[j + 2]
  if tolerance >= 0 then
    tat = tat + v[j + 1]
    local w = tat - tolerance - now
    if w > wait then wait = w end
  end
  tats[i] = tat
end
local admit = wait <= 0 and string.byte(a, 1) == 1
for i = 2, n do
  local tat = olds[i]
  if admit then tat = tats[i] end
  if admit or v[(i - 2) * 3 + 3] ~= 0 then
    if tat <= now and not admit then
      redis.call('DEL', KEYS[i])
    else
      -- The key expires when its bucket is full again: a missing key reads as "full".
      local ttl = math.ceil((tat - now) / 1000) + 1
      redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', ttl)
    end
  end
end
if wait > 0 then return math.max(1, math.ceil(wait)) end
return 0
"""

RPM = Rate("rpm", 1.0, 5.0)  # one request refills in 1 s, five at once
TPM = Rate("tpm", 7.0, 1000.0)  # seven tokens a second: intervals that are not whole µs


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    found = redis.Redis.from_url(redis_url)
    yield found
    found.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    name = f"script-{uuid.uuid4().hex[:10]}"
    yield name
    found = list(client.scan_iter(match=f"{{{name}:*"))
    if found:
        client.delete(*found)


def _clocked(lua: str) -> str:
    """`lua` with Redis `TIME` replaced by the clock in ARGV[2] (s) and ARGV[3] (µs)."""
    assert lua.count("redis.call('TIME')") == 1  # the test must see the script's only clock
    return lua.replace("redis.call('TIME')", "{ARGV[2], ARGV[3]}")


# One step: (record, [(rate, cost, refund)...], µs the clock moves on before the step).
# Refund-only dimensions have cost None (tolerance -1 on the wire).
Step = tuple[bool, list[tuple[Rate, float | None, float]], int]
COOLDOWN_US = 1_200  # a provider's cooldown ends 1.2 ms into the scenario
SCENARIO: list[Step] = [
    (True, [(RPM, 1.0, 0.0), (TPM, 600.0, 0.0)], 0),  # cooling down: refused
    (True, [(RPM, 1.0, 0.0), (TPM, 600.0, 0.0)], 1_000),  # still cooling down
    (True, [(RPM, 1.0, 0.0), (TPM, 600.0, 0.0)], 333),  # admitted
    (True, [(RPM, 1.0, 0.0), (TPM, 500.0, 0.0)], 1_000),  # tpm over: refused, waits
    (False, [(RPM, 1.0, 0.0), (TPM, 500.0, 0.0)], 333),  # only looks
    (True, [(RPM, 1.0, 0.0), (TPM, 300.0, -250.0)], 7),  # a folded refund, then admitted
    (True, [(RPM, 1.0, 0.0)], 1),
    (True, [(RPM, 1.0, 0.0)], 1),
    (True, [(RPM, 1.0, 0.0)], 1),
    (True, [(RPM, 1.0, 0.0)], 1),  # rpm's burst of five is spent: refused
    (True, [(RPM, 1.0, 0.0), (TPM, None, -30.5)], 250_001),  # refused, the refund still lands
    (True, [(TPM, 999.0, -1e6)], 1_000_003),  # tpm refunded to full first, then admitted
    (False, [(RPM, 1.0, 0.0), (TPM, None, -5000.0)], 17),  # refunded below full: deleted
    (True, [(RPM, 1.0, 0.0), (TPM, 1.0, 0.0)], 5_000_000),  # rpm full again after 5 s
]
ADMITTED = [False, False, True, False, False, True, True, True, True, False, False, True, True]
ADMITTED.append(True)  # the last step (a reply of 0; step 12 only looked, and could go)


def _argument(record: bool, dims: list[tuple[Rate, float | None, float]]) -> bytes:
    numbers: list[float] = []
    for rate, cost, refund in dims:
        interval = 1e6 / rate.per_second
        if cost is None:
            numbers += (0.0, -1.0, refund * interval)
        else:
            numbers += (cost * interval, rate.burst * interval, refund * interval)
    return pack_reserve(record, numbers)


def _play(
    client: redis.Redis, scripts: list[str], prefix: str, start: int
) -> list[tuple[int, dict[str, float | None]]]:
    """Runs SCENARIO on fresh keys, step i with scripts[i % len(scripts)]; per step the reply
    and each TAT key's value (the double the scripts read). Checks that every key a step writes
    expires when its bucket is full again: PX = ceil((TAT - now) / 1000) + 1 ms."""
    tag = f"{{{prefix}:k}}"
    names = {"rpm": f"{tag}:rl:rpm", "tpm": f"{tag}:rl:tpm"}
    cooldown = f"{tag}:rl:cooldown"
    shas = [client.script_load(_clocked(lua)) for lua in scripts]
    # A provider's cooldown, as every version's COOLDOWN writes it.
    client.set(cooldown, f"{start + COOLDOWN_US:.3f}", px=60_000)
    now, out = start, []
    values: dict[str, float | None] = dict.fromkeys(names)
    for index, (record, dims, advance) in enumerate(SCENARIO):
        now += advance
        keys = [cooldown, *(names[rate.dimension] for rate, _, _ in dims)]
        seconds, micros = divmod(now, 1_000_000)
        reply = client.evalsha(
            shas[index % len(shas)], len(keys), *keys, _argument(record, dims), seconds, micros
        )
        before, values = values, {}
        for dimension, key in names.items():
            raw = client.get(key)
            values[dimension] = None if raw is None else float(raw)
            tat = values[dimension]
            if tat is not None and tat != before[dimension]:
                px = math.ceil((tat - now) / 1000) + 1
                assert px - 250 < client.pttl(key) <= px, (prefix, index, dimension)
        out.append((int(reply), values))
    return out


def test_the_new_and_the_previous_script_take_the_same_decisions_alternately(
    client: redis.Redis, prefix: str
) -> None:
    now = client.time()
    start = now[0] * 1_000_000 + now[1]
    runs = {
        name: _play(client, scripts, f"{prefix}-{name}", start)
        for name, scripts in {
            "previous": [PREVIOUS_RESERVE],
            "new": [RESERVE],
            "previous-new": [PREVIOUS_RESERVE, RESERVE],
            "new-previous": [RESERVE, PREVIOUS_RESERVE],
        }.items()
    }
    previous = runs["previous"]
    # The scenario does what it says: cooldown, admissions, refusals, waits and a deletion.
    assert [reply == 0 for reply, _ in previous] == ADMITTED
    assert [reply for reply, _ in previous[:2]] == [COOLDOWN_US, COOLDOWN_US - 1_000]
    assert 13e6 < previous[3][0] < 15e6  # tpm: 1100 of 1000 tokens, 100 refill in ~14.3 s
    assert 0.74e6 < previous[10][0] < 0.76e6  # rpm: the sixth request waits ~0.75 s
    assert previous[11][1]["tpm"] is not None
    assert previous[12][1]["tpm"] is None  # refunded below full: deleted
    for name, run in runs.items():
        # The same decisions and waits (to the µs) and the same TATs, as doubles.
        assert run == previous, name


def test_a_tat_written_as_a_number_reads_back_as_the_same_double(
    client: redis.Redis, prefix: str
) -> None:
    # What RESERVE now writes (a Lua number: Redis formats it) and what the previous version
    # wrote (`%.3f`), each read back with `tonumber` as both versions read it. Returns, per
    # value, whether each read back exactly.
    lua = """
    local v = {struct.unpack('<' .. string.rep('d', #ARGV[1] / 8), ARGV[1])}
    local out = {}
    for i = 1, #v - 1 do
      redis.call('SET', KEYS[1], v[i])
      local new = tonumber(redis.call('GET', KEYS[1])) == v[i]
      redis.call('SET', KEYS[1], string.format('%.3f', v[i]))
      local old = tonumber(redis.call('GET', KEYS[1])) == v[i]
      out[i] = (new and 1 or 0) + (old and 2 or 0)
    end
    return out
    """
    now = client.time()
    micros = now[0] * 1_000_000 + now[1]
    chosen = random.Random(19)
    tats = [micros + f for f in (0.0, 0.25, 0.5, 0.75, 1e6 / 7, 6e7 / 7 + 0.25)]
    tats += [micros + chosen.uniform(0, 86_400e6) for _ in range(200)]
    tats += [2.0**52 - 0.5, 2.0**51 + 0.5, 1e16 + 2.0]  # later this century and beyond
    small = [1e6 / 7, 123.456789, 2.0**-20]  # not TATs: `%.3f` rounds these, numbers do not
    values = tats + small
    found = client.eval(lua, 1, f"{{{prefix}:x}}", struct.pack(f"<{len(values)}d", *values))
    assert found == [3] * len(tats) + [1] * len(small)  # TATs: both exact; small: new only


# -- the hot path ---------------------------------------------------------------------------
def _acquire(store: RedisRateLimitStore, mode: str, demands: list[Demand]) -> float:
    if mode == "async":

        async def body() -> float:
            return await store.aacquire("k", demands, 0.0)

        return asyncio.run(body())
    return store.acquire("k", demands, 0.0)


def _previous(client: redis.Redis, store: RedisRateLimitStore, demands: list[Demand]) -> float:
    """One reservation by a replica on the previous release (its script, the same keys)."""
    numbers: list[float] = []
    for rate, cost in demands:
        interval = 1e6 / rate.per_second
        numbers += (cost * interval, rate.burst * interval, 0.0)
    keys = store.keys("k", [rate.dimension for rate, _ in demands])
    waited = client.eval(PREVIOUS_RESERVE, len(keys), *keys, pack_reserve(True, numbers))
    return int(waited) / 1e6


def test_replicas_on_both_versions_draw_from_one_bucket(
    redis_url: str, client: redis.Redis, prefix: str, mode: str
) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)
    demands: list[Demand] = [(RPM, 1.0), (TPM, 100.0)]
    for index in range(5):  # rpm's burst: five requests, alternately on each version
        if index % 2:
            assert _previous(client, store, demands) == 0.0
        else:
            assert _acquire(store, mode, demands) == 0.0
    # Both see the five spent: the next request waits ~1 s on either version.
    assert 0.9 < _acquire(store, mode, demands) <= 1.0
    assert 0.9 < _previous(client, store, demands) <= 1.0
    tat = float(client.get(store.keys("k", ["tpm"])[1]) or 0)
    now = client.time()
    assert 499 * 1e6 / 7 < tat - (now[0] * 1e6 + now[1]) <= 500 * 1e6 / 7  # 500 tokens spent


def test_a_flushed_script_cache_is_reloaded_on_the_hot_path(
    redis_url: str, client: redis.Redis, prefix: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A script Redis has never seen (as after a restart or a failover): NOSCRIPT, then loaded.
    fresh = f"{RESERVE}-- {uuid.uuid4().hex}\n"
    monkeypatch.setattr(limiter_module, "RESERVE", fresh)
    store = RedisRateLimitStore(redis_url, prefix=prefix)
    assert _acquire(store, mode, [(RPM, 1.0)]) == 0.0
    assert _acquire(store, mode, [(RPM, 1.0)]) == 0.0
    assert store.available  # loaded and run, not a fallback
    assert client.script_exists(store._conn._sha(fresh).decode()) == [True]
    tat = float(client.get(store.keys("k", ["rpm"])[1]) or 0)
    now = client.time()
    assert 1.9e6 < tat - (now[0] * 1e6 + now[1]) <= 2e6  # both were recorded in Redis
    assert store.local.wait_time("k", [(RPM, 5.0)], 0.0) == 0.0  # the fallback saw nothing


def test_zero_refunds_are_not_kept(redis_url: str, prefix: str, mode: str) -> None:
    store = RedisRateLimitStore(redis_url, prefix=prefix)

    def adjust(demands: list[Demand]) -> None:
        if mode == "async":
            asyncio.run(store.aadjust("k", demands, 0.0))
        else:
            store.adjust("k", demands, 0.0)

    adjust([(TPM, 0.0)])
    assert store.pending("k") == []
    assert store._refunds == {}  # no empty entry left behind for the key either
    adjust([(TPM, 0.0), (RPM, -5.0)])
    adjust([(RPM, -2.0)])
    assert store.pending("k") == [(RPM, -7.0)]


def test_keys_are_sent_in_the_clients_own_encoding(
    redis_url: str, client: redis.Redis, prefix: str, mode: str
) -> None:
    # The hot path sends keys already encoded: with a latin-1 client they must be the bytes
    # redis-py (and so the plan path, and every other replica) would send for that key.
    latin: Any = (redis.asyncio.Redis if mode == "async" else redis.Redis).from_url(
        redis_url, encoding="latin-1"
    )
    store = RedisRateLimitStore(latin, prefix=prefix)

    async def body() -> float:
        try:
            return await store.aacquire("café", [(RPM, 1.0)], 0.0)
        finally:
            await latin.aclose()

    if mode == "async":
        assert asyncio.run(body()) == 0.0
    else:
        assert store.acquire("café", [(RPM, 1.0)], 0.0) == 0.0
        latin.close()
    expected = f"{{{prefix}:café}}:rl:rpm".encode("latin-1")
    assert client.exists(expected) == 1
    assert list(client.scan_iter(match=f"{{{prefix}:*")) == [expected]
