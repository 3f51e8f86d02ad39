"""Online against batch at equal time: `facenmf learn --online`, `facenmf learn` and
scikit-learn's MiniBatchNMF on the same folders, in one run.

    python3 benches/compare/online.py FACENMF_BINARY DIR [DIR...] [--rank R] [--passes 1,2,5]
        [--repeat K] [--threads T] [--batch N] [--cache-root DIR [--stream]]

Per folder: scikit-learn's MiniBatchNMF (init='nndsvda', batch_size N, default 1024 as its
own, forget_factor at its default 0.7, no early stop, float32, T threads) fitted afresh for
each number of passes P, its fit_transform timed (median of K) and its relative error ||X - W H||_F /
||X||_F measured in float64 on the H it returns; and facenmf's online and batch fits
(`--online` with batches of N and its own default forgetting factor; the defaults, E-A-HALS)
run K times each with `--tol 0` for as long as scikit-learn's longest fit took, each
iteration's error and fit time read from run.json. Each row gives, at the time scikit-learn
took for P passes, the error of facenmf's latest iterate by then (median over the K runs;
"-" when none was measured yet). Fit times on both sides include the start and exclude
loading (and scikit-learn's warm-up fit). With --cache-root, facenmf reads a decoded cache
there (built on the first run, untimed), as a large folder would be read, and with --stream
fits from it block by block (batch: no multilevel start).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sklearn_nmf  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("facenmf")
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--rank", type=int, default=49)
    parser.add_argument("--passes", default="1,2,5,10,20,50,100")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--cache-root")
    parser.add_argument("--stream", action="store_true",
                        help="facenmf streams from the cache (needs --cache-root)")
    args = parser.parse_args()
    sklearn_nmf.limit_threads(args.threads)
    import numpy as np
    from sklearn.decomposition import MiniBatchNMF
    from threadpoolctl import threadpool_limits

    passes = [int(p) for p in args.passes.split(",")]
    for d in args.dirs:
        x = sklearn_nmf.load_images(d, np)
        xt = np.ascontiguousarray(x.T, dtype=np.float32)
        x64 = x.T.astype(np.float64)
        norm = float(np.linalg.norm(x64))
        theirs = []
        with threadpool_limits(limits=args.threads):
            MiniBatchNMF(n_components=args.rank, init="nndsvda", max_iter=1,
                         random_state=0).fit_transform(xt)  # warm-up
            for p in passes:
                model = MiniBatchNMF(n_components=args.rank, init="nndsvda",
                                     batch_size=args.batch, max_iter=p, tol=0.0,
                                     max_no_improvement=None, random_state=0)
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    h = model.fit_transform(xt)
                    times.append(time.perf_counter() - t)
                seconds = statistics.median(times)
                err = float(np.linalg.norm(x64 - h.astype(np.float64)
                                           @ model.components_.astype(np.float64)) / norm)
                theirs.append((p, seconds, err))
        budget = max(s for _, s, _ in theirs)
        traces = {"online": [], "batch": []}
        with tempfile.TemporaryDirectory() as tmp:
            cache = None
            if args.cache_root:
                cache = os.path.join(args.cache_root, os.path.basename(os.path.normpath(d)))
            for _ in range(args.repeat):
                for kind, extra in (("online", ["--online", "--batch-images", str(args.batch)]),
                                    ("batch", [])):
                    cmd = [args.facenmf, "learn", d, "-r", str(args.rank), "--tol", "0",
                           "--max-iter", "1000000", "--max-time", f"{budget:.3f}",
                           "--threads", str(args.threads),
                           "-q", "-o", os.path.join(tmp, kind)] + extra
                    if cache:
                        cmd += ["--cache", cache] + (["--stream"] if args.stream else [])
                    subprocess.run(cmd, check=True, capture_output=True)
                    with open(os.path.join(tmp, kind, "run.json")) as f:
                        run = json.load(f)
                    traces[kind].append([(h["seconds"], h["iter"], h["rel_error"])
                                         for h in run["history"]])

        def at(kind, seconds):
            found = []
            for trace in traces[kind]:
                done = [(it, e) for s, it, e in trace if s <= seconds]
                if done:
                    found.append(done[-1])
            if len(found) * 2 <= len(traces[kind]):
                return "-"
            errors = sorted(e for _, e in found)
            its = sorted(it for it, _ in found)
            return f"{statistics.median(errors):.6f} ({statistics.median(its):g})"

        m, n = x.shape
        print(f"\n**{os.path.basename(os.path.normpath(d))}** (X {m} x {n}, rank {args.rank}, "
              f"batches of {args.batch})\n")
        print("| MiniBatchNMF passes | its fit time | MiniBatchNMF error | facenmf --online "
              "by then (passes) | facenmf batch by then (iterations) |")
        print("|---|---|---|---|---|")
        for p, seconds, err in theirs:
            print(f"| {p} | {seconds:.3f} s | {err:.6f} | {at('online', seconds)} | "
                  f"{at('batch', seconds)} |")
        for kind in ("online", "batch"):
            ends = [t[-1] for t in traces[kind]]
            s = statistics.median(e[0] for e in ends)
            print(f"\nfacenmf {kind}: {ends[0][1]} iterations in {s:.3f} s (median), "
                  f"error {statistics.median(e[2] for e in ends):.6f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
