//! Hierarchical alternating least squares (HALS), also known as coordinate descent.
//!
//! A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale nonnegative matrix and
//! tensor factorizations", IEICE Trans. Fundamentals E92-A(3), 2009; the accelerated form with
//! inner repetitions is N. Gillis and F. Glineur, "Accelerated multiplicative updates and
//! hierarchical ALS algorithms for nonnegative matrix factorization", Neural Computation 24(4),
//! 2012 (and N. Gillis, *Nonnegative Matrix Factorization*, SIAM 2020, section 8.3).
//!
//! One factor F (p x r, rows independent) is updated with the other fixed, from
//! A = X^T-side product (p x r) and G = Gram matrix of the other factor (r x r): each entry is
//! the exact minimiser of the objective in that entry, projected on the nonnegative orthant,
//! `F[i,k] <- max(0, F[i,k] + (A[i,k] - F[i,:] G[:,k]) / G[k,k])`, columns in order
//! (Gauss-Seidel within a row). A and G cost far more than one sweep, so the accelerated form
//! repeats the sweep while it still pays: at most `1 + alpha * rho` times, where rho is the cost
//! of A and G in sweeps, and only while the change is above `delta` times the first sweep's.

use ndarray::{Array2, Axis};
use rayon::prelude::*;

use super::linalg::{ROW_CHUNK, row_dot};
use crate::Float;

/// Gillis and Glineur's alpha: the share of the products' cost spent on extra sweeps.
const ALPHA: f64 = 0.5;
/// Gillis and Glineur's delta: stop repeating when a sweep changes F by less than this fraction
/// of what the first sweep changed.
const DELTA: f64 = 0.1;

/// The most sweeps worth doing for a factor with `rows` rows, when its products with X cost
/// `2 * m * n * r` and the Gram matrix of the other factor `2 * other_rows * r^2` flops.
pub(crate) fn max_sweeps(rows: usize, other_rows: usize, rank: usize) -> usize {
    let (p, q, r) = (rows as f64, other_rows as f64, rank as f64);
    let rho = 1.0 + (p * q + q * r) / (p * r + p);
    1 + (ALPHA * rho).floor() as usize
}

/// Updates `f` in place with up to `sweeps` HALS sweeps (1 = plain HALS / scikit-learn's cd).
/// Returns the number of sweeps done.
pub(crate) fn update<T: Float>(
    f: &mut Array2<T>,
    a: &Array2<T>,
    g: &Array2<T>,
    sweeps: usize,
) -> usize {
    let mut first = 0.0;
    for done in 1..=sweeps {
        let change = sweep(f, a, g);
        if done == 1 {
            first = change;
        } else if change <= DELTA * DELTA * first {
            return done;
        }
    }
    sweeps
}

/// One Gauss-Seidel sweep over all entries of `f`, rows in parallel. Returns ||change||_F^2.
fn sweep<T: Float>(f: &mut Array2<T>, a: &Array2<T>, g: &Array2<T>) -> f64 {
    let rank = f.ncols();
    let g = g.as_slice().expect("standard layout");
    let partial: Vec<f64> = f
        .axis_chunks_iter_mut(Axis(0), ROW_CHUNK)
        .into_par_iter()
        .zip(a.axis_chunks_iter(Axis(0), ROW_CHUNK))
        .map(|(mut f_rows, a_rows)| {
            let mut change = 0.0;
            for (mut f_row, a_row) in f_rows.rows_mut().into_iter().zip(a_rows.rows()) {
                let f_row = f_row.as_slice_mut().expect("standard layout");
                let a_row = a_row.as_slice().expect("standard layout");
                for k in 0..rank {
                    let g_row = &g[k * rank..(k + 1) * rank];
                    let gkk = g_row[k];
                    // A dead component of the other factor leaves this entry undetermined.
                    if gkk <= T::MIN_POSITIVE {
                        continue;
                    }
                    let grad = row_dot(f_row, g_row) - a_row[k];
                    let old = f_row[k];
                    let new = (old - grad / gkk).max_of(T::zero());
                    let d = (new - old).to_f64();
                    change += d * d;
                    f_row[k] = new;
                }
            }
            change
        })
        .collect();
    partial.iter().sum()
}
