/**
 * DOM building without markup strings: every piece of text (above all the untrusted text of a bundle) goes in as
 * a text node or an attribute value, so a bundle whose strings contain markup shows that markup as text.
 * There is no innerHTML, outerHTML, insertAdjacentHTML or document.write in this page.
 */
import type { Text } from '@stele/core/verify';

export type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined>;

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    // No event-handler attributes: listeners are added with addEventListener only.
    if (/^on/i.test(k)) throw new TypeError(`refusing attribute ${k}`);
    el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** An HTML element. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element. */
export function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * A sentence in both languages: two spans, one shown on screen by the language switch (CSS on <body>), both in
 * print (Chinese first, English beneath, VERIFIER.md §4.7).
 */
export function bi(text: Text, extra: { zhPrefix?: string; enPrefix?: string } = {}): DocumentFragment {
  const f = document.createDocumentFragment();
  f.append(
    h('span', { class: 'zh', lang: 'zh-CN' }, `${extra.zhPrefix ?? ''}${text.zh}`),
    h('span', { class: 'en', lang: 'en' }, `${extra.enPrefix ?? ''}${text.en}`),
  );
  return f;
}

/** Shorthand for a Text. */
export const T = (zh: string, en: string): Text => ({ zh, en });

export function clear(el: Element): void {
  while (el.firstChild) el.firstChild.remove();
}
