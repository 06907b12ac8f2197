/** Story openings: the benchmark's default model and stories260K share the TinyStories tokenizer. */
export const BENCH_PROMPTS = [
  "Once upon a time, there was a little girl named Lily. She loved to",
  "One day, a small dog found a big red ball in the park. He wanted to",
  "Tom and his mom went to the store to buy some apples. On the way,",
  "There was a big tree in the garden. Every morning, a bird would",
  "Sara had a new toy car. It was blue and very fast. She took it",
  "The sun was shining and the sky was blue. Ben went outside to",
  "Mia wanted to bake a cake for her friend. She got flour, eggs and",
  "A little boy named Max lived near the sea. Every day he walked to",
];

export function benchPrompts(n: number): string[] {
  return Array.from({ length: n }, (_, i) => BENCH_PROMPTS[i % BENCH_PROMPTS.length]);
}

/**
 * A prompt of about `tokens` tokens (never fewer): the openings from the `start`-th on, joined and repeated
 * until long enough, then cut back word by word. Different `start`s give different prompts.
 */
export async function longPrompt(
  start: number,
  tokens: number,
  count: (text: string) => Promise<number>,
): Promise<string> {
  const words: string[] = [];
  for (let i = start; (await count(words.join(" "))) < tokens; i++) {
    words.push(...BENCH_PROMPTS[i % BENCH_PROMPTS.length].split(" "));
  }
  while (words.length > 1 && (await count(words.slice(0, -1).join(" "))) >= tokens) words.pop();
  return words.join(" ");
}
