/**
 * Issue #12 acceptance, end to end: the demo's scripted episodes on gateways configured from gateway.yaml (hj212,
 * cold-room, custody-folder) give an emission exceedance, a cold-chain excursion and a custody break; each alert's
 * bundle (written by `stele evidence` inside the demo) verifies with `stele verify --trust`, and fails with the
 * completeness code when one reading of its window is removed, with the digest code when one is altered, and with
 * ALERT_MISMATCH_ERROR when the alert's number is edited.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@stele/testkit';
import { bundleToJson, decodeReading, encodeReading, fromBase64Url, parseBundle, toBase64Url } from '@stele/core';
import { loadSoftwareSigner } from '@stele/device';
import { AlertBook, IngestService, loadRuleFiles, startAnvil, startIngestHttp } from '@stele/ingest';
import { runEvidence } from '@stele/ingest/cli';
import { episodeRuleFiles } from '@stele/simulator';
import { demo, type DemoSummary } from '@stele/simulator/demo';
import { runVerify } from '@stele/verifier';

function sink(): { write(s: string): boolean; text: string } {
  const s = { text: '', write: (c: string) => ((s.text += c), true) };
  return s;
}

let trustArgs: string[] = [];

async function verify(file: string): Promise<{ code: number; verdict: any }> {
  const stdout = sink();
  const code = await runVerify([file, '--json', ...trustArgs], { stdout, stderr: sink() });
  return { code, verdict: JSON.parse(stdout.text) };
}

const codesOf = (verdict: any): string[] => [...new Set<string>(verdict.checks.flatMap((c: any) => c.failures.map((f: any) => f.code)))];

/** The number to edit per alert kind: the value an officer acts on. */
const NUMBER: Record<string, string> = { 'emission-exceedance': 'mean', 'cold-chain-excursion': 'peak', 'coal-custody-break': 'missing' };

