#!/usr/bin/env bash
# queue-consumer.sh - a consumer of the gateway's reliable Redis queues (SPEC section 8)
# written with nothing but bash, redis-cli and jq.
#
#   examples/queue-consumer.sh -u redis://127.0.0.1:6379/0 -q thumbs [options] [-- HANDLER...]
#
# Each job's payload (the JSON-only view: bytes are {"$bytes": base64}) is written to
# HANDLER's stdin; HANDLER prints the result as JSON on stdout and exits 0 to ack. A
# non-zero exit fails the attempt: it is retried with exponential backoff until the
# job's max_attempts, then dead-lettered with the handler's stderr as the message.
# Exit 75 (EX_TEMPFAIL) is retried too; exit 65 (EX_DATAERR) dead-letters at once.
# The handler sees QUEUE_JOB_ID, QUEUE_ATTEMPTS, QUEUE_RID, QUEUE_DEADLINE,
# QUEUE_TRACEPARENT and QUEUE_TRACESTATE (empty when the job has none). It runs
# under timeout(1): until the job's deadline and at most --handler-timeout seconds; a
# handler that runs out of time fails the attempt (code "timeout"). A job whose JSON
# does not parse is dead-lettered at once (code "envelope"), as the Python consumer does.
# The default handler is `jq -c .` (the result is the payload).
#
# Options:
#   -u URL            redis:// URL (default redis://127.0.0.1:6379/0), or unix:///path/redis.sock
#                     with an optional ?db=N (the gateway's private Redis: $GATEWAY_REDIS_URL)
#   -q NAME           queue name (required)
#   --once            process one job, then exit (gives up after --idle-exit s, default 10)
#   --max-jobs N      exit after N jobs
#   --idle-exit S     exit 0 when no job arrived for S seconds
#   --block S         BLMOVE timeout in seconds (default 1)
#   --visibility S    heartbeat every S/3 seconds (match the producers' Queue; default 30)
#   --backoff-ms MS   first retry delay (doubles per attempt, capped at 300 s; default 1000)
#   --result-ttl S    how long results live (default 3600)
#   --retry-for S     ride out a Redis outage this long, then exit 3 (default 10)
#   --handler-timeout S  kill a handler that runs longer (default 0: only the job deadline)
#   --name NAME       consumer name (default bash:<host>:<pid>)
#
# Steps and keys are exactly those of the Python consumer (protocol/queue/consumer.py): the
# Lua below is a verbatim copy of protocol/queue/lua.py, checked by tests/protocol.
# Exit status: 0 done, 2 usage or protocol error, 3 Redis unavailable.
set -uo pipefail

URL=redis://127.0.0.1:6379/0 QUEUE="" MAX_JOBS=0 IDLE_EXIT=0 BLOCK=1 VIS=30
BACKOFF_MS=1000 RESULT_TTL=3600 RETRY_FOR=10 NAME="bash:$(hostname):$$" HANDLER_TIMEOUT=0
HANDLER=(jq -c .)

die() { printf 'queue-consumer: %s\n' "$*" >&2; exit 2; }
log() { printf 'queue-consumer: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    -u) URL=$2; shift 2 ;;
    -q) QUEUE=$2; shift 2 ;;
    --once) MAX_JOBS=1; [ "$IDLE_EXIT" = 0 ] && IDLE_EXIT=10; shift ;;
    --max-jobs) MAX_JOBS=$2; shift 2 ;;
    --idle-exit) IDLE_EXIT=$2; shift 2 ;;
    --block) BLOCK=$2; shift 2 ;;
    --visibility) VIS=$2; shift 2 ;;
    --backoff-ms) BACKOFF_MS=$2; shift 2 ;;
    --result-ttl) RESULT_TTL=$2; shift 2 ;;
    --retry-for) RETRY_FOR=$2; shift 2 ;;
    --handler-timeout) HANDLER_TIMEOUT=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --) shift; [ $# -gt 0 ] && HANDLER=("$@"); break ;;
    -h|--help) sed -n '2,/^# Exit status/p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[ -n "$QUEUE" ] || die "-q QUEUE is required"
