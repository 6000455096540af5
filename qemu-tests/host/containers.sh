# shellcheck shell=bash
# Real containers for qemu-tests/host-run (source it): runc from Debian, a root file system
# equivalent to KubeArmor's "multiubuntu" image, one network namespace per container wired to
# a test-host namespace that owns the outside addresses the scenarios name.
#
#   ct_setup WORK CGROUP_PARENT NAME...   build the rootfs, start containers NAME (runc ids),
#                                         the test host (HTTP + DNS) and the veth links
#   ct_prepare WORK CGROUP_PARENT         only the rootfs and the test host
#   ct_start NAME                         one more container (after ct_setup/ct_prepare)
#   ct_cleanup                            stop everything started here (by PID / by our ids)
#
# The root file system: the machine's Debian /usr (read-only bind mount: the packages
# scripts/setup-dev.sh installs: bash, coreutils, util-linux, curl, wget, iputils-ping,
# arping, ...), a real /bin with copies of the programs Ubuntu 18.04 keeps in /bin (so policy
# paths such as /bin/cat and /bin/dash name what runs; their /usr/bin twins are hidden behind
# /dev/null), /etc with user1, the image's files
# (/secret.txt, /credentials/..., /home/user1/...), and armlet's own /hello and /readwriter.
# Each container: its own cgroup CGROUP_PARENT/NAME (cgroup v2, never the root), its own
# network namespace with lo and a veth to the test host, Docker's default capabilities.
# Addresses: container i is 10.203.i.2/24, the test host 10.203.i.1 (its resolver) and it
# also owns 142.250.193.46 (google.com) and 185.199.108.153 (www.kubearmor.io); nothing else
# is routed, so no packet leaves the machine.

CT_NAMES=()
CT_TH=""
CT_TH_PIDS=()
CT_CGROUP=""
CT_WORK=""
CT_OUTSIDE=("google.com=142.250.193.46" "www.google.com=142.250.193.46"
            "www.kubearmor.io=185.199.108.153" "kubearmor.io=185.199.108.153")

CT_BIN_PROGRAMS="bash cat chmod chown cp dash date echo egrep false grep gunzip gzip hostname
kill ln ls mkdir mknod mktemp more mount mv ping ps pwd readlink rm rmdir sed sleep stty su
sync tar touch true umount uname which zcat"

ct_log() { echo "qemu-tests: containers: $*" >&2; }

# ct_real SRC PATH: PATH (absolute, inside the tree SRC) with its symlinks resolved inside
# SRC (an absolute link target names a path in SRC, not on this machine).
ct_real() {
    local src=$1 p=$2 t n=0
    while [ -L "$src$p" ] && [ $n -lt 20 ]; do
        t=$(readlink "$src$p")
        case "$t" in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
        n=$((n + 1))
    done
    printf '%s\n' "$src$p"
}

