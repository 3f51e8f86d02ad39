"""Time to E in fresh processes: `facenmf learn` against scikit-learn's fastest `cd`, one run.

    python3 benches/compare/fresh_time_to_e.py FACENMF_BINARY [NAME=]DIR[:E] ... [--repeat K]
        [--rank R] [--python PY]

`cargo bench --bench compare` times both fits inside long-lived processes, after warm-ups. This
script asks the same question of a user's command: every fit is a new process. Per folder:

1. E is given after the folder (DIR:E), or is the team's figure for cbcl, orl and olivetti
   (1.01 x scikit-learn `cd` float64's error after 200 iterations at rank 49, baseline.md).
2. Each scikit-learn `cd` configuration (float32/float64 x 1/2 threads) runs once in its own
   process (`sklearn_nmf.py --trace hook --time-to-error E`: its fit's own clock, init
   included, after that script's one-iteration warm-up); the soonest to E is its best.
3. K rounds then alternate that configuration's process with `facenmf learn DIR -r R --tol 0`
   in a new process; facenmf's time to E is read from run.json's history (the fit's own clock
   from the start of the fit, initialisation and any multilevel start included, loading and
   writing excluded), the first iteration at or below E.

Prints the median rounds (K odd: the middle one of each side, with its iterations and start) and
their ratio as a Markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KNOWN_E = {"cbcl": 0.084904, "orl": 0.149378, "olivetti": 0.093705}
CONFIGS = [(dtype, threads) for dtype in ("float32", "float64") for threads in (1, 2)]


def parse_folder(spec):
    name, _, rest = spec.rpartition("=") if "=" in spec else ("", "", spec)
    path, e = rest, None
    head, sep, tail = rest.rpartition(":")
    if sep:
        try:
            path, e = head, float(tail)
        except ValueError:
            pass
    name = name or os.path.basename(os.path.normpath(path))
    e = e if e is not None else KNOWN_E.get(name)
    if e is None:
        sys.exit(f"{spec}: no target error known for {name!r}; give it as DIR:E")
    return name, path, e


def sklearn_time(python, folder, rank, e, dtype, threads):
    out = subprocess.run(
        [python, os.path.join(HERE, "sklearn_nmf.py"), "--images", folder, "--rank", str(rank),
         "--dtype", dtype, "--threads", str(threads), "--trace", "hook",
         "--time-to-error", str(e)],
        check=True, capture_output=True, text=True)
    reached = json.loads(out.stdout.strip().splitlines()[-1])["time_to_error"]
    return (reached["seconds"], reached["iter"]) if reached else (float("inf"), None)


def facenmf_time(binary, folder, rank, e, out):
    subprocess.run([binary, "learn", folder, "-r", str(rank), "--tol", "0", "--max-iter", "200",
                    "-q", "-o", out], check=True, capture_output=True)
    with open(os.path.join(out, "run.json")) as f:
        run = json.load(f)
    reached = [p for p in run["history"] if p["rel_error"] <= e]
    if not reached:
        return float("inf"), None, run
    return reached[0]["seconds"], reached[0]["iter"], run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("facenmf")
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rank", type=int, default=49)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    print("| folder | E | facenmf learn to E (iterations after its start) | start | "
          "scikit-learn best | its time to E (iterations) | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.folders:
        name, folder, e = parse_folder(spec)
        tried = {c: sklearn_time(args.python, folder, args.rank, e, *c) for c in CONFIGS}
        best = min(tried, key=lambda c: tried[c][0])
        ours, theirs = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.repeat):
                theirs.append(sklearn_time(args.python, folder, args.rank, e, *best))
                seconds, iters, run = facenmf_time(args.facenmf, folder, args.rank, e,
                                                   os.path.join(tmp, str(k)))
                ours.append((seconds, iters, run["history"][0]["seconds"]))
                print(f"  {name} round {k + 1}: facenmf {seconds * 1e3:.1f} ms, scikit-learn "
                      f"{theirs[-1][0] * 1e3:.1f} ms", file=sys.stderr)
        # The median round of each side, with its own iterations and start.
        ours.sort(key=lambda r: r[0])
        theirs.sort(key=lambda r: r[0])
        (a, iters, start), (b, their_iter) = ours[len(ours) // 2], theirs[len(theirs) // 2]
        config = f"cd/{best[0]}/{best[1]} thread{'s' if best[1] > 1 else ''}"
        print(f"| {name} | {e} | {a * 1e3:.1f} ms ({iters}) | {start * 1e3:.1f} ms | {config} "
              f"| {b * 1e3:.1f} ms ({their_iter}) | **{b / a:.1f}x** |")


if __name__ == "__main__":
    main()
