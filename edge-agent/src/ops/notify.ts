/**
 * systemd readiness and watchdog (sd_notify(3)) through the `systemd-notify` tool: Node has no AF_UNIX
 * datagram sockets. Because the message then comes from a child process, the unit sets `NotifyAccess=all`.
 * Without NOTIFY_SOCKET (not under systemd) or without the tool, every call is a no-op.
 */
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';

export interface Notifier {
  readonly enabled: boolean;
  /** Half the unit's WatchdogSec (from WATCHDOG_USEC), or undefined when no watchdog is set. */
  readonly watchdogIntervalMs: number | undefined;
  ready(status?: string): Promise<void>;
  watchdog(): Promise<void>;
  stopping(status?: string): Promise<void>;
  status(text: string): Promise<void>;
}

const CANDIDATES = ['/usr/bin/systemd-notify', '/bin/systemd-notify'];

export async function createNotifier(env: NodeJS.ProcessEnv = process.env, log?: (msg: string) => void): Promise<Notifier> {
  let tool: string | undefined;
  if (env.NOTIFY_SOCKET !== undefined && env.NOTIFY_SOCKET !== '') {
    for (const c of CANDIDATES) {
      try {
        await access(c, constants.X_OK);
        tool = c;
        break;
      } catch {
        /* next */
      }
    }
    if (tool === undefined) log?.('NOTIFY_SOCKET is set but systemd-notify is not installed: readiness and watchdog not reported');
  }
  const usec = Number(env.WATCHDOG_USEC);
  const pidOk = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
  const watchdogIntervalMs = tool !== undefined && Number.isFinite(usec) && usec > 0 && pidOk ? Math.max(500, Math.floor(usec / 2000)) : undefined;
  const send = (args: string[]) =>
    tool === undefined
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          execFile(tool, args, { timeout: 5000, env: { ...env } }, (err) => {
            if (err) log?.(`systemd-notify failed: ${err.message}`);
            resolve();
          });
        });
  return {
    enabled: tool !== undefined,
    watchdogIntervalMs,
    ready: (status) => send(['--ready', `MAINPID=${process.pid}`, ...(status === undefined ? [] : [`STATUS=${status}`])]),
    watchdog: () => send(['WATCHDOG=1']),
    stopping: (status) => send(['STOPPING=1', ...(status === undefined ? [] : [`STATUS=${status}`])]),
    status: (text) => send([`STATUS=${text}`]),
  };
}
