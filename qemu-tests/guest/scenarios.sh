#!/bin/sh
# Guest side of qemu-tests/run (busybox sh). Runs every scenario listed in
# /scenarios/index, one after the other, each with its own agent:
#
#   armlet run --insecure-dev --policies /scenarios/<name>/policy.yaml --enforcer E
#       --default-posture P --node N --alerts-file /tmp/alerts-<name>.jsonl
#       --ready-file /run/armlet.ready
#
# waits for the ready file, runs each command as `bash -c CMD` (per-command timeout),
# waits for the alerts to flush, stops the agent with SIGTERM (by its PID) and reports.
# The host judges (qemu-tests/lib/scenarios.py judge). Console protocol, one line each:
#
#   ARMLET-QT-SCENARIO <name> BEGIN|END
#   ARMLET-QT-MISSING <name> <program>...        programs of the commands not found
#   ARMLET-QT-BUSYBOX <name> <program>           only busybox provides it (note)
#   ARMLET-QT-AGENT <name> READY <secs>
#   ARMLET-QT-AGENT <name> NOTREADY <why>
#   ARMLET-QT-AGENT <name> EXIT <status> stopped|early|hung
#   ARMLET-QT-STDERR <name> <line>               agent stderr/stdout tail (on trouble)
#   ARMLET-QT-RESULT <name> <cmdN> <exit> <secs>
#   ARMLET-QT-OUT <name> <cmdN> <line>           first lines of the command's output
#   ARMLET-QT-ALERT <name> <cmdN>|end <json>     alert lines written in that command's window
#   ARMLET-QT-OMITTED <name> <cmdN>|end <count>  alert lines not sent (busy window, see below)
#
# While an agent runs, this script execs only /bin/busybox (never coreutils or bash), so
# its own activity cannot match a scenario's process conditions (date, ls, diff, ...);
# commands are started by `busybox timeout`, so their bash's parent is not bash either.
. /armlet-qt/lib.sh
. /scenarios/config
BB=/bin/busybox
T=ARMLET-QT
READY=/run/armlet.ready

