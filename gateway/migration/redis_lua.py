"""The Lua scripts behind every state change of the Redis migration store.

A state change is one script, so Redis applies it whole or not at all (and an
AOF holds it whole): the compare-and-set on the state's version, the new state,
the global version every gateway polls, the one audit entry in the stream, and
the pub/sub notice. Python decides whether a move is legal (the rules live in
:mod:`gateway.migration.store`) against the version it read; the script only
refuses when that version is no longer the stored one::

    client.eval(TRANSITION, 6, *keys, name, channel, read_version, new_version, ...)

Keys are passed in ``KEYS`` (one Redis, or one hash slot with a ``{tag}`` in
the prefix).
"""

from __future__ import annotations

# Shared tail: bump the global version, append the audit entry, tell the others.
# KEYS: states, versions, version, audit, audit_seq   ARGV[1] name, ARGV[2] channel,
# then (from AUDIT_AT) at, actor, from_mode, from_percent, to_mode, to_percent, reason, forced.
_COMMIT = """
redis.call('INCR', KEYS[3])
local id = redis.call('INCR', KEYS[5])
redis.call('XADD', KEYS[4], '*', 'id', id, 'name', ARGV[1], 'at', ARGV[{a}],
  'actor', ARGV[{a} + 1], 'from_mode', ARGV[{a} + 2], 'from_percent', ARGV[{a} + 3],
  'to_mode', ARGV[{a} + 4], 'to_percent', ARGV[{a} + 5], 'reason', ARGV[{a} + 6],
  'forced', ARGV[{a} + 7])
redis.call('PUBLISH', ARGV[2], ARGV[1])
"""

# TRANSITION  KEYS: the five above, last_op
#             ARGV: name, channel, read_version, new_version, state_json, op_id, audit fields...
# Returns {1, audit_id} when applied, {0, stored_version} when someone else moved it
# first, {-1, 0} when the name is unknown. A call whose reply was lost and that the
# client sends again finds its own op_id as the name's last change and answers {1, 0}
# without applying it twice.
TRANSITION = """
local stored = redis.call('HGET', KEYS[2], ARGV[1])
if not stored then return {-1, 0} end
if stored ~= ARGV[3] then
  if redis.call('HGET', KEYS[6], ARGV[1]) == ARGV[6] then return {1, 0} end
  return {0, tonumber(stored)}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[6], ARGV[1], ARGV[6])
""" + _COMMIT.format(a=7) + """
return {1, id}
"""

# ENSURE  ARGV: name, channel, state_json, audit fields...
# Returns 1 when it created the state, 0 when it existed (nothing written).
ENSURE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[3]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], '1')
""" + _COMMIT.format(a=4) + """
return 1
"""
