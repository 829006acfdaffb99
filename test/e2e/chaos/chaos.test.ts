/**
 * Chaos (issue #5 acceptance): a real mosquitto, ingest as a child process (embedded anvil), and the gateway agent
 * as a child process publishing 50 readings/s. The agent is SIGKILLed 20 times at seeded random moments and
 * restarted; the broker is stopped for BROKER_DOWN_S twice; ingest is restarted once. At the end ingest holds
 * every seq 1..N exactly once, the hash chain is unbroken, every reading is in an anchored batch whose bundle
 * verifies, and the outbox has drained (acked == head).
 *
 * About 4 minutes. Runs under CI=true, or locally with STELE_CHAOS=1 (STELE_CHAOS_SEED=n replays a schedule;
 * STELE_CHAOS_BROKER_DOWN_S shortens the outages for a quick local try).
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBundle } from '@stele/core/bundle.ts';
import { equalBytes, fromBase64Url, toBase64Url } from '@stele/core/bytes.ts';
import { decodeReading, GENESIS_PREV, readingDigest } from '@stele/core/reading.ts';
import { parseStatement } from '@stele/core/cose/index.ts';
import { verifyBundle } from '@stele/core/verify/index.ts';
import { createSoftwareKey, makeEnrolmentRecord } from '@stele/device';
import { Outbox } from '@stele/edge-agent';
import { readAnchor } from '@stele/ingest';
import { AGENT_SCRIPT, freePort, INGEST_SCRIPT, jsonLines, mulberry32, sleep, spawnTs, startMosquitto, type Child, type Mosquitto } from './processes.ts';

const enabled = process.env['STELE_CHAOS'] === '1' || process.env['CI'] === 'true';
const hasMosquitto = spawnSync('mosquitto', ['-h']).error === undefined;
const SEED = Number(process.env['STELE_CHAOS_SEED'] ?? 20260501);
const BROKER_DOWN_S = Number(process.env['STELE_CHAOS_BROKER_DOWN_S'] ?? 60);
const KILLS = 20;
const RATE = 50;
const DEVICE = 'gw-chaos-0001';

describe.skipIf(!enabled || !hasMosquitto)('chaos: SIGKILLs, broker outages and an ingest restart', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  it(
    'ends with every seq 1..N exactly once in ingest, an unbroken chain, all anchored and verified, and a drained outbox',
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
      let ingest: Child = spawnTs(INGEST_SCRIPT, ingestArgs);
      cleanups.push(() => ingest.kill('SIGTERM'));
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
      const agentArgs = ['--data', join(dir, 'gateway'), '--mqtt', broker.url, '--device', DEVICE, '--key', keyFile, '--ingest-key', toBase64Url(ingestKey.publicKey), '--rate', String(RATE), '--stop-file', stopFile];
      let agent: Child = spawnTs(AGENT_SCRIPT, agentArgs, { keepLines: 200 });
      cleanups.push(() => agent.kill('SIGKILL'));
      const lastStatus = () => jsonLines(agent.lines).at(-1) as { head?: number; acked?: number; drained?: boolean; resends?: number } | undefined;

      // ---- the schedule (seeded): broker outages, one ingest restart between them, 20 kills spread over it all
      const down1 = 15;
      const down2 = down1 + BROKER_DOWN_S + 20;
      const ingestRestartAt = down1 + BROKER_DOWN_S + 10;
      const endS = down2 + BROKER_DOWN_S + 10;
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
      ];
      const events: Ev[] = [...kills.map((at): Ev => ({ at, what: 'kill' })), ...fixed].sort((a, b) => a.at - b.at);
      say(`seed ${SEED}; broker down at ${down1}s and ${down2}s for ${BROKER_DOWN_S}s; ingest restart at ${ingestRestartAt}s; kills at ${kills.map((k) => k.toFixed(1)).join(', ')}`);

      const runStart = Date.now();
      let killed = 0;
      for (const ev of events) {
        const wait = runStart + ev.at * 1000 - Date.now();
        if (wait > 0) await sleep(wait);
        if (ev.what === 'kill') {
          const { signal } = await agent.kill('SIGKILL');
          killed++;
          const s = lastStatus();
          say(`kill ${killed} (${signal}) at head ${s?.head} acked ${s?.acked}`);
          await sleep(rand() * 500);
          agent = spawnTs(AGENT_SCRIPT, agentArgs, { keepLines: 200 });
        } else if (ev.what === 'broker-down') {
          await broker.stop();
          say('broker stopped');
        } else if (ev.what === 'broker-up') {
          await broker.start();
          say('broker started');
        } else {
          const { code } = await ingest.kill('SIGTERM');
          expect(code).toBe(0);
          ingest = spawnTs(INGEST_SCRIPT, ingestArgs);
          await waitIngest();
          say('ingest restarted');
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
      expect(N).toBeGreaterThan(RATE * endS * 0.3); // it kept taking through the chaos (each restart costs ~1 s of start-up)

      // ---- ingest: every seq 1..N exactly once, chain unbroken, all anchored, bundle verified
      const head = (await (await fetch(`${api}/devices/${DEVICE}/head`)).json()) as { seq: number };
      expect(head.seq).toBe(N);
      const forks = (await (await fetch(`${api}/devices/${DEVICE}/forks`)).json()) as { forks: unknown[] };
      expect(forks.forks).toEqual([]);
      expect((await fetch(`${api}/flush`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } })).status).toBe(200);
      const bundleRes = await fetch(`${api}/bundle?device=${DEVICE}&first=1&last=${N}`);
      expect(bundleRes.status).toBe(200);
      const json = (await bundleRes.json()) as { entries: { seq: number; reading?: string; statement: string }[] };
      expect(json.entries.map((e) => e.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      let prev = GENESIS_PREV;
      for (const e of json.entries) {
        const bytes = fromBase64Url(e.reading!);
        const r = decodeReading(bytes);
        expect(r.seq).toBe(e.seq);
        if (!equalBytes(r.prev, prev)) throw new Error(`chain broken at seq ${e.seq}`);
        expect(parseStatement(fromBase64Url(e.statement)).seq).toBe(e.seq);
        prev = readingDigest(bytes);
      }
      const verdict = await verifyBundle(parseBundle(json), { anchorReader: (ref, batchId, rpc) => readAnchor(rpc ?? ref.rpc!, ref, batchId) });
      const failures = verdict.checks.flatMap((c) => c.failures.map((f) => f.code));
      expect(failures).toEqual([]);
      if (verdict.state !== 'verified') say(`verdict ${verdict.state}: ${JSON.stringify(verdict.checks.map((c) => [c.id, c.status]))} notes ${JSON.stringify(verdict.notes.map((n) => n.id))}`);
      expect(verdict.state).toBe('verified');
      const health = (await (await fetch(`${api}/health`)).json()) as { duplicates: number; rejected: Record<string, number> };
      say(`verified ${N} readings in ${verdict.summary.batches} batches; ingest since restart: duplicates ${health.duplicates}, rejected ${JSON.stringify(health.rejected)}`);
      say(`total ${elapsedS()} s`);
    },
    420_000,
  );
});
