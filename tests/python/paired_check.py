# Checks `mimic eval --compare` output against an independent computation from the two models' logits.
# usage: paired_check.py LOGITS_A.h5 LOGITS_B.h5 DATA.h5 EVAL_OUTPUT.txt
import math
from fractions import Fraction
import re
import sys

import h5py
import numpy as np

la, lb, data, text = sys.argv[1:5]
with h5py.File(la, "r") as f:
    za = f["logits"][...]
with h5py.File(lb, "r") as f:
    zb = f["logits"][...]
with h5py.File(data, "r") as f:
    y = f["y"][...]
ra, rb = za.argmax(axis=1) == y, zb.argmax(axis=1) == y
n, only_a, only_b = len(y), int((ra & ~rb).sum()), int((rb & ~ra).sum())
margin = 100.0 * (only_a - only_b) / n
half = 100.0 * 1.96 * math.sqrt(max(0.0, only_a + only_b - (only_a - only_b) ** 2 / n)) / n
m = only_a + only_b
p = min(1.0, float(Fraction(2 * sum(math.comb(m, i) for i in range(min(only_a, only_b) + 1)), 2**m))) if m else 1.0

out = open(text).read()
got = re.search(r"rows only A gets right (\d+), only B (\d+) \(McNemar's exact test p = ([0-9.e+-]+)\)", out)
iv = re.search(r"margin A - B\s+([+-][0-9.]+) points, 95% interval ([+-][0-9.]+) to ([+-][0-9.]+) points", out)
if not got or not iv:
    sys.exit("FAIL: no paired comparison lines in " + text)
if (int(got.group(1)), int(got.group(2))) != (only_a, only_b):
    sys.exit(f"FAIL: discordant rows {got.group(1)}/{got.group(2)}, expected {only_a}/{only_b}")
if abs(float(got.group(3)) - p) > 1e-3 * max(p, 1e-12) + 5e-4 * p:
    sys.exit(f"FAIL: p = {got.group(3)}, expected {p:.4g}")
for printed, want in zip(iv.groups(), (margin, margin - half, margin + half)):
    if abs(float(printed) - want) > 0.006:
        sys.exit(f"FAIL: printed {printed}, expected {want:+.3f}")
verdict = "within noise" if abs(margin) <= half else ("A is better" if margin > 0 else "B is better")
if f"verdict: {verdict}" not in out:
    sys.exit(f"FAIL: expected the verdict '{verdict}'")
print(f"ok: only A {only_a}, only B {only_b}, margin {margin:+.2f} ± {half:.2f} points, p = {p:.3g}, {verdict}")
