#!/usr/bin/env bash
# Starts a software TPM 2.0 for tests: swtpm (TCP, 127.0.0.1) + tpm2-abrmd on a private session D-Bus, then makes
# a tpm2-pkcs11 store with one token. Everything lives in DIR; test/scripts/swtpm-down.sh DIR stops it by PID.
#
#   usage: swtpm-up.sh DIR [TOKEN_LABEL [USER_PIN [SO_PIN]]]
#   then:  source DIR/env      (TPM2TOOLS_TCTI, TPM2_PKCS11_TCTI, TPM2_PKCS11_STORE, DBUS_SESSION_BUS_ADDRESS)
#
# The EK gets a certificate from a local CA kept inside DIR (swtpm_setup --create-ek-cert), so provisioning can
# show an attestation. Recipe and pitfalls: /work/shared/design/DEPENDENCIES.md §6 (abrmd is needed: without a
# resource manager tpm2_ptool runs out of object contexts, TPM 0x902).
# Debian packages: swtpm swtpm-tools tpm2-tools tpm2-abrmd libtpm2-pkcs11-1 libtpm2-pkcs11-tools
# libtss2-tcti-tabrmd0 dbus.
set -euo pipefail
W="${1:?usage: swtpm-up.sh DIR [TOKEN_LABEL [USER_PIN [SO_PIN]]]}"
LABEL="${2:-stele-tpm}"
USER_PIN="${3:-87654321}"
SO_PIN="${4:-12345678}"
mkdir -p "$W/state" "$W/store" "$W/localca"
W="$(cd "$W" && pwd)"

for tool in swtpm swtpm_setup tpm2-abrmd tpm2_ptool dbus-daemon tpm2_getcap; do
  command -v "$tool" >/dev/null || { echo "swtpm-up: $tool not found" >&2; exit 3; }
done

# The swtpm TCTI expects the control port right after the server port.
free_port_pair() {
  node -e '
    const net = require("net");
    const tryPort = (p) => new Promise((ok) => { const s = net.createServer(); s.once("error", () => ok(false)); s.listen(p, "127.0.0.1", () => s.close(() => ok(true))); });
    (async () => { for (let i = 0; i < 200; i++) { const p = 20000 + 2 * Math.floor(Math.random() * 20000); if ((await tryPort(p)) && (await tryPort(p + 1))) { console.log(p); return; } } process.exit(1); })();'
}
PORT="${SWTPM_PORT:-$(free_port_pair)}"
CTRL=$((PORT + 1))

# Private CA for the EK certificate (not /var/lib/swtpm-localca).
cat > "$W/localca.conf" <<CONF
statedir = $W/localca
signingkey = $W/localca/signkey.pem
issuercert = $W/localca/issuercert.pem
certserial = $W/localca/certserial
CONF
printf -- '--platform-manufacturer Stele\n--platform-version 2.1\n--platform-model swtpm\n' > "$W/localca.options"
cat > "$W/swtpm_setup.conf" <<CONF
create_certs_tool = /usr/bin/swtpm_localca
create_certs_tool_config = $W/localca.conf
create_certs_tool_options = $W/localca.options
active_pcr_banks = sha256
CONF
if [ ! -e "$W/state/tpm2-00.permall" ]; then
  swtpm_setup --tpm2 --tpmstate "$W/state" --config "$W/swtpm_setup.conf" --create-ek-cert --overwrite \
    >"$W/swtpm_setup.log" 2>&1 || { echo "swtpm-up: swtpm_setup failed (see $W/swtpm_setup.log); continuing without EK cert" >&2; }
fi

swtpm socket --tpm2 --tpmstate dir="$W/state" \
  --server type=tcp,port="$PORT",bindaddr=127.0.0.1 --ctrl type=tcp,port="$CTRL",bindaddr=127.0.0.1 \
  --flags not-need-init,startup-clear --pid file="$W/swtpm.pid" --log file="$W/swtpm.log" --daemon
dbus-daemon --session --fork --address="unix:path=$W/dbus.sock" --print-pid=1 > "$W/dbus.pid"
export DBUS_SESSION_BUS_ADDRESS="unix:path=$W/dbus.sock"
tpm2-abrmd --session --allow-root --tcti="swtpm:host=127.0.0.1,port=$PORT" >"$W/abrmd.log" 2>&1 &
echo $! > "$W/abrmd.pid"

cat > "$W/env" <<ENV
export DBUS_SESSION_BUS_ADDRESS="unix:path=$W/dbus.sock"
export TPM2TOOLS_TCTI="tabrmd:bus_type=session"
export TPM2_PKCS11_TCTI="tabrmd:bus_type=session"
export TPM2_PKCS11_STORE="$W/store"
export TSS2_LOG="all+NONE"
export TPM2_PKCS11_LOG_LEVEL=0
export SWTPM_PORT="$PORT"
export SWTPM_CTRL_PORT="$CTRL"
ENV
# shellcheck disable=SC1091
source "$W/env"

# abrmd needs a moment to claim its bus name.
for _ in $(seq 1 50); do
  tpm2_getcap properties-fixed >/dev/null 2>&1 && break
  sleep 0.1
done
tpm2_getcap properties-fixed >/dev/null || { echo "swtpm-up: TPM not answering through abrmd (see $W/abrmd.log)" >&2; exit 4; }

if [ ! -e "$W/store/tpm2_pkcs11.sqlite3" ]; then
  tpm2_ptool init --path "$W/store" >"$W/ptool.log" 2>&1
  tpm2_ptool addtoken --pid=1 --label="$LABEL" --sopin="$SO_PIN" --userpin="$USER_PIN" --path "$W/store" >>"$W/ptool.log" 2>&1
fi
echo "swtpm-up: token '$LABEL' ready; source $W/env"
