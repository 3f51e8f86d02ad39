//! Products on ndarray memory through faer views (zero-copy), and f64-accumulated reductions.
//!
//! Every array here is owned by the engine in standard (row-major) layout, so a faer view is a
//! reinterpretation of the same slice; nothing is copied.

use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::Float;

/// A faer view of a row-major ndarray matrix.
pub(crate) fn view<'a, T: Float>(a: &'a ArrayView2<'a, T>) -> MatRef<'a, T> {
    let (rows, cols) = a.dim();
    let slice = a.as_slice().expect("engine arrays are in standard layout");
    MatRef::from_row_major_slice(slice, rows, cols)
}

/// A mutable faer view of a row-major ndarray matrix.
pub(crate) fn view_mut<'a, T: Float>(a: &'a mut ArrayViewMut2<'a, T>) -> MatMut<'a, T> {
    let (rows, cols) = a.dim();
    let slice = a
        .as_slice_mut()
        .expect("engine arrays are in standard layout");
    MatMut::from_row_major_slice_mut(slice, rows, cols)
}

/// The parallelism of the current rayon pool, as faer wants it.
pub(crate) fn par() -> Par {
    match rayon::current_num_threads() {
        0 | 1 => Par::Seq,
        n => Par::rayon(n),
    }
}

/// `out = lhs * rhs`, where either side may be a transposed view.
pub(crate) fn matmul<T: Float>(out: &mut Array2<T>, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>) {
    let mut out_view = out.view_mut();
    let dst = view_mut(&mut out_view);
    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, T::one(), par());
}

/// `out = a^T a` (the Gram matrix of the columns of `a`).
pub(crate) fn gram<T: Float>(out: &mut Array2<T>, a: &Array2<T>) {
    let a = a.view();
    let a = view(&a);
    matmul(out, a.transpose(), a);
}

/// Rows per chunk in the parallel row loops: fixed, so that reductions are summed in the same
/// order whatever the number of threads (bitwise reproducibility).
pub(crate) const ROW_CHUNK: usize = 64;

/// `<a, b>` (sum of elementwise products) accumulated in f64, in a fixed order.
pub(crate) fn dot<T: Float>(a: &Array2<T>, b: &Array2<T>) -> f64 {
    debug_assert_eq!(a.dim(), b.dim());
    let cols = a.ncols().max(1);
    let a = a.as_slice().expect("standard layout");
    let b = b.as_slice().expect("standard layout");
    let partial: Vec<f64> = a
        .par_chunks(ROW_CHUNK * cols)
        .zip(b.par_chunks(ROW_CHUNK * cols))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(&p, &q)| p.to_f64() * q.to_f64())
                .sum()
        })
        .collect();
    partial.iter().sum()
}

/// `||a||_F^2` accumulated in f64.
pub(crate) fn sq_norm<T: Float>(a: &ArrayView2<T>) -> f64 {
    let partial: Vec<f64> = a
        .axis_chunks_iter(Axis(0), ROW_CHUNK)
        .into_par_iter()
        .map(|block| block.iter().map(|&v| v.to_f64() * v.to_f64()).sum())
        .collect();
    partial.iter().sum()
}

/// The sum of all entries, accumulated in f64.
pub(crate) fn sum<T: Float>(a: &ArrayView2<T>) -> f64 {
    let partial: Vec<f64> = a
        .axis_chunks_iter(Axis(0), ROW_CHUNK)
        .into_par_iter()
        .map(|block| block.iter().map(|&v| v.to_f64()).sum())
        .collect();
    partial.iter().sum()
}

/// `||X - W H||_F^2` formed directly (not through Gram matrices) in blocks of rows, accumulated
/// in f64: exact to the precision of T, for final reports where the Gram formula's cancellation
/// would hide errors below about 1e-3 in f32.
pub(crate) fn residual_sq<T: Float>(x: &ArrayView2<T>, w: &Array2<T>, ht: &Array2<T>) -> f64 {
    let (m, n) = x.dim();
    // About 4 million entries of WH at a time.
    let block_rows = (4_000_000 / n.max(1)).clamp(1, m.max(1));
    let mut wh = Array2::<T>::zeros((block_rows, n));
    let ht_view = ht.view();
    let ht_ref = view(&ht_view);
    let mut total = 0.0;
    for (xb, wb) in x
        .axis_chunks_iter(Axis(0), block_rows)
        .zip(w.axis_chunks_iter(Axis(0), block_rows))
    {
        let rows = xb.nrows();
        let mut out = wh.slice_mut(ndarray::s![..rows, ..]);
        let dst = view_mut(&mut out);
        let wb_ref = view(&wb);
        faer::linalg::matmul::matmul(
            dst,
            Accum::Replace,
            wb_ref,
            ht_ref.transpose(),
            T::one(),
            par(),
        );
        let out = wh.slice(ndarray::s![..rows, ..]);
        let partial: Vec<f64> = xb
            .axis_chunks_iter(Axis(0), ROW_CHUNK)
            .into_par_iter()
            .zip(out.axis_chunks_iter(Axis(0), ROW_CHUNK))
            .map(|(xr, pr)| {
                xr.iter()
                    .zip(pr.iter())
                    .map(|(&a, &b)| {
                        let d = a.to_f64() - b.to_f64();
                        d * d
                    })
                    .sum()
            })
            .collect();
        total += partial.iter().sum::<f64>();
    }
    total
}
