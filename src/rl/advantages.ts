/**
 * GRPO's group-normalised advantages: A_i = (R_i - mean) / std over the G rollouts of one prompt.
 * A group whose rewards are all equal carries no signal (every advantage would be 0/0): it is counted
 * and left out of the update. Rollouts without a reward (a judge verdict that failed) are left out too.
 */
export type GroupAdvantages = {
  /** Per group, per rollout; null = not trained on. */
  advantages: (number | null)[][];
  zeroVarianceGroups: number;
  usableGroups: number;
};

export function groupAdvantages(rewards: (number | null)[][], eps = 1e-6): GroupAdvantages {
  let zeroVarianceGroups = 0;
  let usableGroups = 0;
  const advantages = rewards.map((group) => {
    const present = group.filter((r): r is number => r != null && Number.isFinite(r));
    if (present.length < 2) {
      zeroVarianceGroups++;
      return group.map(() => null);
    }
    const mean = present.reduce((a, b) => a + b, 0) / present.length;
    const std = Math.sqrt(present.reduce((a, b) => a + (b - mean) ** 2, 0) / present.length);
    if (std < eps) {
      zeroVarianceGroups++;
      return group.map(() => null);
    }
    usableGroups++;
    return group.map((r) => (r != null && Number.isFinite(r) ? (r - mean) / std : null));
  });
  return { advantages, zeroVarianceGroups, usableGroups };
}

export function meanStd(xs: number[]): { mean: number; std: number } {
  if (xs.length === 0) return { mean: Number.NaN, std: Number.NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, std: Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length) };
}
