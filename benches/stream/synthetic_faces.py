# Synthetic 64 x 64 faces for the streaming measurements in the README: N images of 120
# Gaussian parts (each present with probability 0.15) plus 5% noise, as binary PGMs in
# folders of 10,000.  Usage: python3 synthetic_faces.py N OUT_DIR  (needs numpy)
import numpy as np, os, sys
n = int(sys.argv[1]); out = sys.argv[2]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:64, 0:64]
parts = []
for k in range(120):
    cy, cx = rng.uniform(8, 56, 2); s = rng.uniform(3, 9)
    parts.append(np.exp(-((yy-cy)**2 + (xx-cx)**2) / (2*s*s)).ravel())
P = np.array(parts)
header = b"P5\n64 64\n255\n"
for start in range(0, n, 10000):
    b = min(10000, n - start)
    H = rng.random((b, 120)) * (rng.random((b, 120)) < 0.15)
    X = H @ P + 0.05 * rng.random((b, 4096))
    X = np.clip(X / X.max(axis=1, keepdims=True).clip(1e-9) * 255, 0, 255).astype(np.uint8)
    d = os.path.join(out, f"{start // 10000:03d}")
    os.makedirs(d, exist_ok=True)
    for i in range(b):
        with open(os.path.join(d, f"{start + i:07d}.pgm"), "wb") as f:
            f.write(header + X[i].tobytes())
