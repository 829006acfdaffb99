/**
 * This machine has no GPIO chip (no /dev/gpiochip*) and no libgpiod tools, so these tests put fake `gpioget`,
 * `gpioset` and `gpiomon` shell scripts first on PATH (written by the test into a temp folder). The fakes log
 * their arguments, read input levels from files, record output levels to files, and hold/wait like the real tools
 * (gpioset in signal mode and gpiomon run until killed). They check our argument building and output parsing
 * against the libgpiod 1.6 / 2.x man pages, not the real kernel behaviour.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalIoError } from './errors.ts';
import { type CommandRunner, GpioAlarmOutput, createCommandRunner, parseGpiomonLine, readDoor, readGpio, watchGpio } from './gpio.ts';

let dir: string;
let runner: CommandRunner;

const FAKE_GPIOGET = `#!/bin/bash
echo "gpioget $*" >> "$FAKE_GPIO_DIR/calls.log"
chip="\${@: -2:1}"; off="\${@: -1}"
f="$FAKE_GPIO_DIR/in-$chip-$off"
[ -f "$f" ] || { echo "gpioget: unable to request line" >&2; exit 1; }
cat "$f"
`;
const FAKE_GPIOSET = `#!/bin/bash
echo "gpioset $*" >> "$FAKE_GPIO_DIR/calls.log"
chip="\${@: -2:1}"; assign="\${@: -1}"
echo "\${assign#*=}" > "$FAKE_GPIO_DIR/out-$chip-\${assign%%=*}"
[ -f "$FAKE_GPIO_DIR/gpioset-dies" ] && exit 3
exec sleep 600
`;
const FAKE_GPIOMON = `#!/bin/bash
echo "gpiomon $*" >> "$FAKE_GPIO_DIR/calls.log"
cat "$FAKE_GPIO_DIR/events"
[ -f "$FAKE_GPIO_DIR/gpiomon-exits" ] && exit 0
exec sleep 600
`;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stele-gpio-'));
  for (const [name, text] of Object.entries({ gpioget: FAKE_GPIOGET, gpioset: FAKE_GPIOSET, gpiomon: FAKE_GPIOMON })) {
    await writeFile(join(dir, name), text);
    await chmod(join(dir, name), 0o755);
  }
  runner = createCommandRunner({ env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}`, FAKE_GPIO_DIR: dir } });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});
const calls = async () => (await readFile(join(dir, 'calls.log'), 'utf8')).trim().split('\n');

/** Waits (bounded) until a file has the expected content: the fakes write asynchronously. */
async function fileBecomes(path: string, want: string): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    const got = await readFile(path, 'utf8').catch(() => undefined);
    if (got?.trim() === want) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

describe('readGpio / readDoor', () => {
  it('runs gpioget with v1 and v2 arguments and maps the level to a door state', async () => {
    await writeFile(join(dir, 'in-gpiochip0-17'), '1\n');
    expect(await readGpio(runner, { chip: 'gpiochip0', offset: 17, bias: 'pull-up' })).toBe(1);
    expect(await readGpio(runner, { chip: 'gpiochip0', offset: 17, activeLow: true }, 'v2')).toBe(1);
    expect(await readDoor(runner, { id: 'door-1', line: { chip: 'gpiochip0', offset: 17 } })).toEqual({ id: 'door-1', level: 1, open: true });
    expect(await readDoor(runner, { id: 'door-1', line: { chip: 'gpiochip0', offset: 17 }, openLevel: 0 })).toMatchObject({ open: false });
    expect(await calls()).toEqual([
      'gpioget --bias=pull-up gpiochip0 17',
      'gpioget --numeric -l -c gpiochip0 17',
      'gpioget gpiochip0 17',
      'gpioget gpiochip0 17',
    ]);
  });
  it('fails with GPIO_COMMAND_FAILED, GPIO_BAD_OUTPUT and GPIO_COMMAND_MISSING codes', async () => {
    await expect(readGpio(runner, { chip: 'gpiochip0', offset: 4 })).rejects.toMatchObject({ code: 'GPIO_COMMAND_FAILED' });
    await writeFile(join(dir, 'in-gpiochip0-5'), 'active\n');
    await expect(readGpio(runner, { chip: 'gpiochip0', offset: 5 })).rejects.toMatchObject({ code: 'GPIO_BAD_OUTPUT' });
    const bare = createCommandRunner({ env: { PATH: join(dir, 'empty') } });
    await expect(readGpio(bare, { chip: 'gpiochip0', offset: 5 })).rejects.toMatchObject({ code: 'GPIO_COMMAND_MISSING' });
    await expect(readGpio(runner, { chip: '-x', offset: 5 })).rejects.toThrow(TypeError);
  });
});

