# shellcheck shell=sh
# Real containers inside the scenario VMs (sourced by guest/scenarios.sh; busybox sh): Debian's
# runc, the multiubuntu-equivalent root file system that qemu-tests/run put at /ct/rootfs (the
# same one host mode uses, built by qemu-tests/host/containers.sh from the guest's own
# packages), one network namespace per container wired to a test-host namespace.
#
#   gct_testhost                  the test host: namespace `qt-th` that owns 142.250.193.46
#                                 (google.com) and 185.199.108.153 (www.kubearmor.io), an HTTP
#                                 server (busybox httpd) and a resolver (qt-dns) on them
#   gct_start NAME NAMESPACE      copy the rootfs, write the OCI spec from /ct/config.json
#                                 (cgroup /armlet-ct/NAME, AppArmor profile
#                                 armlet-NAMESPACE-NAME in AppArmor runs), `runc run -d`, veth
#   gct_stop_all                  kill and delete every container started here
#
# Addresses as in host mode: container i is 10.203.i.2/24, the test host 10.203.i.1. The VM
# has no network device, so no packet can leave it in any case.
GCT_NAMES=""
GCT_N=0
# iproute2's ip (netns, veth), not busybox's applet of the same name earlier in PATH.
IP=/usr/bin/ip
[ -x /usr/sbin/ip ] && ! [ -L /usr/sbin/ip ] && IP=/usr/sbin/ip

gct_log() { echo "ARMLET-QT-CT $*"; }

gct_testhost() {
    [ -e /run/netns/qt-th ] && return 0
    $BB modprobe veth 2>/dev/null
    $IP netns add qt-th || return 1
    $IP -n qt-th link set lo up
    $IP -n qt-th addr add 142.250.193.46/32 dev lo
    $IP -n qt-th addr add 185.199.108.153/32 dev lo
    $IP netns exec qt-th $BB httpd -p 80 -h /ct/www || return 1
    $IP netns exec qt-th /ct/qt-dns 0.0.0.0 google.com=142.250.193.46 www.google.com=142.250.193.46 \
        www.kubearmor.io=185.199.108.153 kubearmor.io=185.199.108.153 >/tmp/qt-dns.log 2>&1 &
    return 0
}

gct_start() { # NAME NAMESPACE
    _n=$1 _ns=$2
    GCT_N=$((GCT_N + 1))
    _i=$GCT_N _b=/run/ct/$_n
    $BB rm -rf "$_b"
    $BB mkdir -p "$_b"
    $BB cp -a /ct/rootfs "$_b/rootfs" || return 1
    echo "$_n" >"$_b/rootfs/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$_n" >"$_b/rootfs/etc/hosts"
    echo "nameserver 10.203.$_i.1" >"$_b/rootfs/etc/resolv.conf"
    $BB chown -R 1000:1000 "$_b/rootfs/home/user1"
    $BB sed -e "s/@NAME@/$_n/g" -e "s/@NS@/$_ns/g" /ct/config.json >"$_b/config.json"
    runc run -d --bundle "$_b" "$_n" </dev/null >"$_b/run.log" 2>&1 || {
        gct_log "$_n runc run failed: $($BB tr '\n' ' ' <"$_b/run.log")"; return 1; }
    GCT_NAMES="$GCT_NAMES $_n"
    _pid=$(runc state "$_n" | $BB sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
    [ -n "$_pid" ] || { gct_log "$_n: no pid in runc state"; return 1; }
    $IP link add "ath$_i" type veth peer name "act$_i" || return 1
    $IP link set "act$_i" netns "$_pid" || return 1
    $IP link set "ath$_i" netns qt-th || return 1
    $IP -n qt-th addr add "10.203.$_i.1/24" dev "ath$_i"
    $IP -n qt-th link set "ath$_i" up
    # `arping 127.0.0.1` in the container goes out of its only interface: let the test host
    # answer ARP for its loopback address there (route_localnet), so the probe gets a reply.
    $IP netns exec qt-th $BB sh -c "echo 1 >/proc/sys/net/ipv4/conf/ath$_i/route_localnet"
    nsenter -t "$_pid" -n $IP link set lo up
    nsenter -t "$_pid" -n $IP addr add "10.203.$_i.2/24" dev "act$_i"
    nsenter -t "$_pid" -n $IP link set "act$_i" up
    nsenter -t "$_pid" -n $IP route add default via "10.203.$_i.1"
    gct_log "$_n started: pid $_pid, cgroup /armlet-ct/$_n, 10.203.$_i.2"
}

gct_stop_all() {
    for _n in $GCT_NAMES; do runc kill "$_n" KILL >/dev/null 2>&1; done
    for _n in $GCT_NAMES; do
        _k=0
        while [ $_k -lt 20 ]; do
            runc delete -f "$_n" >/dev/null 2>&1 && break
            $BB usleep 100000; _k=$((_k + 1))
        done
        $BB rm -rf "/run/ct/$_n"
    done
    GCT_NAMES=""
}