# _cs <- guest uptime in centiseconds (builtins only).
uptime_cs() { read -r _u _rest </proc/uptime; _cs=$(( ${_u%.*} * 100 + 1${_u#*.} - 100 )); }
secs() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }
# alive PID: running and not a zombie (kill -0 succeeds on zombies).
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    read -r _st </proc/$1/stat 2>/dev/null || return 1
    case "$_st" in *") Z "*|*") X "*) return 1 ;; esac
    return 0
}
lines_of() { if [ -f "$1" ]; then $BB wc -l <"$1"; else echo 0; fi; }
prefixed() { # TAG-REST FILE [head|tail N]
    _p=$1 _f=$2
    [ -s "$_f" ] || return 0
    $BB "$3" -n "$4" "$_f" | while IFS= read -r _l; do echo "$_p $_l"; done
}
agent_tail() {
    prefixed "$T-STDERR $1" "/tmp/agent-$1.err" tail 15
    prefixed "$T-STDERR $1 stdout:" "/tmp/agent-$1.out" tail 5
}
# emit_alerts NAME TAG FROM TO [CONDITION]: alert lines FROM+1..TO. The serial console is
# slow (~10 KB/s): above QT_MAX_ALERTS lines in one window only the lines containing
# CONDITION are sent, plus the first QT_MAX_ALERTS/4 others, and the number left out.
emit_alerts() {
    [ "$4" -gt "$3" ] || return 0
    _f=/tmp/alerts-$1.jsonl _w=/tmp/alerts-window
    $BB sed -n "$(($3 + 1)),$4p" "$_f" >"$_w"
    if [ $(($4 - $3)) -gt "$QT_MAX_ALERTS" ]; then
        { $BB head -n $((QT_MAX_ALERTS / 4)) "$_w"
          [ -n "$5" ] && $BB tail -n +$((QT_MAX_ALERTS / 4 + 1)) "$_w" | $BB grep -F -e "$5"
        } >"$_w.sel"
        echo "$T-OMITTED $1 $2 $(($4 - $3 - $($BB wc -l <"$_w.sel")))"
        $BB mv "$_w.sel" "$_w"
    fi
    while IFS= read -r _l; do
        [ -n "$_l" ] && echo "$T-ALERT $1 $2 $_l"
    done <"$_w"
}
# wait_flush FILE: at least QT_FLUSH_MS, then until the line count is stable for 0.2 s
# (at most ~3 s more). Sets _n to the line count.
wait_flush() {
    $BB usleep $((QT_FLUSH_MS * 1000))
    _n=$(lines_of "$1")
    _i=0
    while [ $_i -lt 15 ]; do
        $BB usleep 200000
        _m=$(lines_of "$1")
        [ "$_m" = "$_n" ] && break
        _n=$_m _i=$((_i + 1))
    done
}

run_scenario() {
    name=$1 d=/scenarios/$1
    alerts=/tmp/alerts-$name.jsonl
    echo "$T-SCENARIO $name BEGIN"
    missing=""
    while IFS= read -r p; do
        [ -n "$p" ] || continue
        if ! pp=$(command -v "$p" 2>/dev/null); then
            missing="$missing $p"
        elif [ -L "$pp" ]; then
            case "$($BB readlink "$pp")" in *busybox) echo "$T-BUSYBOX $name $p" ;; esac
        fi
    done <"$d/programs"
    if [ -n "$missing" ]; then
        echo "$T-MISSING $name$missing"
        echo "$T-SCENARIO $name END"
        return
    fi
    $BB rm -f "$READY" "$alerts" "/tmp/agent-$name.out" "/tmp/agent-$name.err"
    uptime_cs; t0=$_cs
    armlet run --insecure-dev --policies "$d/policy.yaml" --enforcer "$QT_ENFORCER" \
        --default-posture "$QT_POSTURE" --node "$QT_NODE" --alerts-file "$alerts" \
        --ready-file "$READY" </dev/null >"/tmp/agent-$name.out" 2>"/tmp/agent-$name.err" 3<&- 4<&- &
    apid=$!
    state=wait
    while :; do
        if [ -e "$READY" ]; then state=ready; break; fi
        if ! alive "$apid"; then state=exited; break; fi
        uptime_cs
        if [ $((_cs - t0)) -ge $((QT_READY_TIMEOUT * 100)) ]; then state=timeout; break; fi
        $BB usleep 50000
    done
    uptime_cs
    if [ "$state" != ready ]; then
        if [ "$state" = exited ]; then
            wait "$apid"; rc=$?
            echo "$T-AGENT $name NOTREADY the agent exited with status $rc after $(secs $((_cs - t0)))s without writing $READY"
        else
            # Where is it stuck? Kernel stack, wchan and syscall of each of its threads.
            for _t in /proc/"$apid"/task/*; do
                [ -d "$_t" ] || continue
                echo "$T-STDERR $name [not ready] thread ${_t##*/} ($($BB cat "$_t/comm" 2>/dev/null)):" \
                    "wchan=$($BB cat "$_t/wchan" 2>/dev/null) syscall=$($BB cut -d' ' -f1 "$_t/syscall" 2>/dev/null)" \
                    "stack: $($BB head -n 6 "$_t/stack" 2>/dev/null | $BB awk '{printf "%s ", $2}')"
            done
            kill -TERM "$apid" 2>/dev/null
            _i=0
            while alive "$apid" && [ $_i -lt 50 ]; do $BB usleep 100000; _i=$((_i + 1)); done
            _how="it exited on SIGTERM"
            if alive "$apid"; then kill -KILL "$apid" 2>/dev/null; _how="it ignored SIGTERM for 5 s: killed"; fi
            wait "$apid"
            echo "$T-AGENT $name NOTREADY no $READY after ${QT_READY_TIMEOUT}s (agent still running; $_how)"
        fi
        agent_tail "$name"
        echo "$T-SCENARIO $name END"
        return
    fi
    echo "$T-AGENT $name READY $(secs $((_cs - t0)))"
    nprev=0
    while IFS= read -r cid <&3; do
        [ -n "$cid" ] || continue
        IFS= read -r cmd <"$d/$cid.cmd"
        cond=""
        [ -f "$d/$cid.cond" ] && IFS= read -r cond <"$d/$cid.cond"
        uptime_cs; c0=$_cs
        (cd /root && exec $BB timeout -k 2 "$QT_CMD_TIMEOUT" bash -c "$cmd") \
            </dev/null >"/tmp/out-$name-$cid" 2>&1 3<&- 4<&-
        rc=$?
        uptime_cs
        echo "$T-RESULT $name $cid $rc $(secs $((_cs - c0)))"
        prefixed "$T-OUT $name $cid" "/tmp/out-$name-$cid" head 4
        wait_flush "$alerts"
        emit_alerts "$name" "$cid" "$nprev" "$_n" "$cond"
        nprev=$_n
    done 3<"$d/cmds"
    if ! alive "$apid"; then
        wait "$apid"; rc=$?
        echo "$T-AGENT $name EXIT $rc early"
        agent_tail "$name"
    else
        kill -TERM "$apid" 2>/dev/null
        _i=0
        while alive "$apid" && [ $_i -lt 100 ]; do $BB usleep 100000; _i=$((_i + 1)); done
        if alive "$apid"; then
            kill -KILL "$apid" 2>/dev/null
            wait "$apid"; rc=$?
            echo "$T-AGENT $name EXIT $rc hung"
            agent_tail "$name"
        else
            wait "$apid"; rc=$?
            echo "$T-AGENT $name EXIT $rc stopped"
            case "$rc" in 0|143) ;; *) agent_tail "$name" ;; esac
        fi
    fi
    _n=$(lines_of "$alerts")
    emit_alerts "$name" end "$nprev" "$_n" "$cond"
    echo "$T-SCENARIO $name END"
}

# Ownership: the initramfs is packed as root:root.
[ -d /home/user1 ] && chown -R 1000:1000 /home/user1
echo "$T-CONFIG enforcer=$QT_ENFORCER posture=$QT_POSTURE node=$QT_NODE cmd_timeout=$QT_CMD_TIMEOUT ready_timeout=$QT_READY_TIMEOUT"
while IFS= read -r s <&4; do
    [ -n "$s" ] && run_scenario "$s"
done 4</scenarios/index
exit 0
