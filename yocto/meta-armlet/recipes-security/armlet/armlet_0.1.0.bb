SUMMARY = "armlet: runtime-security agent for edge Linux nodes"
DESCRIPTION = "One static binary that enforces signed KubeArmor-compatible policy bundles \
with BPF-LSM, AppArmor or fanotify and publishes compact alerts."
HOMEPAGE = "https://example.invalid/armlet"
SECTION = "security"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# The source: a git checkout of the armlet repository. Point ARMLET_SRC_URI at your mirror
# (or at a local checkout: "git:///path/to/armlet;protocol=file;branch=main").
ARMLET_SRC_URI ?= "git://example.invalid/armlet.git;protocol=https;branch=main"
SRC_URI = "${ARMLET_SRC_URI} \
           file://armlet.init \
           file://armlet.service \
           file://armlet.default \
"
SRCREV ?= "${AUTOREV}"
S = "${UNPACKDIR}/git"

# Crates from Cargo.lock: scripts/yocto-crates.py writes this file exactly as
# `bitbake -c update_crates armlet` would; a test fails when it is out of date.
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates update-rc.d systemd

# The workspace's binary crate.
CARGO_SRC_DIR = "agent"
CARGO_LOCK_SRC_DIR = "${S}"

# ebpf/build.rs compiles the kernel programs with clang (BPF target, CO-RE) against
# libbpf's bpf_helpers.h, and a small host C program that measures the ABI header.
DEPENDS += "clang-native libbpf-native"
export CLANG = "${STAGING_BINDIR_NATIVE}/clang"
export HOST_CC = "${BUILD_CC}"
export ARMLET_BPF_CFLAGS = "-I${STAGING_INCDIR_NATIVE}"
# `armlet version` names the source revision; there is no .git in the unpacked crates.
export ARMLET_GIT_REVISION = "${SRCREV}"

# The fleet's trust root and the image's default signed bundle are fleet data, not part of
# this layer: your own layer adds them with an armlet_%.bbappend holding
#   FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
# and files/trust.bin, files/default.bundle. Without them the fetch fails: an image without a
# trust root would have no policy, and armlet has no "allow all" default.
SRC_URI += "file://trust.bin file://default.bundle"

INITSCRIPT_NAME = "armlet"
# Early (S20): enforce before the services it confines start.
INITSCRIPT_PARAMS = "start 20 2 3 4 5 . stop 80 0 1 6 ."
SYSTEMD_SERVICE:${PN} = "armlet.service"

do_install:append() {
    install -d ${D}${sysconfdir}/default ${D}${sysconfdir}/armlet/bundle
    install -m 0644 ${UNPACKDIR}/armlet.default ${D}${sysconfdir}/default/armlet
    install -d -m 0700 ${D}${localstatedir}/lib/armlet
    if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        install -d ${D}${sysconfdir}/init.d
        install -m 0755 ${UNPACKDIR}/armlet.init ${D}${sysconfdir}/init.d/armlet
    fi
    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}
        install -m 0644 ${UNPACKDIR}/armlet.service ${D}${systemd_system_unitdir}/armlet.service
    fi
    # The trust anchor is read-only data in the image; rotated roots and the serial live in
    # /var/lib/armlet. The default bundle is replaced in place by updates (then `reload`).
    install -m 0444 ${UNPACKDIR}/trust.bin ${D}${sysconfdir}/armlet/trust.bin
    install -m 0644 ${UNPACKDIR}/default.bundle ${D}${sysconfdir}/armlet/bundle/default.bundle
}

CONFFILES:${PN} = "${sysconfdir}/default/armlet"
FILES:${PN} += "${localstatedir}/lib/armlet"
