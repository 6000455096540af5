#!/bin/bash
# Build side, in the guest (its kernel's AppArmor features): one binary per profile text.
set -eu
rm -rf /tmp/qt-aa && mkdir -p /tmp/qt-aa
cp hsp-armlet-precompiled.yaml /tmp/qt-aa/policy.yaml
armlet policy apparmor --node kubearmor-dev --out /tmp/qt-aa/bin /tmp/qt-aa/policy.yaml
ls /tmp/qt-aa/bin
