"""Checks the polynomial method's compiled candidates (the widest fitted
range per degree, cost::polyCandidate; docs/Polynomial.md §8) read
through `poly-approx-dump --candidate`, independently of how they are found:

  * the candidate's fit meets epsilon (proven delta <= eps, positive), and is
    the same fit as `poly-approx-dump --beta=B_g` (what the compiler emits);
  * B_g is at least the largest grid point 2^(k/2) (k = 6 .. -8) whose fit
    meets epsilon, and below the next grid point up (none when the grid has
    none);
  * B_g is the largest range to the bisection's tolerance 1e-3: the fit on
    B_g (1 + 2e-3) does not meet epsilon;
  * the proven delta holds on a dense grid: 20001 points of [-B_g, B_g],
    p evaluated by Horner in long double against expl, max |p e^-x - 1| <=
    delta plus the Horner rounding allowance gamma_2g sum |c_k| |x|^k e^-x.

Usage: poly_candidate_check.py POLY_APPROX_DUMP
"""
import json
import subprocess
import sys

import numpy as np

GRID = [2.0 ** (k / 2.0) for k in range(6, -9, -1)]


def dump(tool, *args):
    return json.loads(subprocess.run([tool, *args], capture_output=True,
                                     text=True, check=True).stdout)


def qualifies(row, eps):
    return bool(row) and row["positive"] and row["delta"] <= eps and \
        bool(row["coeffs"])


def grid_check(row):
    """max |p(x) e^-x - 1| on 20001 points and the Horner allowance."""
    b = row["beta"]
    c = [np.longdouble(x) for x in row["coeffs"]]
    x = np.linspace(-b, b, 20001).astype(np.longdouble)
    p = np.zeros_like(x)
    for ck in reversed(c):
        p = p * x + ck
    e = np.exp(x)
    err = np.max(np.abs(p / e - 1))
    u = np.finfo(np.longdouble).eps / 2
    g = len(c) - 1
    gamma = 2 * g * u / (1 - 2 * g * u)
    absum = sum(abs(ck) * np.abs(x) ** k for k, ck in enumerate(c))
    allowance = np.max(gamma * absum / e) + 4 * u
    return float(err), float(allowance)


def main():
    tool = sys.argv[1]
    failures = 0
    count = 0
    for family in ("chebyshev", "minimax"):
        for eps in (1e-2, 1e-3, 1e-5):
            for g in range(1, 7):
                table = dump(tool, f"--family={family}", f"--degree={g}",
                             "--beta=" + ",".join(repr(b) for b in GRID))
                grid = next((r for r in table if qualifies(r, eps)), None)
                cand = dump(tool, "--candidate", f"--family={family}",
                            f"--degree={g}", f"--eps={eps!r}")
                what = f"{family} g={g} eps={eps:g}"
                problems = []
                if grid is None:
                    if cand is not None:
                        problems.append("a candidate where the grid has none")
                elif cand is None:
                    problems.append("no candidate where the grid has one")
                else:
                    count += 1
                    b = cand["beta"]
                    again = dump(tool, f"--family={family}", f"--degree={g}",
                                 f"--beta={b!r}")
                    if again != cand:
                        problems.append("not the fit of --beta=B_g")
                    if not qualifies(cand, eps):
                        problems.append(f"delta {cand['delta']} > eps or "
                                        "not positive")
                    if not grid["beta"] <= b <= grid["beta"] * 2 ** 0.5:
                        problems.append(f"B_g = {b} outside [grid point "
                                        f"{grid['beta']}, next one up)")
                    wider = b * (1 + 2e-3)
                    if wider <= 8.0 and qualifies(dump(
                            tool, f"--family={family}", f"--degree={g}",
                            f"--beta={wider!r}"), eps):
                        problems.append(f"B_g (1 + 2e-3) = {wider} still "
                                        "meets eps: not the widest range")
                    err, allowance = grid_check(cand)
                    if not err <= cand["delta"] + allowance:
                        problems.append(f"grid error {err:.3e} > delta "
                                        f"{cand['delta']:.3e} + {allowance:.1e}")
                    print(f"poly-candidate: {what}: B_g = {b:.6g} (grid "
                          f"{grid['beta']:.6g}), delta = {cand['delta']:.3e}, "
                          f"grid max {err:.3e}")
                for p in problems:
                    print(f"poly-candidate: FAIL {what}: {p}")
                failures += len(problems)
    print(f"poly-candidate: {count} widened candidates checked")
    if failures:
        print(f"poly-candidate: {failures} failures")
        return 1
    print("poly-candidate: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
