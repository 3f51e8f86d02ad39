"""facenmf's commands beyond `learn`, each against the scikit-learn script nearest to it, in one run.

    python3 benches/compare/commands.py FACENMF_BINARY PEOPLE_DIR [--repeat K] [--rank R]

PEOPLE_DIR holds one subfolder of images per person (ORL). Per command, K rounds alternate a
fresh `facenmf` process with a fresh Python process running the script a scikit-learn user
would write for the same job (import, load the images with Pillow as `sklearn_nmf.py` does,
compute, np.save the result). Wall times of whole processes, medians printed as a Markdown
table with each side's figure of merit:

- project: `facenmf project MODEL DIR` (exact NNLS, KKT-checked) against
  `NMF.transform` with `components_` set to the same W (coordinate descent, its defaults);
  the relative error of the projected faces.
- recognize: `facenmf recognize DIR --train 5` (NMF on the first 5 faces of each person, the
  rest projected; 1-NN on NMF, PCA and pixels, Euclidean and cosine) against `NMF` +
  `transform` + `KNeighborsClassifier(1)` on the same features `sqrt(h_k ||w_k||_1)`, with
  PCA and pixels likewise; NMF's Euclidean accuracy.
- rank: `facenmf rank DIR --ranks 10,20,30,49 --replicates 1` (masked fits on speckled
  pixels, and faces held out whole) against a loop over the ranks fitting `NMF` on 80% of the
  faces and `transform`-ing the rest: held-out faces only, since scikit-learn's NMF cannot fit
  with missing pixels; the rank each picks.
- stream: `facenmf learn DIR --cache C --stream` (exact E-A-HALS over blocks read from the
  decoded cache; the cache is built once beforehand, untimed) against `MiniBatchNMF` fitted on
  the same cache's `images.npy` opened with `np.load(mmap_mode='r')`; the relative error.
- report: `facenmf report MODEL` (every picture and report.html rebuilt from the folder);
  scikit-learn has no counterpart, so it is timed alone.
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

PRELUDE = r"""
import sys, time, json, os
import numpy as np
sys.path.insert(0, {here!r})
import sklearn_nmf
"""

PROJECT = PRELUDE + r"""
from sklearn.decomposition import NMF
x = sklearn_nmf.load_images({dir!r}, np)
w = np.load({model!r} + "/W.npy").astype(np.float32)
model = NMF(n_components=w.shape[1], init="nndsvda")
model.components_ = w.T.copy()
model.n_components_ = w.shape[1]
model.n_features_in_ = w.shape[0]
model._n_components = w.shape[1]
model._beta_loss = 2
h = model.transform(x.T.astype(np.float32)).T
np.save({out!r} + "/H.npy", h)
err = np.linalg.norm(x - w.astype(np.float64) @ h) / np.linalg.norm(x)
print(json.dumps({{"figure": float(err)}}))
"""

RECOGNIZE = PRELUDE + r"""
from sklearn.decomposition import NMF, PCA
from sklearn.neighbors import KNeighborsClassifier
import re
root = {dir!r}
natural = lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]
train, test = [], []
for person in sorted(os.listdir(root)):
    folder = os.path.join(root, person)
    if not os.path.isdir(folder):
        continue
    names = sorted(os.listdir(folder), key=natural)
    for k, name in enumerate(names):
        (train if k < 5 else test).append((person, os.path.join(person, name)))
def load(items):
    from PIL import Image
    return np.stack([np.asarray(Image.open(os.path.join(root, f)).convert("L"), dtype=np.float64).ravel() / 255.0
                     for _, f in items])
xtr, xte = load(train), load(test)
ytr, yte = [p for p, _ in train], [p for p, _ in test]
model = NMF(n_components={rank}, init="nndsvda", max_iter=200, random_state=0)
htr = model.fit_transform(xtr.astype(np.float32))
hte = model.transform(xte.astype(np.float32))
l1 = model.components_.sum(axis=1)
feat = lambda h: np.sqrt(np.maximum(h, 0) * l1)
acc = {{"nmf": KNeighborsClassifier(1).fit(feat(htr), ytr).score(feat(hte), yte)}}
pca = PCA({rank}).fit(xtr)
acc["pca"] = KNeighborsClassifier(1).fit(pca.transform(xtr), ytr).score(pca.transform(xte), yte)
acc["pixels"] = KNeighborsClassifier(1).fit(xtr, ytr).score(xte, yte)
with open({out!r} + "/recognition.json", "w") as f:
    json.dump(acc, f)
