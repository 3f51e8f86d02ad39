//! Missing entries: the objective sums over the known entries of X only.
//!
//! Solved by imputation (expectation-maximisation): before each iteration the hidden entries of
//! X are replaced by those of the current WH. The squared error of the filled matrix bounds
//! the known-entries error from above and touches it at the current iterate, so any update that
//! lowers the former lowers the latter (a majorisation-minimisation scheme; N.-D. Ho's
//! thesis and the weighted NMF literature use the same step). Every solver works unchanged.
//!
//! The imputation costs one r-long dot product per hidden entry, not a product W H: the error
//! of the filled matrix comes from the sums the half-steps already formed (`||F||^2 - 2 <F H^T,
//! W> + <H H^T, W^T W>`), and the known entries' error is that minus the hidden entries' share,
//! which the same dot products give. Where that difference would cancel to noise (a fit closer
//! than [`exact_below`] of the filled norm) the error is formed directly instead.

use ndarray::{Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use super::linalg::{ROW_CHUNK, matmul, view};
use super::seed;
use crate::{Error, Float, Result};

/// A mask of `shape` with each entry hidden (false) with probability `fraction`, reproducible
/// from `seed` (a counter-based hash per entry, so the same for any thread count).
pub fn random_mask(shape: (usize, usize), fraction: f64, seed: u64) -> Array2<bool> {
    let cols = shape.1 as u64;
    let stream = seed ^ 0x005E_ED0F_4D15_C0DE;
    Array2::from_shape_fn((shape.0, shape.1), |(i, j)| {
        seed::nth_uniform(stream, i as u64 * cols + j as u64 + 1) >= fraction
    })
}

/// The filled data matrix and what is needed to refresh it.
#[derive(Debug)]
pub(crate) struct Missing<'a, T> {
    known: ArrayView2<'a, bool>,
    /// X with its hidden entries replaced by the current WH.
    pub(crate) filled: Array2<T>,
    /// The hidden entries row by row: row i's columns are
    /// `hidden_cols[row_starts[i]..row_starts[i + 1]]`, increasing.
    row_starts: Vec<usize>,
    hidden_cols: Vec<u32>,
    /// Per chunk of rows: the squared change of its hidden entries and their new squares.
    chunk_sums: Vec<(f64, f64)>,
    /// W H formed whole, where the error is measured directly.
    product: Array2<T>,
    /// Sum of squares of the known entries of X.
    pub(crate) known_norm_sq: f64,
    /// `||filled||^2`, as the last imputation left it.
    pub(crate) filled_norm_sq: f64,
}

/// Below this share of `||filled||^2` the Gram formula's error is mostly rounding (its terms
/// are each near `||filled||^2`), so the known entries' error is formed directly: about a
/// hundred times the rounding of T's sums, which keeps the formula's error within about 1% of
/// the value it measures.
fn exact_below<T: Float>() -> f64 {
    if T::NAME == "f32" { 1e-4 } else { 1e-6 }
}

/// Imputes one row of the filled matrix: `row[j] = <w_row, ht[j]>` for its hidden columns
/// `cols`; returns the squared change and the new values' squares.
type RowImpute<T> = fn(&mut [T], &[T], &[T], &[u32]) -> (f64, f64);

/// [`impute_row`] compiled for the best instruction set this CPU has (chosen at run time, so
/// the binary stays portable): the dot products are short (r long), and AVX's eight-wide
/// lanes took the imputation from a fifth of a masked CBCL fit's time to about nothing. The
/// sums stay separate multiplies and adds (Rust does not fuse them), so the bits do not depend
/// on the CPU.
fn row_imputer<T: Float>() -> RowImpute<T> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return |row, w_row, ht, cols| {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                unsafe { impute_row_avx2(row, w_row, ht, cols) }
            };
        }
    }
    impute_row::<T>
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn impute_row_avx2<T: Float>(row: &mut [T], w_row: &[T], ht: &[T], cols: &[u32]) -> (f64, f64) {
    impute_row(row, w_row, ht, cols)
}

#[inline(always)]
fn impute_row<T: Float>(row: &mut [T], w_row: &[T], ht: &[T], cols: &[u32]) -> (f64, f64) {
    let r = w_row.len();
    let (mut change, mut squares) = (0.0, 0.0);
    for &j in cols {
        let j = j as usize;
        let p = row_dot(w_row, &ht[j * r..(j + 1) * r]);
        let d = row[j].to_f64() - p.to_f64();
        change += d * d;
        squares += p.to_f64() * p.to_f64();
        row[j] = p;
    }
    (change, squares)
}

