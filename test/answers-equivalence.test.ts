import { describe, expect, test } from "vitest";
import { answersMatch } from "../src/cat/answers/match.js";

const math = { mode: "math" } as const;
const exact = { mode: "exact" } as const;

// Pairs that mean the same answer. Each is checked in both orders.
const EQUIVALENT: Array<[string, string]> = [
  ["0.5", "\\frac12"],
  ["\\dfrac{1}{2}", "\\frac{1}{2}"],
  ["\\tfrac34", "0.75"],
  ["\\frac{\\sqrt{3}}2", "\\frac{\\sqrt3}{2}"],
  ["\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"],
  ["(3, \\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)"],
  ["90^\\circ", "90"],
  ["90^{\\circ}", "90"],
  ["30°", "30"],
  ["\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"],
  ["1,000", "1000"],
  ["10,\\!080", "10080"],
  ["11,\\! 111,\\! 111,\\! 100", "11111111100"],
  ["\\$32,\\!348", "32348"],
  ["\\$18.90", "18.9"],
  ["864 \\mbox{ inches}^2", "864"],
  ["15\\mbox{ cm}^2", "15"],
  ["5.4 \\text{ cents}", "5.4"],
  ["18 inches", "18"],
  ["\\text{Evelyn}", "Evelyn"],
  ["\\text{east}", "East"],
  ["\\text{(C)}", "C"],
  ["(C)", "C"],
  ["x=5", "5"],
  ["k = 5", "5"],
  ["x \\in [-2,7]", "[-2,7]"],
  ["y = 2x + 3", "2x+3"],
  ["y=2x+3", "y = 3 + 2x"],
  ["[0,1)", "\\left[0, 1\\right)"],
  ["(-\\infty, 2) \\cup (3, \\infty)", "(3,\\infty)\\cup(-\\infty,2)"],
  ["(0,9) \\cup (9,36)", "(0, 9)\\cup(9, 36)"],
  ["\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]", "[\\pi^2/8, 5\\pi^2/4]"],
  ["\\left(\\frac{3}{5},\\frac{8}{3}\\right]", "(0.6, \\frac83]"],
  ["\\{1,2\\}", "\\{2,1\\}"],
  ["\\{1\\pm\\sqrt{5},-2\\}", "\\{-2, 1-\\sqrt5, 1+\\sqrt5\\}"],
  ["1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}"],
  ["3 \\pm 2 \\sqrt{2}", "3-2\\sqrt2,3+2\\sqrt2"],
  ["1,-2", "-2, 1"],
  ["3, 5, 7", "7,5,3"],
  ["(1,-16,-4,43)", "\\left(1, -16, -4, 43\\right)"],
  ["\\sqrt{8}", "2\\sqrt{2}"],
  ["2\\sqrt2", "\\sqrt 8"],
  ["\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"],
  ["\\pi", "\\pi"],
  ["\\frac{\\pi}{2}", "\\pi/2"],
  ["288 \\pi", "288\\pi"],
  ["\\frac{20000}{\\pi}", "20000/\\pi"],
  ["18+2\\pi", "2\\pi + 18"],
  ["6 - 5i", "-5i+6"],
  ["1+2i", "2i+1"],
  ["137 \\frac{1}{2}", "\\frac{275}{2}"],
  ["1\\frac{4}{5}", "1.8"],
  ["10\\%", "10"],
  [".0000672", "0.0000672"],
  [".35625", "0.35625"],
  ["-.5", "-\\frac12"],
  ["6r^2-4r-24", "2(3r^2-2r-12)"],
  ["x^5 - x^4 + x^3 - x^2 + x - 1", "(x-1)(x^4+x^2+1)"],
  ["(a+5)(b+2)", "ab+2a+5b+10"],
  ["\\frac{11+9a}{20}", "\\frac{9a+11}{20}"],
  ["5x - 7y + 11z + 4 = 0", "-10x+14y-22z-8=0"],
  ["\\cot x", "\\frac{\\cos x}{\\sin x}"],
  ["\\begin{pmatrix} -2 \\\\ -14 \\\\ -7 \\end{pmatrix}", "\\begin{pmatrix}-2\\\\-14\\\\-7\\end{pmatrix}"],
  ["\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", "\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}"],
  ["\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", "\\begin{bmatrix}-1&0\\\\0&-1\\end{bmatrix}"],
  ["52_8", "52_{8}"],
  ["\\boxed{5}", "5"],
  ["$\\frac{1}{4}$", "0.25"],
  ["5.", "5"],
  ["\\infty", "\\infty"],
  ["2^{10}", "1024"],
  ["100000000000000000001", "10^{20}+1"],
  ["e^2", "e^{2}"],
  ["\\sqrt[3]{8}", "2"],
  ["\\log_2 8", "3"],
  ["x_1+x_2", "x_1+x_2"],
  ["3.0", "3"],
  ["2/4", "\\frac12"],
  ["\\frac{1}{3}", "0.\\overline{3}"],
  ["12\\sqrt{3}", "\\sqrt{432}"],
  ["x^2+2x+1", "(x+1)^2"],
  ["\\{-1, 1\\}", "\\pm 1"],
  ["10^{6}", "1,000,000"],
  ["i\\sqrt{2}", "\\sqrt{-2}"],
  ["-\\frac{1}{2}", "\\frac{1}{-2}"],
];