# ct_build_rootfs DIR [SRC [CC]]: the root file system from the Debian tree SRC (default this
# machine, /), with the test programs built by CC (default cc; qemu-tests/run passes the
# guest arch's static musl compiler and the VM's root tree).
ct_build_rootfs() {
    local r=$1 src=${2:-} cc=${3:-cc} p
    rm -rf "$r"
    mkdir -p "$r"/{bin,etc,home/user1/dir1,root,tmp,proc,dev,sys,usr,run,var/tmp,credentials/keys,mnt,opt}
    chmod 1777 "$r/tmp" "$r/var/tmp"
    ln -s usr/lib "$r/lib"
    [ -e "$src/usr/lib64" ] && ln -s usr/lib64 "$r/lib64"
    ln -s usr/sbin "$r/sbin"
    for p in $CT_BIN_PROGRAMS; do
        [ -e "$src/usr/bin/$p" ] && cp "$(ct_real "$src" "/usr/bin/$p")" "$r/bin/$p"
    done
    ln -s dash "$r/bin/sh"
    for p in /etc/pam.d /etc/security /etc/login.defs /etc/profile /etc/bash.bashrc /etc/alternatives /etc/profile.d; do
        [ -e "$src$p" ] && cp -a "$src$p" "$r/etc/"
    done
    # An unpacked tree (the VM's) has no common-* PAM files: Debian's pam-auth-update writes
    # them at install time. The same content it writes for pam_unix, minimal.
    if [ -n "$src" ] && [ -d "$r/etc/pam.d" ]; then
        [ -e "$r/etc/pam.d/common-auth" ] || printf 'auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\tpam_deny.so\nauth\trequired\tpam_permit.so\n' >"$r/etc/pam.d/common-auth"
        [ -e "$r/etc/pam.d/common-account" ] || printf 'account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\naccount\trequisite\tpam_deny.so\naccount\trequired\tpam_permit.so\n' >"$r/etc/pam.d/common-account"
        [ -e "$r/etc/pam.d/common-session" ] || printf 'session\trequired\tpam_permit.so\nsession\trequired\tpam_unix.so\n' >"$r/etc/pam.d/common-session"
        [ -e "$r/etc/pam.d/common-session-noninteractive" ] || cp "$r/etc/pam.d/common-session" "$r/etc/pam.d/common-session-noninteractive"
        [ -e "$r/etc/pam.d/common-password" ] || printf 'password\trequisite\tpam_deny.so\n' >"$r/etc/pam.d/common-password"
    fi
    # Ubuntu 18.04 keeps these programs only in /bin; here /usr/bin (the machine's) has them
    # too, so /bin comes first in every PATH the container sets (login shells included).
    if [ -f "$r/etc/login.defs" ]; then
        sed -i -E 's#^(ENV_SUPATH[[:space:]]+PATH=).*#\1/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin#; s#^(ENV_PATH[[:space:]]+PATH=).*#\1/usr/local/bin:/bin:/usr/bin:/usr/games#' "$r/etc/login.defs"
    else
        printf 'ENV_SUPATH\tPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\nENV_PATH\tPATH=/usr/local/bin:/bin:/usr/bin:/usr/games\n' >"$r/etc/login.defs"
    fi
    [ -f "$r/etc/profile" ] && sed -i -E 's#PATH="/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"#PATH="/usr/local/bin:/bin:/usr/bin:/usr/local/games:/usr/games"#; s#PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"#PATH="/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"#' "$r/etc/profile"
    cat >"$r/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/bash
user1:x:1000:1000::/home/user1:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
P
    printf 'root:x:0:\nuser1:x:1000:\nnogroup:x:65534:\n' >"$r/etc/group"
    printf 'root:*:19000:0:99999:7:::\nuser1:!:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' >"$r/etc/shadow"
    printf 'root:*::\nuser1:!::\nnogroup:*::\n' >"$r/etc/gshadow"
    chmod 0640 "$r/etc/shadow" "$r/etc/gshadow"
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
    printf '/bin/sh\n/bin/bash\n/usr/bin/bash\n/bin/dash\n' >"$r/etc/shells"
    echo "secret file" >"$r/secret.txt"
    echo "plain file" >"$r/plain.txt"
    echo "password file" >"$r/credentials/password"
    echo "token file" >"$r/credentials/token"
    echo "cert file" >"$r/credentials/keys/cert.ca"
    echo "key file" >"$r/credentials/keys/priv.key"
    echo "secret data" >"$r/home/user1/secret_data1.txt"
    echo "other file" >"$r/home/user1/otherfile.txt"
    echo "key1" >"$r/home/user1/dir1/key1.txt"
    cp "$src/etc/skel/.bashrc" "$r/home/user1/.bashrc" 2>/dev/null || : >"$r/home/user1/.bashrc"
    cp "$src/etc/skel/.bashrc" "$r/root/.bashrc" 2>/dev/null || : >"$r/root/.bashrc"
    chown -R 1000:1000 "$r/home/user1"
    $cc -O2 -Wall -Wextra -Werror -o "$r/hello" "$QT_DIR/host/hello.c"
    $cc -O2 -Wall -Wextra -Werror -o "$r/readwriter" "$QT_DIR/host/readwrite.c"
}

