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
# Numbers written back are formatted explicitly: Redis would truncate a Lua number to an integer.
RESERVE = """
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
