#!/bin/bash
# Files for the scenario (created before the agent starts).
set -e
rm -rf /tmp/armlet-hs
mkdir -p /tmp/armlet-hs/ro/sub /tmp/armlet-hs/own
echo hello >/tmp/armlet-hs/ro/sub/f
echo secret >/tmp/armlet-hs/own/k
chown 1000:1000 /tmp/armlet-hs/own/k
