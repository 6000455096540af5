#!/bin/sh
# Smoke test run inside the VM: the static agent runs, the LSMs armlet enforces
# with are active, and the kernel has BTF for CO-RE.
. /armlet-qt/lib.sh

v=$(armlet version 2>&1); rc=$?
case "$rc:$v" in
    0:armlet\ *) qt_check_pass version "$v" ;;
    *) qt_check_fail version "exit $rc: $v" ;;
esac
qt_check_contains lsm-bpf /sys/kernel/security/lsm bpf
qt_check_contains lsm-apparmor /sys/kernel/security/lsm apparmor
if [ -e /sys/kernel/btf/vmlinux ]; then
    qt_check_pass btf "/sys/kernel/btf/vmlinux $(wc -c </sys/kernel/btf/vmlinux) bytes"
else
    qt_check_fail btf "/sys/kernel/btf/vmlinux missing"
fi

# armlet probe: the functional probe loads and attaches the BPF-LSM programs and sees them fire,
# and the selection lands on bpf-lsm.
p=$(armlet probe 2>&1); rc=$?
case "$rc:$p" in
    0:*"BPF-LSM:       works"*"Selected: bpf-lsm"*) qt_check_pass probe "$(printf '%s\n' "$p" | grep -E 'BPF-LSM:|Selected:' | tr -s ' ' | tr '\n' ';')" ;;
    *) qt_check_fail probe "exit $rc: $(printf '%s\n' "$p" | tail -n 4 | tr '\n' ';')" ;;
esac

# Debian userland unpacked into the initramfs (qt_rootfs_add_debs): dynamic glibc
# binaries of the guest's arch must run.
[ -f /armlet-qt/env ] && . /armlet-qt/env
if [ "${ARMLET_QT_USERLAND:-0}" = 1 ]; then
    qt_check bash /bin/bash -c 'echo "bash $BASH_VERSION"'
    qt_check coreutils sh -c '/bin/ls --version | head -n1 && /usr/bin/id -u >/dev/null'
    # Kernel modules copied from the Debian kernel package (qt_rootfs_add_modules).
    if modprobe 9p 2>/tmp/modprobe.err && grep -qw 9p /proc/filesystems; then
        qt_check_pass modules "9p loaded: $(lsmod | awk 'NR>1 {print $1}' | tr '\n' ' ')"
    else
        qt_check_fail modules "modprobe 9p: $(cat /tmp/modprobe.err)"
    fi
fi
