"""A streamed fit's time per iteration against the in-memory fit's, side by side in one run.

    python3 benches/stream/per_iteration.py FACENMF_BINARY DIR CACHE [--iterations N]
        [--rounds K] [--before OTHER_BINARY]

DIR is a folder of faces (for example `python3 benches/stream/synthetic_faces.py 200000 DIR`)
and CACHE its decoded cache (built by a first `facenmf learn DIR --cache CACHE`, untimed). Each
round runs, one after the other in fresh processes: `learn --stream` (E-A-HALS over blocks read
from the cache, which is then in the page cache), `learn --multilevel off` (X in memory; the
same iterates, since a streamed fit has no multilevel start), and with `--before` the other
binary's streamed fit. Time per iteration is taken from run.json's history, after the start:
(last time - first time) / iterations. Peak RSS of each whole command comes from
/usr/bin/time. Prints a line per round and the medians.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile


def run(binary, args, out):
    rss = out + ".rss"
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss, binary, "learn", *args, "-q",
                    "-o", out], check=True, capture_output=True)
    with open(os.path.join(out, "run.json")) as f:
        history = json.load(f)["history"]
    with open(rss) as f:
        kb = int(f.read().split()[-1])
    per = (history[-1]["seconds"] - history[0]["seconds"]) / (len(history) - 1)
    return per, kb / 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("facenmf")
    parser.add_argument("dir")
    parser.add_argument("cache")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="another build's binary, streamed, same rounds")
    args = parser.parse_args()
    common = [args.dir, "--cache", args.cache, "--max-iter", str(args.iterations), "--tol", "0"]
    ratios, streamed, memory, before = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            s, s_mb = run(args.facenmf, [*common, "--stream"], os.path.join(tmp, f"s{k}"))
            m, m_mb = run(args.facenmf, [*common, "--multilevel", "off"], os.path.join(tmp, f"m{k}"))
            streamed.append(s)
            memory.append(m)
            ratios.append(s / m)
            line = (f"round {k + 1}: streamed {s:.3f} s ({s_mb:.1f} MB), in memory {m:.3f} s "
                    f"({m_mb:.0f} MB), ratio {s / m:.2f}x")
            if args.before:
                b, b_mb = run(args.before, [*common, "--stream"], os.path.join(tmp, f"b{k}"))
                before.append(b)
                line += f"; before: streamed {b:.3f} s ({b_mb:.1f} MB), ratio {b / m:.2f}x"
            print(line, flush=True)
    print(f"medians: streamed {statistics.median(streamed):.3f} s, in memory "
          f"{statistics.median(memory):.3f} s, ratio {statistics.median(ratios):.2f}x "
          f"(rounds {min(ratios):.2f}-{max(ratios):.2f}x)")
    if before:
        print(f"before: streamed {statistics.median(before):.3f} s, ratio "
              f"{statistics.median([b / m for b, m in zip(before, memory)]):.2f}x")


if __name__ == "__main__":
    main()
