/** Ingest's read-only device routes as `stele gateway doctor` and the gateway's head check use them. */
import { describe, expect, it } from 'vitest';
import { toBase64Url, keyIdOf } from '@stele/core';
import { useIngestStack } from '../test-helpers.ts';
import { startIngestHttp } from './server.ts';

const stack = useIngestStack('stele-ingest-http-');

describe('GET /devices/<id>/keys', () => {
  it("lists the enrolled device's keys (kid, backend, from) and answers 404 INGEST_UNKNOWN_DEVICE for an unknown device", async () => {
    const { ingest, device } = await stack.setup({ deviceId: 'gw-http-1', dirPrefix: 'stele-ingest-http-data-' });
    const http = await startIngestHttp({ service: ingest });
    stack.cleanups.push(() => http.close());
    const res = await fetch(`${http.url}/devices/gw-http-1/keys`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { deviceId: string; keys: { kid: string; from: number; revokedAfter?: number }[] };
    expect(body.deviceId).toBe('gw-http-1');
    expect(body.keys).toEqual([{ kid: toBase64Url(keyIdOf(device.publicKey)), backend: expect.any(String), from: 1 }]);
    const unknown = await fetch(`${http.url}/devices/gw-nobody/keys`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { code: string }).code).toBe('INGEST_UNKNOWN_DEVICE');
    const head = (await (await fetch(`${http.url}/devices/gw-http-1/head`)).json()) as { seq: number };
    expect(head.seq).toBe(0);
  });
});