describe('alert episodes of the demo, end to end', () => {
  let out: string;
  let port: number;
  let summary: DemoSummary;
  let stopChain: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'stele-e2e-alerts-'));
    port = await freePort();
    const stdout = sink();
    summary = await demo({ seconds: 2, out, intervalMs: 200, batchMs: 1000, chainPort: port, serve: false, io: { stdout: stdout as never, stderr: sink() as never } });
    trustArgs = ['--trust', summary.trust.policy, '--authority-file', summary.trust.fingerprintFile];
    // The demo stopped its chain: bring it back from its saved state, as the officer's RPC endpoint.
    const node = await startAnvil({ stateDir: join(out, 'data', 'chain'), port });
    stopChain = () => node.stop();
  }, 240_000);

  afterAll(async () => {
    await stopChain?.();
    await rm(out, { recursive: true, force: true });
  });

  it('gives the three alerts, each verified by `stele verify --trust` during the demo', () => {
    expect(summary.alerts.map((a) => [a.kind, a.verdict])).toEqual([
      ['emission-exceedance', 'verified'],
      ['cold-chain-excursion', 'verified'],
      ['coal-custody-break', 'verified'],
    ]);
  });

  it("ingest's alert routes and `stele evidence`, over the demo's store: list, one alert, its bundle, and errors with codes", async () => {
    // The demo's store, opened again with the same code as `stele ingest run --rules` (the demo has stopped).
    const signer = await loadSoftwareSigner(join(out, 'data', 'keys', 'ingest.pem'));
    const service = await IngestService.openOffline({ dataDir: join(out, 'data', 'ingest'), signer, issuer: 'stele-ingest-demo' });
    const book = new AlertBook(service, await loadRuleFiles(episodeRuleFiles(join(out, 'episodes'))));
    const http = await startIngestHttp({ service, alerts: book });
    const bare = await startIngestHttp({ service });
    try {
      const list = (await (await fetch(`${http.url}/alerts`)).json()) as { alerts: { id: string; kind: string; devices: string[] }[] };
      for (const a of summary.alerts) expect(list.alerts.find((x) => x.id === a.id)).toMatchObject({ kind: a.kind, devices: [a.device] });
      const one = summary.alerts[0]!;
      const alert = (await (await fetch(`${http.url}/alerts/${one.id}`)).json()) as { id: string; rule: { id: string } };
      expect(alert).toMatchObject({ id: one.id, rule: { id: 'ultra-low-coal' } });
      const bundle = (await (await fetch(`${http.url}/alerts/${one.id}/bundle`)).json()) as { alert: { id: string } };
      expect(bundle.alert.id).toBe(one.id);
      const notFound = await fetch(`${http.url}/alerts/${'0'.repeat(64)}`);
      expect([notFound.status, ((await notFound.json()) as { code: string }).code]).toEqual([404, 'INGEST_ALERT_NOT_FOUND']);
      const badId = await fetch(`${http.url}/alerts/not-an-id`);
      expect([badId.status, ((await badId.json()) as { code: string }).code]).toEqual([400, 'HTTP_BAD_REQUEST']);
      const noRules = await fetch(`${bare.url}/alerts`);
      expect([noRules.status, ((await noRules.json()) as { code: string }).code]).toEqual([404, 'INGEST_NO_RULES']);
      // The CLI: the list, and a refusal with its code.
      const listed = sink();
      expect(await runEvidence(['--url', http.url], { stdout: listed, stderr: sink() })).toBe(0);
      for (const a of summary.alerts) expect(listed.text).toContain(a.id);
      const refused = sink();
      expect(await runEvidence(['0'.repeat(64), '--url', http.url], { stdout: sink(), stderr: refused })).toBe(1);
      expect(refused.text).toContain('INGEST_ALERT_NOT_FOUND');
      expect(await runEvidence(['nope', '--url', http.url], { stdout: sink(), stderr: sink() })).toBe(2);
    } finally {
      await http.close();
      await bare.close();
      await service.stop();
    }
  });

  describe.each(['emission-exceedance', 'cold-chain-excursion', 'coal-custody-break'])('the %s bundle', (kind) => {
    let file: string;
    let bundle: any;
    beforeAll(async () => {
      file = summary.alerts.find((a) => a.kind === kind)!.file;
      bundle = JSON.parse(await readFile(file, 'utf8'));
    });
    const variant = async (name: string, edit: (b: any) => void): Promise<{ code: number; verdict: any }> => {
      const b = structuredClone(bundle);
      edit(b);
      const path = join(out, `${kind}-${name}.bundle.json`);
      await writeFile(path, `${JSON.stringify(b, null, 2)}\n`);
      return verify(path);
    };
    /** An entry of a reading the alert uses, away from the window's ends. */
    const usedSeq = (b: any): number => b.alert.readings[Math.floor(b.alert.readings.length / 2)].seq;

    it('verifies with the trust policy (exit 0) and check 9 recomputes the alert', async () => {
      const r = await verify(file);
      expect(r.code).toBe(0);
      expect(r.verdict.state).toBe('verified');
      const check9 = r.verdict.checks.find((c: any) => c.id === 'alert');
      expect(check9.status).toBe('pass');
      expect(r.verdict.summary.alert).toMatchObject({ kind, values: bundle.alert.values, recomputed: bundle.alert.values });
    });

    it('one reading of its window removed: SEQUENCE_GAP_ERROR', async () => {
      const r = await variant('removed', (b) => {
        // `stele evidence` writes the compact form (FORMAT.md §7.1): the entry is removed and the bundle rewritten so
        // that it stays readable (left out by hand, its leaf is missing from the batch's nodes: BUNDLE_FORMAT_ERROR).
        expect(b.format).toBe('stele-evidence/2');
        const seq = usedSeq(b);
        const parsed = parseBundle(b);
        parsed.entries = parsed.entries.filter((e) => e.seq !== seq);
        const rewritten = bundleToJson(parsed);
        for (const k of Object.keys(b)) delete b[k];
        Object.assign(b, rewritten);
      });
      expect(r.code).toBe(1);
      expect(codesOf(r.verdict)).toContain('SEQUENCE_GAP_ERROR');
    });

    it('one reading altered: DIGEST_MISMATCH_ERROR', async () => {
      const r = await variant('altered', (b) => {
        const e = b.entries.find((x: any) => x.seq === usedSeq(b));
        const reading = decodeReading(fromBase64Url(e.reading));
        reading.meas[0]!.value = reading.meas[0]!.value === '0' ? '1' : '0';
        e.reading = toBase64Url(encodeReading(reading));
      });
      expect(r.code).toBe(1);
      expect(codesOf(r.verdict)).toContain('DIGEST_MISMATCH_ERROR');
    });

    it("the alert's number edited: ALERT_MISMATCH_ERROR and nothing else", async () => {
      const key = NUMBER[kind]!;
      expect(bundle.alert.values[key]).toBeDefined();
      const r = await variant('edited', (b) => {
        b.alert.values[key] = `${b.alert.values[key]}0`;
      });
      expect(r.code).toBe(1);
      expect(codesOf(r.verdict)).toEqual(['ALERT_MISMATCH_ERROR']);
      const f = r.verdict.checks.find((c: any) => c.id === 'alert').failures[0];
      expect(f.path).toBe(`$.alert.values.${key}`);
      expect(f.sentence.zh).toContain('与告警值');
    });
  });
});
