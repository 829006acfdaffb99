/** Test helpers around the EVM anchor reader. */
import { AnchorError } from '@stele/core/anchor';
import { codeOf } from '@stele/testkit';

/** The code of the AnchorError `p` rejects with; rethrows any other error and throws when `p` resolves. */
export const anchorCodeOf = (p: Promise<unknown>): Promise<string> => codeOf(p, AnchorError);