// Pairs that must NOT match: near misses a loose checker would accept.
const DIFFERENT: Array<[string, string]> = [
  ["\\frac{1}{2}", "\\frac{2}{1}"],
  ["0.333", "\\frac13"],
  ["3.14159", "\\pi"],
  ["2.718", "e"],
  ["\\frac{\\pi}{2}", "90"],
  ["(1,2)", "(2,1)"],
  ["(1,2)", "[1,2]"],
  ["(1,2]", "(1,2)"],
  ["[0,1)", "(0,1]"],
  ["(1,2)", "\\{1,2\\}"],
  ["\\{1,2\\}", "\\{1,2,3\\}"],
  ["1,2", "1,2,2"],
  ["(0,9) \\cup (9,36)", "(0,36)"],
  ["\\sqrt{2}", "2\\sqrt{2}"],
  ["\\sqrt{8}", "2.8284"],
  ["x^2", "x^3"],
  ["x^2", "|x|x"],
  ["3x", "3y"],
  ["2k+2", "2k+1"],
  ["\\sin x", "\\cos x"],
  ["10^{20}", "10^{20}+1"],
  ["100000000000000000001", "100000000000000000000"],
  ["1,000", "1"],
  ["1000", "100"],
  ["-5", "5"],
  ["6-5i", "6+5i"],
  ["i", "-i"],
  ["\\text{east}", "\\text{seat}"],
  ["odd", "even"],
  ["(C)", "(D)"],
  ["52_8", "52"],
  ["52_8", "52_9"],
  ["1 \\pm \\sqrt{19}", "1+\\sqrt{19}"],
  ["\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}"],
  ["\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\end{pmatrix}"],
  ["5x - 7y + 11z + 4 = 0", "5x - 7y + 11z - 4 = 0"],
  ["y=2x+3", "y=3x+2"],
  ["\\infty", "-\\infty"],
  ["\\frac{1}{0}", "\\frac{2}{0}"],
  ["", ""],
  ["5", ""],
  ["\\frac{3}{4}", "\\frac{3}{5}"],
  ["137\\frac12", "68.5"],
  ["10^{10^{10}}", "10^{10^{10}}+1"],
  ["\\sqrt{x^2}", "x"],
  ["\\log_2 8", "4"],
  ["52_8", "42_{10}"],
  ["a_1", "a_2"],
  ["x^2+2x+1", "(x+2)^2"],
  ["x+1", "x+1=0"],
  ["a", "b"],
  ["6\\pi", "18.85"],
  ["\\frac{\\sqrt{2}}{2}", "\\frac{\\sqrt{3}}{2}"],
  ["(1,2,3)", "1,2,3"],
];

describe("answersMatch math mode", () => {
  test.each(EQUIVALENT)("%s == %s", (a, b) => {
    expect(answersMatch(a, b, math)).toBe(true);
    expect(answersMatch(b, a, math)).toBe(true);
  });
  test.each(DIFFERENT)("%s != %s", (a, b) => {
    expect(answersMatch(a, b, math)).toBe(false);
    expect(answersMatch(b, a, math)).toBe(false);
  });
});

describe("answersMatch exact mode", () => {
  test("normalised string match accepts typography-only differences", () => {
    expect(answersMatch("\\dfrac{1}{2}", "\\frac12", exact)).toBe(true);
    expect(answersMatch("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", exact)).toBe(true);
    expect(answersMatch("10,\\!080", "10080", exact)).toBe(true);
    expect(answersMatch("90^\\circ", "90", exact)).toBe(true);
    expect(answersMatch("x = 5", "5", exact)).toBe(true);
    expect(answersMatch("\\$18.90", "18.90", exact)).toBe(true);
  });
  test("but not mathematical equivalence", () => {
    expect(answersMatch("0.5", "\\frac12", exact)).toBe(false);
    expect(answersMatch("\\{1,2\\}", "\\{2,1\\}", exact)).toBe(false);
    expect(answersMatch("2\\sqrt2", "\\sqrt8", exact)).toBe(false);
  });
  test("missing answers never match", () => {
    expect(answersMatch(null, null, exact)).toBe(false);
    expect(answersMatch(null, "5", math)).toBe(false);
  });
});

describe("inequalities compare as intervals (math mode)", () => {
  test.each([
    ["3 < x \\le 4", "(3,4]", true],
    ["3<x\\leq4", "(3, 4]", true],
    ["-1 \\leq x < 2", "[-1,2)", true],
    ["x \\ge -2", "[-2,\\infty)", true],
    ["x > 5", "(5, \\infty)", true],
    ["x < 0", "(-\\infty,0)", true],
    ["4 \\ge x > 3", "(3,4]", true],
    ["3 < x \\le 4", "[3,4]", false],
    ["3 < x \\le 4", "(3,4)", false],
    ["x \\ge 2", "(2,\\infty)", false],
  ])("%j vs %j: %s", (a, b, want) => {
    expect(answersMatch(a, b, { mode: "math" })).toBe(want);
    expect(answersMatch(b, a, { mode: "math" })).toBe(want);
  });
  test("\\left( is not a comparison", () => {
    expect(answersMatch("\\left(3,4\\right]", "(3,4]", { mode: "math" })).toBe(true);
  });
});
