# Add armlet's kernel options to linux-yocto kernels (see files/armlet.cfg). For another
# kernel recipe, apply the same fragment (or set the options in its defconfig), and make
# sure the boot loader does not override the LSM order with an lsm= argument lacking bpf.
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
SRC_URI += "file://armlet.cfg"
# CONFIG_DEBUG_INFO_BTF needs pahole at kernel build time.
DEPENDS += "dwarves-native"