case "$QUEUE" in *:*) die "queue names cannot contain ':'" ;; esac
command -v redis-cli >/dev/null || die "redis-cli not found"
# redis-cli -u takes only redis:// URLs; a unix socket is -s PATH and its database -n N.
case "$URL" in
  redis://*|rediss://*) TARGET=(-u "$URL") ;;
  unix://*)
    SOCK=${URL#unix://} QUERY=""
    case "$SOCK" in *\?*) QUERY=${SOCK#*\?}; SOCK=${SOCK%%\?*} ;; esac
    [ -n "$SOCK" ] || die "no socket path in $URL"
    TARGET=(-s "$SOCK")
    IFS='&' read -r -a PARAMS <<< "$QUERY"
    for kv in "${PARAMS[@]}"; do
      case "$kv" in
        db=*) [[ ${kv#db=} =~ ^[0-9]+$ ]] || die "bad db in $URL"; TARGET+=(-n "${kv#db=}") ;;
        password=*) TARGET+=(-a "${kv#password=}") ;;
        "") ;;
        *) die "unsupported parameter in $URL: $kv" ;;
      esac
    done ;;
  *) die "unsupported URL $URL (redis://, rediss:// or unix://)" ;;
esac
command -v jq >/dev/null || die "jq not found"
command -v timeout >/dev/null || die "timeout (coreutils) not found"

P="gw:q:$QUEUE:"
READY="${P}ready" DELAYED="${P}delayed" DEAD="${P}dead" CONSUMERS="${P}consumers"
PROC="${P}proc:$NAME"
now_ms() { date +%s%3N; }

# ---- Lua steps: verbatim copies of protocol/queue/lua.py ----
read -r -d '' LUA_START <<'LUA' || true
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
LUA
read -r -d '' LUA_ACK <<'LUA' || true
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
LUA
read -r -d '' LUA_FAIL <<'LUA' || true
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
LUA
read -r -d '' LUA_TICK <<'LUA' || true
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HSET', ARGV[3] .. 'job:' .. id, 'state', 'queued', 'updated', ARGV[2])
  redis.call('LPUSH', KEYS[3], id)
end
return {#due, redis.call('LLEN', KEYS[4])}
LUA
read -r -d '' LUA_REAP <<'LUA' || true
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
LUA

# One redis-cli call with a hard time limit; connection failures are retried with
# capped backoff for RETRY_FOR seconds, then the consumer exits 3.
CALL_OUT=""
call() {
  local limit=$(( ${BLOCK%.*} + 5 )) give_up=$(( $(date +%s) + RETRY_FOR )) delay=0.05 out
  CALL_OUT=""
  while :; do
    if out=$(timeout "$limit" redis-cli "${TARGET[@]}" --no-auth-warning "$@" 2>/dev/null); then
      case "$out" in
        LOADING*|BUSY*|TRYAGAIN*) ;;              # restarting: retry below
        ERR\ *|WRONGTYPE*|NOSCRIPT*|MISCONF*|READONLY*|NOPERM*) die "redis error: $out" ;;
        *) CALL_OUT=$out; return 0 ;;
      esac
    fi
    CHECK_OWN=1
    [ "$STOP" = 0 ] || return 1
    [ "$(date +%s)" -lt "$give_up" ] || { log "redis unavailable at $URL"; exit 3; }
    sleep "$delay"
    delay=$(awk -v d="$delay" 'BEGIN { d *= 2; if (d > 1) d = 1; print d }')
  done
}

tick() { call EVAL "$LUA_TICK" 4 "$CONSUMERS" "$DELAYED" "$READY" "$PROC" "$NAME" "$(now_ms)" "$P" 100; }

