/**
 * Text decoding and RFC 4180 CSV tokenising for instrument run files. Instrument PCs in Chinese labs write CSV in
 * GBK/GB18030 as often as in UTF-8; `decodeText` takes the declared encoding or detects it (BOM, then strict
 * UTF-8, then GB18030, which is a superset of GBK). Decoding is always fatal: a byte that does not decode is
 * COAL_BAD_ENCODING, never a silent U+FFFD.
 */
import { CoalError } from './errors.ts';

export type CoalTextEncoding = 'utf-8' | 'gb18030' | 'gbk' | 'auto';

/** Decodes file bytes. Returns the text (BOM removed) and the encoding actually used. */
export function decodeText(bytes: Uint8Array, encoding: CoalTextEncoding = 'auto'): { text: string; encoding: 'utf-8' | 'gb18030' } {
  const hasBom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  const tryDecode = (label: 'utf-8' | 'gb18030'): string | undefined => {
    try {
      // ignoreBOM: false strips a UTF-8 BOM; GB18030 has its own BOM form (84 31 95 33), stripped below.
      return new TextDecoder(label, { fatal: true }).decode(bytes);
    } catch {
      return undefined;
    }
  };
  if (encoding === 'gbk' || encoding === 'gb18030') {
    // WHATWG: the "gbk" label decodes with the GB18030 decoder.
    const text = tryDecode('gb18030');
    if (text === undefined) throw new CoalError('COAL_BAD_ENCODING', 'bytes are not valid GB18030/GBK', { where: { encoding } });
    return { text: text.replace(/^\uFEFF/, ''), encoding: 'gb18030' };
  }
  if (encoding === 'utf-8' || hasBom) {
    const text = tryDecode('utf-8');
    if (text === undefined) throw new CoalError('COAL_BAD_ENCODING', 'bytes are not valid UTF-8', { where: { encoding: 'utf-8' } });
    return { text, encoding: 'utf-8' };
  }
  if (encoding !== 'auto') throw new RangeError(`unknown encoding ${JSON.stringify(encoding)}`);
  const asUtf8 = tryDecode('utf-8');
  if (asUtf8 !== undefined) return { text: asUtf8, encoding: 'utf-8' };
  const asGb = tryDecode('gb18030');
  if (asGb !== undefined) return { text: asGb.replace(/^\uFEFF/, ''), encoding: 'gb18030' };
  throw new CoalError('COAL_BAD_ENCODING', 'bytes are neither UTF-8 nor GB18030', { where: { encoding } });
}

export interface CsvRow {
  /** 1-based line number where the row starts. */
  line: number;
  fields: string[];
}

/**
 * RFC 4180 rows: fields separated by `delimiter`, optionally quoted with `"` (`""` inside quotes is one quote,
 * line breaks inside quotes are kept); rows end at CR LF, LF or CR. Empty rows are skipped. A quote inside an
 * unquoted field, text after a closing quote, or a quote left open is COAL_BAD_CSV with `where.line`.
 */
export function parseCsv(text: string, delimiter = ','): CsvRow[] {
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new RangeError('delimiter must be one character other than a quote or a line break');
  }
  const rows: CsvRow[] = [];
  let fields: string[] = [];
  let field = '';
  let inQuotes = false;
  let afterQuote = false;
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  const bad = (message: string): never => {
    throw new CoalError('COAL_BAD_CSV', message, { where: { line } });
  };
  const endRow = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '' && !quoted)) rows.push({ line: rowLine, fields });
    fields = [];
    field = '';
    afterQuote = false;
    quoted = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          inQuotes = false;
          afterQuote = true;
        }
      } else {
        if (c === '\n' || (c === '\r' && text[i + 1] !== '\n')) line++;
        field += c;
      }
      continue;
    }
    if (c === delimiter) {
      fields.push(field);
      field = '';
      afterQuote = false;
      continue;
    }
    if (c === '\r' || c === '\n') {
      endRow();
      if (c === '\r' && text[i + 1] === '\n') i++;
      line++;
      rowLine = line;
      continue;
    }
    if (afterQuote) {
      if (c === ' ' || c === '\t') continue; // padding after a closing quote
      bad('text after a closing quote');
    }
    if (c === '"') {
      if (field.trim() !== '') bad('quote inside an unquoted field');
      field = '';
      inQuotes = true;
      quoted = true;
      continue;
    }
    field += c;
  }
  if (inQuotes) bad('quote left open at end of file');
  if (field !== '' || fields.length > 0 || quoted) endRow();
  return rows;
}
