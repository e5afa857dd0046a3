"""Lua scripts of `RedisRateLimitStore` (GCRA in microseconds of Redis `TIME`)."""

from __future__ import annotations

import struct

# Internal to RedisRateLimitStore; not public API.
__all__: list[str] = []

# KEYS[1] = the cooldown key, KEYS[2..] = one TAT key per dimension.
# ARGV[1] = one binary argument (`pack_reserve`): a byte, 1 to record (acquire) or 0 to only look
# (wait_time), then three little-endian doubles per dimension, in microseconds: the increment
# (cost x interval), the tolerance (burst x interval; -1: no demand on this dimension, only the
# refund) and the refund (<= 0: earlier reconciles folded into this round trip, applied first,
# whether or not the demand is admitted). One argument decoded by `struct` (C) instead of text
# parsed in Lua: the client packs one value and the script spends no time on `gmatch`/`tonumber`.
# Returns 0 when admitted (and recorded), else the wait in whole microseconds (>= 1).
#
# Wire-compatible with every earlier version of this script (replicas of different versions
# share the keys; tests/stores/test_redis_limiter_script.py runs them alternately): same keys,
# values read with `tonumber`, each key expiring when its bucket is full again. What it saves
# (Redis-side instructions per reservation, callgrind: ~95k -> ~86k): one MGET instead of a GET
# per key, no table per pass, the `struct` format as a literal for one or two dimensions, a TAT
# passed to SET as a Lua number (Redis writes it with 17 significant digits or as the shortest
# string that reads back the same double: exact, as the `%.3f` text of earlier versions was,
# without `string.format`), its expiry as an integer formatted with `%d` (cheaper than the
# `%.17g` Redis applies to a number).
RESERVE = """
local a = ARGV[1]
local n = #KEYS
local v = {struct.unpack(n == 3 and '<dddddd' or n == 2 and '<ddd'
  or '<' .. string.rep('d', (n - 1) * 3), a, 2)}
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local got = redis.call('MGET', unpack(KEYS))
local wait = 0
if got[1] then wait = tonumber(got[1]) - now end
for i = 2, n do
  local j = (i - 2) * 3
  local tat = tonumber(got[i]) or now
  if tat < now then tat = now end
  local refund = v[j + 3]
  if refund ~= 0 then
    tat = tat + refund
    if tat < now then tat = now end
  end
  got[i] = tat
  local tolerance = v[j + 2]
  if tolerance >= 0 then
    local w = tat + v[j + 1] - tolerance - now
    if w > wait then wait = w end
  end
end
local admit = wait <= 0 and string.byte(a, 1) == 1
for i = 2, n do
  local j = (i - 2) * 3
  local tat = got[i]
  if admit then
    if v[j + 2] >= 0 then tat = tat + v[j + 1] end
  elseif v[j + 3] == 0 then
    tat = nil  -- neither admitted nor refunded: unchanged
  elseif tat <= now then
    redis.call('DEL', KEYS[i])  -- refunded to full: a missing key reads as "full"
    tat = nil
  end
  if tat then
    -- The key expires when its bucket is full again.
    redis.call('SET', KEYS[i], tat, 'PX', string.format('%d', math.ceil((tat - now) / 1000) + 1))
  end
end
if wait > 0 then return math.max(1, math.ceil(wait)) end
return 0
"""

_PACKERS: dict[int, struct.Struct] = {}


def pack_reserve(record: bool, numbers: list[float]) -> bytes:
    """ARGV[1] of `RESERVE`: the record flag, then `numbers` (three per dimension)."""
    packer = _PACKERS.get(len(numbers))
    if packer is None:
        packer = _PACKERS[len(numbers)] = struct.Struct(f"<B{len(numbers)}d")
    return packer.pack(1 if record else 0, *numbers)


# KEYS = one TAT key per dimension; ARGV = interval, cost per dimension (cost < 0: a refund).
# A refund never lifts a bucket above full: the TAT never goes below now.
ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[2 * i]) * tonumber(ARGV[2 * i - 1])
  if tat <= now then
    redis.call('DEL', KEYS[i])
  else
    local ttl = math.ceil((tat - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', ttl)
  end
end
return 0
"""

# KEYS[1] = the cooldown key; ARGV[1] = seconds from now. Only ever extends a cooldown.
COOLDOWN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untilt = now + tonumber(ARGV[1]) * 1000000
local current = tonumber(redis.call('GET', KEYS[1]) or 0)
if untilt <= current then return 0 end
local ttl = math.ceil((untilt - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.3f', untilt), 'PX', ttl)
return 1
"""
