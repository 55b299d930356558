// xterm's DOM renderer writes its CSS into <style> elements (theme, cell size, scrollbar) and
// colours of true-colour cells into style attributes. The page's CSP (style-src 'self', no
// 'unsafe-inline') refuses both: the terminal loses its row height (underscores clipped) and
// each page load logs refusals. Instead of weakening the CSP, what xterm writes goes where the
// CSP allows it: a <style> it creates becomes an element whose text feeds a constructed
// stylesheet adopted by the document, and a style attribute it sets goes through the CSSOM
// (`el.style.cssText`), which the CSP permits to scripts it already trusts. Markup arriving as
// data (innerHTML, a recording) gains nothing from this: the app never renders markup from data.

let installed = false;

export function cspSafeXterm() {
  if (installed) return;
  installed = true;
  class ConstructedStyle extends HTMLElement {
    constructor() {
      super();
      this.constructed = new CSSStyleSheet();
      this.text = '';
    }
    connectedCallback() {
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, this.constructed];
    }
    disconnectedCallback() {
      document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== this.constructed);
    }
    get textContent() {
      return this.text;
    }
    set textContent(v) {
      this.text = String(v ?? '');
      this.constructed.replaceSync(this.text);
    }
  }
  customElements.define('pam-constructed-style', ConstructedStyle);
  const create = Document.prototype.createElement;
  Document.prototype.createElement = function createElement(tag, opts) {
    return String(tag).toLowerCase() === 'style' ? create.call(this, 'pam-constructed-style') : create.call(this, tag, opts);
  };
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function patchedSetAttribute(name, value) {
    if (String(name).toLowerCase() === 'style' && this instanceof HTMLElement) {
      this.style.cssText = String(value);
      return;
    }
    setAttribute.call(this, name, value);
  };
}
