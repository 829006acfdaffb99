/**
 * The report's QR code (VERIFIER.md §4.7): the identifiers only (bundle digest, chain, contract, transactions,
 * policy digest), never the bundle. Encoded with qrcode-generator (MIT, no dependencies), drawn as one SVG path.
 */
import qrcode from 'qrcode-generator';
import { s } from './dom.ts';

export interface Identifiers {
  bundleSha256: string;
  chainId?: number;
  contract?: string;
  txHashes: string[];
  policySha256?: string;
}

/** Most transactions named in the QR text; the rest are counted (the report lists them all). */
const MAX_TX_IN_QR = 4;

/** The QR text: one `key=value` per line, stable order. */
export function identifierText(ids: Identifiers): string {
  const lines = ['STELE-EVIDENCE/1', `bundle-sha256=${ids.bundleSha256}`];
  if (ids.chainId !== undefined) lines.push(`chain=${ids.chainId}`);
  if (ids.contract !== undefined) lines.push(`contract=${ids.contract}`);
  for (const tx of ids.txHashes.slice(0, MAX_TX_IN_QR)) lines.push(`tx=${tx}`);
  if (ids.txHashes.length > MAX_TX_IN_QR) lines.push(`tx-more=${ids.txHashes.length - MAX_TX_IN_QR}`);
  if (ids.policySha256 !== undefined) lines.push(`policy-sha256=${ids.policySha256}`);
  return lines.join('\n');
}

/** An SVG QR code of `text` (error correction M, smallest version that fits), with a 4-module quiet zone. */
export function qrSvg(text: string, label: string): SVGElement {
  const qr = qrcode(0, 'M');
  qr.addData(text, 'Byte');
  qr.make();
  const n = qr.getModuleCount();
  const d: string[] = [];
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) if (qr.isDark(r, c)) d.push(`M${c + 4} ${r + 4}h1v1h-1z`);
  const size = n + 8;
  return s(
    'svg',
    { viewBox: `0 0 ${size} ${size}`, class: 'qr', role: 'img', 'aria-label': label, 'shape-rendering': 'crispEdges' },
    s('rect', { width: size, height: size, fill: '#fff' }),
    s('path', { d: d.join(''), fill: '#000' }),
  );
}
