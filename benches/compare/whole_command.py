"""The whole job as a scikit-learn user writes it, timed against `facenmf learn` in one run.

    python3 benches/compare/whole_command.py FACENMF_BINARY DIR [DIR...] [--repeat K] [--rank R]

Per folder, K rounds alternate: this script's job in a fresh Python process (import, load the
images with Pillow as `sklearn_nmf.py` does, fit scikit-learn's NMF with its defaults and
init='nndsvda', np.save W and H), then `facenmf learn DIR -r R` in a fresh process (load, fit,
write W.npy, H.npy, run.json, the PNGs and report.html). Wall times of whole processes;
medians printed as a Markdown table, with each side's relative error.
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

JOB = r"""
import sys, time, json
t = time.perf_counter()
import numpy as np
from sklearn.decomposition import NMF
sys.path.insert(0, {here!r})
import sklearn_nmf
x = sklearn_nmf.load_images({dir!r}, np)
model = NMF(n_components={rank}, init="nndsvda", max_iter=200, random_state=0)
h = model.fit_transform(x.T).T
w = model.components_.T
np.save({out!r} + "/W.npy", w)
np.save({out!r} + "/H.npy", h)
err = np.linalg.norm(x - w @ h) / np.linalg.norm(x)
print(json.dumps({{"rel_error": float(err), "iterations": int(model.n_iter_)}}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("facenmf")
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rank", type=int, default=49)
    args = parser.parse_args()
    print("| folder | facenmf learn | its error | scikit-learn script | its error (iterations) | ratio |")
    print("|---|---|---|---|---|---|")
    for d in args.dirs:
        ours, theirs, our_err, their = [], [], None, None
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeat):
                code = JOB.format(here=HERE, dir=d, rank=args.rank, out=tmp)
                t = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", code], check=True,
                                     capture_output=True, text=True)
                theirs.append(time.perf_counter() - t)
                their = json.loads(out.stdout.strip().splitlines()[-1])
                t = time.perf_counter()
                subprocess.run([args.facenmf, "learn", d, "-r", str(args.rank), "-q",
                                "-o", os.path.join(tmp, "facenmf")], check=True,
                               capture_output=True)
                ours.append(time.perf_counter() - t)
                with open(os.path.join(tmp, "facenmf", "run.json")) as f:
                    our_err = json.load(f)["rel_error"]
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"| {os.path.basename(os.path.normpath(d))} | {a:.2f} s | {our_err:.6f} | {b:.2f} s "
              f"| {their['rel_error']:.6f} ({their['iterations']}) | **{b / a:.1f}x** |")


if __name__ == "__main__":
    main()
