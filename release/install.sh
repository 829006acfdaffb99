#!/bin/sh
# Installs the Stele gateway from this unpacked release; needs no network and no compiler (docs/gateway-install.md).
#
#   sudo ./install.sh [--prefix /opt/stele] [--root DIR] [--enable] [--no-doctor] [--require-doctor]
#
#   --prefix P        where the release goes (default /opt/stele); the unit is written for it
#   --root DIR        install into the file tree at DIR instead of / (an SD-card image being prepared, or a test's
#                     scratch root): users and groups go into DIR/etc, nothing is asked of systemd, and doctor
#                     runs with the config DIR/etc/stele/gateway.yaml as the stele user (paths in that config are
#                     read as they are written: as the running system sees them)
#   --enable          also `systemctl enable --now stele-gateway` (only without --root)
#   --no-doctor       skip `stele gateway doctor` at the end
#   --require-doctor  exit 1 when doctor finds a problem (default: report it and exit 0; a first install has no
#                     key and an example config, so doctor is expected to fail until both are done)
#
# What it does, each step safe to repeat (an update runs the same script):
#   1. checks the release against its SHA256SUMS and the machine's architecture
#   2. groups dialout (serial adapters) and tss (the TPM) if missing; the system user stele in both
#   3. PREFIX (root-owned, read-only to others), /etc/stele (root:stele 0750),
#      /var/lib/stele and /var/lib/stele/keys (stele:stele 0700: the outbox and a software key live there)
#   4. /etc/stele/gateway.yaml from the example when there is none (root:stele 0640); never overwrites one
#   5. the systemd unit /etc/systemd/system/stele-gateway.service and the command /usr/local/bin/stele
#   6. systemctl daemon-reload (when systemd runs and no --root), then `stele gateway doctor` as the stele user
set -eu

PREFIX=/opt/stele
ROOT=
ENABLE=0
DOCTOR=1
REQUIRE_DOCTOR=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a path}"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --root) ROOT="${2:?--root needs a folder}"; shift 2 ;;
    --root=*) ROOT="${1#*=}"; shift ;;
    --enable) ENABLE=1; shift ;;
    --no-doctor) DOCTOR=0; shift ;;
    --require-doctor) REQUIRE_DOCTOR=1; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }

case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path" ;; esac
PREFIX="${PREFIX%/}"
if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die "--root $ROOT: no such folder"
  ROOT="$(cd "$ROOT" && pwd)"
  [ "$ROOT" != / ] || ROOT=
fi
[ "$(id -u)" -eq 0 ] || die "run as root (sudo ./install.sh)"

HERE="$(cd "$(dirname "$0")" && pwd)"
[ -f "$HERE/release.json" ] && [ -x "$HERE/node/bin/node" ] || die "run install.sh from the unpacked release folder"
ARCH="$(sed -n 's/.*"arch": "\([^"]*\)".*/\1/p' "$HERE/release.json")"

# 1. the release is whole, and for this machine
say "checking the release files against SHA256SUMS"
(cd "$HERE" && sha256sum --quiet -c SHA256SUMS) || die "the release does not match its SHA256SUMS: copy it again"
case "$(uname -m)" in aarch64|arm64) MACHINE=linux-arm64 ;; x86_64|amd64) MACHINE=linux-x64 ;; *) MACHINE="unknown ($(uname -m))" ;; esac
if [ "$MACHINE" != "$ARCH" ]; then
  [ -n "$ROOT" ] || die "this release is for $ARCH, this machine is $MACHINE"
  say "release for $ARCH into $ROOT on a $MACHINE machine: doctor cannot run here"
  DOCTOR=0
fi

# 2. groups and the service user (in ROOT's /etc with --root)
R_OPT=
[ -z "$ROOT" ] || R_OPT="--root $ROOT"
has_group() { grep -q "^$1:" "$ROOT/etc/group"; }
has_user() { grep -q "^$1:" "$ROOT/etc/passwd"; }
gid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/group"; }
for g in dialout tss; do
  if ! has_group "$g"; then say "group $g"; groupadd $R_OPT --system "$g"; fi
done
if has_user stele; then
  usermod $R_OPT -a -G dialout,tss stele
else
  say "user stele (system, no login, home /var/lib/stele)"
  has_group stele || groupadd $R_OPT --system stele
  useradd $R_OPT --system --gid stele --groups dialout,tss --home-dir /var/lib/stele --no-create-home --shell /usr/sbin/nologin --comment "Stele gateway" stele
