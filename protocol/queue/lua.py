"""The Lua scripts behind every atomic queue step (SPEC section 8).

Each script is one round trip and never re-encodes a job: the stored job
JSON is canonical (sorted keys), so ``attempts`` and ``deadline`` are always
its first two keys and a script rewrites or reads them by position instead
of round-tripping through ``cjson`` (which reorders keys and reformats
numbers). ``max_attempts`` is the first ``"max_attempts":`` in the text,
because the only string value before it (``idem_key``) cannot hold a raw
quote. The bash consumer (``examples/queue-consumer.sh``) carries verbatim
copies of ``START``, ``ACK``, ``FAIL`` and ``TICK``; a unit test keeps them
equal::

    from protocol.queue.lua import SCRIPTS
    sha = client.script_load(SCRIPTS["start"])

Job keys are derived inside a script from the queue prefix passed as an
argument, so the queue needs a single Redis (not Cluster).
"""
from __future__ import absolute_import, division, print_function

# ENQUEUE  KEYS: ready, job [, idem]   ARGV: id, body, now, idem_ttl_ms
# Returns the job id: the existing one for a known idempotency key, and the
# same id when a retried call finds its own job already stored.
ENQUEUE = """
local id = ARGV[1]
if #KEYS == 3 then
  local prev = redis.call('GET', KEYS[3])
  if prev then return prev end
  redis.call('SET', KEYS[3], id, 'PX', ARGV[4])
end
if redis.call('EXISTS', KEYS[2]) == 1 then return id end
redis.call('HSET', KEYS[2], 'job', ARGV[2], 'state', 'queued', 'updated', ARGV[3])
redis.call('LPUSH', KEYS[1], id)
return id
"""

# START  KEYS: proc, job, dead   ARGV: id, now, consumer
# Returns {"run", body} with attempts bumped, {"dead", error} when the
# deadline passed or the job is malformed, or {"gone", ""} when the job is no
# longer held by this consumer (a reaper requeued it) or has no record.
START = """
local id, now = ARGV[1], tonumber(ARGV[2])
if not redis.call('LPOS', KEYS[1], id) then return {'gone', ''} end
local body = redis.call('HGET', KEYS[2], 'job')
if not body then
  redis.call('LREM', KEYS[1], -1, id)
  return {'gone', ''}
end
local n, dl = string.match(body, '^{"attempts":(%d+),"deadline":(%w+),')
local err = nil
if not n then
  err = '{"code":"envelope","message":"job is not canonical job JSON"}'
elseif dl ~= 'null' and tonumber(dl) ~= nil and tonumber(dl) <= now then
  err = '{"code":"timeout","message":"deadline passed before the job started"}'
end
if err then
  redis.call('LREM', KEYS[1], -1, id)
  redis.call('HSET', KEYS[2], 'state', 'dead', 'error', err, 'updated', ARGV[2])
  redis.call('LPUSH', KEYS[3], id)
  return {'dead', err}
end
body = '{"attempts":' .. (tonumber(n) + 1) .. string.sub(body, 13 + #n)
redis.call('HSET', KEYS[2], 'job', body, 'state', 'running', 'consumer', ARGV[3],
  'updated', ARGV[2])
return {'run', body}
"""

# ACK  KEYS: proc, job, ready, dead   ARGV: id, now, result, ttl_ms, consumer
# Returns 1 when recorded, 0 for a repeated ack or a vanished job. A consumer
# that was reaped while it worked still records its result, and takes back
# the requeued copy so that it is not run again.
ACK = """
local id = ARGV[1]
local removed = redis.call('LREM', KEYS[1], -1, id)
local state = redis.call('HGET', KEYS[2], 'state')
if (not state) or state == 'done' then return 0 end
if removed == 0 then
  redis.call('LREM', KEYS[3], 0, id)
  redis.call('LREM', KEYS[4], 0, id)
end
redis.call('HSET', KEYS[2], 'state', 'done', 'result', ARGV[3], 'updated', ARGV[2],
  'consumer', ARGV[5])
redis.call('HDEL', KEYS[2], 'error')
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""

# FAIL  KEYS: proc, job, delayed, dead   ARGV: id, now, error, due_ms, final
# Retry-or-dead-letter in one step. Returns "retry", "dead", or "lost" when
# this consumer no longer holds the job.
FAIL = """
local id = ARGV[1]
if redis.call('LREM', KEYS[1], -1, id) == 0 then return 'lost' end
local body = redis.call('HGET', KEYS[2], 'job')
if not body then return 'lost' end
local n = tonumber(string.match(body, '^{"attempts":(%d+),') or '0')
local max = tonumber(string.match(body, '"max_attempts":(%d+)') or '1')
if ARGV[5] == '1' or n >= max then
  redis.call('HSET', KEYS[2], 'state', 'dead', 'error', ARGV[3], 'updated', ARGV[2])
  redis.call('LPUSH', KEYS[4], id)
  return 'dead'
