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
	*enforcing*"serial 2"*) qt_check_pass status-updated "$st" ;;
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

out=$($INIT stop 2>&1)
if [ ! -e /run/armlet/ready ] && ! $INIT status >/dev/null 2>&1; then
	qt_check_pass service-stopped "$out"
else
	qt_check_fail service-stopped "$out; $($INIT status 2>&1)"
fi
echo "ARMLET-QT-DONE rc=0 uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