fi
UID_STELE="$(awk -F: '$1 == "stele" { print $3 }' "$ROOT/etc/passwd")"
GID_STELE="$(gid_of stele)"
[ -n "$UID_STELE" ] && [ -n "$GID_STELE" ] || die "the user stele was not created"

# 3. the release under PREFIX, then the folders
DEST="$ROOT$PREFIX"
if [ "$(cd "$HERE" && pwd -P)" != "$(mkdir -p "$DEST" && cd "$DEST" && pwd -P)" ]; then
  say "release -> $PREFIX"
  rm -rf "$DEST.new"
  mkdir -p "$DEST.new"
  (cd "$HERE" && tar -cf - .) | (cd "$DEST.new" && tar -xf - --no-same-owner)
  rm -rf "$DEST.old"
  mv "$DEST" "$DEST.old"
  mv "$DEST.new" "$DEST"
  rm -rf "$DEST.old"
fi
chown -R 0:0 "$DEST"
chmod -R go-w "$DEST"
chmod 0755 "$DEST"

install -d -o 0 -g 0 -m 0755 "$ROOT/etc" "$ROOT/var/lib" "$ROOT/etc/systemd/system" "$ROOT/usr/local/bin"
install -d -o 0 -g "$GID_STELE" -m 0750 "$ROOT/etc/stele"
# data and keys: only the service user (the outbox is the evidence not yet confirmed; a software key is a secret)
install -d -o "$UID_STELE" -g "$GID_STELE" -m 0700 "$ROOT/var/lib/stele" "$ROOT/var/lib/stele/keys"
chown "$UID_STELE:$GID_STELE" "$ROOT/var/lib/stele" "$ROOT/var/lib/stele/keys"
chmod 0700 "$ROOT/var/lib/stele" "$ROOT/var/lib/stele/keys"

# 4. the config, only when there is none
if [ ! -e "$ROOT/etc/stele/gateway.yaml" ]; then
  say "/etc/stele/gateway.yaml from the example: edit it (docs/gateway-install.md, step 4)"
  install -o 0 -g "$GID_STELE" -m 0640 "$DEST/systemd/gateway.example.yaml" "$ROOT/etc/stele/gateway.yaml"
fi

# 5. the unit (for PREFIX) and the command
sed "s#/opt/stele/#$PREFIX/#g" "$DEST/systemd/stele-gateway.service" > "$ROOT/etc/systemd/system/stele-gateway.service.tmp"
chmod 0644 "$ROOT/etc/systemd/system/stele-gateway.service.tmp"
mv "$ROOT/etc/systemd/system/stele-gateway.service.tmp" "$ROOT/etc/systemd/system/stele-gateway.service"
ln -sfn "$PREFIX/bin/stele" "$ROOT/usr/local/bin/stele"
say "unit /etc/systemd/system/stele-gateway.service, command /usr/local/bin/stele"

# 6. systemd (not for a --root tree: its systemd reads the unit when that system boots), then doctor
if [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  if [ "$ENABLE" -eq 1 ]; then systemctl enable --now stele-gateway; fi
elif [ "$ENABLE" -eq 1 ]; then
  say "--enable: no running systemd here (or --root): enable the service on the gateway itself"
fi

status=0
if [ "$DOCTOR" -eq 1 ]; then
  say "stele gateway doctor --config /etc/stele/gateway.yaml (as stele)"
  GROUPS_STELE="$(gid_of dialout),$(gid_of tss)"
  # as the service user, with the service's groups: what it can open is what the service will be able to open
  setpriv --reuid="$UID_STELE" --regid="$GID_STELE" --groups="$GROUPS_STELE" -- \
    env HOME="$ROOT/var/lib/stele" "$DEST/bin/stele" gateway doctor --config "$ROOT/etc/stele/gateway.yaml" || status=$?
  if [ "$status" -eq 0 ]; then
    say "doctor: all checks passed"
  else
    say "doctor found problems (above). Fix them, then: sudo -u stele stele gateway doctor"
  fi
fi
say "installed $(cat "$DEST/VERSION")"
if [ "$status" -ne 0 ] && [ "$REQUIRE_DOCTOR" -eq 1 ]; then exit 1; fi
exit 0
