//! Initial factors: NNDSVD and its variants, and random.
//!
//! - NNDSVD: C. Boutsidis and E. Gallopoulos, "SVD based initialization: A head start for
//!   nonnegative matrix factorization", Pattern Recognition 41(4), 2008. Each singular pair
//!   (u_j, v_j) is replaced by the nonnegative part (positive or negative) with the larger norm
//!   product, entries below 1e-6 are set to zero, as scikit-learn does.
//! - NNDSVDa fills those zeros with the mean of X, NNDSVDar with small random values
//!   (mean / 100 times |N(0, 1)|), both as scikit-learn defines them.
//! - Random: mean-scaled |N(0, 1)| entries, sqrt(mean(X) / r) as in scikit-learn.
//!
//! The truncated SVD is the randomized range finder of Halko, Martinsson and Tropp (SIAM Review
//! 53(2), 2011; their Algorithm 4.4 with QR re-orthonormalisation), with scikit-learn's oversampling
//! (10) and power iterations (7 when r < min(m, n) / 10, else 4). When r + 10 >= min(m, n) the
//! range is the whole space and the SVD is exact.

use faer::{Mat, MatRef};
use ndarray::{Array2, ArrayView2};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::Init;
use super::linalg::view;
use crate::{Error, Float, Result};

/// Entries of the NNDSVD factors below this are set to zero (scikit-learn's `eps`).
const NNDSVD_ZERO: f64 = 1e-6;

/// Initial `(W, H^T)`: W is m x r, H^T is n x r (the engine keeps H transposed so that both
/// factors are updated row by row).
pub(crate) fn initialize<T: Float>(
    init: Init,
    x: &ArrayView2<T>,
    rank: usize,
    seed: u64,
) -> Result<(Array2<T>, Array2<T>)> {
    let (m, n) = x.dim();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mean = x.iter().map(|v| v.to_f64()).sum::<f64>() / (m * n) as f64;
    if init == Init::Random {
        let avg = (mean / rank as f64).sqrt();
        let w = Array2::from_shape_simple_fn((m, rank), || {
            T::from_f64(avg * standard_normal(&mut rng).abs())
        });
        let ht = Array2::from_shape_simple_fn((n, rank), || {
            T::from_f64(avg * standard_normal(&mut rng).abs())
        });
        return Ok((w, ht));
    }

    let (mut w, mut ht) = nndsvd(x, rank, &mut rng)?;
    match init {
        Init::Nndsvd => {}
        Init::Nndsvda => {
            let fill = T::from_f64(mean);
            w.mapv_inplace(|v| if v == T::zero() { fill } else { v });
            ht.mapv_inplace(|v| if v == T::zero() { fill } else { v });
        }
        Init::Nndsvdar => {
            let mut fill = |v: T| {
                if v == T::zero() {
                    T::from_f64((mean * standard_normal(&mut rng) / 100.0).abs())
                } else {
                    v
                }
            };
            w.mapv_inplace(&mut fill);
            ht.mapv_inplace(&mut fill);
        }
        Init::Random => unreachable!("handled above"),
    }
    Ok((w, ht))
}

/// Plain NNDSVD (zeros left in place).
fn nndsvd<T: Float>(
    x: &ArrayView2<T>,
    rank: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(Array2<T>, Array2<T>)> {
    let (m, n) = x.dim();
    let (u, s, v) = truncated_svd(view(x), rank, rng)?;
    let mut w = Array2::<T>::zeros((m, rank));
    let mut ht = Array2::<T>::zeros((n, rank));
    for j in 0..rank {
        let uj: Vec<f64> = (0..m).map(|i| u[(i, j)].to_f64()).collect();
        let vj: Vec<f64> = (0..n).map(|i| v[(i, j)].to_f64()).collect();
        let sj = s[j].to_f64().max(0.0);
        let (col_w, col_h, scale) = if j == 0 {
            // The leading pair of a nonnegative matrix is one-signed (Perron-Frobenius).
            let a: Vec<f64> = uj.iter().map(|t| t.abs()).collect();
            let b: Vec<f64> = vj.iter().map(|t| t.abs()).collect();
            (a, b, sj.sqrt())
        } else {
            let pos = |t: &f64| t.max(0.0);
            let neg = |t: &f64| (-t).max(0.0);
            let (up, vp): (Vec<f64>, Vec<f64>) =
                (uj.iter().map(pos).collect(), vj.iter().map(pos).collect());
            let (un, vn): (Vec<f64>, Vec<f64>) =
                (uj.iter().map(neg).collect(), vj.iter().map(neg).collect());
            let (nup, nvp, nun, nvn) = (norm(&up), norm(&vp), norm(&un), norm(&vn));
            let (mp, mn) = (nup * nvp, nun * nvn);
            let (a, b, na, nb, sigma) = if mp > mn {
                (up, vp, nup, nvp, mp)
            } else {
                (un, vn, nun, nvn, mn)
            };
            if sigma == 0.0 {
                // A pair with no usable nonnegative part: leave the component at zero.
                (vec![0.0; m], vec![0.0; n], 0.0)
            } else {
                let a = a.into_iter().map(|t| t / na).collect();
                let b = b.into_iter().map(|t| t / nb).collect();
                (a, b, (sj * sigma).sqrt())
            }
        };
        for (i, t) in col_w.iter().enumerate() {
            let val = scale * t;
            w[[i, j]] = if val < NNDSVD_ZERO {
                T::zero()
            } else {
                T::from_f64(val)
            };
        }
        for (i, t) in col_h.iter().enumerate() {
            let val = scale * t;
            ht[[i, j]] = if val < NNDSVD_ZERO {
                T::zero()
            } else {
                T::from_f64(val)
            };
        }
    }
    Ok((w, ht))
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|t| t * t).sum::<f64>().sqrt()
}

/// The leading `rank` singular triplets of `x` (m x n): U (m x rank), s, V (n x rank).
pub(crate) fn truncated_svd<T: Float>(
    x: MatRef<'_, T>,
    rank: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(Mat<T>, Vec<T>, Mat<T>)> {
    let (m, n) = (x.nrows(), x.ncols());
    let k = m.min(n);
    let width = (rank + 10).min(k);
    let power_iters = if (rank as f64) < 0.1 * k as f64 { 7 } else { 4 };
    let omega = Mat::<T>::from_fn(n, width, |_, _| T::from_f64(standard_normal(rng)));
    let mut y: Mat<T> = x * &omega;
    for _ in 0..power_iters {
        let q = y.as_ref().qr().compute_thin_Q();
        let z: Mat<T> = x.transpose() * &q;
        let qz = z.as_ref().qr().compute_thin_Q();
        y = x * &qz;
    }
    let q = y.as_ref().qr().compute_thin_Q();
    let b: Mat<T> = q.transpose() * x;
    let svd = b
        .as_ref()
        .thin_svd()
        .map_err(|e| Error::Linalg(format!("truncated SVD did not converge: {e:?}")))?;
    let u: Mat<T> = &q * svd.U();
    let s: Vec<T> = (0..rank).map(|j| svd.S().column_vector()[j]).collect();
    let v = svd.V();
    let u = Mat::from_fn(m, rank, |i, j| u[(i, j)]);
    let v = Mat::from_fn(n, rank, |i, j| v[(i, j)]);
    Ok((u, s, v))
}

/// A standard normal draw (Box-Muller), from a seeded stream so that runs are reproducible.
pub(crate) fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
    let u2 = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
