// A custom verifiable task for `--task examples/first-word-task.mjs`: the "final answer" of a completion
// is its first word. It makes CaT runnable end to end on stories260K, which writes stories, not math.
export function extract(text) {
  const m = /[A-Za-z]+/.exec(text);
  return m ? m[0].toLowerCase() : null;
}

export function match(a, b) {
  return a === b;
}
