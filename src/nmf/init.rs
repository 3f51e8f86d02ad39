//! Initial factors: NNDSVD and its variants, and random.
//!
//! - NNDSVD: C. Boutsidis and E. Gallopoulos, "SVD based initialization: A head start for
//!   nonnegative matrix factorization", Pattern Recognition 41(4), 2008. Each singular pair
//!   (u_j, v_j) is replaced by the nonnegative part (positive or negative) with the larger norm
//!   product, entries below 1e-6 are set to zero, as scikit-learn does.
//! - NNDSVDa fills those zeros with the mean of X, NNDSVDar with small random values
//!   (mean / 100 times |N(0, 1)|), both as scikit-learn defines them.
//! - Random: mean-scaled |N(0, 1)| entries, sqrt(mean(X) / r) as in scikit-learn.
//! - SPA: r columns of X picked by the successive projection algorithm (separable NMF), H fitted
//!   to them.
//!
//! The truncated SVD is the randomized range finder of Halko, Martinsson and Tropp (SIAM Review
//! 53(2), 2011; their Algorithm 4.4, re-orthonormalising after every power iteration), with
//! scikit-learn's oversampling (10), and [`POWER_ITERATIONS`] power iterations for the HALS-type
//! solvers or scikit-learn's number for multiplicative updates. When r + 10 >= min(m, n) the
//! range is the whole space and the SVD is exact.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rayon::prelude::*;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::blocks::Images;
use super::linalg::{TallProduct, matmul, matmul_into, view, view_mut};
use super::seed;
use super::spill::HtStore;
use crate::{Error, Float, Result};

/// How the factors start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Init {
    /// NNDSVD with zeros kept (Boutsidis & Gallopoulos 2008): sparse, suits HALS.
    Nndsvd,
    /// NNDSVD with zeros replaced by the mean of X: suits every solver.
    #[default]
    Nndsvda,
    /// NNDSVD with zeros replaced by small random values.
    Nndsvdar,
    /// Random |N(0, 1)| entries scaled by sqrt(mean(X) / r).
    Random,
    /// r images picked by the successive projection algorithm (Gillis & Vavasis 2014), with H
    /// fitted to them: exact when every part also appears alone as an image.
    Spa,
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Init::Nndsvd => "nndsvd",
            Init::Nndsvda => "nndsvda",
            Init::Nndsvdar => "nndsvdar",
            Init::Random => "random",
            Init::Spa => "spa",
        })
    }
}

impl FromStr for Init {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nndsvd" => Ok(Init::Nndsvd),
            "nndsvda" => Ok(Init::Nndsvda),
            "nndsvdar" => Ok(Init::Nndsvdar),
            "random" => Ok(Init::Random),
            "spa" => Ok(Init::Spa),
            _ => Err(Error::param(
                "init",
                format!("unknown init '{s}' (expected nndsvda, nndsvd, nndsvdar, random or spa)"),
            )),
        }
    }
}

/// Power iterations of the range finder for the HALS-type solvers: none. HALS soon forgets the
/// fine structure of its start, so a more accurate SVD did not lower the iterations to
/// scikit-learn's error on the face sets, while each power iteration costs two products with
/// X. Multiplicative updates keep much of their start's structure, so for them the SVD is as
/// accurate as scikit-learn's (7 power iterations when r < min(m, n) / 10, else 4).
const POWER_ITERATIONS: usize = 0;

/// scikit-learn's number of power iterations for rank `rank` of an m x n matrix.
fn accurate_power_iterations(rank: usize, short: usize) -> usize {
    if (rank as f64) < 0.1 * short as f64 {
        7
    } else {
        4
    }
}

/// Entries of the NNDSVD factors below this are set to zero (scikit-learn's `eps`).
const NNDSVD_ZERO: f64 = 1e-6;

/// Initial `(W, H^T)`: W is m x r, H^T is n x r (the engine keeps H transposed so that both
/// factors are updated row by row).
/// `mean` is the mean entry of X (the caller has it from its input scan).
#[cfg(test)]
pub(crate) fn initialize<T: Float>(
    init: Init,
    x: &ArrayView2<T>,
    rank: usize,
    seed: u64,
    mean: f64,
) -> Result<(Array2<T>, Array2<T>)> {
    let (w, ht, _) = initialize_with(
        init,
        &Images::in_memory(x.view(), None),
        rank,
        seed,
        mean,
        false,
        None,
    )?;
    Ok((w, ht.view().to_owned()))
}

