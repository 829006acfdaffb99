#!/usr/bin/env bash
# Debian's arm64 SoftHSM2 library for the release's emulation test (test/e2e/release/emulation.test.ts), without
# adding arm64 to this machine's dpkg: a private apt state (lists and cache under DIR) asks Debian's archive for the
# arm64 packages libsofthsm2 and libssl3, and dpkg-deb -x unpacks them into DIR/root.
#   usage: arm64-softhsm.sh DIR     then: DIR/root/usr/lib/softhsm/libsofthsm2.so (arm64),
#                                   LD_LIBRARY_PATH=DIR/root/usr/lib/aarch64-linux-gnu for its libssl3
# Idempotent: a DIR that already holds the library is left as it is.
set -euo pipefail
D="${1:?usage: arm64-softhsm.sh DIR}"
mkdir -p "$D"
D="$(cd "$D" && pwd)"
[ -f "$D/root/usr/lib/softhsm/libsofthsm2.so" ] && { echo "$D/root/usr/lib/softhsm/libsofthsm2.so"; exit 0; }
mkdir -p "$D/lists/partial" "$D/cache/archives/partial" "$D/debs" "$D/root"
O=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o "Dir::State::Lists=$D/lists" -o "Dir::Cache=$D/cache" -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
apt-get "${O[@]}" update -qq >/dev/null
(cd "$D/debs" && apt-get "${O[@]}" download libsofthsm2 libssl3 >/dev/null)
for deb in "$D"/debs/*.deb; do dpkg-deb -x "$deb" "$D/root"; done
rm -rf "$D/lists" "$D/cache"
echo "$D/root/usr/lib/softhsm/libsofthsm2.so"