describe('watchGpio (gpiomon)', () => {
  it('parses v1 and v2 event lines', () => {
    expect(parseGpiomonLine('17 1 1234.000000123')).toEqual({ offset: 17, level: 1, timestamp: '1234.000000123' });
    expect(parseGpiomonLine('17 0 1234.5')).toMatchObject({ level: 0 });
    expect(parseGpiomonLine('17 2 99.1', 'v2')).toMatchObject({ level: 0 });
    expect(() => parseGpiomonLine('RISING EDGE offset: 17')).toThrow(LocalIoError);
    expect(() => parseGpiomonLine('17 2 99.1', 'v1')).toThrow(expect.objectContaining({ code: 'GPIO_BAD_OUTPUT' }));
  });
  it('yields edges until aborted, then stops the monitor', async () => {
    await writeFile(join(dir, 'events'), '17 1 100.000000001\n17 0 160.5\n');
    const ac = new AbortController();
    const edges = [];
    for await (const e of watchGpio(runner, { chip: 'gpiochip0', offset: 17 }, { signal: ac.signal })) {
      edges.push(e);
      if (edges.length === 2) ac.abort();
    }
    expect(edges.map((e) => e.level)).toEqual([1, 0]);
    expect(await calls()).toEqual(['gpiomon -b --format=%o %e %s.%n gpiochip0 17']);
  });
  it('throws GPIO_EXITED when the monitor dies on its own', async () => {
    await writeFile(join(dir, 'events'), '17 1 1.0\n');
    await writeFile(join(dir, 'gpiomon-exits'), '');
    const seen: number[] = [];
    const err = await (async () => {
      for await (const e of watchGpio(runner, { chip: 'gpiochip0', offset: 17 })) seen.push(e.level);
    })().catch((e: unknown) => e);
    expect(seen).toEqual([1]);
    expect(err).toMatchObject({ code: 'GPIO_EXITED' });
  });
});

describe('GpioAlarmOutput (gpioset held)', () => {
  it('holds the level with a long-running gpioset and replaces it on change', async () => {
    const out = new GpioAlarmOutput(runner, { chip: 'gpiochip0', offset: 23 });
    await out.set(true);
    expect(await fileBecomes(join(dir, 'out-gpiochip0-23'), '1')).toBe(true);
    await out.set(true); // idempotent: no new process
    await out.set(false);
    expect(await fileBecomes(join(dir, 'out-gpiochip0-23'), '0')).toBe(true);
    expect(out.current()).toBe(false);
    await out.close();
    expect(await calls()).toEqual(['gpioset --mode=signal gpiochip0 23=1', 'gpioset --mode=signal gpiochip0 23=0']);
  });
  it('reports GPIO_EXITED when gpioset does not stay up', async () => {
    await writeFile(join(dir, 'gpioset-dies'), '');
    const errors: LocalIoError[] = [];
    const out = new GpioAlarmOutput(runner, { chip: 'gpiochip0', offset: 23 }, { dialect: 'v2', onError: (e) => errors.push(e) });
    await out.set(true);
    for (let i = 0; i < 200 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(errors.map((e) => e.code)).toEqual(['GPIO_EXITED']);
    expect(await calls()).toEqual(['gpioset -c gpiochip0 23=1']);
    await out.close();
  });
});
