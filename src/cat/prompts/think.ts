/**
 * Removes reasoning-model thinking from a response: every closed `<think>...</think>` block, an
 * unterminated `<think>` that runs to the end (generation cut off while thinking: nothing after it is an
 * answer), and, when the chat template opened the block in the prompt, everything up to a leading
 * orphan `</think>`.
 */
export function stripThinking(text: string): string {
  let s = text.replace(/<think>[\s\S]*?<\/think>/g, "");
  const open = s.indexOf("<think>");
  if (open >= 0) s = s.slice(0, open);
  const orphan = s.indexOf("</think>");
  if (orphan >= 0) s = s.slice(orphan + "</think>".length);
  return s.trim();
}
