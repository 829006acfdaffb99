/**
 * The signer conformance suite on SoftHSM2 (a token in a temp dir, SOFTHSM2_CONF). Skips with the reason when
 * softhsm2 or pkcs11js is absent; under CI=true it must run (.ci/apt-packages lists softhsm2).
 *
 * Token removal: SoftHSM2 has no unplug, so the suite renames the token folder away. SoftHSM then answers
 * CKR_OBJECT_HANDLE_INVALID for the key and CKR_GENERAL_ERROR for the slot list, and only sees the token again
 * after C_Finalize + C_Initialize, which is what the signer's reconnect does.
 */
import { rename } from 'node:fs/promises';
import { Pkcs11Signer } from '@stele/device';
import { signerConformanceSuite } from '@stele/device/testing';
import { makeSoftHsmToken, SOFTHSM_MODULE, softhsmSkipReason, type SoftHsmToken } from './helpers.ts';

const skip = await softhsmSkipReason();
const FAST = { reconnectDelayMs: 20, reconnectMaxDelayMs: 200, timeoutMs: 10_000 };

signerConformanceSuite(
  'SoftHSM2 (PKCS#11)',
  () => {
    let token: SoftHsmToken | undefined;
    let keyId = '';
    const config = () => ({ module: SOFTHSM_MODULE!, tokenLabel: token!.label, pin: { file: token!.pinFile }, keyLabel: 'stele-suite', keyId });
    return {
      async setup() {
        token = await makeSoftHsmToken();
        const { keyId: _unused, ...withoutId } = config();
        const made = await Pkcs11Signer.generate(withoutId, FAST);
        keyId = made.tokenKeyId;
        await made.close();
      },
      teardown: async () => token?.cleanup(),
      open: () => Pkcs11Signer.open(config(), FAST),
      openWithWrongPin: () => Pkcs11Signer.open({ ...config(), pin: { env: 'STELE_TEST_WRONG_PIN' } }, { ...FAST, env: { STELE_TEST_WRONG_PIN: '11112222' } }),
      openWithMissingToken: () => Pkcs11Signer.open({ ...config(), tokenLabel: 'no-such-token' }, FAST),
      openWithMissingModule: () => Pkcs11Signer.open({ ...config(), module: '/nonexistent/libpkcs11-none.so' }, FAST),
      removeToken: () => rename(token!.tokensDir, `${token!.tokensDir}.away`),
      restoreToken: () => rename(`${token!.tokensDir}.away`, token!.tokensDir),
      rateSamples: 2000,
    };
  },
  skip === undefined ? {} : { skip },
);
