/**
 * Chaos (issues #5 and #9): a real mosquitto, ingest as a child process with its embedded anvil (one process
 * group), and the gateway agent as a child process taking 50 readings/s from an instrument that counts what it
 * sends (each frame's SHA-256, in its own log). The agent is SIGKILLed 20 times at seeded random moments and
 * restarted; the broker is stopped for BROKER_DOWN_S twice; ingest and its chain are SIGKILLed together twice and
 * restarted. At the end every frame the instrument sent while the gateway was up is in ingest's store exactly once,
 * matched against the instrument's log (not the gateway's outbox); the one frame in flight at each SIGKILL (handed
 * over, not yet on disk: a serial line has no redelivery) is the only one allowed missing, and is counted. Ingest
 * holds seq 1..N with no fork, and the outbox drained.
 *
 * About 4 minutes: its own CI step, `npm run test:chaos` (STELE_CHAOS=1; excluded from `npm test`). Under CI a
 * missing mosquitto is a failure. STELE_CHAOS_SEED=n replays a schedule; STELE_CHAOS_BROKER_DOWN_S shortens the
 * outages for a quick local try.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBundle, equalBytes, fromBase64Url, toBase64Url, toHex, decodeReading, GENESIS_PREV, readingDigest } from '@stele/core';
import { parseStatement } from '@stele/core/cose';
import { verifyBundle } from '@stele/core/verify';
import { policyTrustingBundle } from '@stele/core/testing';
import { createSoftwareKey, makeEnrolmentRecord } from '@stele/device';
import { Outbox } from '@stele/edge-agent';
import { readAnchor } from '@stele/ingest';
import { AGENT_SCRIPT, freePort, INGEST_SCRIPT, jsonLines, mulberry32, sleep, spawnTs, startMosquitto, type Child, type Mosquitto } from './processes.ts';

const enabled = process.env['STELE_CHAOS'] === '1';
const hasMosquitto = spawnSync('mosquitto', ['-h']).error === undefined;
if (enabled && process.env['CI'] === 'true' && !hasMosquitto) throw new Error('CI=true but mosquitto is missing: .ci/run must install it (.ci/apt-packages)');
const SEED = Number(process.env['STELE_CHAOS_SEED'] ?? 20260501);
const BROKER_DOWN_S = Number(process.env['STELE_CHAOS_BROKER_DOWN_S'] ?? 60);
const KILLS = 20;
const RATE = 50;
const DEVICE = 'gw-chaos-0001';

describe.skipIf(!enabled || !hasMosquitto)('chaos: gateway SIGKILLs, broker outages, ingest and chain SIGKILLs', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  it(
    'ends with every frame the instrument sent stored exactly once in ingest, counted independently, and a drained outbox',
    async () => {
      const t0 = Date.now();
      const elapsedS = () => ((Date.now() - t0) / 1000).toFixed(1);
      const say = (msg: string) => {
        const line = `[chaos ${elapsedS()}s] ${msg}\n`;
        process.stderr.write(line);
        if (process.env['STELE_CHAOS_LOG'] !== undefined) appendFileSync(process.env['STELE_CHAOS_LOG'], line);
      };
      const dir = await mkdtemp(join(tmpdir(), 'stele-chaos-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const rand = mulberry32(SEED);

      // ---- the stack
      const broker: Mosquitto = await startMosquitto(dir);
      cleanups.push(() => broker.stop());
      const healthPort = await freePort();
      // a fixed chain port: the anchors of batches made before the ingest restart name this RPC URL
      const chainPort = await freePort();
      // the ingest key made here, so the gateway can pin its public key (FORMAT.md §11.1)
      await mkdir(join(dir, 'ingest', 'keys'), { recursive: true });
      const ingestKey = await createSoftwareKey(join(dir, 'ingest', 'keys', 'ingest.pem'));
      const ingestArgs = ['run', '--mqtt', broker.url, '--data', join(dir, 'ingest'), '--embedded-chain', '--chain-port', String(chainPort), '--batch-ms', '1000', '--health-port', String(healthPort), '--log-level', 'warn'];
      const api = `http://127.0.0.1:${healthPort}`;
      let ingest: Child = spawnTs(INGEST_SCRIPT, ingestArgs, { group: true });
      cleanups.push(() => ingest.killGroup());
      const waitIngest = async () => {
        const until = Date.now() + 60_000;
        for (;;) {
          const ok = await fetch(`${api}/health`).then((r) => r.ok, () => false);
          if (ok) return;
          if (ingest.proc.exitCode !== null) throw new Error(`ingest exited: ${ingest.errTail.join(' | ')}`);
          if (Date.now() > until) throw new Error('ingest did not come up');
          await sleep(200);
        }
      };
      await waitIngest();
      say(`ingest up (${api}), broker ${broker.url}`);

      const keyFile = join(dir, 'gateway.pem');
      const signer = await createSoftwareKey(keyFile);
      const adminToken = (await readFile(join(dir, 'ingest', 'admin-token'), 'utf8')).trim();
      const enrol = await fetch(`${api}/enrol`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
        body: JSON.stringify(makeEnrolmentRecord(signer, DEVICE, 'chaos')),
      });
      expect(enrol.status).toBe(200);

      const stopFile = join(dir, 'stop-taking');
      const framesLog = join(dir, 'instrument-frames.log');
      const agentArgs = ['--data', join(dir, 'gateway'), '--mqtt', broker.url, '--device', DEVICE, '--key', keyFile, '--ingest-key', toBase64Url(ingestKey.publicKey), '--rate', String(RATE), '--stop-file', stopFile, '--frames-log', framesLog];
      const killedPids: number[] = [];
      // each status line is 250 ms of an agent that is up and taking: the uptime, counted across restarts
      let statusLines = 0;
      const agentOptions = { keepLines: 200, onLine: (l: string) => void (l.startsWith('{"pid"') && statusLines++) };
      let agent: Child = spawnTs(AGENT_SCRIPT, agentArgs, agentOptions);
      cleanups.push(() => agent.kill('SIGKILL'));
      const lastStatus = () => jsonLines(agent.lines).at(-1) as { head?: number; acked?: number; drained?: boolean; resends?: number } | undefined;

      // ---- the schedule (seeded): broker outages, ingest + chain SIGKILLed after each, 20 kills spread over it all
      const down1 = 15;
      const down2 = down1 + BROKER_DOWN_S + 20;
      const ingestRestartAt = down1 + BROKER_DOWN_S + 10;
      const ingestRestart2At = down2 + BROKER_DOWN_S + 8;
      const endS = down2 + BROKER_DOWN_S + 16;
      // one kill per slot of the run, at a random moment of its slot, at least 2 s after the previous one
      const slotS = (endS - 6) / KILLS;
      const kills = Array.from({ length: KILLS }, (_, i) => 3 + i * slotS + rand() * Math.max(0, slotS - 2));
      type Ev = { at: number; what: 'kill' | 'broker-down' | 'broker-up' | 'ingest-restart' };
      const fixed: Ev[] = [
        { at: down1, what: 'broker-down' },
        { at: down1 + BROKER_DOWN_S, what: 'broker-up' },
        { at: ingestRestartAt, what: 'ingest-restart' },
        { at: down2, what: 'broker-down' },
        { at: down2 + BROKER_DOWN_S, what: 'broker-up' },
        { at: ingestRestart2At, what: 'ingest-restart' },
      ];
      const events: Ev[] = [...kills.map((at): Ev => ({ at, what: 'kill' })), ...fixed].sort((a, b) => a.at - b.at);
      say(`seed ${SEED}; broker down at ${down1}s and ${down2}s for ${BROKER_DOWN_S}s; ingest + chain SIGKILL at ${ingestRestartAt}s and ${ingestRestart2At}s; kills at ${kills.map((k) => k.toFixed(1)).join(', ')}`);

      const runStart = Date.now();
      let killed = 0;
      for (const ev of events) {
        const wait = runStart + ev.at * 1000 - Date.now();
        if (wait > 0) await sleep(wait);
        if (ev.what === 'kill') {
          // an agent that exited by itself (an outbox refused after a SIGKILL, say) would take nothing, unseen
          if (agent.proc.exitCode !== null) throw new Error(`the agent exited by itself (${agent.proc.exitCode}): ${agent.errTail.join(' | ')}`);
          if (agent.proc.pid !== undefined) killedPids.push(agent.proc.pid);
          const { signal } = await agent.kill('SIGKILL');
          killed++;
          const s = lastStatus();
          say(`kill ${killed} (${signal}) at head ${s?.head} acked ${s?.acked}`);
          await sleep(rand() * 500);
          agent = spawnTs(AGENT_SCRIPT, agentArgs, agentOptions);
        } else if (ev.what === 'broker-down') {
          await broker.stop();
          say('broker stopped');
        } else if (ev.what === 'broker-up') {
          await broker.start();
          say('broker started');
        } else {
          // ingest and its anvil together, as a power cut would (one process group)
          const { signal } = await ingest.killGroup();
          expect(signal).toBe('SIGKILL');
          ingest = spawnTs(INGEST_SCRIPT, ingestArgs, { group: true });
          await waitIngest();
          say('ingest and chain SIGKILLed and restarted');
        }
      }
      expect(killed).toBe(KILLS);
      await sleep(Math.max(0, runStart + endS * 1000 - Date.now()));

      // ---- stop taking, drain
      await writeFile(stopFile, '');
      say('stop file written; draining');
      const drainUntil = Date.now() + 90_000;
      while (!lastStatus()?.drained) {
        if (agent.proc.exitCode !== null && !lastStatus()?.drained) throw new Error(`agent exited before draining: ${agent.errTail.join(' | ')}`);
        if (Date.now() > drainUntil) throw new Error(`outbox did not drain: ${JSON.stringify(lastStatus())}`);
        await sleep(250);
      }
      expect((await agent.exited).code).toBe(0);
      const outbox = await Outbox.open(join(dir, 'gateway', 'outbox'));
      const N = outbox.head().seq;
      const acked = outbox.ackedUpTo();
      await outbox.close();
      say(`drained: head ${N}, acked ${acked}`);
      expect(acked).toBe(N);
      // it kept taking through the chaos whenever it was up (start-up takes 1 s on an idle machine, 5 s at load 15)
      const upS = statusLines / 4;
      say(`agent up ${upS.toFixed(0)} s of ${endS} s; ${(N / Math.max(1, upS)).toFixed(1)} readings/s while up`);
      expect(N).toBeGreaterThan(RATE * upS * 0.2);

      // ---- ingest: seq 1..N, no fork
      const head = (await (await fetch(`${api}/devices/${DEVICE}/head`)).json()) as { seq: number };
      expect(head.seq).toBe(N);
      const forks = (await (await fetch(`${api}/devices/${DEVICE}/forks`)).json()) as { forks: unknown[] };
      expect(forks.forks).toEqual([]);
      expect((await fetch(`${api}/flush`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } })).status).toBe(200);
      // ingest serves at most 10 000 seqs per bundle: in windows
      const WINDOW = 5000;
      const windows: { entries: { seq: number; reading?: string; statement: string }[] }[] = [];
      for (let first = 1; first <= N; first += WINDOW) {
        const bundleRes = await fetch(`${api}/bundle?device=${DEVICE}&first=${first}&last=${Math.min(N, first + WINDOW - 1)}`);
        expect(bundleRes.status).toBe(200);
        windows.push((await bundleRes.json()) as (typeof windows)[number]);
      }
      const allEntries = windows.flatMap((w) => w.entries);
      expect(allEntries.map((e) => e.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      let prev = GENESIS_PREV;
      const stored = new Map<string, number>(); // frame SHA-256 (hex) -> readings in ingest's store naming it
      for (const e of allEntries) {
        const bytes = fromBase64Url(e.reading!);
        const r = decodeReading(bytes);
        expect(r.seq).toBe(e.seq);
        if (!equalBytes(r.prev, prev)) throw new Error(`chain broken at seq ${e.seq}`);
        expect(parseStatement(fromBase64Url(e.statement)).seq).toBe(e.seq);
        prev = readingDigest(bytes);
        for (const raw of r.raw) stored.set(toHex(raw), (stored.get(toHex(raw)) ?? 0) + 1);
      }

      // ---- the instrument's count against ingest's store
      const sent = (await readFile(framesLog, 'utf8')).split('\n').filter((l) => l !== '').map((l) => l.split(' ') as [string, string]);
      const lastOf = new Map<string, string>(); // pid -> the last frame it handed over
      for (const [pid, h] of sent) lastOf.set(pid, h);
      const inFlight = new Set(killedPids.map((p) => lastOf.get(String(p))).filter((h): h is string => h !== undefined));
      let missing = 0;
      let lostInFlight = 0;
      const twice: string[] = [];
      for (const [, h] of sent) {
        const n = stored.get(h) ?? 0;
        if (n > 1) twice.push(h);
        if (n === 0 && inFlight.has(h)) lostInFlight++;
        else if (n === 0) missing++;
      }
      const sentSet = new Set(sent.map(([, h]) => h));
      const unknown = [...stored.keys()].filter((h) => !sentSet.has(h));
      say(`instrument sent ${sent.length} frames (log of ${new Set(sent.map(([p]) => p)).size} gateway runs); ingest stores ${stored.size}; missing ${missing}, lost in flight at a SIGKILL ${lostInFlight} of ${KILLS}, stored twice ${twice.length}, not sent ${unknown.length}`);
      expect(twice).toEqual([]);
      expect(missing).toBe(0);
      expect(unknown).toEqual([]);
      expect(lostInFlight).toBeLessThanOrEqual(KILLS);
      expect(stored.size).toBe(sent.length - lostInFlight);

      // Anchors: ingest's anvil was SIGKILLed with it, so anchors made before may be gone from the chain; ingest's
      // re-anchoring of lost anchors is issue #9 item 4 (another branch). Reported, not asserted here.
      for (const w of windows) {
        const verdict = await verifyBundle(parseBundle(w), { anchorReader: (ref, batchId, rpc) => readAnchor(rpc ?? ref.rpc!, ref, batchId), trust: await policyTrustingBundle(parseBundle(w)) });
        const failures = verdict.checks.flatMap((c) => c.failures.map((f) => f.code));
        say(`bundle verdict ${verdict.state}${failures.length === 0 ? '' : `, failures ${JSON.stringify([...new Set(failures)])}`}`);
        // signatures, chain, inclusion: never; an anchor lost with the chain's SIGKILL is the other branch's to repair
        expect(failures.filter((f) => !f.startsWith('ANCHOR_'))).toEqual([]);
      }
      const health = (await (await fetch(`${api}/health`)).json()) as { duplicates: number; rejected: Record<string, number> };
      say(`ingest since its last restart: duplicates ${health.duplicates}, rejected ${JSON.stringify(health.rejected)}`);
      say(`total ${elapsedS()} s`);
    },
    420_000,
  );
});
