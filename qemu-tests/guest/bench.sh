#!/bin/sh
# Guest side of qemu-tests/bench (busybox sh). One boot; RUNS rounds, and in every round the
# phases one after the other (interleaved, so a slow drift of the host's speed hits every
# phase alike):
#
#   base       no agent
#   p10        armlet run --insecure-dev --policies /bench/policies/p10 --enforcer bpf-lsm
#                  --node <node> --ready-file /run/armlet.ready
#   p1000      the same with 1,000 rules, none matching the tested paths
#   p1000m     1,000 rules, one matching each tested path with action Audit (alerts)
#
# (phases, rounds and iteration counts come from /bench/config). A phase runs
#   /bench/bench open N_OPEN /tmp/bench/file ; /bench/bench exec N_EXEC /bench/true
# With an agent, it is started fresh for the phase, the loops start 1 s after its ready
# file appeared; its stdout (the alerts) goes through a FIFO into `wc -l`, its stderr to a
# file; it is stopped with SIGTERM by its PID (KILL after 10 s) and waited for.
# Console protocol, one line each:
#
#   ARMLET-BENCH PHASE <phase> <round> BEGIN|END
#   ARMLET-BENCH AGENT <phase> <round> READY <secs> RSS <kB>     the ready file appeared
#   ARMLET-BENCH AGENT <phase> <round> RSS-END <kB> HWM <kB>     after the loops
#   ARMLET-BENCH AGENT <phase> <round> NOTREADY <why>
#   ARMLET-BENCH AGENT <phase> <round> EXIT <status> stopped|hung|early
#   ARMLET-BENCH AGENTLOG <phase> <round> <line>   the agent's "enforcing"/"stopping" lines
#   ARMLET-BENCH ALERTS <phase> <round> <lines on the agent's stdout>
#   ARMLET-BENCH RESULT <phase> open|exec <round> OPS=<n> NS=<ns>
#   ARMLET-BENCH ERROR <phase> <what>
#   ARMLET-BENCH STDERR <phase> <round> <line>     agent stderr tail (on trouble)
. /armlet-qt/lib.sh
. /bench/config
BB=/bin/busybox
T="ARMLET-BENCH"
READY=/run/armlet.ready

uptime_cs() { read -r _u _rest </proc/uptime; _cs=$(( ${_u%.*} * 100 + 1${_u#*.} - 100 )); }
secs() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    read -r _st </proc/$1/stat 2>/dev/null || return 1
    case "$_st" in *") Z "*|*") X "*) return 1 ;; esac
    return 0
}
status_kb() { # PID FIELD -> kB number
    $BB awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}
agent_tail() { # PHASE ROUND
    [ -s "/tmp/agent-$1.err" ] || return 0
    $BB tail -n 15 "/tmp/agent-$1.err" | while IFS= read -r _l; do echo "$T STDERR $1 $2 $_l"; done
}

loops() { # PHASE ROUND
    for _t in open exec; do
        if [ $_t = open ]; then _n=$N_OPEN _p=/tmp/bench/file; else _n=$N_EXEC _p=/bench/true; fi
        if _out=$(/bench/bench $_t "$_n" "$_p" 2>&1); then
            echo "$T RESULT $1 $_t $2 $_out"
        else
            echo "$T ERROR $1 $_t round $2: $(printf '%s' "$_out" | qt_one_line)"
        fi
    done
}

stop_agent() { # PHASE ROUND PID
    if ! alive "$3"; then
        wait "$3"; _rc=$?
        echo "$T AGENT $1 $2 EXIT $_rc early"
        agent_tail "$1" "$2"
        return
    fi
    kill -TERM "$3" 2>/dev/null
    _i=0
    while alive "$3" && [ $_i -lt 100 ]; do $BB usleep 100000; _i=$((_i + 1)); done
    if alive "$3"; then
        kill -KILL "$3" 2>/dev/null
        wait "$3"; _rc=$?
        echo "$T AGENT $1 $2 EXIT $_rc hung"
        agent_tail "$1" "$2"
    else
        wait "$3"; _rc=$?
        echo "$T AGENT $1 $2 EXIT $_rc stopped"
        case "$_rc" in 0|143) ;; *) agent_tail "$1" "$2" ;; esac
    fi
}

phase() { # PHASE ROUND
    echo "$T PHASE $1 $2 BEGIN"
    case "$1" in
        base*) loops "$1" "$2"; echo "$T PHASE $1 $2 END"; return ;;
    esac
    fifo=/tmp/alerts-$1.fifo
    $BB rm -f "$READY" "$fifo" "/tmp/alerts-$1.count" "/tmp/agent-$1.err"
    $BB mkfifo "$fifo"
    # Reader first: it blocks in open() until the agent opens the FIFO for writing.
    $BB wc -l <"$fifo" >"/tmp/alerts-$1.count" &
    wcpid=$!
    uptime_cs; t0=$_cs
    armlet run --insecure-dev --policies "/bench/policies/$1" --enforcer bpf-lsm \
        --node "$NODE" --ready-file "$READY" </dev/null >"$fifo" 2>"/tmp/agent-$1.err" &
    apid=$!
    state=wait
    while :; do
        if [ -e "$READY" ]; then state=ready; break; fi
        if ! alive "$apid"; then state=exited; break; fi
        uptime_cs
        if [ $((_cs - t0)) -ge $((READY_TIMEOUT * 100)) ]; then state=timeout; break; fi
        $BB usleep 20000
    done
    uptime_cs
    if [ "$state" = ready ]; then
        echo "$T AGENT $1 $2 READY $(secs $((_cs - t0))) RSS $(status_kb "$apid" VmRSS)"
        $BB sleep 1   # let the agent settle (its start-up work is not the hooks' cost)
        loops "$1" "$2"
        echo "$T AGENT $1 $2 RSS-END $(status_kb "$apid" VmRSS) HWM $(status_kb "$apid" VmHWM)"
    elif [ "$state" = exited ]; then
        echo "$T AGENT $1 $2 NOTREADY the agent exited after $(secs $((_cs - t0)))s without writing $READY"
    else
        echo "$T AGENT $1 $2 NOTREADY no $READY after ${READY_TIMEOUT}s"
    fi
    stop_agent "$1" "$2" "$apid"
    [ "$state" = timeout ] && agent_tail "$1" "$2"
    $BB grep -e '^armlet: enforcing' -e '^armlet: auditing' -e '^armlet: stopping' "/tmp/agent-$1.err" 2>/dev/null |
        while IFS= read -r _l; do echo "$T AGENTLOG $1 $2 $_l"; done
    wait "$wcpid"
    echo "$T ALERTS $1 $2 $($BB cat "/tmp/alerts-$1.count" 2>/dev/null | $BB tr -d ' ')"
    echo "$T PHASE $1 $2 END"
}

$BB mkdir -p /tmp/bench
echo bench >/tmp/bench/file
echo "$T CONFIG n_open=$N_OPEN n_exec=$N_EXEC runs=$RUNS phases=$PHASES node=$NODE cpus=$($BB grep -c ^processor /proc/cpuinfo) kernel=$($BB uname -r)"
r=1
while [ $r -le "$RUNS" ]; do
    for p in $PHASES; do
        phase "$p" "$r"
    done
    r=$((r + 1))
done
exit 0
