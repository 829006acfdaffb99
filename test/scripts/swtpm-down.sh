#!/usr/bin/env bash
# Stops what test/scripts/swtpm-up.sh DIR started, by the PIDs it recorded (abrmd, dbus-daemon, swtpm).
#   usage: swtpm-down.sh DIR [--rm]     (--rm also deletes DIR)
set -uo pipefail
W="${1:?usage: swtpm-down.sh DIR [--rm]}"
for name in abrmd dbus swtpm; do
  f="$W/$name.pid"
  [ -s "$f" ] || continue
  pid="$(tr -dc '0-9' < "$f")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
[ "${2:-}" = "--rm" ] && rm -rf "$W"
exit 0
