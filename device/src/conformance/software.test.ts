import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSoftwareKey } from '../software-signer.ts';
import { signerConformanceSuite } from './signer-suite.ts';

// No PIN, token or library to get wrong, nothing to unplug: those checks do not apply and are not registered.
signerConformanceSuite('software key (PKCS#8 file)', () => {
  let dir = '';
  return {
    async setup() {
      dir = await mkdtemp(join(tmpdir(), 'stele-suite-sw-'));
      await createSoftwareKey(join(dir, 'device-key.pem'));
    },
    async teardown() {
      if (dir !== '') await rm(dir, { recursive: true, force: true });
    },
    async open() {
      const { loadSoftwareSigner } = await import('../software-signer.ts');
      const signer = await loadSoftwareSigner(join(dir, 'device-key.pem'));
      return {
        algorithm: signer.algorithm,
        backend: signer.backend,
        keyId: signer.keyId,
        publicKey: signer.publicKey,
        sign: (message: Uint8Array) => signer.sign(message),
        toJSON: () => signer.toJSON(),
        describeKeyProtection: async () => ({
          backend: 'software' as const,
          hardware: false,
          sensitive: false,
          extractable: true,
          neverExtractable: false,
          alwaysSensitive: false,
          local: true,
          valueRead: 'software key: the PKCS#8 file holds it',
        }),
      };
    },
  };
});
