/**
 * The gateway.yaml an installer writes for a gateway with a software key (docs/gateway-install.md), for the demo,
 * its episodes and the benches that run gateways through startGateway / `stele gateway run`. One writer, so the
 * demo and the benches cannot drift from each other or from the config the product reads.
 */
export interface SoftwareGatewayYaml {
  /** First line, after `# `: who wrote it. */
  comment: string;
  id: string;
  dataDir: string;
  keyFile: string;
  broker: { url: string; username?: string; passwordFile?: string; resendAfter?: string };
  /** ingest's public key, base64url. */
  ingestKey: string;
  /** Readings kept after their acknowledgement (default: the config's own). */
  retention?: { keepAcked: string; keepReadings: number };
  /** Each instrument as its YAML list item (lines starting `  - id: ...`). */
  instruments: string[];
}

/** The YAML text; the ops port is 0 (a free one: startGateway is given healthPort 0 too). */
export function softwareGatewayYaml(o: SoftwareGatewayYaml): string {
  const q = (s: string) => JSON.stringify(s);
  return [
    `# ${o.comment}`,
    'gateway:',
    `  id: ${o.id}`,
    `  dataDir: ${q(o.dataDir)}`,
    'key:',
    '  software:',
    `    path: ${q(o.keyFile)}`,
    'broker:',
    `  url: ${o.broker.url}`,
    ...(o.broker.username === undefined ? [] : [`  username: ${o.broker.username}`]),
    ...(o.broker.passwordFile === undefined ? [] : [`  passwordFile: ${q(o.broker.passwordFile)}`]),
    ...(o.broker.resendAfter === undefined ? [] : [`  resendAfter: ${o.broker.resendAfter}`]),
    'ingest:',
    `  publicKey: ${o.ingestKey}`,
    'health:',
    '  port: 0',
    ...(o.retention === undefined ? [] : ['retention:', `  keepAcked: ${o.retention.keepAcked}`, `  keepReadings: ${o.retention.keepReadings}`]),
    'instruments:',
    ...o.instruments,
    '',
  ].join('\n');
}

/** An hj212 instrument on a serial port, as its YAML list item. */
export function hj212Instrument(id: string, port: string): string {
  return [`  - id: ${id}`, '    driver: hj212', `    port: ${JSON.stringify(port)}`, '    baud: 9600'].join('\n');
}