HB_PID="" MAIN=$$
# True while the consumer that started this heartbeat runs. kill -0 alone is not enough:
# a main process killed with -9 may linger as a zombie, so also check that this
# subshell has not been re-parented away from it.
main_alive() {
  kill -0 "$MAIN" 2>/dev/null || return 1
  [ -r "/proc/$BASHPID/stat" ] || return 0
  local stat
  stat=$(<"/proc/$BASHPID/stat")
  stat=${stat##*) }
  set -- $stat
  [ "$2" = "$MAIN" ]
}
# The heartbeat ends with its consumer: a heartbeat outliving a kill -9'd consumer
# would keep it "alive" forever and its job would never be reaped.
heartbeat_loop() {
  local interval
  interval=$(awk -v v="$VIS" 'BEGIN { i = v / 3; if (i < 0.05) i = 0.05; print i }')
  while main_alive && sleep "$interval" && main_alive; do tick >/dev/null 2>&1 || true; done
}

finish() {
  [ -n "$HB_PID" ] && kill "$HB_PID" 2>/dev/null && wait "$HB_PID" 2>/dev/null
  # Deregister; anything still held goes back to the head of the ready list.
  RETRY_FOR=2 call EVAL "$LUA_REAP" 4 "$CONSUMERS" "$PROC" "$READY" "$DEAD" \
    "$NAME" "$(now_ms)" 0 "$P" 1 >/dev/null 2>&1 || true
}
STOP=0
trap 'STOP=1' TERM INT
trap finish EXIT

CHECK_OWN=1
tick
heartbeat_loop & HB_PID=$!

fail_job() {  # id attempts error_json final
  local due
  due=$(( $(now_ms) + (BACKOFF_MS << ($2 > 0 ? ($2 - 1 > 18 ? 18 : $2 - 1) : 0)) ))
  [ $(( due - $(now_ms) )) -le 300000 ] || due=$(( $(now_ms) + 300000 ))
  call EVAL "$LUA_FAIL" 4 "$PROC" "${P}job:$1" "$DELAYED" "$DEAD" \
    "$1" "$(now_ms)" "$3" "$due" "$4"
  log "job $1 attempt $2 failed: $CALL_OUT"
}

handled=0 idle_since=$(date +%s)
while [ "$STOP" = 0 ] && { [ "$MAX_JOBS" = 0 ] || [ "$handled" -lt "$MAX_JOBS" ]; }; do
  id=""
  if [ "$CHECK_OWN" = 1 ]; then
    CHECK_OWN=0; call LRANGE "$PROC" -1 -1; id=$CALL_OUT
  fi
  if [ -z "$id" ]; then call BLMOVE "$READY" "$PROC" RIGHT LEFT "$BLOCK"; id=$CALL_OUT; fi
  if [ -z "$id" ]; then
    tick
    if [ "$IDLE_EXIT" != 0 ] && [ $(( $(date +%s) - idle_since )) -ge "$IDLE_EXIT" ]; then
      log "no job for ${IDLE_EXIT}s, exiting"; break
    fi
    continue
  fi
  idle_since=$(date +%s)
  call EVAL "$LUA_START" 3 "$PROC" "${P}job:$id" "$DEAD" "$id" "$(now_ms)" "$NAME"
  verdict=${CALL_OUT%%$'\n'*} body=${CALL_OUT#*$'\n'}
  case "$verdict" in
    run) ;;
    dead) log "job $id dead-lettered: $body"; handled=$((handled + 1)); continue ;;
    gone) continue ;;
    *) [ "$STOP" = 1 ] && break; die "unexpected reply to START: $CALL_OUT" ;;
  esac
  if ! meta=$(jq -r '[.attempts, (.rid // ""), .deadline // "", .traceparent // "",
      .tracestate // ""] | map(tostring) | join("\u001f")' \
      <<<"$body" 2>/dev/null) || [ -z "$meta" ]; then
    err=$(jq -cnS '{code: "envelope", message: "job JSON does not parse"}')
    fail_job "$id" 1 "$err" 1
    handled=$((handled + 1))
    continue
  fi
  # A unit separator, not a tab: IFS whitespace would merge an empty field into the next.
  IFS=$'\x1f' read -r attempts rid deadline traceparent tracestate <<<"$meta"
  limit=$(awk -v d="$deadline" -v n="$(now_ms)" -v h="$HANDLER_TIMEOUT" 'BEGIN {
    t = 0; if (d != "") { t = (d - n) / 1000; if (t < 0.1) t = 0.1 }
    if (h > 0 && (t == 0 || h < t)) t = h
    printf "%.3f", t }')
  errfile=$(mktemp)
  result=$(jq -c .payload <<<"$body" | QUEUE_JOB_ID=$id QUEUE_ATTEMPTS=$attempts \
    QUEUE_RID=$rid QUEUE_DEADLINE=$deadline QUEUE_TRACEPARENT=$traceparent \
    QUEUE_TRACESTATE=$tracestate timeout --foreground -k 5 "$limit" "${HANDLER[@]}" 2>"$errfile")
  status=$?
  errtext=$(head -c 2000 "$errfile"); rm -f "$errfile"
  if [ "$status" = 124 ] && [ "$limit" != "0.000" ]; then
    err=$(jq -cnS --arg m "handler ran out of time after ${limit}s" \
      '{code: "timeout", message: $m}')
    fail_job "$id" "$attempts" "$err" 0
  elif [ "$status" = 0 ] && canon=$(jq -cS -s 'if length == 1 then .[0] else error("one JSON value expected") end' <<<"$result" 2>/dev/null); then
    call EVAL "$LUA_ACK" 4 "$PROC" "${P}job:$id" "$READY" "$DEAD" \
      "$id" "$(now_ms)" "$canon" "$((RESULT_TTL * 1000))" "$NAME"
  else
    [ "$status" = 0 ] && errtext="handler output is not one JSON value"
    err=$(jq -cnS --arg m "${errtext:-handler exited with status $status}" \
      --arg t "exit $status" '{code: "remote", message: $m, type: $t, traceback: ""}')
    fail_job "$id" "$attempts" "$err" "$([ "$status" = 65 ] && echo 1 || echo 0)"
  fi
  handled=$((handled + 1))
done
exit 0