/// [`initialize`], with scikit-learn's SVD accuracy when `accurate` (see [`POWER_ITERATIONS`]),
/// H^T made in a file in `spill` when given (see [`HtStore`]; the third value says why not, if
/// it could not be).
pub(crate) fn initialize_with<T: Float>(
    init: Init,
    x: &Images<'_, T>,
    rank: usize,
    seed: u64,
    mean: f64,
    accurate: bool,
    spill: Option<&Path>,
) -> Result<(Array2<T>, HtStore<T>, Option<String>)> {
    let (m, n) = (x.pixels(), x.count());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if init == Init::Random {
        let avg = (mean / rank as f64).sqrt();
        let w = Array2::from_shape_simple_fn((m, rank), || {
            T::from_f64(avg * standard_normal(&mut rng).abs())
        });
        // Split over processes, each draws its own rows of the one sequence.
        skip_normals(&mut rng, x.first() * rank);
        let (mut ht, warning) = HtStore::zeros(n, rank, spill);
        // Drawn in row order, as a whole array would be.
        ht.pieces_mut(|mut rows| {
            rows.iter_mut()
                .for_each(|v| *v = T::from_f64(avg * standard_normal(&mut rng).abs()));
        });
        return Ok((w, ht, warning));
    }
    if init == Init::Spa {
        let Some(x) = x.in_memory_x() else {
            return Err(Error::param(
                "init",
                "spa picks images by passes over all of them; a streamed fit takes nndsvda, \
                 nndsvd, nndsvdar or random",
            ));
        };
        let (w, ht) = spa(&x, rank)?;
        return Ok((w, HtStore::Held(ht), None));
    }

    let short = m.min(n);
    let power = if accurate {
        accurate_power_iterations(rank, short)
    } else {
        POWER_ITERATIONS
    };
    // NNDSVDa's fill goes in as the factors are built; NNDSVDar's draws are sequential.
    let zero = match init {
        Init::Nndsvda => T::from_f64(mean),
        _ => T::zero(),
    };
    let (mut w, mut ht, warning) = nndsvd(x, rank, power, zero, &mut rng, spill)?;
    if init == Init::Nndsvdar {
        let mut fill = |v: T| {
            if v == T::zero() {
                T::from_f64((mean * standard_normal(&mut rng) / 100.0).abs())
            } else {
                v
            }
        };
        w.mapv_inplace(&mut fill);
        if let Some(share) = x.share() {
            // One draw per zero of H^T in row order: skip those of the processes before.
            let mut zeros = 0;
            ht.pieces(|rows| zeros += rows.iter().filter(|v| **v == T::zero()).count());
            let before: f64 = share.group.gather(&[zeros as f64])[..share.group.rank()]
                .iter()
                .sum();
            skip_normals(&mut rng, before as usize);
        }
        let mut fill = |v: T| {
            if v == T::zero() {
                T::from_f64((mean * standard_normal(&mut rng) / 100.0).abs())
            } else {
                v
            }
        };
        ht.pieces_mut(|mut rows| rows.mapv_inplace(&mut fill));
    }
    Ok((w, ht, warning))
}

/// Moves `rng` past `count` draws of [`standard_normal`] (two 64-bit words each).
fn skip_normals(rng: &mut ChaCha8Rng, count: usize) {
    rng.set_word_pos(rng.get_word_pos() + 4 * count as u128);
}

/// Most HALS sweeps that polish H for a fixed W, for the columns SPA picked or the parts of a
/// sample of the images (they stop early once H barely changes: about ten on CBCL).
pub(crate) const FIXED_W_SWEEPS: usize = 50;

/// Successive projection algorithm: W = r columns of X picked greedily, each the column with the
/// largest residual norm after projecting out those already picked (N. Gillis and S. A. Vavasis,
/// "Fast and robust recursive algorithms for separable nonnegative matrix factorization",
/// IEEE TPAMI 36(4), 2014). For a separable X = W [I, H'] (every basis image is also one of the
/// images) it finds W exactly. H is then fitted to that W: least squares clipped at zero,
/// polished by HALS sweeps.
///
/// The residual norms are updated with one pass over X per picked column (c = u^T X with u the
/// new orthonormalised direction), so X is never copied.
fn spa<T: Float>(x: &ArrayView2<T>, rank: usize) -> Result<(Array2<T>, Array2<T>)> {
    let n = x.ncols();
    const COLS: usize = 256;
    let mut norms = vec![0.0f64; n];
    norms
        .par_chunks_mut(COLS)
        .zip(x.axis_chunks_iter(Axis(1), COLS))
        .for_each(|(norms, block)| {
            for row in block.rows() {
                for (acc, v) in norms.iter_mut().zip(row) {
                    *acc += v.to_f64() * v.to_f64();
                }
            }
        });
    let mut picked: Vec<usize> = Vec::with_capacity(rank);
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(rank);
    let mut c = vec![0.0f64; n];
    for _ in 0..rank {
        let j = (0..n)
            .filter(|j| !picked.contains(j))
            .max_by(|&a, &b| norms[a].total_cmp(&norms[b]).then(b.cmp(&a)))
            .expect("rank <= number of images, checked before");
        picked.push(j);
        let mut u: Vec<f64> = x.column(j).iter().map(|v| v.to_f64()).collect();
        // Gram-Schmidt twice against the directions already picked.
        for _ in 0..2 {
            for b in &basis {
                let proj: f64 = b.iter().zip(&u).map(|(p, q)| p * q).sum();
                u.iter_mut().zip(b).for_each(|(q, p)| *q -= proj * p);
            }
        }
        let len = u.iter().map(|v| v * v).sum::<f64>().sqrt();
        if len == 0.0 {
            // Nothing new in this column (X has rank below r): it still serves as a column of W.
            continue;
        }
        u.iter_mut().for_each(|v| *v /= len);
        c.par_chunks_mut(COLS)
            .zip(x.axis_chunks_iter(Axis(1), COLS))
            .for_each(|(c, block)| {
                c.iter_mut().for_each(|v| *v = 0.0);
                for (row, &ui) in block.rows().into_iter().zip(&u) {
                    for (acc, v) in c.iter_mut().zip(row) {
                        *acc += ui * v.to_f64();
                    }
                }
            });
        norms
            .iter_mut()
            .zip(&c)
            .for_each(|(nrm, ci)| *nrm = (*nrm - ci * ci).max(0.0));
        basis.push(u);
    }
    let w = x.select(Axis(1), &picked).as_standard_layout().into_owned();

    let (ht, _) = coefficients_for(x, &w, FIXED_W_SWEEPS);
    Ok((w, ht))
}

