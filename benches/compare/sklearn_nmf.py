#!/usr/bin/env python3
"""scikit-learn's NMF on the X facenmf builds, for `cargo bench --bench compare`.

Prints one JSON object: the data (m, n, x_sum, x_fro_norm), the fit's wall time, iterations,
final relative error ||X - WH||_F / ||X||_F (float64), the beta-divergence for a non-Frobenius
loss, and optionally a per-iteration error trace with the time to a target error.

X is m pixels x n images, one image per column, as facenmf builds it: files found recursively
(hidden names skipped), ordered by their relative path as a plain string with '/' separators,
first frame, Pillow's convert('L'), scaled to [0, 1] (16-bit grayscale by 65535), flattened
row-major. Files Pillow cannot open are skipped, as facenmf skips non-images. scikit-learn fits
the transpose (rows are samples), so its components_ is our W transposed.

Timing is the wall time of fit_transform after one untimed one-iteration fit (warm-up). The
trace ("--trace hook") is a second fit whose coordinate-descent or multiplicative updates are
wrapped: after every iteration the clock is paused and the error measured, so the trace's
seconds are the fit's own. The solvers are deterministic, so the traced fit makes the timed
fit's iterates; the traced final error is checked against it.
"""

import argparse
import json
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images (searched recursively)")
    src.add_argument("--npy", help="X as a .npy file, m x n")
    p.add_argument("--rank", type=int, default=49)
    p.add_argument("--solver", choices=["cd", "mu"], default="cd")
    p.add_argument("--beta-loss", choices=["frobenius", "kullback-leibler"], default="frobenius")
    p.add_argument("--init", default="nndsvda")
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--trace", choices=["hook", "none"], default="none")
    p.add_argument("--time-to-error", type=float, help="target relative error E")
    return p.parse_args()


def limit_threads(threads):
    # Must happen before numpy loads its BLAS.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    # These slow a current numpy's OpenBLAS on these machines.
    os.environ.pop("OPENBLAS_CORETYPE", None)
    os.environ.pop("OPENBLAS_L2_SIZE", None)


def image_files(root):
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                files.append(rel.replace(os.sep, "/"))
    return sorted(files)


def load_images(root, np):
    from PIL import Image, UnidentifiedImageError

    columns, shape = [], None
    for rel in image_files(root):
        path = os.path.join(root, rel)
        try:
            img = Image.open(path)
            img.seek(0)
        except (UnidentifiedImageError, OSError):
            continue
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            pixels = np.asarray(img, dtype=np.float64) / 65535.0
        else:
            pixels = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            sys.exit(f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}, "
                     f"others {shape[1]}x{shape[0]}")
        columns.append(pixels.reshape(-1))
    if len(columns) < 2:
        sys.exit(f"{root}: fewer than two images")
    return np.stack(columns, axis=1)


def main():
    args = parse_args()
    limit_threads(args.threads)
    import numpy as np
    from sklearn import __version__ as sklearn_version
    from sklearn.decomposition import NMF, _nmf
    from threadpoolctl import threadpool_limits

    x = load_images(args.images, np) if args.images else np.load(args.npy).astype(np.float64)
    xt = np.ascontiguousarray(x.T, dtype=args.dtype)  # samples x features
    x64 = x.T.astype(np.float64)
    x_norm = float(np.linalg.norm(x64))

    def model(max_iter):
        return NMF(n_components=args.rank, init=args.init, solver=args.solver,
                   beta_loss=args.beta_loss, max_iter=max_iter, tol=0.0, random_state=0)

    def rel_error(h, w):
        return float(np.linalg.norm(x64 - h.astype(np.float64) @ w.astype(np.float64)) / x_norm)

    with threadpool_limits(limits=args.threads):
        model(1).fit_transform(xt)  # warm-up
        m = model(args.max_iter)
        start = time.perf_counter()
        h = m.fit_transform(xt)
        seconds = time.perf_counter() - start
        w = m.components_
        trace = traced_fit(args, model, xt, rel_error, _nmf, np) if args.trace == "hook" else []

    result = {
        "data": {"m": int(x.shape[0]), "n": int(x.shape[1]), "x_sum": float(x.sum()),
                 "x_fro_norm": x_norm},
        "rank": args.rank, "solver": args.solver, "beta_loss": args.beta_loss,
        "init": args.init, "dtype": args.dtype, "threads": args.threads,
        "iterations": int(m.n_iter_), "fit_seconds": seconds, "rel_error": rel_error(h, w),
        "sklearn": sklearn_version, "numpy": np.__version__, "trace": trace,
    }
    if args.beta_loss != "frobenius":
        beta = {"kullback-leibler": 1}[args.beta_loss]
        result["divergence"] = float(_nmf._beta_divergence(
            x64, h.astype(np.float64), w.astype(np.float64), beta))
    if trace:
        last = trace[-1]["rel_error"]
        if abs(last - result["rel_error"]) > 1e-6 * max(result["rel_error"], 1e-12):
            sys.exit(f"the traced fit ended at {last}, the timed fit at {result['rel_error']}")
    if args.time_to_error is not None:
        reached = [p for p in trace if p["rel_error"] <= args.time_to_error]
        result["time_to_error"] = (
            {"seconds": reached[0]["seconds"], "iter": reached[0]["iter"]} if reached else None)
    json.dump(result, sys.stdout)
    print()


def traced_fit(args, model, xt, rel_error, _nmf, np):
    """A fit with its updates wrapped: the error after every iteration, the clock paused."""
    clock = {"start": 0.0, "paused": 0.0}
    trace = []

    def record(h, w):
        pause = time.perf_counter()
        error = rel_error(h, w)
        elapsed = pause - clock["start"] - clock["paused"]
        trace.append({"iter": len(trace) + 1, "seconds": elapsed, "rel_error": error})
        clock["paused"] += time.perf_counter() - pause

    if args.solver == "cd":
        # Per iteration: the samples' coefficients (our H) given the components, then the
        # components (our W) given the coefficients, as _fit_coordinate_descent calls it.
        original = _nmf._update_coordinate_descent
        calls = {"n": 0}

        def wrapped(X, W, Ht, *rest):
            out = original(X, W, Ht, *rest)
            calls["n"] += 1
            if calls["n"] % 2 == 0:  # W here is the coefficients, Ht the components^T
                record(Ht, W.T)
            return out

        _nmf._update_coordinate_descent = wrapped
    else:
        # Multiplicative updates: components first, then coefficients, per iteration.
        original = _nmf._multiplicative_update_h

        def wrapped(X, W, H, *rest, **kw):
            out = original(X, W, H, *rest, **kw)
            record(W, out)
            return out

        _nmf._multiplicative_update_h = wrapped
    try:
        clock["start"] = time.perf_counter()
        model(args.max_iter).fit_transform(xt)
    finally:
        if args.solver == "cd":
            _nmf._update_coordinate_descent = original
        else:
            _nmf._multiplicative_update_h = original
    return trace


if __name__ == "__main__":
    main()
