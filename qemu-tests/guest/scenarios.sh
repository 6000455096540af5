#!/bin/sh
# Guest side of qemu-tests/run (busybox sh). Runs every scenario listed in
# $QT_ROOT/index, one after the other, each with its own agent:
#
#   armlet run --insecure-dev --policies /scenarios/<name>/policy.yaml --enforcer E
#       --default-posture P --node N --alerts-file $QT_TMP/alerts-<name>.jsonl
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
#   ARMLET-QT-SETUP <name> <exit> <secs>         setup.sh ran (before the agent)
#   ARMLET-QT-SETUPOUT <name> <line>             setup.sh output tail (when it failed)
#   ARMLET-QT-ALIVE <name> <cmdN> yes|no <state> the agent after the command (/proc state)
#   ARMLET-QT-SIGNAL <name> <cmdN> <SIG> <status> a command asked (qt-signal) for SIG
#   ARMLET-QT-CONTAINER <name> <ct> enforced|not-enforced|missing|FAILED <secs|why>
#                                                a VM container started after the agent was
#                                                ready (guest/containers.sh) and the time
#                                                until the agent's table said enforced
#
# armlet's extensions (all optional; qemu-tests/README.md): /scenarios/<name>/agent.env
# (written by the host from agent.args/setup.sh: which runner arguments to leave out, the
# extra ones, whether to run setup.sh), <cmdN>.timeout. Commands see SCENARIO_DIR,
# ARMLET_PID, ARMLET_STDERR, ARMLET_ALERTS and can ask the runner to signal the agent
# through the FIFO $QT_RUN/armlet-qt/ctl (`qt-signal HUP`): self-protection lets only the
# agent's parent (this script) signal it, so this script sends the signal (kill builtin).
#
# While an agent runs, this script execs only /bin/busybox (never coreutils or bash), so
# its own activity cannot match a scenario's process conditions (date, ls, diff, ...);
# commands are started by `busybox timeout`, so their bash's parent is not bash either.
#
# Host mode (qemu-tests/host-run runs this same script on the build machine): QT_ROOT is the
# staged scenarios folder instead of /scenarios, QT_LIB this folder's lib.sh, QT_RUN/QT_TMP
# private directories instead of /run and /tmp, QT_HOME the commands' working directory,
# QT_ENTER a command prefix that moves each command into the test cgroup, and QT_AGENT_ARGS
# extra `armlet run` arguments (--scope-cgroup), QT_CONTAINER_EXEC the command that runs a
# container scenario's command in its container (`runc exec`; <cmdN>.container names it).
: "${QT_ROOT:=/scenarios}" "${QT_LIB:=/armlet-qt/lib.sh}" "${QT_RUN:=/run}" "${QT_TMP:=/tmp}"
# VM with containers (/ct, written by qemu-tests/run): the initramfs root cannot be
# pivot_root'ed away from (runc needs that), so first make the root a mount of its own, as
# switch_root does, without deleting anything: bind it recursively, move the bind onto /,
# chroot into it and start again. Paths stay what they were (/etc/shadow is /etc/shadow).
if [ "$QT_ROOT" = /scenarios ] && [ -d /ct ] && [ -z "${QT_REROOTED:-}" ]; then
    /bin/busybox mkdir -p /.qt-root
    if /bin/busybox mount -o rbind / /.qt-root && cd /.qt-root && /bin/busybox mount -o move . / ; then
        QT_REROOTED=1 exec /bin/busybox chroot . /bin/busybox sh "$0" "$@"
    fi
    echo "ARMLET-QT-CT re-root failed: containers will not start"
fi
: "${QT_HOME:=/root}" "${QT_ENTER:=}" "${QT_AGENT_ARGS:=}" "${QT_CONTAINER_EXEC:=}"
. "$QT_LIB"
. "$QT_ROOT/config"
# Containers started per scenario, after its agent is ready (VM runs; host mode starts them
# once beforehand): <scenario>/containers lists "NAME NAMESPACE" lines.
QT_CT_PER_SCENARIO=0
if [ "$QT_ROOT" = /scenarios ] && [ -d /ct ]; then
    . /armlet-qt/containers.sh
    QT_CT_PER_SCENARIO=1
    QT_CONTAINER_EXEC="runc exec"
