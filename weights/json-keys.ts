/**
 * Duplicate-key detection for JSON text. `JSON.parse` silently keeps the last of two equal keys, so a
 * safetensors header naming a tensor twice would parse "fine" with one of the two descriptions lost.
 * This scanner walks the (already JSON.parse-validated) text once, tracking one key set per open
 * object, and reports the first repeated key. Keys are compared after unescaping ("a" == "\u0061").
 */
export function findDuplicateKey(json: string): { key: string; objectPath: string } | null {
  // One frame per open container: objects carry their key set, arrays carry null.
  const stack: { keys: Set<string> | null; path: string }[] = [];
  let lastKey = '';
  let i = 0;
  while (i < json.length) {
    const c = json[i];
    if (c === '"') {
      const end = endOfString(json, i);
      const token = json.slice(i, end);
      i = end;
      let j = i;
      while (j < json.length && isJsonSpace(json[j])) j++;
      const top = stack[stack.length - 1];
      if (json[j] === ':' && top?.keys) {
        const key = JSON.parse(token) as string;
        if (top.keys.has(key)) return { key, objectPath: top.path };
        top.keys.add(key);
        lastKey = key;
      }
      continue;
    }
    if (c === '{' || c === '[') {
      const parent = stack[stack.length - 1];
      const path = parent ? (parent.keys ? `${parent.path}.${lastKey}` : `${parent.path}[]`) : '$';
      stack.push({ keys: c === '{' ? new Set() : null, path });
    } else if (c === '}' || c === ']') {
      stack.pop();
    }
    i++;
  }
  return null;
}

/** Index just past the closing quote of the string starting at `start`. */
function endOfString(s: string, start: number): number {
  let i = start + 1;
  while (i < s.length) {
    if (s[i] === '\\') i += 2;
    else if (s[i] === '"') return i + 1;
    else i++;
  }
  return s.length;
}

function isJsonSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

/** Deepest nesting of objects / arrays accepted in a header, index or config (they need 3). */
export const MAX_JSON_DEPTH = 64;

/**
 * JSON.parse with the checks an untrusted file needs first: nesting depth at most MAX_JSON_DEPTH
 * (a deeply nested 20 MB header would otherwise overflow the parser's stack with "Maximum call
 * stack size exceeded"), and the parser's own message cut short (V8 quotes the input).
 * Throws Error with a message ready to follow "<file>: ".
 */
export function parseJsonChecked(text: string): unknown {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i = endOfString(text, i) - 1; // brackets inside strings do not nest
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) throw new Error(`JSON nested deeper than ${MAX_JSON_DEPTH} levels (at character ${i}); refused`);
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    throw new Error(`not valid JSON (${message.length > 120 ? `${message.slice(0, 120)}…` : message})`);
  }
}