/// H^T (n x r) for a fixed W: the unconstrained least-squares fit clipped at zero (exact for
/// separable X, where SPA picked W), then up to `sweeps` HALS sweeps towards the nonnegative
/// least-squares fit (each block of images stops early once its rows barely change). A singular
/// W^T W (repeated columns) leaves the sweeps to start from zero. Also returns X^T W (n x r),
/// which a fit from W would otherwise form again.
pub(crate) fn coefficients_for<T: Float>(
    x: &ArrayView2<T>,
    w: &Array2<T>,
    sweeps: usize,
) -> (Array2<T>, Array2<T>) {
    let (n, rank) = (x.ncols(), w.ncols());
    let mut xtw = Array2::<T>::zeros((n, rank));
    TallProduct::new(n, rank).compute(&mut xtw, x, &w.view());
    let mut g = Array2::<T>::zeros((rank, rank));
    TallProduct::new(rank, rank).compute(&mut g, &w.view(), &w.view());
    let mut ht = Array2::<T>::zeros((n, rank));
    let g64 = faer::Mat::<f64>::from_fn(rank, rank, |i, j| g[[i, j]].to_f64());
    if let Ok(llt) = g64.llt(faer::Side::Lower) {
        // H^T = X^T W G^-1, G^-1 from the Cholesky factor and the product in f64 (as solving
        // with the factor is, to rounding): one product in X^T W's own row-major layout,
        // where the solve needed it gathered column by column and its result scattered back
        // (CBCL's 2429 images: 0.41 -> 0.14 ms, the same start to six digits).
        use faer::linalg::solvers::DenseSolveCore;
        let inverse = llt.inverse();
        let inverse = Array2::from_shape_fn((rank, rank), |(i, j)| inverse[(i, j)]);
        let xtw64 = xtw.mapv(|v| v.to_f64());
        let mut h = Array2::<f64>::zeros((n, rank));
        matmul(&mut h, view(&xtw64.view()), view(&inverse.view()));
        Zip::from(&mut ht)
            .and(&h)
            .par_for_each(|v, &e| *v = T::from_f64(e.max(0.0)));
    }
    let mut scratch = vec![T::zero(); super::hals::scratch_len(n, rank)];
    super::hals::update(
        ht.as_slice_mut().expect("standard layout"),
        xtw.as_slice().expect("standard layout"),
        g.as_slice().expect("standard layout"),
        rank,
        sweeps,
        &mut scratch,
        &mut Vec::new(),
    );
    (ht, xtw)
}

