/**
 * The demo's scripted alert episodes (issue #12 acceptance): three sites, each a gateway configured the way an
 * installer configures one (a gateway.yaml with the real drivers, read by `loadConfig` and run by `startGateway`,
 * as `stele gateway run` does), each driven into one alert:
 *
 *   plant  `hj212` on a serial line: the data logger sends an hour of minute records (CN=2051) whose SO2 at the
 *          reference O2 is above the ultra-low limit 35 mg/m³ -> emission-exceedance
 *   cold   `cold-room`: two DS18B20 probes (the kernel's w1_slave files); one warms to 9.5 °C for a few samples
 *          -> cold-chain-excursion (GSP 2-8 °C; the demo site rule alerts on a peak above 9 °C at once)
 *   lab    `custody-folder`: the lab terminal writes custody events; a sample is assayed without preparation
 *          -> coal-custody-break
 *
 * Ingest evaluates its rules over what it stored; each alert's bundle (FORMAT.md §15.8) is fetched the way an
 * officer does (`stele evidence ALERT_ID`) and verified with `stele verify --trust`.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { toBase64Url } from '@stele/core';
import { loadOrCreateSoftwareSigner, makeEnrolmentRecord } from '@stele/device';
import { loadConfig, startGateway, type RunningGateway } from '@stele/edge-agent';
import { crc8Dallas, encodeFrame, formatHj212Time, MockSerialLine } from '@stele/hardware';
import type { IngestService } from '@stele/ingest';
import { hj212Instrument, softwareGatewayYaml } from './gateway-yaml.ts';

/** The three episode gateways (broker users of the same names). */
export const EPISODE_DEVICES = { plant: 'gw-demo-plant', cold: 'gw-demo-cold', lab: 'gw-demo-lab' } as const;

/** The demo site's rule sets: two shipped ones and the cold store's own (written by the demo). */
export function episodeRuleFiles(dir: string): string[] {
  return ['ultra-low-coal', 'coal-lab', join(dir, 'rules', 'cold-store-2-8.json')];
}

/** The cold store's rules: GSP 2-8 °C as shipped, with the site's peak limit 9 °C (an alert at once above it). */
const COLD_RULES = {
  format: 'stele-rules/1',
  name: 'Demo cold store: GSP 2-8 °C, site peak limit 9 °C',
  utcOffset: '+08:00',
  rules: [
    {
      id: 'demo-cold-2-8',
      type: 'cold-chain',
      standard: 'GSP 2016 appendix (温湿度自动监测); peak limit: site setting',
      version: '1',
      devices: [EPISODE_DEVICES.cold],
      params: { profile: '2-8 C', low: '2', high: '8', maxContinuousMs: 600000, peakHigh: '9' },
    },
  ],
};

const PROBES = ['28-00000000d001', '28-00000000d002'];
const MN = '010000A8900016F000169DC0';