fi
: "${QT_SETUP_TIMEOUT:=60}"
BB=${QT_BUSYBOX:-/bin/busybox}
T=ARMLET-QT
READY=$QT_RUN/armlet.ready

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
    prefixed "$T-STDERR $1" "$QT_TMP/agent-$1.err" tail 15
    prefixed "$T-STDERR $1 stdout:" "$QT_TMP/agent-$1.out" tail 5
}
# emit_alerts NAME TAG FROM TO [CONDITION]: alert lines FROM+1..TO. The serial console is
# slow (~10 KB/s): above QT_MAX_ALERTS lines in one window only the first QT_MAX_ALERTS/4
# lines and then at most QT_MAX_ALERTS lines containing CONDITION are sent, and the number
# left out.
emit_alerts() {
    [ "$4" -gt "$3" ] || return 0
    _f=$QT_TMP/alerts-$1.jsonl _w=$QT_TMP/alerts-window
    $BB sed -n "$(($3 + 1)),$4p" "$_f" >"$_w"
    if [ $(($4 - $3)) -gt "$QT_MAX_ALERTS" ]; then
        { $BB head -n $((QT_MAX_ALERTS / 4)) "$_w"
          [ -n "$5" ] && $BB tail -n +$((QT_MAX_ALERTS / 4 + 1)) "$_w" | $BB grep -F -e "$5" \
              | $BB head -n "$QT_MAX_ALERTS"
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
    name=$1 d=$QT_ROOT/$1
    alerts=$QT_TMP/alerts-$name.jsonl
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
    $BB rm -f "$READY" "$alerts" "$QT_TMP/agent-$name.out" "$QT_TMP/agent-$name.err"
    QT_A_POLICIES=1 QT_A_POSTURE=1 QT_A_ENFORCER=1 QT_A_SETUP=0 QT_A_ARGS=
    [ -f "$d/agent.env" ] && . "$d/agent.env"
    export SCENARIO_DIR="$d" ARMLET_QT_SCENARIO="$name" ARMLET_ALERTS="$alerts" \
        ARMLET_STDERR="$QT_TMP/agent-$name.err" ARMLET_QT_CTL=$QT_RUN/armlet-qt/ctl
    unset ARMLET_PID
    if [ "$QT_A_SETUP" = 1 ]; then
        uptime_cs; t0=$_cs
        (cd "$d" && exec $BB timeout -k 2 "$QT_SETUP_TIMEOUT" bash ./setup.sh) \
            </dev/null >"$QT_TMP/setup-$name.out" 2>&1 3<&- 4<&-
        rc=$?
        uptime_cs
        echo "$T-SETUP $name $rc $(secs $((_cs - t0)))"
        if [ "$rc" != 0 ]; then
            prefixed "$T-SETUPOUT $name" "$QT_TMP/setup-$name.out" tail 15
            echo "$T-SCENARIO $name END"
            return
        fi
    fi
    # The request FIFO for qt-signal, held open read-write (never EOF, writers never block).
    $BB rm -rf $QT_RUN/armlet-qt
    $BB mkdir -p $QT_RUN/armlet-qt
    $BB mkfifo -m 0666 $QT_RUN/armlet-qt/ctl
    exec 6<>$QT_RUN/armlet-qt/ctl
    set --
    [ "$QT_A_POLICIES" = 1 ] && set -- --insecure-dev --policies "$d/policy.yaml"
    [ "$QT_A_ENFORCER" = 1 ] && set -- "$@" --enforcer "$QT_ENFORCER"
    [ "$QT_A_POSTURE" = 1 ] && set -- "$@" --default-posture "$QT_POSTURE"
    set -- "$@" --node "$QT_NODE" --alerts-file "$alerts" --ready-file "$READY"
    [ -n "$QT_A_ARGS" ] && eval "set -- \"\$@\" $QT_A_ARGS"
    [ -n "$QT_AGENT_ARGS" ] && eval "set -- \"\$@\" $QT_AGENT_ARGS"
    table=$QT_TMP/workloads-$name.json
    $BB rm -f "$table"
    [ "$QT_CT_PER_SCENARIO" = 1 ] && [ -s "$d/containers" ] && set -- "$@" --workloads-file "$table"
    uptime_cs; t0=$_cs
    armlet run "$@" </dev/null >"$QT_TMP/agent-$name.out" 2>"$QT_TMP/agent-$name.err" 3<&- 4<&- 6<&- &
    apid=$!
    export ARMLET_PID=$apid
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
    # The scenario's containers start now, as pods start on a node whose agent runs: each must
    # appear as enforced in the agent's workloads table before the commands run.
    if [ "$QT_CT_PER_SCENARIO" = 1 ] && [ -s "$d/containers" ]; then
        gct_testhost || echo "$T-CONTAINER $name - FAILED the test host did not start"
        while read -r _ct _ns; do
            [ -n "$_ct" ] || continue
            uptime_cs; _c0=$_cs
            if ! gct_start "$_ct" "$_ns"; then
                echo "$T-CONTAINER $name $_ct FAILED runc run"
                continue
            fi
            _st=missing
            while :; do
                if [ -f "$table" ] && $BB grep -q "\"container_name\": \"$_ct\"" "$table"; then
                    if $BB tr -d ' \n' <"$table" | $BB sed 's/},{"container_name"/}\n{"container_name"/g' \
                        | $BB grep "\"container_name\":\"$_ct\"" | $BB grep -q '"enforced":true'; then
                        _st=enforced; break
                    fi
                    _st=not-enforced
                fi
                uptime_cs
                [ $((_cs - _c0)) -ge 2000 ] && break
                $BB usleep 50000
            done
            uptime_cs
            echo "$T-CONTAINER $name $_ct $_st $(secs $((_cs - _c0)))"
            [ "$_st" = enforced ] || prefixed "$T-STDERR $name" "$QT_TMP/agent-$name.err" tail 5
        done <"$d/containers"
    fi
    nprev=0
    while IFS= read -r cid <&3; do
        [ -n "$cid" ] || continue
        IFS= read -r cmd <"$d/$cid.cmd"
        cond=""
        [ -f "$d/$cid.cond" ] && IFS= read -r cond <"$d/$cid.cond"
        ctimeout=$QT_CMD_TIMEOUT
        [ -f "$d/$cid.timeout" ] && IFS= read -r ctimeout <"$d/$cid.timeout"
        uptime_cs; c0=$_cs
        enter=$QT_ENTER
        if [ -f "$d/$cid.container" ]; then
            IFS= read -r _ct <"$d/$cid.container"
            enter="$QT_CONTAINER_EXEC $_ct"
        fi
        (cd "$QT_HOME" && exec $BB timeout -k 2 "$ctimeout" $enter bash -c "$cmd") \
            </dev/null >"$QT_TMP/out-$name-$cid" 2>&1 3<&- 4<&- 6<&- &
        cpid=$!
        # Serve qt-signal requests ("SIG ID" lines) while the command runs (builtins only).
        # `read -t 0` only tests for input: a timed read could stop mid-line and lose the
        # bytes it had consumed. A request is one short line written by one echo (atomic on a
        # FIFO), so once input is there the whole line is.
        while alive "$cpid"; do
            if ! read -t 0 <&6; then
                $BB usleep 50000
                continue
            fi
            if read -r _sig _rid <&6; then
                case "$_sig" in
                    HUP|TERM|INT|USR1|USR2|KILL|STOP|CONT) kill -s "$_sig" "$apid" 2>/dev/null; _krc=$? ;;
                    *) _krc=2 ;;
                esac
                echo "$T-SIGNAL $name $cid $_sig $_krc"
                case "$_rid" in *[!0-9]*|"") ;; *) echo "$_krc" >"$QT_RUN/armlet-qt/ack.$_rid" ;; esac
            fi
        done
        wait "$cpid"
        rc=$?
        uptime_cs
        echo "$T-RESULT $name $cid $rc $(secs $((_cs - c0)))"
        prefixed "$T-OUT $name $cid" "$QT_TMP/out-$name-$cid" head 8
        if alive "$apid"; then
            read -r _st <"/proc/$apid/stat"; _st=${_st##*) }; _st=${_st%% *}
            case "$_st" in T|t) echo "$T-ALIVE $name $cid no $_st" ;; *) echo "$T-ALIVE $name $cid yes $_st" ;; esac
        else
            echo "$T-ALIVE $name $cid no gone"
        fi
        wait_flush "$alerts"
        if [ -f "$d/$cid.noalerts" ]; then
            [ "$_n" -gt "$nprev" ] && echo "$T-OMITTED $name $cid $((_n - nprev))"
        else
            emit_alerts "$name" "$cid" "$nprev" "$_n" "$cond"
        fi
        nprev=$_n
    done 3<"$d/cmds"
    [ "$QT_CT_PER_SCENARIO" = 1 ] && gct_stop_all
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
            case "$rc" in
                0|143) # the agent's counters and container lines, for the failure details
                    $BB grep -E '^armlet: (stopping|container|containers)' "$QT_TMP/agent-$name.err" \
                        | $BB tail -n 4 | while IFS= read -r _l; do echo "$T-STDERR $name $_l"; done ;;
                *) agent_tail "$name" ;;
            esac
        fi
    fi
    exec 6<&-
    _n=$(lines_of "$alerts")
    emit_alerts "$name" end "$nprev" "$_n" "$cond"
    echo "$T-SCENARIO $name END"
}

# Ownership: the initramfs is packed as root:root.
# (VM only: in host mode the machine's own /home is not ours to change.)
[ "$QT_ROOT" = /scenarios ] && [ -d /home/user1 ] && chown -R 1000:1000 /home/user1
echo "$T-CONFIG enforcer=$QT_ENFORCER posture=$QT_POSTURE node=$QT_NODE cmd_timeout=$QT_CMD_TIMEOUT ready_timeout=$QT_READY_TIMEOUT"
while IFS= read -r s <&4; do
    [ -n "$s" ] && run_scenario "$s"
done 4<$QT_ROOT/index
exit 0