/// NNDSVD, with `zero` in place of the entries it sets to zero.
fn nndsvd<T: Float>(
    x: &Images<'_, T>,
    rank: usize,
    power_iterations: usize,
    zero: T,
    rng: &mut ChaCha8Rng,
    spill: Option<&Path>,
) -> Result<(Array2<T>, HtStore<T>, Option<String>)> {
    let mut warning = None;
    let (u, s, mut v) = match x.whole_x() {
        Some(x) => {
            let svd = truncated_svd(&x, rank, power_iterations, rng.next_u64())?;
            (svd.u, svd.s, RightVectors::F64(svd.v))
        }
        None if x.pixels() <= x.total() => {
            // V is as long as the images: made where H^T will be, which it becomes.
            let (mut v, held) = HtStore::zeros(x.count(), rank, spill);
            warning = held;
            let (u, s) = images_long_svd(x, rank, power_iterations, rng.next_u64(), &mut v)?;
            (u, s, RightVectors::InT(v))
        }
        None => {
            let svd = svd_of(
                &mut ShortSide::streamed(x),
                rank,
                power_iterations,
                rng.next_u64(),
            )?;
            (svd.u, svd.s, RightVectors::F64(svd.v))
        }
    };
    let norms_u = part_norms(&u, |_| {});
    let norms_v = match &mut v {
        // This process's rows of V (all of them, unless split): summed over the processes.
        RightVectors::F64(v) if v.nrows() == x.count() => part_norms(v, |norms| x.sum(norms)),
        RightVectors::InT(v) => {
            let mut norms = PartNorms::new(rank);
            v.pieces(|rows| norms.add(&rows));
            norms.finish(|norms| x.sum(norms))
        }
        RightVectors::F64(v) => {
            // Split with V on the short side, whole in every process: its norms, then its
            // rows.
            let norms = part_norms(v, |_| {});
            let rows = x.first()..x.first() + x.count();
            *v = v.slice(ndarray::s![rows, ..]).to_owned();
            norms
        }
    };
    // Per component: which sign's part to keep and the factor that scales it, so that each
    // factor is then filled in one row-major pass.
    let mut keep_u = Vec::with_capacity(rank);
    let mut keep_v = Vec::with_capacity(rank);
    for (j, &s) in s.iter().enumerate().take(rank) {
        if j == 0 {
            // The leading pair of a nonnegative matrix is one-signed (Perron-Frobenius).
            keep_u.push(Part::abs(s.sqrt()));
            keep_v.push(Part::abs(s.sqrt()));
            continue;
        }
        let ((up, un), (vp, vn)) = ((norms_u.0[j], norms_u.1[j]), (norms_v.0[j], norms_v.1[j]));
        let (sign, nu, nv) = if up * vp > un * vn {
            (1.0, up, vp)
        } else {
            (-1.0, un, vn)
        };
        let sigma = nu * nv;
        if sigma == 0.0 {
            // A pair with no usable nonnegative part: the component stays zero.
            keep_u.push(Part::signed(sign, 0.0));
            keep_v.push(Part::signed(sign, 0.0));
        } else {
            let scale = (s * sigma).sqrt();
            keep_u.push(Part::signed(sign, scale / nu));
            keep_v.push(Part::signed(sign, scale / nv));
        }
    }
    let mut w = fill(&u, &keep_u, zero);
    let mut ht = match v {
        RightVectors::F64(v) => {
            let (ht, held) = HtStore::place(fill(&v, &keep_v, zero), spill);
            warning = held;
            ht
        }
        RightVectors::InT(mut v) => {
            v.pieces_mut(|mut rows| fill_in_place(&mut rows, &keep_v, zero));
            v
        }
    };
    // Beyond the numerical rank of X (the swimmer has 13 at rank 17) the singular pairs are
    // rounding noise, and NNDSVDa's fill would make those components identical, which no
    // simultaneous update (MU, FPGM) can ever tell apart. They start at zero instead, as dead
    // components the loop restarts one by one from the residual (`revive.rs`); NNDSVDar's
    // random fill, applied after this, makes them small and distinct.
    let null = s[0] * T::EPSILON.to_f64().sqrt();
    let dead: Vec<usize> = (1..rank.min(s.len())).filter(|&j| s[j] <= null).collect();
    for &j in &dead {
        w.column_mut(j).fill(T::zero());
    }
    if !dead.is_empty() {
        ht.pieces_mut(|mut rows| {
            for &j in &dead {
                rows.column_mut(j).fill(T::zero());
            }
        });
    }
    Ok((w, ht, warning))
}

/// The right singular vectors as NNDSVD gets them: in f64, or, when the images are streamed
/// and are the long side, in T (their entries are products in T), to become H^T in place.
enum RightVectors<T> {
    F64(Array2<f64>),
    InT(HtStore<T>),
}

/// Norms of the positive and of the negative part of each column, in one pass over the rows;
/// `sum_over_processes` completes their squares when the rows are split over processes.
fn part_norms<F: Float>(
    vectors: &Array2<F>,
    sum_over_processes: impl FnOnce(&mut [f64]),
) -> (Vec<f64>, Vec<f64>) {
    let mut norms = PartNorms::new(vectors.ncols());
    norms.add(&vectors.view());
    norms.finish(sum_over_processes)
}

/// [`part_norms`] summed over pieces of rows given in row order (the same sums).
struct PartNorms {
    positive: Vec<f64>,
    negative: Vec<f64>,
}

impl PartNorms {
    fn new(r: usize) -> Self {
        PartNorms {
            positive: vec![0.0; r],
            negative: vec![0.0; r],
        }
    }

    fn add<F: Float>(&mut self, rows: &ArrayView2<'_, F>) {
        // O(rows r) work: sequential, as waking the pool would cost more.
        // Branch-free: the signs are random, and a branch on them mispredicts every other
        // entry.
        for row in rows.rows() {
            for ((&t, p), q) in row.iter().zip(&mut self.positive).zip(&mut self.negative) {
                let t = t.to_f64();
                let (up, down) = (t.max(0.0), t.min(0.0));
                *p += up * up;
                *q += down * down;
            }
        }
    }

    /// The norms; `sum_over_processes` completes their squares when the rows are split over
    /// processes.
    fn finish(self, sum_over_processes: impl FnOnce(&mut [f64])) -> (Vec<f64>, Vec<f64>) {
        let r = self.positive.len();
        let mut both = [self.positive, self.negative].concat();
        sum_over_processes(&mut both);
        let negative = both.split_off(r);
        let root = |v: Vec<f64>| v.into_iter().map(f64::sqrt).collect();
        (root(both), root(negative))
    }
}

/// How an NNDSVD factor entry comes from a singular vector entry t: `factor * |sign t|` where
/// `abs`, else `factor * max(0, sign t)`. Plain fields, so that the fill is branch-free selects.
#[derive(Debug, Clone, Copy)]
struct Part {
    sign: f64,
    factor: f64,
    abs: bool,
}

impl Part {
    /// factor * |t|
    fn abs(factor: f64) -> Self {
        Part {
            sign: 1.0,
            factor,
            abs: true,
        }
    }