/// `<a, b>` of two r-long rows in T, in eight lanes.
#[inline(always)]
fn row_dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut tail = T::zero();
    for (&p, &q) in ac.remainder().iter().zip(bc.remainder()) {
        tail += p * q;
    }
    for (pa, qb) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += pa[k] * qb[k];
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
}

impl<'a, T: Float> Missing<'a, T> {
    /// Starts with the hidden entries at the mean of the known ones.
    pub(crate) fn new(x: &ArrayView2<T>, known: ArrayView2<'a, bool>) -> Result<Self> {
        if known.dim() != x.dim() {
            return Err(Error::param(
                "mask",
                format!("mask is {:?}, X is {:?}", known.dim(), x.dim()),
            ));
        }
        let (mut sum, mut sq, mut count) = (0.0, 0.0, 0usize);
        Zip::from(x).and(&known).for_each(|&v, &k| {
            if k {
                let v = v.to_f64();
                sum += v;
                sq += v * v;
                count += 1;
            }
        });
        if count == 0 || sq == 0.0 {
            return Err(Error::param(
                "mask",
                "no known nonzero entry is left to fit",
            ));
        }
        let fill = T::from_f64(sum / count as f64);
        let mut filled = x.to_owned();
        let mut row_starts = vec![0];
        let mut hidden_cols = Vec::new();
        for (row, known_row) in filled.rows_mut().into_iter().zip(known.rows()) {
            for (j, (v, &k)) in row.into_iter().zip(known_row).enumerate() {
                if !k {
                    *v = fill;
                    hidden_cols.push(u32::try_from(j).expect("fewer than 2^32 images"));
                }
            }
            row_starts.push(hidden_cols.len());
        }
        let filled_norm_sq = sq + hidden_cols.len() as f64 * fill.to_f64() * fill.to_f64();
        Ok(Missing {
            known,
            filled,
            row_starts,
            hidden_cols,
            chunk_sums: Vec::new(),
            product: Array2::zeros(x.dim()),
            known_norm_sq: sq,
            filled_norm_sq,
        })
    }

    /// Sets the hidden entries of `filled` to those of W H (W m x r, H^T n x r) and
    /// `filled_norm_sq` to match; returns the squared change of the hidden entries.
    fn impute(&mut self, w: &Array2<T>, ht: &Array2<T>) -> f64 {
        let ht = ht.as_slice().expect("standard layout");
        let (row_starts, cols) = (&self.row_starts, &self.hidden_cols);
        let impute_row = row_imputer::<T>();
        self.filled
            .axis_chunks_iter_mut(Axis(0), ROW_CHUNK)
            .into_par_iter()
            .zip(w.axis_chunks_iter(Axis(0), ROW_CHUNK))
            .enumerate()
            .map(|(chunk, (mut filled, w))| {
                let (mut change, mut squares) = (0.0, 0.0);
                for (k, (mut row, w_row)) in filled.rows_mut().into_iter().zip(w.rows()).enumerate()
                {
                    let i = chunk * ROW_CHUNK + k;
                    let (c, s) = impute_row(
                        row.as_slice_mut().expect("standard layout"),
                        w_row.as_slice().expect("standard layout"),
                        ht,
                        &cols[row_starts[i]..row_starts[i + 1]],
                    );
                    change += c;
                    squares += s;
                }
                (change, squares)
            })
            .collect_into_vec(&mut self.chunk_sums);
        let (change, squares) = self
            .chunk_sums
            .iter()
            .fold((0.0, 0.0), |(c, s), &(dc, ds)| (c + dc, s + ds));
        self.filled_norm_sq = self.known_norm_sq + squares;
        change
    }

    /// After an iteration: `filled_error_sq` is `||filled - W H||^2` of the filled matrix the
    /// iteration saw (from the half-steps' sums). Imputes the hidden entries from the new W H
    /// and returns the squared error on the known entries.
    pub(crate) fn update(
        &mut self,
        x: &ArrayView2<T>,
        w: &Array2<T>,
        ht: &Array2<T>,
        filled_error_sq: f64,
    ) -> f64 {
        // A NaN estimate (overflowed sums) is measured directly too.
        let trusted = filled_error_sq >= exact_below::<T>() * self.filled_norm_sq;
        if !trusted {
            return self.refresh(x, w, ht);
        }
        let change = self.impute(w, ht);
        (filled_error_sq - change).max(0.0)
    }