end
redis.call('HSET', KEYS[2], 'state', 'failed', 'error', ARGV[3], 'updated', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], id)
return 'retry'
"""

# TICK  KEYS: consumers, delayed, ready, proc   ARGV: consumer, now, prefix, limit
# Heartbeat plus promotion of due retries. Returns {promoted, held}: held is
# the length of this consumer's processing list, which lets a consumer find
# a job that a lost BLMOVE reply left there.
TICK = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HSET', ARGV[3] .. 'job:' .. id, 'state', 'queued', 'updated', ARGV[2])
  redis.call('LPUSH', KEYS[3], id)
end
return {#due, redis.call('LLEN', KEYS[4])}
"""

# PROMOTE  KEYS: delayed, ready   ARGV: now, prefix, limit
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HSET', ARGV[2] .. 'job:' .. id, 'state', 'queued', 'updated', ARGV[1])
  redis.call('LPUSH', KEYS[2], id)
end
return #due
"""

# REAP  KEYS: consumers, proc, ready, dead   ARGV: consumer, now, visibility_ms, prefix, force
# Requeues (at the head, so they run next) the jobs of a consumer whose last
# heartbeat is older than the visibility timeout; a started job that has
# used its last attempt goes to the dead-letter list as worker_lost.
# Returns -1 when the consumer is alive, else the number of jobs handled.
REAP = """
local now = tonumber(ARGV[2])
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[5] ~= '1' and seen and tonumber(seen) > now - tonumber(ARGV[3]) then
  return -1
end
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
local lost = '{"code":"worker_lost","message":"the consumer died while running the job"}'
for i = #ids, 1, -1 do
  local id = ids[i]
  local key = ARGV[4] .. 'job:' .. id
  local body = redis.call('HGET', key, 'job')
  if body then
    local n = tonumber(string.match(body, '^{"attempts":(%d+),') or '0')
    local max = tonumber(string.match(body, '"max_attempts":(%d+)') or '1')
    local state = redis.call('HGET', key, 'state')
    if state == 'running' and n >= max then
      redis.call('HSET', key, 'state', 'dead', 'error', lost, 'updated', ARGV[2])
      redis.call('LPUSH', KEYS[4], id)
    elseif state ~= 'done' then
      redis.call('HSET', key, 'state', 'queued', 'updated', ARGV[2])
      redis.call('RPUSH', KEYS[3], id)
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return #ids
"""

# REPLAY  KEYS: dead, ready   ARGV: now, prefix, id ("" for all), limit
# Moves dead jobs back to the ready list with attempts reset to 0.
REPLAY = """
local ids
if ARGV[3] ~= '' then ids = {ARGV[3]} else
  ids = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[4]), -1)
end
local count = 0
for i = #ids, 1, -1 do
  local id = ids[i]
  if redis.call('LREM', KEYS[1], 0, id) > 0 then
    local key = ARGV[2] .. 'job:' .. id
    local body = redis.call('HGET', key, 'job')
    if body then
      local n = string.match(body, '^{"attempts":(%d+),')
      if n then body = '{"attempts":0' .. string.sub(body, 13 + #n) end
      redis.call('HSET', key, 'job', body, 'state', 'queued', 'updated', ARGV[1])
      redis.call('HDEL', key, 'error', 'result')
      redis.call('PERSIST', key)
      redis.call('LPUSH', KEYS[2], id)
      count = count + 1
    end
  end
end
return count
"""

SCRIPTS = {
    "enqueue": ENQUEUE, "start": START, "ack": ACK, "fail": FAIL, "tick": TICK,
    "promote": PROMOTE, "reap": REAP, "replay": REPLAY,
}
