#!/usr/bin/env node
/**
 * Rewrites every import of another workspace package's file (`@stele/core/verify/index.ts`) to one of that
 * package's entry points (`@stele/core/verify`), as listed in its package.json `exports` (issue 10 item 1; see
 * docs/developer.md, "Lint and package boundaries").
 *
 *   node scripts/rewrite-imports.mjs          rewrite the files in place; prints what it changed
 *   node scripts/rewrite-imports.mjs --check  change nothing; exit 1 when a deep import is left
 *
 * How an entry point is chosen, for each imported name: the entry points of the target package that export the
 * very same declaration (TypeScript's checker follows `export *` and renames), the one with the fewest exports
 * first (`@stele/core/verify` before `@stele/core`), so a lazily loaded CLI stays small. An `import()` whose names
 * cannot be read (`(await import(x)) as T`), a namespace import and a side-effect import need an entry point that
 * exports everything the file exports. Imports from the same entry point in one file are merged. A name no entry
 * point exports stops the run with a list: export it from an entry point (or add one) and run again.
 *
 * Idempotent (a second run finds nothing to do) and independent of the tree's history: the lead re-runs it after a
 * merge. Plain JavaScript, so it runs with `node` alone; it needs the `typescript` devDependency.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');

// ---- the workspace: package name -> { dir, entries: [{ subpath, file }] }
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const packages = new Map();
for (const ws of rootPkg.workspaces) {
  const pkg = JSON.parse(readFileSync(join(root, ws, 'package.json'), 'utf8'));
  const entries = [];
  for (const [key, value] of Object.entries(pkg.exports ?? {})) {
    const target = typeof value === 'string' ? value : (value.import ?? value.default);
    if (key.includes('*') || typeof target !== 'string' || !/\.(ts|mts|js|mjs)$/.test(target)) continue;
    entries.push({ specifier: key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`, file: join(root, ws, target) });
  }
  packages.set(pkg.name, { dir: join(root, ws), entries });
}

/** `@stele/core/verify/index.ts` -> { pkg, file } when it names a file rather than an entry point. */
function deepTarget(specifier) {
  const m = /^(@stele\/[^/]+)\/(.+)$/.exec(specifier);
  if (!m) return undefined;
  const pkg = packages.get(m[1]);
  if (!pkg || pkg.entries.some((e) => e.specifier === specifier)) return undefined;
  for (const candidate of [join(pkg.dir, 'src', m[2]), join(pkg.dir, m[2])]) {
    if (existsSync(candidate) && /\.(ts|mts|js|mjs)$/.test(candidate)) return { pkgName: m[1], pkg, file: candidate };
  }
  return { pkgName: m[1], pkg, file: undefined };
}

