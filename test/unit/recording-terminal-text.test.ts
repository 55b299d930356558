import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asciicastToText } from '../../recorder/asciicast-text.js';
import { keyParts, plainText, printableKeys, stripKeyEscapes, stripOutputEscapes } from '../../recorder/terminal-escapes.js';
import { TypedLine, TypedLines } from '../../recorder/typed-line.js';
import { mask } from '../../proxy/ssh/channel-tap.js';

const ESC = '\x1b';

describe('terminal-escapes: output', () => {
  it('removes CSI, OSC (BEL, ST or cut off), string controls and short forms, and controls but tab and newline', () => {
    const s = `${ESC}]0;title${ESC}\\${ESC}[1;32mgreen${ESC}[0m ${ESC}(B${ESC}7x${ESC}8${ESC}=\t${ESC}P1$r${ESC}\\ok\x07\x00\x9b\r\nend${ESC}]2;cut off`;
    expect(plainText(s)).toBe('green x\tok\nend');
    expect(plainText(`${ESC}]0;t\x07a\rb`)).toBe('a\nb');
  });

  it('keeps carriage returns and backspaces for the text export to resolve', () => {
    expect(stripOutputEscapes(`${ESC}[31mab\b\rc${ESC}[K`)).toBe('ab\b\rc');
    const cast = [JSON.stringify({ version: 2, width: 80, height: 24 }), JSON.stringify([0.1, 'o', `${ESC}]0;t\x07$ ${ESC}[1mls${ESC}[0m\r\nfile\rFILE\r\n`]), JSON.stringify([0.2, 'm', 'exec: ls'])].join('\n');
    expect(asciicastToText(cast)).toBe('$ ls\nFILE\n\n# [0.200] exec: ls\n');
  });
});

describe('terminal-escapes: keys', () => {
  it('drops arrows, SS3 keys and Alt+key, and never swallows what follows an OSC-looking key', () => {
    expect(stripKeyEscapes(`${ESC}[Als${ESC}OD${ESC}b -l${ESC}[1;5C`)).toBe('ls -l');
    expect(stripKeyEscapes(`${ESC}]rm -rf /`)).toBe('rm -rf /');
    expect(printableKeys(`l\x7fs\r${ESC}[A`)).toBe('ls');
  });

  it('cuts any keystrokes into printable runs and control keys that join back to the input', () => {
    const key = fc.constantFrom('a', 'é', '😀', ' ', '\r', '\x7f', '\x03', ESC, `${ESC}[A`, `${ESC}OB`, `${ESC}[1;5C`, `${ESC}b`, '[', 'O');
    fc.assert(fc.property(fc.array(key, { maxLength: 30 }), (keys) => {
      const s = keys.join('');
      const parts = [...keyParts(s)];
      expect(parts.map((p) => p.text).join('')).toBe(s);
      expect(parts.filter((p) => !p.control).map((p) => p.text).join('')).toBe(printableKeys(s));
      // Masking keeps every control key and one star per printable character.
      expect([...mask(s)].length).toBe(parts.reduce((n, p) => n + [...p.text].length, 0));
      expect(printableKeys(mask(s))).toBe('*'.repeat([...printableKeys(s)].length));
    }));
  });
});

describe('TypedLine', () => {
  it('edits with Backspace, DEL, Ctrl-U and Ctrl-W, and drops arrows and other controls', () => {
    const l = new TypedLine();
    l.feed('echo hello worlf\x7fd\bd');
    expect(l.line()).toBe('echo hello worl' + 'd');
    l.feed('\x17');
    expect(l.line()).toBe('echo hello ');
    l.feed(`${ESC}[Dx\t`);
    expect(l.line()).toBe('echo hello x');
    l.feed('\x15ls');
    expect(l.line()).toBe('ls');
    l.reset();
    expect(l.line()).toBe('');
  });

  it('keeps at most `max` characters', () => {
    const l = new TypedLine(5);
    l.feed('abcdefgh');
    expect(l.line()).toBe('abcde');
  });
});

describe('TypedLines', () => {
  it('reports each non-blank line at Enter, timed at its first key, across events', () => {
    const got: [number, string][] = [];
    const t = new TypedLines();
    const on = (at: number, line: string) => got.push([at, line]);
    t.feed(1, 'ec', on);
    t.feed(2, `ho hi${ESC}[D`, on);
    t.feed(3, '\r\r', on);
    t.feed(4, 'x\x15', on);
    t.feed(5, 'pwd\r\nls -l\x17\x17\x17whoami\n', on);
    expect(got).toEqual([[1, 'echo hi'], [5, 'pwd'], [5, 'whoami']]);
  });
});