# ct_spec BUNDLE NAME CGROUP_PARENT [SRC [APPARMOR_PROFILE]]: config.json for one container
# (NAME may be a placeholder the VM fills in; SRC: the tree whose /usr the container binds).
ct_spec() {
    python3 - "$1" "$2" "$3" "${4:-}" "${5:-}" <<'PY'
import json, os, subprocess, sys
bundle, name, parent, src, profile = sys.argv[1:6]
subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
p = f"{bundle}/config.json"
c = json.load(open(p))
caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
c["process"].update({"terminal": False, "args": ["/bin/sleep", "infinity"], "cwd": "/root",
                     "env": ["PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin",
                             "HOME=/root", "TERM=dumb"]})
for k in ("bounding", "effective", "permitted"):
    c["process"]["capabilities"][k] = caps
c["process"]["capabilities"].pop("ambient", None)
c["process"]["capabilities"].pop("inheritable", None)
c["process"]["noNewPrivileges"] = False
if profile:
    c["process"]["apparmorProfile"] = profile
c["root"] = {"path": "rootfs", "readonly": False}
c["hostname"] = name
c["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                    "options": ["rbind", "ro"]})
# Ubuntu 18.04 has these programs in /bin only: hide the /usr/bin copies (a shell that is
# denied /bin/ls must not find another ls further down its PATH).
for prog in sorted(os.listdir(f"{bundle}/rootfs/bin")):
    if os.path.isfile(f"{src}/usr/bin/{prog}") and not os.path.islink(f"{bundle}/rootfs/bin/{prog}"):
        c["mounts"].append({"destination": f"/usr/bin/{prog}", "type": "bind",
                            "source": "/dev/null", "options": ["bind", "ro"]})
c["linux"]["cgroupsPath"] = f"{parent}/{name}"
c["linux"].pop("resources", None)
c["annotations"] = {"kubearmor.io/container.name": name, "armlet.io/labels": f"container={name}",
                    "io.kubernetes.pod.name": f"{name}-deployment"}
json.dump(c, open(p, "w"), indent=1)
PY
}

ct_config() { # BUNDLE NAME
    ct_spec "$1" "$2" "$CT_CGROUP"
}

ct_setup() { # WORK CGROUP_PARENT NAME...
    ct_prepare "$1" "$2" || return 1
    shift 2
    local name
    for name in "$@"; do
        ct_start "$name" || return 1
    done
}

ct_prepare() { # WORK CGROUP_PARENT: the rootfs template and the test host (once)
    [ -z "$CT_TH" ] || return 0
    CT_WORK=$1 CT_CGROUP=$2
    command -v runc >/dev/null || { ct_log "runc is missing (scripts/setup-dev.sh installs it)"; return 1; }
    local tmpl="$CT_WORK/ct/rootfs"
    ct_build_rootfs "$tmpl" || return 1
    CT_TH="armlet-th-$$"
    ip netns add "$CT_TH" || return 1
    ip -n "$CT_TH" link set lo up
    ip -n "$CT_TH" addr add 142.250.193.46/32 dev lo
    ip -n "$CT_TH" addr add 185.199.108.153/32 dev lo
    mkdir -p "$CT_WORK/ct/www"
    echo "<html><body>armlet test host</body></html>" >"$CT_WORK/ct/www/index.html"
    ip netns exec "$CT_TH" python3 -m http.server 80 --bind 0.0.0.0 --directory "$CT_WORK/ct/www" \
        >"$CT_WORK/ct/http.log" 2>&1 &
    CT_TH_PIDS+=($!)
    ip netns exec "$CT_TH" python3 "$QT_DIR/host/dns.py" 0.0.0.0 "${CT_OUTSIDE[@]}" \
        >"$CT_WORK/ct/dns.log" 2>&1 &
    CT_TH_PIDS+=($!)
    # The test host's servers are up before the first command.
    for i in $(seq 50); do
        ip netns exec "$CT_TH" python3 -c 'import socket; socket.create_connection(("142.250.193.46", 80), 1)' 2>/dev/null && break
        sleep 0.1
    done
}

ct_start() { # NAME: one more container on the prepared rootfs and test host
    local name=$1 tmpl="$CT_WORK/ct/rootfs" b pid i
    i=$(( ${#CT_NAMES[@]} + 1 ))
    b="$CT_WORK/ct/$name"
    mkdir -p "$b"
    cp -a "$tmpl" "$b/rootfs"
    echo "$name" >"$b/rootfs/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$name" >"$b/rootfs/etc/hosts"
    echo "nameserver 10.203.$i.1" >"$b/rootfs/etc/resolv.conf"
    ct_config "$b" "$name" || return 1
    runc run -d --bundle "$b" "$name" </dev/null >"$b/run.log" 2>&1 || { cat "$b/run.log" >&2; return 1; }
    CT_NAMES+=("$name")
    pid=$(runc state "$name" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])') || return 1
    ip link add "ath$i-$$" type veth peer name "act$i-$$" || return 1
    ip link set "act$i-$$" netns "$pid"
    ip link set "ath$i-$$" netns "$CT_TH"
    ip -n "$CT_TH" addr add "10.203.$i.1/24" dev "ath$i-$$"
    ip -n "$CT_TH" link set "ath$i-$$" up
    nsenter -t "$pid" -n ip link set lo up
    nsenter -t "$pid" -n ip addr add "10.203.$i.2/24" dev "act$i-$$"
    nsenter -t "$pid" -n ip link set "act$i-$$" up
    nsenter -t "$pid" -n ip route add default via "10.203.$i.1"
    ct_log "$name: pid $pid, cgroup $CT_CGROUP/$name, 10.203.$i.2"
}

ct_cleanup() {
    local n p
    for n in "${CT_NAMES[@]}"; do
        runc kill "$n" KILL >/dev/null 2>&1 || true
    done
    for n in "${CT_NAMES[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do runc delete -f "$n" >/dev/null 2>&1 && break; sleep 0.2; done
    done
    CT_NAMES=()
    for p in "${CT_TH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    CT_TH_PIDS=()
    [ -n "$CT_TH" ] && ip netns del "$CT_TH" 2>/dev/null
    CT_TH=""
}