/** The kernel's w1_slave text for `celsius` (a multiple of 1/16), with a correct Dallas CRC-8. */
function w1Slave(celsius: number): string {
  const raw16 = Math.round(celsius * 16) & 0xffff;
  const b = [raw16 & 0xff, (raw16 >> 8) & 0xff, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10];
  const crc = crc8Dallas(new Uint8Array(b));
  const hex = [...b, crc].map((x) => x.toString(16).padStart(2, '0')).join(' ');
  return `${hex} : crc=${crc.toString(16).padStart(2, '0')} YES\n${hex} t=${Math.round(celsius * 1000)}\n`;
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

/** An ISO time in +08:00 with seconds, as a lab terminal writes it. */
function beijingIso(ms: number): string {
  return `${new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19)}+08:00`;
}

export interface EpisodeContext {
  dir: string;
  mqttUrl: string;
  ingest: IngestService;
  /** Broker password per episode device (their broker users exist already). */
  passwords: Record<string, string>;
  say: (line: string) => void;
  /** The instrument hour of the plant episode (ms, a clock hour in UTC+08:00). */
  plantHourMs: number;
}

/** Runs the three episodes; resolves when every gateway's readings are acknowledged by ingest (gateways stopped). */
export async function runEpisodes(ctx: EpisodeContext): Promise<void> {
  const { dir } = ctx;
  await mkdir(join(dir, 'rules'), { recursive: true });
  await writeFile(join(dir, 'rules', 'cold-store-2-8.json'), `${JSON.stringify(COLD_RULES, null, 2)}\n`);
  const ingestKey = toBase64Url(ctx.ingest.ingestKey().publicKey);
  const gateways: RunningGateway[] = [];
  const line = new MockSerialLine('/dev/serial/by-id/usb-CEMS_logger-if00-port0');
  const w1 = join(dir, 'cold', 'w1');
  const custody = join(dir, 'lab', 'custody');
  for (const p of PROBES) await mkdir(join(w1, p), { recursive: true });
  for (const p of PROBES) await writeFile(join(w1, p, 'w1_slave'), w1Slave(5));
  await mkdir(custody, { recursive: true });

  const configOf = (name: keyof typeof EPISODE_DEVICES, instruments: string): string => {
    const id = EPISODE_DEVICES[name];
    return softwareGatewayYaml({
      comment: 'written by `stele demo`: what an installer writes to /etc/stele/gateway.yaml',
      id,
      dataDir: './data',
      keyFile: './keys/gateway.pem',
      broker: { url: ctx.mqttUrl, username: id, passwordFile: './keys/mqtt.password', resendAfter: '2s' },
      ingestKey,
      instruments: [instruments],
    });
  };
  const INSTRUMENTS = {
    plant: hj212Instrument('cems-1', line.path),
    cold: [
      '  - id: cold-1',
      '    driver: cold-room',
      '    options:',
      `      root: ${w1}`,
      `      probes: [${PROBES.join(', ')}]`,
      '      interval: 1s',
    ].join('\n'),
    lab: [
      '  - id: custody-lab',
      '    driver: custody-folder',
      '    options:',
      `      dir: ${custody}`,
      '      interval: 100ms',
      '      settle: 0',
      '      writerRenames: true',
    ].join('\n'),
  };

  try {
    for (const name of ['plant', 'cold', 'lab'] as const) {
      const id = EPISODE_DEVICES[name];
      const gwDir = join(dir, name);
      await mkdir(join(gwDir, 'keys'), { recursive: true, mode: 0o700 });
      const signer = await loadOrCreateSoftwareSigner(join(gwDir, 'keys', 'gateway.pem'));
      await ctx.ingest.enrol(makeEnrolmentRecord(signer, id, `demo site: ${name}`));
      await writeFile(join(gwDir, 'keys', 'mqtt.password'), `${ctx.passwords[id]}\n`, { mode: 0o600 });
      const file = join(gwDir, 'gateway.yaml');
      await writeFile(file, configOf(name, INSTRUMENTS[name]));
      const config = await loadConfig(file);
      gateways.push(
        await startGateway(config, {
          bindingFor: (c) => (c.driver === 'hj212' ? line.binding : undefined),
          clock: { probe: async () => ({ synced: true, via: 'demo' }) },
          healthPort: 0,
        }),
      );
      ctx.say(`gateway  ${id} from ${file} (${name === 'plant' ? 'hj212 on a serial line' : name === 'cold' ? 'cold-room: DS18B20 probes' : 'custody-folder: the lab terminal\'s events'})`);
    }
    const plant = gateways[0]!;
    for (let i = 0; i < 200 && plant.status().instruments?.[0]?.state !== 'open'; i++) await sleep(25);

    // The episodes run side by side.
    await Promise.all([
      (async () => {
        // Plant: the minute records of one clock hour (and the minutes either side), SO2 ~40 mg/m³ at O2 ~9 %:
        // corrected to 6 % O2 about 48 mg/m³, above the ultra-low limit 35.
        for (let m = -1; m <= 60; m++) {
          const t = ctx.plantHourMs + m * 60_000;
          const so2 = (39 + ((m * 7 + 60) % 5) * 0.5).toFixed(1);
          const o2 = (8.8 + ((m * 3 + 60) % 4) * 0.1).toFixed(1);
          const frame = encodeFrame({
            header: { QN: formatHj212Time(t + 30_000, true), ST: '31', CN: '2051', PW: '123456', MN, Flag: 4 },
            cp: { params: { DataTime: formatHj212Time(t, false) }, items: { a21026: { Avg: so2, Flag: 'N' }, a19001: { Avg: o2, Flag: 'N' } } },
            crc: 'hj212',
          });
          line.device.write(frame);
          await sleep(40);
        }
        ctx.say('episode  plant: the data logger sent 62 minute records (CN=2051), SO2 about 48 mg/m³ at 6 % O2');
      })(),
      (async () => {
        // Cold store: probe 2 warms above 8 °C (peak 9.5) for three samples, then recovers.
        await sleep(2_500);
        await writeAtomically(join(w1, PROBES[1]!, 'w1_slave'), w1Slave(9.5));
        await sleep(3_200);
        await writeAtomically(join(w1, PROBES[1]!, 'w1_slave'), w1Slave(5.5));
        await sleep(2_500);
        ctx.say(`episode  cold: probe ${PROBES[1]} at 9.5 °C for about 3 s (2-8 °C store)`);
      })(),
      (async () => {
        // Lab: sample S-… is sampled, then assayed without being prepared; a later sampling closes the window.
        const tag = Date.now().toString(36).toUpperCase();
        const events = [
          { file: '1-sampling', event: { step: 'sampling', by: 'li', code: `S-${tag}`, batch: `B-${tag}`, weight: '2000' } },
          { file: '2-assay', event: { step: 'assay', by: 'li', code: `A-${tag}`, fromCode: `S-${tag}`, weight: '100' } },
          { file: '3-sampling', event: { step: 'sampling', by: 'li', code: `S2-${tag}`, batch: `B2-${tag}`, weight: '2000' } },
        ];
        for (const e of events) {
          await writeAtomically(join(custody, `${tag}-${e.file}.json`), JSON.stringify({ ...e.event, at: beijingIso(Date.now()) }));
          await sleep(1_200);
        }
        ctx.say(`episode  lab: sample S-${tag} assayed without preparation`);
      })(),
    ]);
    // Every reading acknowledged by ingest before the gateways stop.
    const until = Date.now() + 30_000;
    while (Date.now() < until && gateways.some((g) => g.status().outbox.acked < g.status().outbox.head)) await sleep(100);
    const behind = gateways.filter((g) => g.status().outbox.acked < g.status().outbox.head);
    if (behind.length > 0) throw new Error(`not acknowledged: ${behind.map((g) => `${g.deviceId} ${g.status().outbox.acked}/${g.status().outbox.head}`).join(', ')}`);
  } finally {
    for (const g of gateways) await g.stop('demo done').catch(() => undefined);
  }
}
