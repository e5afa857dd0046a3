"""Lua scripts of `RedisConcurrencyStore`: a semaphore of leases in one sorted set per key.

Each member is a lease id scored by its expiry, in milliseconds of Redis `TIME` (client clocks
never matter). Expired leases are dropped before a slot is counted, so a dead holder's slot
comes back once its lease runs out. The set itself expires with its longest lease.
"""

from __future__ import annotations

# Internal to RedisConcurrencyStore; not public API.
__all__: list[str] = []

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Keep the set alive as long as its longest lease (ttl is the same or longer for every lease).
_KEEP = """
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
"""

# KEYS[1] = the lease set; ARGV = limit, lease id, lease ttl (ms).
# Returns 0 when the lease is held (taken now, or already held: a retried command), else the
# milliseconds until the earliest lease expires (>= 1): when a dead holder's slot would be free.
ACQUIRE = (
    _NOW
    + """
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(first[2]) - now)
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
"""
    + _KEEP
    + """
return 0
"""
)

# KEYS[1] = the lease set; ARGV[1] = lease id. Returns 1 when it was held.
RELEASE = "return redis.call('ZREM', KEYS[1], ARGV[1])"

# KEYS[1] = the lease set; ARGV = lease id, lease ttl (ms).
# Returns 1 when the lease was still valid (and is extended), 0 when it was lost: a lease past
# its expiry is never revived, another caller may hold that slot already.
RENEW = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[1])
"""
    + _KEEP
    + """
return 1
"""
)

# KEYS[1] = the lease set. Returns how many leases are valid now (read-only).
IN_FLIGHT = (
    _NOW
    + """
return redis.call('ZCOUNT', KEYS[1], string.format('(%d', now), '+inf')
"""
)
