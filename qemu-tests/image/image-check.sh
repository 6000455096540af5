#!/bin/sh
# Runs once after busybox init has run /etc/init.d/rcS (inittab ::once:). The agent was
# started by the image's own init script; this only observes it, then powers off.
. /armlet-qt/lib.sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
INIT=/etc/init.d/S50armlet
LOG=/var/log/armlet/armlet.log
ALERTS=/var/log/armlet/alerts.jsonl
echo "ARMLET-QT-BOOTED arch=$(uname -m) kernel=$(uname -r) hostname=$(hostname) uptime=$(cut -d' ' -f1 /proc/uptime)"

wait_for() { # wait_for SECONDS CMD...: poll every 0.2 s
	_t=$(( $1 * 5 )); shift
	while [ "$_t" -gt 0 ]; do "$@" && return 0; sleep 0.2; _t=$((_t - 1)); done
	return 1
}
log_has() { grep -q "$1" "$LOG" 2>/dev/null; }

if wait_for 120 test -e /run/armlet/ready; then
	qt_check_pass service-started "started by $INIT from rcS, ready after $(cut -d' ' -f1 /proc/uptime)s uptime"
else
	qt_check_fail service-started "no /run/armlet/ready after 120 s; log: $(tail -n 5 "$LOG" 2>/dev/null)"
fi
st=$($INIT status 2>&1)
case "$st" in
	*enforcing*"serial 1"*) qt_check_pass status-default "$st" ;;
	*) qt_check_fail status-default "$st" ;;
esac
if grep -q '^enforcer: bpf-lsm' "$LOG"; then
	qt_check_pass enforcer-bpf-lsm "$(grep -m1 '^enforcer:' "$LOG")"
else
	qt_check_fail enforcer-bpf-lsm "$(grep -m1 '^enforcer:' "$LOG")"
fi

blocked() { # blocked FILE: reading FILE fails with "Operation not permitted"
	_o=$(cat "$1" 2>&1); _rc=$?
	[ $_rc -ne 0 ] && case "$_o" in *"not permitted"*) return 0 ;; esac
	return 1
}
if blocked /etc/node-secret/key; then
	qt_check_pass default-bundle-blocks "cat /etc/node-secret/key: $(cat /etc/node-secret/key 2>&1)"
else
	qt_check_fail default-bundle-blocks "cat /etc/node-secret/key: $(cat /etc/node-secret/key 2>&1)"
fi
if wait_for 5 grep -q '"Resource":"/etc/node-secret/key".*"Action":"Block"' "$ALERTS"; then
	qt_check_pass block-alert "$(grep -m1 node-secret "$ALERTS" | cut -c1-200)"
else
	qt_check_fail block-alert "no Block alert for /etc/node-secret/key in $ALERTS: $(tail -n 2 "$ALERTS" 2>/dev/null)"
fi
if cat /etc/site-key/key >/dev/null 2>&1; then
	qt_check_pass before-update-site-key-readable "serial 1 does not cover /etc/site-key"
else
	qt_check_fail before-update-site-key-readable "$(cat /etc/site-key/key 2>&1)"
fi

# A newer signed bundle dropped into the bundle path, then the init script's reload (SIGHUP).
cp /armlet-qt/bundle-2 /etc/armlet/bundle/.default.bundle.new
mv /etc/armlet/bundle/.default.bundle.new /etc/armlet/bundle/default.bundle
$INIT reload >/dev/null
if wait_for 60 log_has 'reloaded.*serial 2'; then
	qt_check_pass update-reloaded "$(grep -m1 'reloaded' "$LOG" | cut -c1-160)"
else
	qt_check_fail update-reloaded "no reload of serial 2; log: $(tail -n 3 "$LOG")"
fi
if blocked /etc/site-key/key && blocked /etc/node-secret/key; then
	qt_check_pass update-enforced "serial 2 blocks /etc/site-key/key and still /etc/node-secret/key"
else
	qt_check_fail update-enforced "site-key: $(cat /etc/site-key/key 2>&1); node-secret: $(cat /etc/node-secret/key 2>&1)"
fi
st=$($INIT status 2>&1)
case "$st" in
	*enforcing*"serial 2"*) qt_check_pass status-updated "$(echo "$st" | grep -m1 'serial 2')" ;;
	*) qt_check_fail status-updated "$st" ;;
esac

# The old bundle again (rollback): refused, serial 2 stays in force.
cp /armlet-qt/bundle-1 /etc/armlet/bundle/.default.bundle.new
mv /etc/armlet/bundle/.default.bundle.new /etc/armlet/bundle/default.bundle
$INIT reload >/dev/null
if wait_for 60 log_has 'reload refused.*rollback'; then
	if blocked /etc/site-key/key; then
		qt_check_pass rollback-refused "$(grep -m1 'reload refused' "$LOG" | cut -c1-160)"
	else
		qt_check_fail rollback-refused "refused, but /etc/site-key/key is readable again"
	fi
else
	qt_check_fail rollback-refused "no refusal; log: $(tail -n 3 "$LOG")"
fi

