/** Test helpers around the EVM anchor reader, shared by core's and ingest's anchor suites. */
import { AnchorError } from '@stele/core/anchor/evm-reader.ts';

/** The code of the AnchorError `p` rejects with; rethrows any other error and throws when `p` resolves. */
export async function anchorCodeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AnchorError) return e.code;
    throw e;
  }
  throw new Error('expected an AnchorError');
}