    /// factor * max(0, sign * t)
    fn signed(sign: f64, factor: f64) -> Self {
        Part {
            sign,
            factor,
            abs: false,
        }
    }

    /// The factor's entry from the singular vector's entry `t`: below [`NNDSVD_ZERO`], `zero`.
    fn entry(&self, t: f64, zero: f64) -> f64 {
        let a = self.sign * t;
        let v = self.factor * if self.abs { a.abs() } else { a.max(0.0) };
        // A select between two f64s, not a branch: about half the entries are zero, in no
        // pattern.
        if v < NNDSVD_ZERO { zero } else { v }
    }
}

/// The NNDSVD factor from singular vectors (rows x rank), entries below [`NNDSVD_ZERO`] set to
/// `zero`.
fn fill<T: Float>(vectors: &Array2<f64>, parts: &[Part], zero: T) -> Array2<T> {
    let r = parts.len();
    let mut out = Array2::<T>::zeros(vectors.dim());
    // Branch-free selects over flat rows, which vectorise.
    let zero64 = zero.to_f64();
    let in_flat = vectors.as_slice().expect("standard layout");
    out.as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(FILL_ROWS * r)
        .zip(in_flat.par_chunks(FILL_ROWS * r))
        .for_each(|(out_rows, in_rows)| {
            for (o_row, t_row) in out_rows.chunks_exact_mut(r).zip(in_rows.chunks_exact(r)) {
                for ((o, &t), part) in o_row.iter_mut().zip(t_row).zip(parts) {
                    *o = T::from_f64(part.entry(t, zero64));
                }
            }
        });
    out
}

/// [`fill`] of singular vectors held in T, in place: the factor takes their memory.
fn fill_in_place<T: Float>(vectors: &mut ArrayViewMut2<'_, T>, parts: &[Part], zero: T) {
    let r = parts.len();
    let zero64 = zero.to_f64();
    vectors
        .as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(FILL_ROWS * r)
        .for_each(|rows| {
            for row in rows.chunks_exact_mut(r) {
                for (v, part) in row.iter_mut().zip(parts) {
                    *v = T::from_f64(part.entry(v.to_f64(), zero64));
                }
            }
        });
}

/// Rows of a factor per parallel task of [`fill`].
const FILL_ROWS: usize = 64;

/// Leading singular triplets, in f64: U (m x r), s (r), V (n x r).
pub(crate) struct TruncatedSvd {
    pub(crate) u: Array2<f64>,
    pub(crate) s: Vec<f64>,
    pub(crate) v: Array2<f64>,
}

/// The leading `rank` singular triplets of `x` (m x n); `seed` draws the test matrix.
///
/// The range finder works on the short side (A = X or X^T, a = min(m, n) rows), so that every
/// orthonormalisation is of a small a x l block; each power iteration is Q <- orth(A (A^T Q)).
/// The SVD of the small B = Q^T A (l x long) comes from the eigendecomposition of B B^T in f64.
/// Products whose reduction runs along the long side are split over threads ([`TallProduct`]).
pub(crate) fn truncated_svd<T: Float>(
    x: &ArrayView2<T>,
    rank: usize,
    power_iterations: usize,
    seed: u64,
) -> Result<TruncatedSvd> {
    let transposed = x.nrows() > x.ncols();
    let a = if transposed { x.t() } else { x.view() };
    let short = a.nrows();
    let mut side = ShortSide::Dense {
        a,
        along_long: TallProduct::new(short, (rank + 10).min(short)),
        transposed,
    };
    svd_of(&mut side, rank, power_iterations, seed)
}

/// A = X or X^T, whichever has fewer rows, as the range finder multiplies by it.
enum ShortSide<'a, 'b, T> {
    /// A in memory.
    Dense {
        a: ArrayView2<'a, T>,
        along_long: TallProduct<T>,
        transposed: bool,
    },
    /// X from its blocks; A = X^T when `transposed`.
    Streamed {
        images: &'b Images<'a, T>,
        transposed: bool,
    },
}

impl<'a, 'b, T: Float> ShortSide<'a, 'b, T> {
    fn streamed(images: &'b Images<'a, T>) -> Self {
        ShortSide::Streamed {
            images,
            transposed: images.pixels() > images.total(),
        }
    }

    /// The rows of the long side this process holds: all of them, unless the images are split
    /// over processes and are the long side.
    fn long_rows(&self) -> std::ops::Range<usize> {
        match self {
            ShortSide::Streamed {
                images,
                transposed: false,
            } => images.first()..images.first() + images.count(),
            _ => 0..self.dim().1,
        }
    }

    /// Whether products along the long side are split over processes and must be summed.
    fn long_is_split(&self) -> bool {
        match self {
            ShortSide::Streamed { images, transposed } => !*transposed && images.share().is_some(),
            ShortSide::Dense { .. } => false,
        }
    }

    fn transposed(&self) -> bool {
        match self {
            ShortSide::Dense { transposed, .. } | ShortSide::Streamed { transposed, .. } => {
                *transposed
            }
        }
    }