# A restart (as after a reboot): the bundle file's serial 2 is now the recorded one, so the
# node enforces its active copy of it, re-verified at exactly that serial.
$INIT restart >/dev/null 2>&1
if wait_for 120 test -e /run/armlet/ready && blocked /etc/site-key/key; then
	qt_check_pass restart-keeps-file-bundle "$(grep '^policy source:' "$LOG" | tail -n 1 | cut -c1-200)"
else
	qt_check_fail restart-keeps-file-bundle "site-key: $(cat /etc/site-key/key 2>&1); log: $(tail -n 4 "$LOG")"
fi

# --- Over MQTT: Mosquitto on loopback (image/S40mosquitto), the controller's identity. ---
MQ="--broker mqtts://127.0.0.1:8883 --mqtt-ca /armlet-qt/ca.pem --mqtt-cert /armlet-qt/controller.pem --mqtt-key /armlet-qt/controller.key"
fleet_line() { armlet fleet status $MQ 2>/dev/null | grep '^image-node '; }
status_has() { fleet_line | grep -q "$1"; }
# The agent connects after it is ready (no broker wait at start); the retained status follows.
if wait_for 60 status_has "^image-node online serial 2 enforcer bpf-lsm"; then
	qt_check_pass mqtt-status-online "$(fleet_line)"
else
	qt_check_fail mqtt-status-online "fleet status: $(armlet fleet status $MQ 2>&1 | tail -n 3); log: $(grep mqtt "$LOG" | tail -n 3); broker: $(pidof mosquitto || echo not running) $(tail -n 5 /var/log/mosquitto.log 2>&1)"
fi
# A consumer of the alerts topic, started before the push so it sees the alert live.
armlet alerts tail $MQ --node image-node --json --timeout 120s >/tmp/tail.out 2>/tmp/tail.err &
tail_pid=$!
sleep 2
out=$(armlet push $MQ --node image-node --timeout 60s /armlet-qt/bundle-3 2>&1); rc=$?
case "$rc:$out" in
	0:*"image-node: applied 3"*) qt_check_pass mqtt-push-applied "$(echo "$out" | tr '\n' ' ')" ;;
	*) qt_check_fail mqtt-push-applied "rc=$rc: $out; log: $(tail -n 3 "$LOG")" ;;
esac
if blocked /etc/pushed-key/key && blocked /etc/site-key/key; then
	qt_check_pass mqtt-push-enforced "serial 3 blocks /etc/pushed-key/key (and still /etc/site-key/key)"
else
	qt_check_fail mqtt-push-enforced "pushed-key: $(cat /etc/pushed-key/key 2>&1); site-key: $(cat /etc/site-key/key 2>&1)"
fi
tail_has() { grep -q '"Resource":"/etc/pushed-key/key"' /tmp/tail.out; }
if wait_for 60 tail_has; then
	a=$(grep -m1 '"Resource":"/etc/pushed-key/key"' /tmp/tail.out)
	case "$a" in
		*'"PolicyName":"image-pushed"'*'"Action":"Block"'*|*'"Action":"Block"'*'"PolicyName":"image-pushed"'*)
			qt_check_pass mqtt-alert-delivered "$(echo "$a" | cut -c1-220)" ;;
		*) qt_check_fail mqtt-alert-delivered "wrong fields: $a" ;;
	esac
else
	qt_check_fail mqtt-alert-delivered "no alert for /etc/pushed-key/key from alerts tail: $(tail -n 3 /tmp/tail.out) $(tail -n 3 /tmp/tail.err)"
fi
kill "$tail_pid" 2>/dev/null
if wait_for 30 status_has "serial 3 .*last-push applied 3"; then
	qt_check_pass mqtt-status-updated "$(fleet_line)"
else
	qt_check_fail mqtt-status-updated "$(fleet_line)"
fi
out=$(armlet push $MQ --node image-node --timeout 60s /armlet-qt/bundle-2 2>&1); rc=$?
case "$rc:$out" in
	1:*"image-node: rejected rollback"*)
		if blocked /etc/pushed-key/key; then
			qt_check_pass mqtt-rollback-rejected "$(echo "$out" | tr '\n' ' '); serial 3 still enforced"
		else
			qt_check_fail mqtt-rollback-rejected "rejected, but /etc/pushed-key/key is readable again"
		fi ;;
	*) qt_check_fail mqtt-rollback-rejected "rc=$rc: $out" ;;
esac

# The broker gone, the agent restarted: the pushed bundle (newer than the image's file) is
# enforced again from the state directory.
/etc/init.d/S40mosquitto stop
$INIT restart >/dev/null 2>&1
if wait_for 120 test -e /run/armlet/ready && blocked /etc/pushed-key/key; then
	qt_check_pass restart-keeps-pushed-bundle "$(grep '^policy source:' "$LOG" | tail -n 1 | cut -c1-200)"
else
	qt_check_fail restart-keeps-pushed-bundle "pushed-key: $(cat /etc/pushed-key/key 2>&1); log: $(tail -n 4 "$LOG")"
fi

out=$($INIT stop 2>&1)
if [ ! -e /run/armlet/ready ] && ! $INIT status >/dev/null 2>&1; then
	qt_check_pass service-stopped "$out"
else
	qt_check_fail service-stopped "$out; $($INIT status 2>&1)"
fi
echo "ARMLET-QT-DONE rc=0 uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