// ---- the files to rewrite: every tracked source file outside node_modules and dist
const files = execFileSync('git', ['ls-files', '-z', '--', '*.ts', '*.mts', '*.tsx', '*.mjs', '*.js'], { cwd: root, encoding: 'utf8' })
  .split('\0')
  .filter((f) => f && !/(^|\/)(node_modules|dist)\//.test(f) && f !== 'scripts/rewrite-imports.mjs')
  .map((f) => join(root, f));

/** Every module specifier in a file that names another package's file, with the names taken from it. */
function findSites(file, text) {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS);
  const sites = [];
  const visit = (node) => {
    let lit;
    let names; // undefined: every export of the file is needed
    let kind;
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      lit = node.moduleSpecifier;
      kind = 'import';
      const clause = node.importClause;
      if (clause && !clause.name && clause.namedBindings && ts.isNamedImports(clause.namedBindings)) {
        names = clause.namedBindings.elements.map((e) => (e.propertyName ?? e.name).text);
      }
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      lit = node.moduleSpecifier;
      kind = 'export';
      if (node.exportClause && ts.isNamedExports(node.exportClause)) names = node.exportClause.elements.map((e) => (e.propertyName ?? e.name).text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      lit = node.arguments[0];
      kind = 'dynamic';
      names = dynamicNames(node);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      lit = node.argument.literal;
      kind = 'type';
      if (node.qualifier) names = [ts.isIdentifier(node.qualifier) ? node.qualifier.text : leftmost(node.qualifier)];
    }
    if (lit) {
      const target = deepTarget(lit.text);
      if (target) sites.push({ node, lit, kind, names, target });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return { sf, sites };
}

function leftmost(q) {
  return ts.isIdentifier(q) ? q.text : leftmost(q.left);
}

/** The names read from `(await import(x)).name` or `const { a, b } = await import(x)`; else undefined. */
function dynamicNames(call) {
  let n = call.parent;
  if (n && ts.isAwaitExpression(n)) n = n.parent;
  else return undefined;
  while (n && ts.isParenthesizedExpression(n)) n = n.parent;
  if (n && ts.isPropertyAccessExpression(n)) return [n.name.text];
  if (n && ts.isVariableDeclaration(n) && ts.isObjectBindingPattern(n.name)) {
    const out = [];
    for (const el of n.name.elements) {
      if (el.dotDotDotToken) return undefined;
      const key = el.propertyName ?? el.name;
      if (!ts.isIdentifier(key)) return undefined;
      out.push(key.text);
    }
    return out;
  }
  return undefined;
}

// ---- pass 1: find the sites
const perFile = [];
const targetFiles = new Set();
const problems = [];
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  if (!text.includes('@stele/')) continue;
  const { sf, sites } = findSites(file, text);
  if (!sites.length) continue;
  for (const s of sites) {
    if (!s.target.file) problems.push(`${relative(root, file)}: '${s.lit.text}' names no file of ${s.target.pkgName}`);
    else targetFiles.add(s.target.file);
  }
  perFile.push({ file, text, sf, sites });
}

if (!perFile.length) {
  process.stdout.write('rewrite-imports: no deep imports across packages\n');
  process.exit(problems.length ? 1 : 0);
}
if (check) {
  for (const { file, sites } of perFile) for (const s of sites) process.stdout.write(`${relative(root, file)}: ${s.lit.text}\n`);
  process.stdout.write(`rewrite-imports --check: ${perFile.reduce((n, f) => n + f.sites.length, 0)} deep imports in ${perFile.length} files\n`);
  process.exit(1);
}

// ---- pass 2: what each entry point and each target file exports, as declarations
const entryFiles = [...packages.values()].flatMap((p) => p.entries.map((e) => e.file));
const program = ts.createProgram([...new Set([...entryFiles, ...targetFiles])], {
  allowJs: true,
  allowImportingTsExtensions: true,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  noEmit: true,
  skipLibCheck: true,
  types: [],
});
const checker = program.getTypeChecker();
const exportCache = new Map();
/** name -> declaration symbol, for one module file. */
function exportsOf(file) {
  if (exportCache.has(file)) return exportCache.get(file);
  const sf = program.getSourceFile(file);
  const map = new Map();
  const sym = sf && checker.getSymbolAtLocation(sf);
  if (sym) {
    for (const e of checker.getExportsOfModule(sym)) {
      const target = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
      map.set(e.escapedName.toString(), target);
    }
  }
  exportCache.set(file, map);
  return map;
}

/** The entry point for a set of names from a file (names undefined: all of them), or a list of the missing. */
function chooseEntries(target, names) {
  const fileExports = exportsOf(target.file);
  const entries = target.pkg.entries.map((e) => ({ ...e, exports: exportsOf(e.file) })).sort((a, b) => a.exports.size - b.exports.size);
  const wanted = names ?? [...fileExports.keys()];
  const exact = entries.find((e) => e.file === target.file);
  if (!names && exact) return { whole: exact.specifier };
  const pick = (name) => {
    const decl = fileExports.get(name);
    if (!decl) return undefined;
    return entries.find((e) => e.exports.get(name) === decl)?.specifier;
  };
  if (!names) {
    // every export: one entry point must have them all
    const whole = entries.find((e) => wanted.every((n) => e.exports.get(n) === fileExports.get(n)));
    return whole ? { whole: whole.specifier } : { missing: wanted.filter((n) => !entries.some((e) => e.exports.get(n) === fileExports.get(n))) };
  }
  const single = entries.find((e) => wanted.every((n) => fileExports.has(n) && e.exports.get(n) === fileExports.get(n)));
  const perName = new Map();
  const missing = [];
  for (const n of wanted) {
    const s = pick(n);
    if (s) perName.set(n, s);
    else missing.push(n);
  }
  if (missing.length) return { missing };
  const distinct = new Set(perName.values());
  if (distinct.size === 1 || !single) return { perName };
  return { perName };
}

// ---- pass 3: rewrite
let changedFiles = 0;
let rewritten = 0;
for (const { file, text, sf, sites } of perFile) {
  /** edits: [start, end, replacement] */
  const edits = [];
  /** merged named imports: key -> { first edit index, specs[] } */
  const groups = new Map();
  for (const s of sites) {
    if (!s.target.file) continue;
    const where = `${relative(root, file)}:${sf.getLineAndCharacterOfPosition(s.lit.getStart()).line + 1}`;
    const choice = chooseEntries(s.target, s.names);
    if (choice.missing) {
      problems.push(`${where}: ${choice.missing.join(', ')} from '${s.lit.text}': no entry point of ${s.target.pkgName} exports ${choice.missing.length > 1 ? 'them' : 'it'}`);
      continue;
    }
    rewritten++;
    if (choice.whole) {
      edits.push([s.lit.getStart() + 1, s.lit.getEnd() - 1, choice.whole]);
      continue;
    }
    const specifiers = new Set(choice.perName.values());
    if (s.kind === 'import' && s.node.importClause?.namedBindings) {
      // regroup the named imports by entry point; merged with other rewritten imports of the same entry point
      const typeOnly = !!s.node.importClause.isTypeOnly;
      for (const el of s.node.importClause.namedBindings.elements) {
        const spec = choice.perName.get((el.propertyName ?? el.name).text);
        const key = `${typeOnly ? 'type ' : ''}${spec}`;
        if (!groups.has(key)) groups.set(key, { typeOnly, spec, elements: [], anchor: s.node });
        groups.get(key).elements.push(el.getText(sf));
      }
      edits.push({ remove: s.node });
      continue;
    }
    if (specifiers.size > 1) {
      problems.push(`${where}: '${s.lit.text}': its names come from ${[...specifiers].join(' and ')}; split this ${s.kind} by hand`);
      rewritten--;
      continue;
    }
    edits.push([s.lit.getStart() + 1, s.lit.getEnd() - 1, [...specifiers][0]]);
  }
  // turn the removed import declarations into the merged ones: each group is written where its first member was
  const written = new Set();
  const final = [];
  for (const e of edits) {
    if (Array.isArray(e)) {
      final.push(e);
      continue;
    }
    const node = e.remove;
    const lines = [];
    for (const [key, g] of groups) {
      if (g.anchor !== node || written.has(key)) continue;
      written.add(key);
      lines.push(formatImport(g));
    }
    let start = node.getStart(sf);
    let end = node.getEnd();
    if (!lines.length) {
      // nothing written here: drop the declaration with its line break
      while (end < text.length && (text[end] === ' ' || text[end] === '\t')) end++;
      if (text[end] === '\n') end++;
    }
    final.push([start, end, lines.join('\n')]);
  }
  if (!final.length) continue;
  // A group's anchor is its first member; later members were removed above. Apply from the end.
  final.sort((a, b) => b[0] - a[0]);
  let out = text;
  for (const [start, end, replacement] of final) out = out.slice(0, start) + replacement + out.slice(end);
  if (out !== text) {
    writeFileSync(file, out);
    changedFiles++;
    process.stdout.write(`rewrote ${relative(root, file)}\n`);
  }
}

function formatImport(g) {
  const elements = [...new Set(g.elements)];
  const head = `import ${g.typeOnly ? 'type ' : ''}{ `;
  const oneLine = `${head}${elements.join(', ')} } from '${g.spec}';`;
  if (oneLine.length <= 150) return oneLine;
  return `import ${g.typeOnly ? 'type ' : ''}{\n${elements.map((e) => `  ${e},`).join('\n')}\n} from '${g.spec}';`;
}

process.stdout.write(`rewrite-imports: ${rewritten} deep imports rewritten in ${changedFiles} files\n`);
if (problems.length) {
  process.stderr.write(`rewrite-imports: ${problems.length} left as they were:\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
  process.exit(1);
}