    /// (short, long).
    fn dim(&self) -> (usize, usize) {
        match self {
            ShortSide::Dense { a, .. } => a.dim(),
            ShortSide::Streamed { images, transposed } => {
                let (m, n) = (images.pixels(), images.total());
                if *transposed { (n, m) } else { (m, n) }
            }
        }
    }

    /// `out = A b` for b (long x l): a reduction along the long side.
    fn times(&mut self, out: &mut Array2<T>, b: &Array2<T>) {
        match self {
            ShortSide::Dense { a, along_long, .. } => along_long.compute(out, &a.t(), &b.view()),
            ShortSide::Streamed { images, transposed } => {
                if *transposed {
                    stack_xt(images, out, b);
                } else {
                    sum_x(images, out, b);
                }
            }
        }
    }

    /// `out = A^T q` for q (short x l).
    fn t_times(&self, out: &mut Array2<T>, q: &Array2<T>) {
        match self {
            ShortSide::Dense { a, .. } => matmul(out, view(a).transpose(), view(&q.view())),
            ShortSide::Streamed { images, transposed } => {
                if *transposed {
                    sum_x(images, out, q);
                } else {
                    stack_xt(images, out, q);
                }
            }
        }
    }
}

/// `out = X b` (m x l) for b (n x l), summed over X's column blocks (and over the processes
/// when split). `b` holds the rows of this process's images, or all n rows.
fn sum_x<T: Float>(images: &Images<'_, T>, out: &mut Array2<T>, b: &Array2<T>) {
    let offset = if b.nrows() == images.count() {
        0
    } else {
        images.first()
    };
    out.fill(T::zero());
    let mut part = Array2::<T>::zeros(out.dim());
    images.for_each(|cols, xb| {
        let bb = b.slice(ndarray::s![cols.start + offset..cols.end + offset, ..]);
        matmul(&mut part, view(&xb), view(&bb));
        *out += &part;
    });
    images.sum_arrays(&mut [out]);
}

/// `out = X^T q` (n x l) for q (m x l), one block of rows at a time. `out` takes the rows of
/// this process's images, or all n rows: then, split over processes, each fills its own and
/// the sum over processes (of rows all others left zero) assembles the whole.
fn stack_xt<T: Float>(images: &Images<'_, T>, out: &mut Array2<T>, q: &Array2<T>) {
    let whole = out.nrows() != images.count();
    let offset = if whole { images.first() } else { 0 };
    if whole {
        out.fill(T::zero());
    }
    images.for_each(|cols, xb| {
        let mut rows = out.slice_mut(ndarray::s![cols.start + offset..cols.end + offset, ..]);
        matmul_into(&mut rows, view(&xb).transpose(), view(&q.view()));
    });
    if whole {
        images.sum_arrays(&mut [out]);
    }
}

/// The truncated SVD of [`truncated_svd`] through a [`ShortSide`].
fn svd_of<T: Float>(
    side: &mut ShortSide<'_, '_, T>,
    rank: usize,
    power_iterations: usize,
    seed: u64,
) -> Result<TruncatedSvd> {
    let transposed = side.transposed();
    let (short, _) = side.dim();
    let width = (rank + 10).min(short);
    // Uniform [-1, 1) test vectors from a counter-based hash: as good as Gaussian ones for range
    // finding, reproducible, and generated in parallel.
    // Split over processes with the images on the long side, each holds its own rows of the
    // long-side arrays, drawn as the whole's rows are.
    let rows = side.long_rows();
    let mut omega = Array2::<T>::zeros((rows.len(), width));
    const DRAWS: usize = 4096;
    let skipped = rows.start * width;
    omega
        .as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(DRAWS)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (k, v) in chunk.iter_mut().enumerate() {
                let at = skipped + c * DRAWS + k;
                *v = T::from_f64(2.0 * seed::uniform(seed, at as u64) - 1.0);
            }
        });
    let long = rows.len();
    let mut y = Array2::<T>::zeros((short, width));
    let mut z = Array2::<T>::zeros((long, width));
    side.times(&mut y, &omega);
    let mut q = orthonormalize(&y)?;
    for _ in 0..power_iterations {
        side.t_times(&mut z, &q);
        side.times(&mut y, &z);
        q = orthonormalize(&y)?;
    }
    // B = Q^T A is kept transposed, B^T = A^T Q (long x l), and B B^T is its Gram matrix: both
    // products in T at GEMM speed; only the small eigenproblem is in f64.
    let mut bt = Array2::<T>::zeros((long, width));
    side.t_times(&mut bt, &q);
    let mut bbt = Array2::<T>::zeros((width, width));
    TallProduct::new(width, width).compute(&mut bbt, &bt.view(), &bt.view());
    if let (true, ShortSide::Streamed { images, .. }) = (side.long_is_split(), &*side) {
        images.sum_arrays(&mut [&mut bbt]);
    }
    let (u, s, scaled) = left_vectors(&q, &bbt, rank)?;
    let kept = scaled.ncols();
    let mut v_long = Array2::<T>::zeros((long, kept));
    matmul(&mut v_long, view(&bt.view()), view(&scaled.view()));
    let mut v = Array2::<f64>::zeros((long, rank));
    Zip::from(v.slice_mut(ndarray::s![.., ..kept]))
        .and(&v_long)
        .par_for_each(|o, &t| *o = t.to_f64());
    Ok(if transposed {
        TruncatedSvd { u: v, s, v: u }
    } else {
        TruncatedSvd { u, s, v }
    })
}

