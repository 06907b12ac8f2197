/**
 * Brace-aware scanning helpers shared by extraction and normalisation. LaTeX answers nest braces
 * (`\boxed{\frac{1}{2}}`), so regexes alone cannot find where a group ends.
 */

/** Index just past the `}` that closes the `{` at `open`, or -1 when the group never closes (truncated output). */
export function closingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    // An escaped brace (`\{` in a set) is content, not grouping.
    if (c === "\\" && (s[i + 1] === "{" || s[i + 1] === "}")) {
      i++;
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}") {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * One macro argument starting at `at` (after skipping spaces): a `{...}` group (returned without its
 * braces), a control word like `\pi`, or a single character. TeX reads `\frac12` as `\frac{1}{2}`.
 */
export function readArgument(s: string, at: number): { arg: string; end: number; braced: boolean } | null {
  let i = at;
  while (i < s.length && s[i] === " ") i++;
  if (i >= s.length) return null;
  if (s[i] === "{") {
    const end = closingBrace(s, i);
    if (end < 0) return null;
    return { arg: s.slice(i + 1, end - 1), end, braced: true };
  }
  if (s[i] === "\\") {
    const m = /^\\([a-zA-Z]+|.)/.exec(s.slice(i));
    if (!m) return null;
    return { arg: m[0], end: i + m[0].length, braced: false };
  }
  if (s[i] === "}") return null;
  return { arg: s[i], end: i + 1, braced: false };
}

/**
 * Splits on `sep` only at nesting depth 0 of (), [], {} and \{ \}. Interval brackets are unbalanced
 * (`[0,1)`), so depth is tracked by counting any opener against any closer.
 */
export function splitTopLevel(s: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      if (s[i + 1] === "{" || s[i + 1] === "}") {
        depth += s[i + 1] === "{" ? 1 : -1;
        i++;
        continue;
      }
      if (depth === 0 && s.startsWith(sep, i)) {
        parts.push(s.slice(start, i));
        i += sep.length - 1;
        start = i + 1;
      }
      continue;
    }
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
    else if (depth === 0 && s.startsWith(sep, i)) {
      parts.push(s.slice(start, i));
      i += sep.length - 1;
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}
