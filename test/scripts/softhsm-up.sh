#!/usr/bin/env bash
# Makes a SoftHSM2 token in DIR, with its own softhsm2.conf (tokens never land in /var/lib/softhsm).
#   usage: softhsm-up.sh DIR [TOKEN_LABEL [USER_PIN [SO_PIN]]]
#   then:  source DIR/env      (SOFTHSM2_CONF)
# Debian packages: softhsm2 (and opensc for pkcs11-tool).
set -euo pipefail
W="${1:?usage: softhsm-up.sh DIR [TOKEN_LABEL [USER_PIN [SO_PIN]]]}"
LABEL="${2:-stele-dev}"
USER_PIN="${3:-87654321}"
SO_PIN="${4:-12345678}"
command -v softhsm2-util >/dev/null || { echo "softhsm-up: softhsm2-util not found (apt-get install softhsm2)" >&2; exit 3; }
mkdir -p "$W/tokens"
W="$(cd "$W" && pwd)"
cat > "$W/softhsm2.conf" <<CONF
directories.tokendir = $W/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
echo "export SOFTHSM2_CONF=\"$W/softhsm2.conf\"" > "$W/env"
export SOFTHSM2_CONF="$W/softhsm2.conf"
softhsm2-util --init-token --free --label "$LABEL" --so-pin "$SO_PIN" --pin "$USER_PIN" >/dev/null
echo "softhsm-up: token '$LABEL' ready; source $W/env"