/// The truncated SVD of a streamed X whose images are the long side (m <= n), as [`svd_of`]
/// computes it through [`ShortSide::Streamed`], without an array as long as the images but V:
/// the test matrix is drawn block by block, each power iteration uses a block's `X_b^T Q` at
/// once, and `B^T = X^T Q` is formed twice (for its Gram matrix, then for V) instead of held.
/// At 200,000 images and rank 49 those arrays were 220 MB; now one more pass over X.
///
/// Returns U (m x rank, f64) and the singular values, and writes this process's rows of V in T
/// into `v` (their entries are products in T, so nothing is lost): the size of H^T, which they
/// become, and where H^T will be (a block's rows leave memory after the block when mapped).
fn images_long_svd<T: Float>(
    images: &Images<'_, T>,
    rank: usize,
    power_iterations: usize,
    seed: u64,
    v: &mut HtStore<T>,
) -> Result<(Array2<f64>, Vec<f64>)> {
    let short = images.pixels();
    let width = (rank + 10).min(short);
    let first = images.first();
    // A block's X_b^T Q, and the block's product with X_b.
    let mut block = Array2::<T>::zeros((images.width(), width));
    let mut part = Array2::<T>::zeros((short, width));
    // Y = X Omega, with Omega's rows drawn as the whole Omega's are (see `svd_of`).
    let mut y = Array2::<T>::zeros((short, width));
    images.for_each(|cols, xb| {
        let mut omega = block.slice_mut(ndarray::s![..cols.len(), ..]);
        Zip::indexed(&mut omega).par_for_each(|(j, k), v| {
            let at = (first + cols.start + j) * width + k;
            *v = T::from_f64(2.0 * seed::uniform(seed, at as u64) - 1.0);
        });
        matmul(&mut part, view(&xb), view(&omega.view()));
        y += &part;
    });
    images.sum_arrays(&mut [&mut y]);
    let mut q = orthonormalize(&y)?;
    for _ in 0..power_iterations {
        // Y = X (X^T Q), a block at a time.
        y.fill(T::zero());
        images.for_each(|cols, xb| {
            let mut z = block.slice_mut(ndarray::s![..cols.len(), ..]);
            matmul_into(&mut z, view(&xb).transpose(), view(&q.view()));
            matmul(&mut part, view(&xb), view(&z.view()));
            y += &part;
        });
        images.sum_arrays(&mut [&mut y]);
        q = orthonormalize(&y)?;
    }
    // B B^T, the Gram matrix of B^T = X^T Q, summed over blocks.
    let mut bbt = Array2::<T>::zeros((width, width));
    let mut gram = Array2::<T>::zeros((width, width));
    let mut gram_product = TallProduct::new(width, width);
    images.for_each(|cols, xb| {
        let mut bt = block.slice_mut(ndarray::s![..cols.len(), ..]);
        matmul_into(&mut bt, view(&xb).transpose(), view(&q.view()));
        gram_product.compute(&mut gram, &bt.view(), &bt.view());
        bbt += &gram;
    });
    images.sum_arrays(&mut [&mut bbt]);
    let (u, s, scaled) = left_vectors(&q, &bbt, rank)?;
    // V = B^T scaled, a block at a time.
    let kept = scaled.ncols();
    let release = v.release();
    let mut v = v.view_mut();
    images.for_each(|cols, xb| {
        let mut bt = block.slice_mut(ndarray::s![..cols.len(), ..]);
        matmul_into(&mut bt, view(&xb).transpose(), view(&q.view()));
        let mut rows = v.slice_mut(ndarray::s![cols.clone(), ..kept]);
        matmul_into(&mut rows, view(&bt.view()), view(&scaled.view()));
        if let Some(release) = &release {
            release.rows(cols);
        }
    });
    Ok((u, s))
}

/// From Q (short x l) and B B^T (l x l, B = Q^T A): the left singular vectors (short x rank,
/// f64; columns beyond B's rank zero), the singular values, and the matrix that turns `B^T`
/// into the right singular vectors (l x kept, in T; directions at rounding level zero).
fn left_vectors<T: Float>(
    q: &Array2<T>,
    bbt: &Array2<T>,
    rank: usize,
) -> Result<(Array2<f64>, Vec<f64>, Array2<T>)> {
    let short = q.nrows();
    let width = q.ncols();
    let (lambda, basis) = eigen_descending(&bbt.mapv(|v| v.to_f64()))?;
    let top = lambda.first().copied().unwrap_or(0.0);
    let s: Vec<f64> = (0..rank)
        .map(|j| lambda.get(j).map_or(0.0, |l| l.max(0.0).sqrt()))
        .collect();
    let kept = rank.min(lambda.len());
    // Left vectors on the short side: Q times the eigenvectors (small, f64).
    let mut u = Array2::<f64>::zeros((short, rank));
    u.slice_mut(ndarray::s![.., ..kept]).assign(
        &q.mapv(|v| v.to_f64())
            .dot(&basis.slice(ndarray::s![.., ..kept])),
    );
    // Right vectors on the long side: v_j = B^T u_j / s_j; directions at rounding level carry
    // no information.
    let scaled = Array2::from_shape_fn((width, kept), |(i, j)| {
        if lambda[j] > top * 1e-13 {
            T::from_f64(basis[[i, j]] / s[j])
        } else {
            T::zero()
        }
    });
    Ok((u, s, scaled))
}