    /// Sets the hidden entries of `filled` to those of W H (W m x r, H^T n x r) and returns
    /// the squared error on the known entries, formed directly from a product W H.
    pub(crate) fn refresh(&mut self, x: &ArrayView2<T>, w: &Array2<T>, ht: &Array2<T>) -> f64 {
        self.impute(w, ht);
        let (wv, htv) = (w.view(), ht.view());
        matmul(&mut self.product, view(&wv), view(&htv).transpose());
        let partial: Vec<f64> = self
            .product
            .axis_chunks_iter(Axis(0), ROW_CHUNK)
            .into_par_iter()
            .zip(x.axis_chunks_iter(Axis(0), ROW_CHUNK))
            .zip(self.known.axis_chunks_iter(Axis(0), ROW_CHUNK))
            .map(|((p, x), known)| {
                let mut err = 0.0;
                Zip::from(&p).and(&x).and(&known).for_each(|&p, &x, &k| {
                    if k {
                        let d = x.to_f64() - p.to_f64();
                        err += d * d;
                    }
                });
                err
            })
            .collect();
        partial.iter().sum()
    }

    /// Relative errors of W H on the known and on the hidden entries (0 when none is hidden).
    pub(crate) fn errors(
        &mut self,
        x: &ArrayView2<T>,
        w: &Array2<T>,
        ht: &Array2<T>,
    ) -> (f64, f64) {
        let (w, ht) = (w.view(), ht.view());
        matmul(&mut self.product, view(&w), view(&ht).transpose());
        let (mut known_err, mut hidden_err, mut hidden_norm) = (0.0, 0.0, 0.0);
        Zip::from(&self.product)
            .and(x)
            .and(&self.known)
            .for_each(|&p, &x, &k| {
                let (p, x) = (p.to_f64(), x.to_f64());
                if k {
                    known_err += (x - p) * (x - p);
                } else {
                    hidden_err += (x - p) * (x - p);
                    hidden_norm += x * x;
                }
            });
        let hidden = if hidden_norm > 0.0 {
            (hidden_err / hidden_norm).sqrt()
        } else {
            0.0
        };
        ((known_err / self.known_norm_sq).sqrt(), hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmf::linalg::residual_sq;

    /// The known entries' error from the Gram sums minus the hidden share equals the error
    /// formed directly, and the imputation is W H at the hidden entries, in f32 and f64.
    fn matches_the_direct_error<T: Float>(tolerance: f64) {
        let (m, n, r) = (37, 29, 5);
        let u = |k: u64| T::from_f64(crate::nmf::mix_seed(3, k) as f64 / u64::MAX as f64);
        let x = Array2::from_shape_fn((m, n), |(i, j)| u((i * n + j) as u64));
        let w = Array2::from_shape_fn((m, r), |(i, k)| u(1 << 40 | (i * r + k) as u64));
        let ht = Array2::from_shape_fn((n, r), |(j, k)| u(1 << 41 | (j * r + k) as u64));
        let known = random_mask((m, n), 0.3, 5);
        let mut missing = Missing::new(&x.view(), known.view()).unwrap();
        let filled_before = missing.filled.clone();
        let filled_norm: f64 = filled_before.iter().map(|v| v.to_f64().powi(2)).sum();
        assert!((missing.filled_norm_sq - filled_norm).abs() <= 1e-6 * filled_norm);
        let filled_error_sq = residual_sq(&filled_before.view(), &w, &ht);
        let known_error = missing.update(&x.view(), &w, &ht, filled_error_sq);

        let wh = w.dot(&ht.t());
        let mut direct = 0.0;
        for ((i, j), &k) in known.indexed_iter() {
            let (f, p) = (missing.filled[[i, j]].to_f64(), wh[[i, j]].to_f64());
            if k {
                direct += (x[[i, j]].to_f64() - p).powi(2);
                assert_eq!(missing.filled[[i, j]], x[[i, j]]);
            } else {
                assert!((f - p).abs() <= tolerance * p.abs().max(1.0), "({i}, {j})");
            }
        }
        assert!(
            (known_error - direct).abs() <= tolerance * direct,
            "{known_error} against {direct}"
        );
        let filled_norm: f64 = missing.filled.iter().map(|v| v.to_f64().powi(2)).sum();
        assert!((missing.filled_norm_sq - filled_norm).abs() <= tolerance * filled_norm);
        // Below the floor of the Gram formula, the error is formed directly.
        let exact = missing.update(&x.view(), &w, &ht, 0.0);
        assert!(
            (exact - direct).abs() <= tolerance * direct,
            "{exact} against {direct}"
        );
    }

    #[test]
    fn the_known_error_from_the_sums_is_the_direct_one() {
        matches_the_direct_error::<f64>(1e-12);
        matches_the_direct_error::<f32>(1e-5);
    }
}
