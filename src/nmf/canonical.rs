//! The canonical form of a result, and sparseness.
//!
//! NMF is unique at best up to scaling and permutation: `W D` and `D^-1 H` fit as well as W and H.
//! The result is given in one form: each column of W has maximum 1 (its scale moved into the
//! row of H), and components are sorted by their share of the reconstruction,
//! `||w_k|| ||h_k||` (the Frobenius norm of `w_k h_k`), largest first. Components that are
//! entirely zero go last.

use ndarray::{Array2, ArrayView1, ArrayViewMut2, Axis, s};
use rayon::prelude::*;

use super::linalg::{add_squares, column_norms_sq};
use super::spill::{Release, by_pieces};
use crate::Float;

/// Rescales (if `rescale`) and reorders W (m x r) and H^T (n x r) in place into the canonical
/// form; WH is unchanged up to rounding. `sum_over_processes` completes the squared norms of
/// H's rows when each process holds some of its columns (so that all order alike). H^T is
/// visited a piece of rows at a time, each piece's pages dropped after it with `release`
/// when H^T is mapped from a file.
pub(crate) fn canonicalize<T: Float>(
    w: &mut Array2<T>,
    ht: &mut ArrayViewMut2<'_, T>,
    rescale: bool,
    sum_over_processes: impl FnOnce(&mut [f64]),
    release: Option<&Release>,
) {
    let r = w.ncols();
    let pieces = |ht: &mut ArrayViewMut2<'_, T>, visit: &mut dyn FnMut(ArrayViewMut2<'_, T>)| {
        by_pieces(ht.nrows(), PIECE_ROWS, release, true, |rows| {
            visit(ht.slice_mut(s![rows, ..]));
        });
    };
    if rescale {
        let mut scales = vec![None; r];
        for (k, scale) in scales.iter_mut().enumerate() {
            let max = w.column(k).iter().fold(T::zero(), |a, &v| a.max_of(v));
            if max > T::zero() {
                let inv = T::one() / max;
                w.column_mut(k).mapv_inplace(|v| v * inv);
                *scale = Some(max);
            }
        }
        pieces(ht, &mut |mut rows| {
            rows.axis_iter_mut(Axis(0))
                .into_par_iter()
                .for_each(|mut row| {
                    for (v, scale) in row.iter_mut().zip(&scales) {
                        if let Some(max) = *scale {
                            *v *= max;
                        }
                    }
                });
        });
    }
    // Each sum in row order, as `column_norms_sq` takes it.
    let mut h_norms = vec![0.0f64; r];
    pieces(ht, &mut |rows| add_squares(&mut h_norms, &rows));
    sum_over_processes(&mut h_norms);
    let share: Vec<f64> = column_norms_sq(w)
        .iter()
        .zip(h_norms)
        .map(|(a, b)| a.sqrt() * b.sqrt())
        .collect();
    let mut order: Vec<usize> = (0..r).collect();
    // Stable, so that equal shares keep their order and the result stays deterministic.
    order.sort_by(|&a, &b| share[b].total_cmp(&share[a]));
    if order.iter().enumerate().any(|(i, &k)| i != k) {
        *w = w.select(Axis(1), &order).as_standard_layout().into_owned();
        pieces(ht, &mut |mut rows| permute_columns(&mut rows, &order));
    }
}

/// Rows of H^T per piece of [`canonicalize`]'s passes.
const PIECE_ROWS: usize = 16_384;

/// Column `order[k]` of `a` becomes its column k, row by row in place: H^T of a large fit is
/// not copied (39 MB at 200,000 faces and rank 49 in f32).
fn permute_columns<T: Float>(a: &mut ArrayViewMut2<'_, T>, order: &[usize]) {
    let r = order.len();
    let Some(values) = a.as_slice_mut() else {
        let permuted = a.select(Axis(1), order);
        a.assign(&permuted);
        return;
    };
    values.par_chunks_mut(r * 1024).for_each(|rows| {
        let mut row_before = vec![T::zero(); r];
        for row in rows.chunks_exact_mut(r) {
            row_before.copy_from_slice(row);
            for (v, &k) in row.iter_mut().zip(order) {
                *v = row_before[k];
            }
        }
    });
}

/// Hoyer's sparseness of a nonnegative vector, in [0, 1]: 0 when all entries are equal, 1 when
/// only one is nonzero. `(sqrt(n) - ||x||_1 / ||x||_2) / (sqrt(n) - 1)`; P. O. Hoyer,
/// "Non-negative matrix factorization with sparseness constraints", JMLR 5, 2004. A zero vector
/// (and a vector of one entry) counts as 0.
pub fn hoyer_sparseness<T: Float>(x: ArrayView1<T>) -> f64 {
    let n = x.len() as f64;
    let l1: f64 = x.iter().map(|v| v.to_f64().abs()).sum();
    let l2 = x
        .iter()
        .map(|v| v.to_f64() * v.to_f64())
        .sum::<f64>()
        .sqrt();
    if n <= 1.0 || l2 == 0.0 {
        return 0.0;
    }
    ((n.sqrt() - l1 / l2) / (n.sqrt() - 1.0)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn hoyer_sparseness_spans_zero_to_one() {
        assert_eq!(hoyer_sparseness(array![1.0, 1.0, 1.0, 1.0].view()), 0.0);
        assert_eq!(hoyer_sparseness(array![0.0, 3.0, 0.0, 0.0].view()), 1.0);
        // n = 4, x = (1, 1, 0, 0): (2 - 2 / sqrt(2)) / (2 - 1) = 2 - sqrt(2).
        let s = hoyer_sparseness(array![1.0, 1.0, 0.0, 0.0].view());
        assert!((s - (2.0 - 2f64.sqrt())).abs() < 1e-12);
        assert_eq!(hoyer_sparseness(array![0.0f32, 0.0].view()), 0.0);
    }

    #[test]
    fn canonical_form_keeps_the_product_scales_w_to_max_one_and_sorts_by_share() {
        let mut w = array![[1.0f64, 4.0, 0.0], [2.0, 2.0, 0.0]];
        let mut ht = array![[1.0, 3.0, 0.0], [1.0, 3.0, 0.0], [0.0, 1.0, 0.0]];
        let before = w.dot(&ht.t());
        canonicalize(&mut w, &mut ht.view_mut(), true, |_| {}, None);
        assert!((&w.dot(&ht.t()) - &before).iter().all(|d| d.abs() < 1e-12));
        // Component 1 (share ||(4,2)|| ||(3,3,1)||) first, then 0, then the zero one.
        assert_eq!(w.column(0).to_vec(), vec![1.0, 0.5]);
        assert_eq!(w.column(1).to_vec(), vec![0.5, 1.0]);
        assert_eq!(w.column(2).to_vec(), vec![0.0, 0.0]);
        assert_eq!(ht.column(0).to_vec(), vec![12.0, 12.0, 4.0]);
    }

    #[test]
    fn columns_permuted_in_place_are_those_a_copy_selects() {
        // More rows than one parallel task takes, and a partial last one.
        let a = Array2::from_shape_fn((2500, 7), |(i, j)| (i * 7 + j) as f32 * 0.5);
        let order = [3, 0, 6, 1, 5, 2, 4];
        let mut permuted = a.clone();
        permute_columns(&mut permuted.view_mut(), &order);
        assert_eq!(permuted, a.select(Axis(1), &order));
        // Any layout.
        let mut transposed = a.t().to_owned().reversed_axes();
        permute_columns(&mut transposed.view_mut(), &order);
        assert_eq!(transposed, a.select(Axis(1), &order));
    }
}
