#!/usr/bin/env bash
# Stops or starts only the tpm2-abrmd of a test TPM made by swtpm-up.sh, to simulate the TPM going away and coming
# back while a signer runs (the tabrmd TCTI then fails, as a /dev/tpmrm0 that vanished would).
#   usage: swtpm-abrmd.sh DIR stop|start
set -euo pipefail
W="${1:?usage: swtpm-abrmd.sh DIR stop|start}"
# shellcheck disable=SC1091
source "$W/env"
case "${2:-}" in
  stop)
    [ -s "$W/abrmd.pid" ] || exit 0
    pid="$(tr -dc '0-9' < "$W/abrmd.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$W/abrmd.pid"
    ;;
  start)
    tpm2-abrmd --session --allow-root --tcti="swtpm:host=127.0.0.1,port=$SWTPM_PORT" >>"$W/abrmd.log" 2>&1 &
    echo $! > "$W/abrmd.pid"
    for _ in $(seq 1 50); do tpm2_getcap properties-fixed >/dev/null 2>&1 && exit 0; sleep 0.1; done
    echo "swtpm-abrmd: abrmd did not come up (see $W/abrmd.log)" >&2; exit 4
    ;;
  *) echo "usage: swtpm-abrmd.sh DIR stop|start" >&2; exit 2 ;;
esac
