#!/usr/bin/env python3
"""Paired comparison of two perplexity runs over the same chunks (docs/quant.md).

Usage: paired.py NLL_A NLL_B   (files of per-chunk mean NLLs written by quant_ppl, one per line)
Prints ln(ppl_A/ppl_B) = mean_i (nll_A,i - nll_B,i) with its 95% interval (Student t over the
chunk differences; the chunks are equal-sized, so ppl = exp(mean chunk NLL) for both runs), and
the ratio ppl_A/ppl_B with the interval exponentiated."""
import math
import sys


def t975(df):
    # Student t 0.975 quantile: exact table for small df, Cornish-Fisher expansion beyond.
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
             9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}
    if df in table:
        return table[df]
    z = 1.959964
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def read(p):
    with open(p) as f:
        return [float(x) for x in f.read().split()]


a, b = read(sys.argv[1]), read(sys.argv[2])
if len(a) != len(b) or len(a) < 2:
    sys.exit("paired.py: the two runs must score the same number (>= 2) of chunks")
d = [x - y for x, y in zip(a, b)]
n = len(d)
m = sum(d) / n
sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
h = t975(n - 1) * sd / math.sqrt(n)
wins = sum(1 for x in d if x < 0)
print(f"n={n} ln(ppl_A/ppl_B)={m:+.5f} 95%CI=[{m - h:+.5f}, {m + h:+.5f}] "
      f"ratio={math.exp(m):.4f} [{math.exp(m - h):.4f}, {math.exp(m + h):.4f}] A<B in {wins}/{n} chunks")
