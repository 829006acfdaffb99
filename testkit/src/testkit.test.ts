import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { codeOf, freePort, waitFor, waitForPort } from './index.ts';

class CodedError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

describe('waitFor', () => {
  it('resolves once the condition holds', async () => {
    let n = 0;
    await waitFor(() => ++n === 3, 'three polls');
    expect(n).toBe(3);
  });
  it('rejects after the bound, naming what it waited for', async () => {
    await expect(waitFor(() => false, 'never', 20)).rejects.toThrow(/timed out waiting for never/);
  });
  it('refuses the other argument order', async () => {
    await expect(waitFor(() => true, 1000 as unknown as string)).rejects.toThrow(TypeError);
  });
});

describe('freePort and waitForPort', () => {
  it('gives a port a server can listen on, and sees it listening', async () => {
    const port = await freePort();
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    await waitForPort(port, 2000);
    await new Promise<void>((r) => server.close(() => r()));
  });
});

describe('codeOf', () => {
  it('returns the code of the expected error class and rethrows others', async () => {
    expect(await codeOf(Promise.reject(new CodedError('X_BAD')), CodedError)).toBe('X_BAD');
    await expect(codeOf(Promise.reject(new Error('other')), CodedError)).rejects.toThrow('other');
    await expect(codeOf(Promise.resolve(1), CodedError)).rejects.toThrow(/expected a CodedError/);
  });
});
