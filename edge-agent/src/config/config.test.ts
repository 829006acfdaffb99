import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from './config.ts';
import { ConfigError } from './errors.ts';

const GOOD = `gateway:
  id: gw-01
  dataDir: ./data
key:
  software:
    path: keys/gw.pem
broker:
  url: mqtt://127.0.0.1:1883
  username: gw-01
  passwordFile: secret
instruments:
  - id: cems-1
    driver: hj212
    port: /dev/ttyUSB0
    baud: 9600
  - id: th-1
    driver: modbus-th
    port: /dev/ttyUSB1
    options:
      devices:
        - { sensor: th-1a, slave: 1, profile: xy-md02 }
disk:
  warnAtFreeBytes: 1GB
  stopAtFreeBytes: 100MiB
`;

function invalid(text: string): ConfigError {
  try {
    parseConfig(text, '/etc/stele/gateway.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    return err as ConfigError;
  }
  throw new Error('expected CONFIG_INVALID');
}

describe('parseConfig', () => {
  it('fills defaults and resolves relative paths against the file', () => {
    const c = parseConfig(GOOD, '/etc/stele/gateway.yaml');
    expect(c.gateway).toEqual({ id: 'gw-01', dataDir: '/etc/stele/data', logLevel: 'info' });
    expect(c.key).toEqual({ backend: 'software', path: '/etc/stele/keys/gw.pem' });
    expect(c.broker).toMatchObject({ url: 'mqtt://127.0.0.1:1883', mode: 'full', passwordFile: '/etc/stele/secret', protocolVersion: 4 });
    expect(c.instruments[0]).toMatchObject({ id: 'cems-1', baud: 9600, parity: 'none', stopBits: 1, dataBits: 8, options: { crc: 'hj212', mode: 'strict' } });
    expect(c.instruments[1]).toMatchObject({ driver: 'modbus-th', options: { timeout: 1000, devices: [{ sensor: 'th-1a', slave: 1, profile: 'xy-md02', interval: 60_000, offset: 0 }] } });
    expect(c.disk).toMatchObject({ warnAtFreeBytes: 1e9, stopAtFreeBytes: 100 * 2 ** 20, policy: 'refuse-new' });
    expect(c.health).toMatchObject({ port: 9102, host: '127.0.0.1' });
    expect(c.retention.keepAckedMs).toBe(30 * 86_400_000);
  });

  it('reads a pkcs11 key with a PIN file', () => {
    const c = parseConfig(
      GOOD.replace('  software:\n    path: keys/gw.pem', '  pkcs11:\n    module: /usr/lib/softhsm/libsofthsm2.so\n    token: stele\n    pinFile: pin\n    kind: tpm'),
      '/etc/stele/gateway.yaml',
    );
    expect(c.key).toEqual({ backend: 'pkcs11', kind: 'tpm', module: '/usr/lib/softhsm/libsofthsm2.so', token: 'stele', pin: { file: '/etc/stele/pin' } });
  });

  it('accepts the example config shipped with the systemd unit', async () => {
    const file = fileURLToPath(new URL('../../systemd/gateway.example.yaml', import.meta.url));
    const c = parseConfig(await readFile(file, 'utf8'), file);
    expect(c.key.backend).toBe('pkcs11');
    expect(c.ingest?.publicKey).toHaveLength(65);
  });

  it('reads the pinned ingest key, and refuses one that is not a P-256 point', () => {
    const key = 'BObum0gTtzsvcSFTQA2LgijO4h2UgKdFKM8u4oWircjbYeD0fYe8JneuFS68LwlZubYmvTxlUzKKEZMzTm0bKJo';
    expect(parseConfig(GOOD, '/etc/stele/gateway.yaml').ingest).toBeUndefined();
    expect(parseConfig(`${GOOD}ingest:\n  publicKey: ${key}\n`, '/etc/stele/gateway.yaml').ingest?.publicKey?.[0]).toBe(4);
    const err = invalid(`${GOOD}ingest:\n  publicKey: ${key.slice(0, -1)}A\n`);
    expect(err.message).toMatch(/ingest\.publicKey/);
    invalid(`${GOOD}ingest:\n  publicKey: abc\n`);
    // ingest's HTTP API beside it (head check, doctor's enrolment check); a trailing slash is dropped
    expect(parseConfig(`${GOOD}ingest:\n  publicKey: ${key}\n  url: https://ingest.example.org:8080/\n`, '/etc/stele/gateway.yaml').ingest?.url).toBe('https://ingest.example.org:8080');
    expect(invalid(`${GOOD}ingest:\n  url: ftp://x\n`).message).toMatch(/ingest\.url/);
  });

  describe('when one line is broken', () => {
    it('names the file, the line, the column and the field, and says what is expected', () => {
      const err = invalid(GOOD.replace('baud: 9600', 'baud: 96OO'));
      expect(err.issues).toHaveLength(1);
      expect(err.where).toEqual({ file: '/etc/stele/gateway.yaml', line: 15, column: 11, path: 'instruments[0].baud' });
      expect(err.message).toContain('/etc/stele/gateway.yaml:15:11 instruments[0].baud');
    });

    it('reports YAML syntax errors with their line', () => {
      const err = invalid(GOOD.replace('slave: 1, profile: xy-md02 }', 'slave: 1, profile: xy-md02'));
      expect(err.where).toMatchObject({ file: '/etc/stele/gateway.yaml', path: '' });
      expect(err.where?.line).toBeGreaterThanOrEqual(21);
    });

    it('reports a duplicate key', () => {
      const err = invalid(GOOD.replace('  id: gw-01\n', '  id: gw-01\n  id: gw-02\n'));
      expect(err.where).toMatchObject({ line: 3 });
    });
  });

  describe('when several things are wrong', () => {
    it('reports them all at once, in line order', () => {
      const text = GOOD.replace('mqtt://127.0.0.1:1883', 'http://127.0.0.1')
        .replace('    driver: hj212', '    driver: hj2l2')
        .replace('  stopAtFreeBytes: 100MiB', '  stopAtFreeBytes: lots')
        .replace('instruments:', 'instrumnets: []\ninstruments:');
      const err = invalid(text);
      expect(err.issues.map((i) => [i.line, i.path])).toEqual([
        [8, 'broker.url'],
        [11, 'instrumnets'],
        [14, 'instruments[0].driver'],
        [25, 'disk.stopAtFreeBytes'],
      ]);
      expect(err.issues[2]!.message).toContain('hj212'); // did you mean
    });

    it('reports missing required fields at their parent, and cross-field problems', () => {
      const text = GOOD.replace('  id: gw-01\n', '')
        .replace('  username: gw-01\n', '')
        .replace('    port: /dev/ttyUSB1', '    port: /dev/ttyUSB0')
        .replace('  - id: th-1\n    driver: modbus-th', '  - id: cems-1\n    driver: hj212')
        .replace('    options:\n      devices:\n        - { sensor: th-1a, slave: 1, profile: xy-md02 }\n', '')
        .replace('stopAtFreeBytes: 100MiB', 'stopAtFreeBytes: 2GB');
      const err = invalid(text);
      expect(err.issues.map((i) => i.path)).toEqual([
        'gateway.id',
        'broker.username',
        'instruments[1].id',
        'instruments[1].port',
        'disk.stopAtFreeBytes',
      ]);
    });

    it('refuses two key backends, or a PIN source missing', () => {
      const both = invalid(GOOD.replace('key:\n', 'key:\n  pkcs11:\n    module: /x.so\n    token: t\n'));
      expect(both.issues.map((i) => i.path)).toEqual(['key.pkcs11.pinFile']);
      const two = invalid(GOOD.replace('key:\n', 'key:\n  pkcs11:\n    module: /x.so\n    token: t\n    pinEnv: PIN\n'));
      expect(two.issues.map((i) => i.path)).toEqual(['key.pkcs11']);
    });

    it('checks hj212 driver options', () => {
      const err = invalid(GOOD.replace('    baud: 9600\n', '    baud: 9600\n    options:\n      crc: modbus\n      lenient: true\n'));
      expect(err.issues.map((i) => i.path)).toEqual(['instruments[0].options.crc', 'instruments[0].options.lenient']);
    });
  });

  it('checks modbus devices', () => {
    const err = invalid(GOOD.replace('slave: 1, profile: xy-md02', 'slave: 300, profile: xy-md2'));
    expect(err.issues.map((i) => i.path)).toEqual(['instruments[1].options.devices[0].slave', 'instruments[1].options.devices[0].profile']);
  });

  it('reads relays with their limits (defaults, sizes, and what is refused)', () => {
    const relays = `relays:
  - id: plat
    listen: { host: 0.0.0.0, port: 9000 }
    upstream: { host: platform.example.org, port: 9001 }
  - id: tight
    listen: { port: 9002 }
    upstream: { host: 10.0.0.1, port: 9001 }
    mode: strict
    maxConnections: 2
    maxBytesPerSecond: 8KiB
    maxTotalBytesPerSecond: 12000
`;
    const c = parseConfig(GOOD + relays, '/etc/stele/gateway.yaml');
    expect(c.relays).toEqual([
      { id: 'plat', listen: { host: '0.0.0.0', port: 9000 }, upstream: { host: 'platform.example.org', port: 9001 }, mode: 'lenient', maxConnections: 16, maxBytesPerSecond: 65_536, maxTotalBytesPerSecond: 262_144 },
      { id: 'tight', listen: { host: '127.0.0.1', port: 9002 }, upstream: { host: '10.0.0.1', port: 9001 }, mode: 'strict', maxConnections: 2, maxBytesPerSecond: 8192, maxTotalBytesPerSecond: 12_000 },
    ]);
    const err = invalid(GOOD + relays.replace('maxConnections: 2', 'maxConnections: 0').replace('maxBytesPerSecond: 8KiB', 'maxBytesPerSecond: 0').replace('maxTotalBytesPerSecond: 12000', 'maxTotalBytesPerSecond: lots'));
    expect(err.issues.map((i) => i.path)).toEqual(['relays[1].maxConnections', 'relays[1].maxBytesPerSecond', 'relays[1].maxTotalBytesPerSecond']);
  });

  it('an empty file says what is expected', () => {
    const err = invalid('');
    expect(err.issues[0]!.message).toContain('gateway');
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stele-config-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('refuses a 100 MB junk file with CONFIG_TOO_LARGE without reading it', async () => {
    const file = join(dir, 'junk.yaml');
    const { truncate } = await import('node:fs/promises');
    await writeFile(file, 'x');
    await truncate(file, 100 * 1024 * 1024); // sparse: no disk, same size
    const rss = process.memoryUsage().rss;
    await expect(loadConfig(file)).rejects.toMatchObject({ code: 'CONFIG_TOO_LARGE' });
    expect(process.memoryUsage().rss - rss).toBeLessThan(50 * 1024 * 1024);
  });

  it('rejects a missing file with CONFIG_UNREADABLE', async () => {
    await expect(loadConfig(join(dir, 'nope.yaml'))).rejects.toMatchObject({ code: 'CONFIG_UNREADABLE' });
  });

  it('loads a file', async () => {
    await writeFile(join(dir, 'g.yaml'), GOOD);
    const c = await loadConfig(join(dir, 'g.yaml'));
    expect(c.gateway.dataDir).toBe(join(dir, 'data'));
  });
});
