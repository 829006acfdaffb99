/**
 * The public surface of @stele/device (issue 10 item 1): every name each entry point in package.json `exports`
 * offers, values and types. An export added or removed fails here until SURFACE says so: a change to the API is a
 * deliberate edit to this list, not a side effect of moving a file. Entry points and their run-time exports are
 * loaded too, so an entry that does not load (or exports at run time what TypeScript calls a type) fails.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { surfaceOf, type EntrySurface } from '@stele/testkit/surface';

const SURFACE: Record<string, string[]> = {
  '.': [
    'Attestation', 'BindingLoader', 'EnrolmentRecord', 'GatewayIdentity', 'KeyError', 'KeyErrorCode', 'KeyProtection',
    'LoadKeyOptions', 'PKCS11JS_INSTALL_HINT', 'PROVISION_USAGE', 'PinSource', 'Pkcs11Backend', 'Pkcs11Binding',
    'Pkcs11Signer', 'Pkcs11SignerConfig', 'Pkcs11SignerOptions', 'ProvisionBackend', 'ProvisionError',
    'ProvisionErrorCode', 'ProvisionIo', 'ProvisionOptions', 'ProvisionResult', 'SoftwareSigner', 'TokenDescription',
    'TokenError', 'TokenErrorCode', 'certifyTpmKey', 'checkDeviceId', 'checkPinSource', 'createSoftwareKey',
    'loadBinding', 'loadOrCreateSoftwareSigner', 'loadSoftwareSigner', 'makeEnrolmentRecord', 'provisionGateway',
    'readGatewayIdentity', 'readPin', 'readTpmAttestation', 'runGatewayProvision',
  ],
  './provision': [
    'PROVISION_USAGE', 'ProvisionIo', 'runGatewayProvision',
  ],
  './testing': [
    'SignerSuiteTarget', 'SuiteSigner', 'measuredSignRates', 'signerConformanceSuite',
  ],
};

const LOAD: Record<string, () => Promise<Record<string, unknown>>> = {
  '.': () => import('@stele/device'),
  './provision': () => import('@stele/device/provision'),
  './testing': () => import('@stele/device/testing'),
};

describe('the public surface of @stele/device', () => {
  let surface: Record<string, EntrySurface>;
  beforeAll(() => {
    surface = surfaceOf(new URL('../package.json', import.meta.url));
  }, 120_000); // the TypeScript program of the package: seconds, more on a loaded 2-core machine

  it('exports exactly the pinned names from each entry point', () => {
    expect(Object.fromEntries(Object.entries(surface).map(([key, s]) => [key, s.names]))).toEqual(SURFACE);
  });

  it.each(Object.keys(LOAD))('entry point %s loads, with the pinned values at run time', async (key) => {
    const mod = await LOAD[key]!();
    expect(Object.keys(mod).sort()).toEqual(surface[key]!.values);
  });
});
