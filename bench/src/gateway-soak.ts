/**
 * Soak (issue #5 acceptance): the agent with 16 simulated instruments at 1 Hz keeps its RSS under 100 MB through
 * a 10-minute run.
 *
 *   npm run bench -- gateway-soak [--minutes 10] [--instruments 16] [--runner tsx|bundle] [--node-flags "..."]
 *                                 [--broker mosquitto|aedes]
 *
 * The agent is its own process (gateway-soak-agent.ts: simulated data loggers on mock serial ports, outbox,
 * signing, publisher, retention), as on a gateway; broker and ingest (with anvil) are other processes and are
 * not counted. Its RSS is read from /proc/<pid>/status (VmRSS) every second; the table gives the max per minute,
 * and the verdict takes the larger of that and the kernel's peak (VmHWM, which also sees what happens between
 * two samples). The agent's CPU time (process.cpuUsage) is reported too, for flags that trade CPU for memory.
 *
 * Runners: `tsx` (default) starts it the way `stele` starts today (TypeScript sources through tsx's loader, which
 * on Node 20 runs its hooks in a second V8 isolate); `bundle` first bundles the agent script with esbuild into one
 * ESM file (native modules left external) and runs plain `node` on it, i.e. what a built release would run, with
 * the node flags of the systemd unit (edge-agent/systemd/stele-gateway.service) unless --node-flags is given.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { toBase64Url } from '@stele/core';
import { createSoftwareKey } from '@stele/device';
import { unitNodeFlags } from '../../edge-agent/scripts/unit-flags.ts';
import { jsonLines, REPO_ROOT, sleep, spawnChild, type Child } from '../../test/e2e/chaos/processes.ts';
import { machineLine, startStack } from './gateway-stack.ts';

const DEVICE = 'gw-bench-soak';
const AGENT = join(REPO_ROOT, 'bench', 'src', 'gateway-soak-agent.ts');

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string', default: '10' },
      instruments: { type: 'string', default: '16' },
      runner: { type: 'string', default: 'tsx' },
      'node-flags': { type: 'string' },
      broker: { type: 'string' },
    },
  });
  const minutes = Number(values.minutes);
  const n = Number(values.instruments);
  const runner = values.runner;
  if (runner !== 'tsx' && runner !== 'bundle') throw new Error('--runner must be tsx or bundle');
  const nodeFlags = values['node-flags'] !== undefined ? values['node-flags'].split(' ').filter((x) => x !== '') : runner === 'bundle' ? unitNodeFlags() : [];
  const say = (s: string) => process.stderr.write(`${s}\n`);
  const dir = await mkdtemp(join(tmpdir(), 'stele-bench-soak-'));
  const stack = await startStack(dir, values.broker === undefined ? {} : { broker: values.broker as 'mosquitto' | 'aedes' });
  let agent: Child | undefined;
  try {
    const keyFile = join(dir, 'gw.pem');
    const signer = await createSoftwareKey(keyFile);
    await stack.enrol(signer, DEVICE);
    const args = ['--data', join(dir, 'gateway'), '--mqtt', stack.mqttUrl, '--device', DEVICE, '--key', keyFile, '--ingest-key', toBase64Url(stack.ingestKey), '--instruments', String(n)];
    if (runner === 'bundle') {
      const { bundleForNode } = await import('../../edge-agent/scripts/bundle.ts');
      // inside the repo, so that the external packages resolve from its node_modules
      const outfile = join(REPO_ROOT, 'node_modules', '.cache', 'stele-bench', 'soak-agent.mjs');
      await bundleForNode(AGENT, outfile);
      agent = spawnChild(process.execPath, [...nodeFlags, outfile, ...args]);
    } else {
      agent = spawnChild(process.execPath, [...nodeFlags, '--import', 'tsx', AGENT, ...args]);
    }
    const pid = agent.proc.pid!;
    let peakMb = 0; // VmHWM at the last sample
    const rssMb = async (): Promise<number> => {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      peakMb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
      return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
    };
    const perMinute: { minute: number; maxRssMb: number; taken: number; acked: number; heapMb: number }[] = [];
    const started = Date.now();
    let minuteMax = 0;
    let all = 0;
    for (let s = 1; s <= minutes * 60; s++) {
      await sleep(Math.max(0, started + s * 1000 - Date.now()));
      if (agent.proc.exitCode !== null) throw new Error(`agent exited: ${agent.errTail.join(' | ')}`);
      const rss = await rssMb();
      minuteMax = Math.max(minuteMax, rss);
      all = Math.max(all, rss);
      if (s % 60 === 0) {
        const last = jsonLines(agent.lines).at(-1) as { taken?: number; acked?: number; heapMb?: number } | undefined;
        const row = { minute: s / 60, maxRssMb: minuteMax, taken: last?.taken ?? 0, acked: last?.acked ?? 0, heapMb: last?.heapMb ?? 0 };
        perMinute.push(row);
        say(`minute ${row.minute}: max RSS ${row.maxRssMb.toFixed(1)} MB; agent says ${JSON.stringify(last)}`);
        minuteMax = 0;
      }
    }
    await agent.kill('SIGTERM');
    const final = jsonLines(agent.lines).at(-1) as { taken?: number; failed?: number; acked?: number; head?: number; cpuS?: number } | undefined;
    const command = `npm run bench -- gateway-soak --minutes ${minutes} --instruments ${n} --runner ${runner}${values['node-flags'] !== undefined ? ` --node-flags "${nodeFlags.join(' ')}"` : ''}`;
    const worst = Math.max(all, peakMb);
    const cpu = final?.cpuS === undefined ? 'not reported' : `${final.cpuS.toFixed(1)} s (${((100 * final.cpuS) / (minutes * 60)).toFixed(1)} % of one core)`;
    process.stdout.write(
      [
        `- Date: ${new Date().toISOString()}; machine: ${await machineLine()}`,
        `- Command: \`${command}\` (broker: ${stack.broker}; agent: node ${nodeFlags.join(' ')})`,
        `- ${n} instruments at 1 Hz for ${minutes} min: ${final?.taken} readings taken, ${final?.acked} acknowledged by ingest at stop, ${final?.failed} failed takes; ` +
          `agent **max RSS ${worst.toFixed(1)} MB** (sampled max ${all.toFixed(1)} MB, peak VmHWM ${peakMb.toFixed(1)} MB; limit 100 MB: ${worst < 100 ? 'PASS' : 'FAIL'}); agent CPU ${cpu}`,
        '',
        '| minute | max RSS (MB) | heap used at the minute (MB) | readings taken | acked by ingest |',
        '|---:|---:|---:|---:|---:|',
        ...perMinute.map((r) => `| ${r.minute} | ${r.maxRssMb.toFixed(1)} | ${r.heapMb.toFixed(1)} | ${r.taken} | ${r.acked} |`),
        '',
      ].join('\n'),
    );
    if (worst >= 100) process.exitCode = 1;
  } finally {
    await agent?.kill('SIGKILL');
    await stack.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
