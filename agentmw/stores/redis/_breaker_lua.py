"""Lua scripts of `RedisBreakerStore`: `agentmw._breaker.CircuitState` transitions, in Redis.

A circuit is one hash: s (state c/o/h), g (generation), f (consecutive failures), o (opened at),
h (half-open since), i (probe permits issued), k (probes succeeded), n and x (calls and failures
in the ratio window, whose entries "time:failed" live in a list). Times are microseconds of
Redis `TIME`, written with '%.0f' (Redis would render a Lua number with 14 digits).
"""

from __future__ import annotations

# Internal to RedisBreakerStore; not public API.
__all__: list[str] = []

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS[1] = the circuit; ARGV = recovery_timeout (us), half_open_max_calls, ttl (ms).
# Returns {allowed, probe, generation, retry_after (us), entered half-open}.
ACQUIRE = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 's', 'g', 'o', 'i', 'h')
local state = h[1] or 'c'
local gen = tonumber(h[2] or 0)
if state == 'c' then return {1, 0, gen, 0, 0} end
local recovery = tonumber(ARGV[1])
local most = tonumber(ARGV[2])
local transition = 0
local issued = tonumber(h[4] or 0)
if state == 'o' then
  local remaining = tonumber(h[3]) + recovery - now
  if remaining > 0 then return {0, 0, gen, math.ceil(remaining), 0} end
  transition = 1
  issued = 0
  redis.call('HSET', KEYS[1], 's', 'h', 'i', 0, 'k', 0, 'h', string.format('%.0f', now))
elseif issued >= most and now - tonumber(h[5] or now) >= recovery then
  -- Every probe of this cycle has been out longer than recovery_timeout: its process is
  -- presumed dead. A new generation ignores their late outcomes and frees the permits.
  gen = gen + 1
  issued = 0
  redis.call('HSET', KEYS[1], 'g', gen, 'i', 0, 'k', 0, 'h', string.format('%.0f', now))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if issued >= most then return {0, 0, gen, 0, transition} end
redis.call('HSET', KEYS[1], 'i', issued + 1)
return {1, 1, gen, 0, transition}
"""
)

# KEYS[1] = the circuit, KEYS[2] = its ratio window list.
# ARGV = outcome (s/f/r), probe (0/1), generation, failure_threshold, half_open_max_calls,
# failure_ratio ('' for none), minimum_calls, window (us), ttl (ms).
# Returns the state entered ('open', 'closed') or '' when the circuit did not change.
RECORD = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 's', 'g', 'f', 'n', 'x')
local state = h[1] or 'c'
local gen = tonumber(h[2] or 0)
if gen ~= tonumber(ARGV[3]) then return '' end
local outcome = ARGV[1]
local ttl = ARGV[9]
local function reset(new_state)
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 's', new_state, 'g', gen + 1, 'f', 0, 'i', 0, 'k', 0, 'n', 0,
    'x', 0, 'o', string.format('%.0f', now))
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if ARGV[2] == '1' then
  if state ~= 'h' then return '' end
  if outcome == 'r' then
    redis.call('HINCRBY', KEYS[1], 'i', -1)
    return ''
  end
  if outcome == 'f' then
    reset('o')
    return 'open'
  end
  if redis.call('HINCRBY', KEYS[1], 'k', 1) >= tonumber(ARGV[5]) then
    reset('c')
    return 'closed'
  end
  return ''
end
if state ~= 'c' or outcome == 'r' then return '' end
local failed = outcome == 'f'
local ratio = ARGV[6]
local failures = 0
if failed then failures = tonumber(h[3] or 0) + 1 end
if not failed and ratio == '' and tonumber(h[3] or 0) == 0 then return '' end
local n = tonumber(h[4] or 0)
local x = tonumber(h[5] or 0)
if ratio ~= '' then
  redis.call('RPUSH', KEYS[2], string.format('%.0f:%d', now, failed and 1 or 0))
  n = n + 1
  if failed then x = x + 1 end
  local horizon = now - tonumber(ARGV[8])
  while true do
    local head = redis.call('LINDEX', KEYS[2], 0)
    if not head then break end
    local sep = string.find(head, ':', 1, true)
    if tonumber(string.sub(head, 1, sep - 1)) > horizon then break end
    redis.call('LPOP', KEYS[2])
    n = n - 1
    if string.sub(head, sep + 1) == '1' then x = x - 1 end
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if failed then
  local tripped = failures >= tonumber(ARGV[4])
  if not tripped and ratio ~= '' and n >= tonumber(ARGV[7]) then
    tripped = x >= tonumber(ratio) * n
  end
  if tripped then
    reset('o')
    return 'open'
  end
end
redis.call('HSET', KEYS[1], 'f', failures, 'n', n, 'x', x)
redis.call('PEXPIRE', KEYS[1], ttl)
return ''
"""
)

# KEYS[1] = the circuit; ARGV[1] = recovery_timeout (us). Returns 'closed'/'open'/'half_open'.
STATE = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 's', 'o')
local state = h[1] or 'c'
if state == 'c' then return 'closed' end
if state == 'h' then return 'half_open' end
if now - tonumber(h[2]) >= tonumber(ARGV[1]) then return 'half_open' end
return 'open'
"""
)
