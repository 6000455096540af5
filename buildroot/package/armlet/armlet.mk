################################################################################
#
# armlet
#
################################################################################

ARMLET_VERSION = 0.1.0
ARMLET_SITE = https://example.invalid/armlet/releases/download/v$(ARMLET_VERSION)
ARMLET_LICENSE = Apache-2.0
ARMLET_LICENSE_FILES = LICENSE
# The workspace is virtual: build and install the agent crate.
ARMLET_SUBDIR = agent
ARMLET_DEPENDENCIES = host-clang libbpf

# ebpf/build.rs builds the BPF objects with clang against libbpf's headers, and a host C
# program that measures the ABI header. `armlet version` names the release.
ARMLET_CARGO_ENV = \
	CLANG=$(HOST_DIR)/bin/clang \
	ARMLET_BPF_CFLAGS="-I$(STAGING_DIR)/usr/include" \
	HOST_CC="$(HOSTCC)" \
	ARMLET_GIT_REVISION=v$(ARMLET_VERSION)

ARMLET_TRUST_ROOT = $(call qstrip,$(BR2_PACKAGE_ARMLET_TRUST_ROOT))
ARMLET_DEFAULT_BUNDLE = $(call qstrip,$(BR2_PACKAGE_ARMLET_DEFAULT_BUNDLE))

# The same files, paths and modes as the Yocto recipe (yocto/meta-armlet).
define ARMLET_INSTALL_CONFIG
	$(INSTALL) -D -m 0644 $(ARMLET_PKGDIR)/armlet.default \
		$(TARGET_DIR)/etc/default/armlet
	mkdir -p $(TARGET_DIR)/etc/armlet/bundle
	$(INSTALL) -d -m 0700 $(TARGET_DIR)/var/lib/armlet
	$(if $(ARMLET_TRUST_ROOT), \
		$(INSTALL) -D -m 0444 $(ARMLET_TRUST_ROOT) \
			$(TARGET_DIR)/etc/armlet/trust.bin)
	$(if $(ARMLET_DEFAULT_BUNDLE), \
		$(INSTALL) -D -m 0644 $(ARMLET_DEFAULT_BUNDLE) \
			$(TARGET_DIR)/etc/armlet/bundle/default.bundle)
endef
ARMLET_POST_INSTALL_TARGET_HOOKS += ARMLET_INSTALL_CONFIG

define ARMLET_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(ARMLET_PKGDIR)/S50armlet \
		$(TARGET_DIR)/etc/init.d/S50armlet
endef

define ARMLET_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(ARMLET_PKGDIR)/armlet.service \
		$(TARGET_DIR)/usr/lib/systemd/system/armlet.service
endef

$(eval $(cargo-package))