/// Eigenvalues (descending) and eigenvectors (as columns, same order) of a symmetric matrix.
fn eigen_descending(g: &Array2<f64>) -> Result<(Vec<f64>, Array2<f64>)> {
    let k = g.nrows();
    let g = g.as_standard_layout();
    let g = g.view();
    // On this thread: at the sizes here (rank + 10) faer's parallel form cost more than it
    // saved (59 x 59: 213 us against 144 us alone).
    let par = faer::Par::Seq;
    let mut u = faer::Mat::<f64>::zeros(k, k);
    let mut s = faer::diag::Diag::<f64>::zeros(k);
    let scratch = faer::linalg::evd::self_adjoint_evd_scratch::<f64>(
        k,
        faer::linalg::evd::ComputeEigenvectors::Yes,
        par,
        Default::default(),
    );
    faer::linalg::evd::self_adjoint_evd(
        view(&g),
        s.as_mut(),
        Some(u.as_mut()),
        par,
        faer::dyn_stack::MemStack::new(&mut faer::dyn_stack::MemBuffer::new(scratch)),
        Default::default(),
    )
    .map_err(|e| Error::Linalg(format!("eigendecomposition did not converge: {e:?}")))?;
    let lambda = s.column_vector();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| lambda[j].total_cmp(&lambda[i]));
    Ok((
        order.iter().map(|&i| lambda[i]).collect(),
        Array2::from_shape_fn((k, k), |(i, j)| u[(i, order[j])]),
    ))
}

/// An orthonormal basis of the range of `y` (few columns), in f64, by Cholesky-QR done twice
/// (Q = Y L^-T with L L^T = Y^T Y; the second pass makes Q orthonormal to working precision):
/// much faster than a Householder QR for these tall, thin blocks. Where Y is close to rank
/// deficient (a pivot below 1e-10 of the largest) the pass uses the eigendecomposition of Y^T Y
/// instead, which turns the missing directions into zero columns rather than noise.
fn orthonormalize<T: Float>(y: &Array2<T>) -> Result<Array2<T>> {
    let mut q = y.mapv(|v| v.to_f64());
    let width = q.ncols();
    let mut gram = Array2::<f64>::zeros((width, width));
    let mut gram_product = TallProduct::new(width, width);
    for _ in 0..2 {
        gram_product.compute(&mut gram, &q.view(), &q.view());
        let gram_view = gram.view();
        let factor = view(&gram_view).llt(faer::Side::Lower).ok().filter(|llt| {
            let d = llt.L().diagonal().column_vector();
            let (lo, hi) = (0..d.nrows()).fold((f64::MAX, 0.0f64), |(lo, hi), i| {
                (lo.min(d[i] * d[i]), hi.max(d[i] * d[i]))
            });
            lo > 1e-10 * hi
        });
        match factor {
            Some(llt) => {
                // Q^T <- L^-1 Q^T, in place.
                let mut q_view = q.view_mut();
                let q_t = view_mut(&mut q_view).transpose_mut();
                faer::linalg::triangular_solve::solve_lower_triangular_in_place(
                    llt.L(),
                    q_t,
                    faer::Par::Seq,
                );
            }
            None => {
                let (lambda, basis) = eigen_descending(&gram)?;
                let top = lambda.first().copied().unwrap_or(0.0);
                // Directions 1e13 times weaker than the strongest are rounding noise.
                let scale = Array2::from_shape_fn(basis.dim(), |(i, j)| {
                    if lambda[j] > top * 1e-13 {
                        basis[[i, j]] / lambda[j].sqrt()
                    } else {
                        0.0
                    }
                });
                q = q.dot(&scale);
            }
        }
    }
    Ok(q.mapv(T::from_f64))
}

/// A standard normal draw (Box-Muller), from a seeded stream so that runs are reproducible.
pub(crate) fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
    let u2 = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigenpairs_are_descending_and_the_same_bits_on_any_number_of_threads() {
        // At rank 90 the start's eigenproblem is 100 x 100, where faer's parallel form gave
        // other bits than its sequential one.
        let a = Array2::from_shape_fn((100, 300), |(i, j)| {
            ((i * 31 + j * 17) % 101) as f64 / 101.0 + ((i * j) as f64).sin()
        });
        let g = a.dot(&a.t());
        let on = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| eigen_descending(&g).unwrap())
        };
        let (lambda, u) = on(1);
        let (lambda2, u2) = on(2);
        assert!(
            lambda
                .iter()
                .zip(&lambda2)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        assert!(u.iter().zip(&u2).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(lambda.windows(2).all(|p| p[0] >= p[1]));
        // G u = lambda u for the leading pair.
        let residual = &g.dot(&u.column(0)) - &(&u.column(0) * lambda[0]);
        assert!(residual.iter().all(|r| r.abs() < 1e-8 * lambda[0]));
    }
}
