/**
 * A package's public surface: for each entry point in its package.json `exports`, the names it exports (values and
 * types, as TypeScript's checker sees them through `export *` and renames). The surface tests pin these lists, so
 * adding or removing an export is a visible change to a list, not a side effect of moving a file.
 *
 * `@stele/testkit/surface`, apart from the index: it loads the TypeScript compiler (the root devDependency).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export interface EntrySurface {
  /** every exported name, sorted */
  names: string[];
  /** the names that exist at run time (not type-only), sorted */
  values: string[];
}

/** The surface of the package whose package.json is at `packageJson` (a file URL or path), per `exports` key. */
export function surfaceOf(packageJson: URL | string): Record<string, EntrySurface> {
  const path = packageJson instanceof URL ? fileURLToPath(packageJson) : packageJson;
  const dir = dirname(path);
  const pkg = JSON.parse(readFileSync(path, 'utf8')) as { name: string; exports?: Record<string, string> };
  const entries = Object.entries(pkg.exports ?? {}).map(([key, file]) => ({ key, file: join(dir, file) }));
  const program = ts.createProgram(
    entries.map((e) => e.file),
    {
      allowImportingTsExtensions: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      noEmit: true,
      skipLibCheck: true,
      noLib: true,
      types: [],
    },
  );
  const checker = program.getTypeChecker();
  const out: Record<string, EntrySurface> = {};
  for (const { key, file } of entries) {
    const sf = program.getSourceFile(file);
    const sym = sf && checker.getSymbolAtLocation(sf);
    if (!sym) throw new Error(`${pkg.name}: the entry point ${key} (${file}) is not a module`);
    const names: string[] = [];
    const values: string[] = [];
    for (const e of checker.getExportsOfModule(sym)) {
      const target = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
      const name = e.escapedName.toString();
      names.push(name);
      if (target.flags & ts.SymbolFlags.Value && !isTypeOnlyExport(e)) values.push(name);
    }
    out[key] = { names: names.sort(), values: values.sort() };
  }
  return out;
}

/** `export type { X }` or `export { type X }` of a class or const: a type at run time's eyes. */
function isTypeOnlyExport(symbol: ts.Symbol): boolean {
  return (symbol.declarations ?? []).some((d) => (ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly)));
}
