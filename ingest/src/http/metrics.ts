/**
 * GET /metrics: Prometheus text format 0.0.4, one set per worker (issue #11 item 6). Every series carries
 * `worker="<--worker-id>"`, so the workers sharing one store are told apart on one dashboard; counters marked
 * "this process" restart at 0 with the worker (Prometheus' rate() handles that).
 */
import type { IngestService } from '../service.ts';

/** A label value escaped as the text format wants (backslash, double quote, newline). */
export function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function metricsText(service: IngestService, workerId: string): string {
  const s = service.stats();
  const a = service.anchoring();
  const w = `worker="${labelValue(workerId)}"`;
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number, labels = ''): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}{${w}${labels}} ${value}`);
  };
  metric('stele_ingest_received_total', 'counter', 'Messages received from the broker (this process).', s.received);
  metric('stele_ingest_verified_total', 'counter', 'Statements whose signature and body checked (this process).', s.verified);
  metric('stele_ingest_committed_total', 'counter', 'Statements this process committed to the store.', s.committed);
  metric('stele_ingest_sealed_total', 'counter', 'Leaves this process sealed into batches.', s.sealed);
  metric('stele_ingest_readings_total', 'counter', 'Statements committed (since the store was created).', s.readings);
  metric('stele_ingest_batches_total', 'counter', 'Batches cut.', s.batches);
  metric('stele_ingest_anchored_total', 'counter', 'Batches anchored.', s.anchored);
  metric('stele_ingest_duplicates_total', 'counter', 'Redelivered statements re-acked (this process).', s.duplicates);
  metric('stele_ingest_pending', 'gauge', 'Leaves committed but not in a batch yet.', s.pending);
  metric('stele_ingest_buffered', 'gauge', 'Statements held in reorder buffers.', s.buffered);
  metric('stele_ingest_queued', 'gauge', 'Messages received and not processed yet.', s.queued);
  metric('stele_ingest_queued_bytes', 'gauge', 'Payload bytes of the messages received and not processed yet.', s.queuedBytes);
  metric('stele_ingest_queued_bytes_limit', 'gauge', 'Queued bytes beyond which a message is shed (--queue-bytes).', s.queuedBytesLimit);
  metric('stele_ingest_lag_seconds', 'gauge', 'How long the oldest message still queued has waited.', s.lagSeconds);
  metric('stele_ingest_anchor_failures_total', 'counter', 'Failed anchor attempts (this process).', s.anchorFailures);
  metric('stele_ingest_anchors_lost_total', 'counter', 'Anchors found lost or reorged on chain and anchored again (alarm).', s.anchorsLost);
  metric('stele_ingest_unanchored', 'gauge', 'Batches whose anchor is not final yet.', a.unanchored);
  metric('stele_ingest_chain_up', 'gauge', '0 while the last anchoring attempt could not reach the chain.', a.chainDownSinceMs === undefined ? 1 : 0);
  metric('stele_ingest_shed_total', 'counter', 'Messages shed because a receive queue was full (this process).', s.shed);
  metric('stele_ingest_rejects_suppressed_total', 'counter', 'Rejections counted but not logged or published (rate limit, this process).', s.rejectsSuppressed);
  metric('stele_ingest_anchored_confirmations_skipped_total', 'counter', 'Batches whose anchored confirmations were skipped, too many still in flight (this process).', s.anchoredSkipped);
  lines.push('# HELP stele_ingest_rejected_total Rejected statements by code (this process).', '# TYPE stele_ingest_rejected_total counter');
  for (const [code, n] of Object.entries(s.rejected).sort()) lines.push(`stele_ingest_rejected_total{${w},code="${labelValue(code)}"} ${n}`);
  return `${lines.join('\n')}\n`;
}