print(json.dumps({{"figure": acc["nmf"]}}))
"""

RANK = PRELUDE + r"""
from sklearn.decomposition import NMF
x = sklearn_nmf.load_images({dir!r}, np).T.astype(np.float32)
rng = np.random.default_rng(0)
held = rng.permutation(x.shape[0])[: x.shape[0] // 5]
keep = np.setdiff1d(np.arange(x.shape[0]), held)
errors = {{}}
for r in [10, 20, 30, 49]:
    model = NMF(n_components=r, init="nndsvda", max_iter=200, random_state=0).fit(x[keep])
    h = model.transform(x[held])
    errors[r] = float(np.linalg.norm(x[held] - h @ model.components_) / np.linalg.norm(x[held]))
with open({out!r} + "/rank.json", "w") as f:
    json.dump(errors, f)
print(json.dumps({{"figure": min(errors, key=errors.get)}}))
"""

STREAM = PRELUDE + r"""
from sklearn.decomposition import MiniBatchNMF
xt = np.load({cache!r} + "/images.npy", mmap_mode="r")
scale = 255.0 if xt.dtype == np.uint8 else 1.0
model = MiniBatchNMF(n_components={rank}, init="nndsvda", random_state=0)
h = None
for _ in range(20):
    for start in range(0, xt.shape[0], 1024):
        model.partial_fit(np.asarray(xt[start:start + 1024], dtype=np.float32) / scale)
w = model.components_
h = model.transform(np.asarray(xt, dtype=np.float32) / scale)
np.save({out!r} + "/W.npy", w.T)
x = np.asarray(xt, dtype=np.float64) / scale
err = np.linalg.norm(x - h.astype(np.float64) @ w.astype(np.float64)) / np.linalg.norm(x)
print(json.dumps({{"figure": float(err)}}))
"""


def run(cmd, **kw):
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    return time.perf_counter() - t, out.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("facenmf")
    parser.add_argument("dir")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rank", type=int, default=49)
    args = parser.parse_args()
    f, d, r = args.facenmf, args.dir, str(args.rank)
    with tempfile.TemporaryDirectory() as tmp:
        model, cache = os.path.join(tmp, "model"), os.path.join(tmp, "cache")
        subprocess.run([f, "learn", d, "-r", r, "-q", "-o", model, "--cache", cache],
                       check=True, capture_output=True)
        ours_out = os.path.join(tmp, "ours")

        def json_of(name):
            with open(os.path.join(ours_out, name)) as fh:
                return json.load(fh)

        def rank_pick():
            ranks = json_of("rank.json")
            return ranks["chosen_rank"]

        jobs = [
            ("project", [f, "project", model, d, "-q", "-o", ours_out],
             lambda: f"{json_of('run.json')['rel_error']:.6f}",
             PROJECT, lambda v: f"{v:.6f}", "relative error"),
            ("recognize --train 5", [f, "recognize", d, "-r", r, "--train", "5", "-q", "-o", ours_out],
             lambda: f"{[m for m in json_of('recognition.json')['methods'] if m['method'] == 'nmf' and m['distance'] == 'euclidean'][0]['accuracy']:.1%}",
             RECOGNIZE, lambda v: f"{v:.1%}", "NMF accuracy"),
            ("rank 10,20,30,49", [f, "rank", d, "--ranks", "10,20,30,49", "--replicates", "1", "-q",
                                  "-o", ours_out],
             lambda: f"{rank_pick()}", RANK, lambda v: f"{v}", "rank chosen"),
            ("learn --stream", [f, "learn", d, "-r", r, "--cache", cache, "--stream", "-q", "-o",
                                ours_out],
             lambda: f"{json_of('run.json')['rel_error']:.6f}",
             STREAM, lambda v: f"{v:.6f}", "relative error"),
            ("report", [f, "report", model, "-q"], lambda: "", None, None, ""),
        ]
        print("| command | facenmf | its figure | scikit-learn script | its figure | ratio | figure |")
        print("|---|---|---|---|---|---|---|")
        for name, ours_cmd, ours_fig, code, their_fig, what in jobs:
            ours, theirs, fig_ours, fig_theirs = [], [], "", ""
            for _ in range(args.repeat):
                if code is not None:
                    out = os.path.join(tmp, "theirs")
                    os.makedirs(out, exist_ok=True)
                    script = code.format(here=HERE, dir=d, model=model, out=out, rank=r,
                                         cache=cache)
                    seconds, stdout = run([sys.executable, "-c", script])
                    theirs.append(seconds)
                    fig_theirs = their_fig(json.loads(stdout.strip().splitlines()[-1])["figure"])
                seconds, _ = run(ours_cmd)
                ours.append(seconds)
                fig_ours = ours_fig()
            a = statistics.median(ours)
            if theirs:
                b = statistics.median(theirs)
                print(f"| {name} | {a:.2f} s | {fig_ours} | {b:.2f} s | {fig_theirs} | "
                      f"**{b / a:.1f}x** | {what} |")
            else:
                print(f"| {name} | {a:.2f} s | | (none) | | | |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
