/**
 * What a command under test writes, kept in memory: `captureIo()` gives the stdin/stdout/stderr triple the `stele`
 * commands take (runIngest, runGateway, runVerify, …), with each output's text and its JSON log lines readable after.
 */
export class TextSink {
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
  /** The lines that are JSON objects (a service's structured log). */
  lines(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

/** A captured output, typed as the stream a command's io asks for (commands call only `write`). */
export type CapturedStream = NodeJS.WritableStream & TextSink;

export function captureIo(): { stdin: NodeJS.ReadableStream; stdout: CapturedStream; stderr: CapturedStream } {
  return { stdin: process.stdin, stdout: new TextSink() as CapturedStream, stderr: new TextSink() as CapturedStream };
}
