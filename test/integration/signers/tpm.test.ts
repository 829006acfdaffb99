/**
 * The signer conformance suite on a TPM 2.0: swtpm + tpm2-abrmd on a private session D-Bus + tpm2-pkcs11
 * (test/scripts/swtpm-up.sh, DEPENDENCIES.md §6). Runs only with STELE_TPM=1 (`npm run test:tpm`); skipped with
 * the reason otherwise. With STELE_TPM=1 a missing package is a failure, not a skip.
 *
 * Token removal: tpm2-abrmd is stopped (the tabrmd TCTI then fails: CKR_GENERAL_ERROR from tpm2-pkcs11, as a
 * vanished /dev/tpmrm0 would) and started again; the signer's reconnect (C_Finalize + C_Initialize) picks it up.
 */
import { Pkcs11Signer } from '@stele/device/pkcs11/signer.ts';
import { signerConformanceSuite } from '@stele/device/conformance/signer-suite.ts';
import { startSwTpm, TPM2_PKCS11_MODULE, tpmSkipReason, type SwTpm } from './helpers.ts';

const skip = await tpmSkipReason();
const FAST = { reconnectDelayMs: 50, reconnectMaxDelayMs: 500, timeoutMs: 20_000 };

signerConformanceSuite(
  'TPM 2.0 (swtpm + tpm2-pkcs11)',
  () => {
    let tpm: SwTpm | undefined;
    let keyId = '';
    const config = () => ({
      backend: 'tpm' as const,
      module: TPM2_PKCS11_MODULE!,
      tokenLabel: tpm!.label,
      pin: { file: tpm!.pinFile },
      keyLabel: 'stele-suite',
      keyId,
    });
    return {
      async setup() {
        tpm = await startSwTpm();
        const { keyId: _unused, ...withoutId } = config();
        const made = await Pkcs11Signer.generate(withoutId, FAST);
        keyId = made.tokenKeyId;
        await made.close();
      },
      teardown: async () => tpm?.cleanup(),
      open: () => Pkcs11Signer.open(config(), FAST),
      openWithWrongPin: () => Pkcs11Signer.open({ ...config(), pin: { env: 'STELE_TEST_WRONG_PIN' } }, { ...FAST, env: { STELE_TEST_WRONG_PIN: '11112222' } }),
      openWithMissingToken: () => Pkcs11Signer.open({ ...config(), tokenLabel: 'no-such-token' }, FAST),
      openWithMissingModule: () => Pkcs11Signer.open({ ...config(), module: '/nonexistent/libtpm2_pkcs11.so' }, FAST),
      removeToken: () => tpm!.stopResourceManager(),
      restoreToken: () => tpm!.startResourceManager(),
      rateSamples: 300,
    };
  },
  skip === undefined ? {} : { skip },
);
