//! Products on ndarray memory through faer views (zero-copy), and f64-accumulated reductions.
//!
//! A faer view is a reinterpretation of an ndarray view's memory (pointer and strides); nothing
//! is copied. Outputs are owned by the engine in standard (row-major) layout.

use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayBase, ArrayView2, ArrayViewMut2, Axis, Data, Ix2};
use rayon::prelude::*;

use crate::Float;

/// A faer view of an ndarray matrix (any strides, zero-copy).
pub(crate) fn view<'a, T: Float>(a: &'a ArrayView2<'a, T>) -> MatRef<'a, T> {
    let (rows, cols) = a.dim();
    let strides = a.strides();
    // SAFETY: the pointer, shape and strides come from a live ndarray view, which guarantees
    // that every element they address is valid for reads for the view's lifetime 'a.
    unsafe { MatRef::from_raw_parts(a.as_ptr(), rows, cols, strides[0], strides[1]) }
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

/// `out = lhs * rhs` into a view (standard layout), where either side may be transposed.
pub(crate) fn matmul_into<T: Float>(
    out: &mut ArrayViewMut2<T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
) {
    let mut out = out.view_mut();
    // Row-major `out` is a column-major `out^T = rhs^T lhs^T` to faer.
    let dst = view_mut(&mut out).transpose_mut();
    faer::linalg::matmul::matmul(
        dst,
        Accum::Replace,
        rhs.transpose(),
        lhs.transpose(),
        T::one(),
        par(),
    );
}

/// `out = lhs * rhs`, where either side may be a transposed view.
///
/// A tall output is split into one slab of rows per thread, each a sequential product on a
/// rayon thread: with two cores, faer's own parallel split hands every call to a second
/// thread pool, and waking and parking it costs a visible share of a short iteration.
pub(crate) fn matmul<T: Float>(out: &mut Array2<T>, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>) {
    matmul_with(out, lhs, rhs, Accum::Replace);
}

/// [`matmul`], or with `Accum::Add` `out += lhs * rhs`.
fn matmul_with<T: Float>(
    out: &mut Array2<T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    accum: Accum,
) {
    let threads = rayon::current_num_threads();
    let rows = out.nrows();
    if threads > 1 && rows >= SLAB_ROWS * threads {
        let slab = rows.div_ceil(threads);
        out.axis_chunks_iter_mut(Axis(0), slab)
            .into_par_iter()
            .enumerate()
            .for_each(|(s, mut part)| {
                let lhs = lhs.subrows(s * slab, part.nrows());
                let dst = view_mut(&mut part);
                faer::linalg::matmul::matmul(dst, accum, lhs, rhs, T::one(), Par::Seq);
            });
        return;
    }
    let flops = 2 * rows * out.ncols() * lhs.ncols();
    let mut out_view = out.view_mut();
    let dst = view_mut(&mut out_view);
    let par = if flops < SEQUENTIAL_FLOPS {
        Par::Seq
    } else {
        par()
    };
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, T::one(), par);
}

/// Products below this many flops (an r x r Gram matrix of a short factor) run on the calling
/// thread: waking a second one costs more than it saves.
const SEQUENTIAL_FLOPS: usize = 4_000_000;

/// The fewest output rows per thread worth splitting a product for. At 256, the X H^T of a
/// CBCL sample (361 x 49 from 608 images) went to faer's own split and its second pool; at
/// 128 it is two slabs on rayon's threads: the sample's fit took 16.3 ms against 17.1 ms
/// (medians of 60, alternating in one process), ORL and Olivetti unchanged.
const SLAB_ROWS: usize = 128;

/// Rows per chunk in the parallel row loops: fixed, so that reductions are summed in the same
/// order whatever the number of threads (bitwise reproducibility).
pub(crate) const ROW_CHUNK: usize = 64;

/// `<a, b>` (sum of elementwise products) accumulated in f64, in a fixed order. `partials` is
/// reused between calls, so that the iteration loop allocates nothing.
pub(crate) fn dot<T: Float, A: Data<Elem = T>, B: Data<Elem = T>>(
    a: &ArrayBase<A, Ix2>,
    b: &ArrayBase<B, Ix2>,
    partials: &mut Vec<f64>,
) -> f64 {
    debug_assert_eq!(a.dim(), b.dim());
    let cols = a.ncols().max(1);
    let a = a.as_slice().expect("standard layout");
    let b = b.as_slice().expect("standard layout");
    a.par_chunks(ROW_CHUNK * cols)
        .zip(b.par_chunks(ROW_CHUNK * cols))
        .map(|(x, y)| {
            // Eight independent sums, so the adds pipeline instead of waiting on each other.
            let mut acc = [0.0f64; 8];
            let (xs, ys) = (x.chunks_exact(8), y.chunks_exact(8));
            let tail: f64 = xs
                .remainder()
                .iter()
                .zip(ys.remainder())
                .map(|(&p, &q)| p.to_f64() * q.to_f64())
                .sum();
            for (xc, yc) in xs.zip(ys) {
                for k in 0..8 {
                    acc[k] += xc[k].to_f64() * yc[k].to_f64();
                }
            }
            acc.iter().sum::<f64>() + tail
        })
        .collect_into_vec(partials);
    partials.iter().sum()
}

/// Squared norms of the columns of a row-major factor, in one pass along its rows (not down
/// each column, which strides through memory); each sum in row order.
pub(crate) fn column_norms_sq<T: Float, S: Data<Elem = T>>(f: &ArrayBase<S, Ix2>) -> Vec<f64> {
    let mut sums = vec![0.0f64; f.ncols()];
    add_squares(&mut sums, f);
    sums
}

/// Adds the squares of `rows`' entries to `sums`, column by column, row after row: pieces of
/// a factor given in order sum as [`column_norms_sq`] sums the whole (the same bits).
///
/// Rows in one slice are walked as slices, so that the compiler keeps a lane per column (each
/// column still summed in row order): element by element through ndarray's row iterators it
/// did not vectorize, and the fit's check for dead components (each iteration, over W and
/// H^T) took 4.5% of a CBCL sample fit.
pub(crate) fn add_squares<T: Float, S: Data<Elem = T>>(sums: &mut [f64], rows: &ArrayBase<S, Ix2>) {
    fn add_row<'a, T: Float>(sums: &mut [f64], row: impl IntoIterator<Item = &'a T>) {
        for (s, v) in sums.iter_mut().zip(row) {
            let v = v.to_f64();
            *s += v * v;
        }
    }
    debug_assert_eq!(sums.len(), rows.ncols());
    match rows.as_slice() {
        Some(all) if !sums.is_empty() => all
            .chunks_exact(sums.len())
            .for_each(|row| add_row(sums, row)),
        _ => rows
            .rows()
            .into_iter()
            .for_each(|row| match row.as_slice() {
                Some(row) => add_row(sums, row),
                None => add_row(sums, row.iter()),
            }),
    }
}

/// `||X - W H||_F^2` formed directly (not through Gram matrices) in tiles, accumulated
/// in f64: exact to the precision of T, for final reports where the Gram formula's cancellation
/// would hide errors below about 1e-3 in f32.
pub(crate) fn residual_sq<T: Float, S: Data<Elem = T>>(
    x: &ArrayView2<T>,
    w: &Array2<T>,
    ht: &ArrayBase<S, Ix2>,
) -> f64 {
    // A block of X read image by image (streamed) is X^T in memory: its norm is
    // ||X^T - H^T W^T||, the same tiles along its contiguous rows.
    if !x.is_standard_layout() && x.t().is_standard_layout() {
        residual_tiles(&x.t(), &ht.view(), &w.view())
    } else {
        residual_tiles(x, &w.view(), &ht.view())
    }
}

/// `||X - W H||_F^2` for X (m x n), W (m x r) and H^T (n x r), by tiles along the rows of X.
fn residual_tiles<T: Float>(x: &ArrayView2<T>, w: &ArrayView2<T>, ht: &ArrayView2<T>) -> f64 {
    // WH is formed a tile at a time, each in a buffer the thread keeps, small enough to stay
    // in cache: a buffer of all of WH (or of millions of its entries) is pages to fault in and
    // back out, which cost more than the product on a short fit.
    const TILE_ROWS: usize = 64;
    const TILE_COLS: usize = 1024;
    let (m, n) = x.dim();
    let tiles: Vec<(usize, usize)> = (0..m)
        .step_by(TILE_ROWS)
        .flat_map(|i| (0..n).step_by(TILE_COLS).map(move |j| (i, j)))
        .collect();
    // Partial sums in tile order, added in that order: the same bits on every run.
    let partials: Vec<f64> = tiles
        .into_par_iter()
        .map_init(
            || vec![T::zero(); TILE_ROWS * TILE_COLS],
            |buf, (i, j)| {
                let rows = i..(i + TILE_ROWS).min(m);
                let cols = j..(j + TILE_COLS).min(n);
                let shape = (rows.len(), cols.len());
                let mut out = ArrayViewMut2::from_shape(shape, &mut buf[..shape.0 * shape.1])
                    .expect("a tile fits its buffer");
                let wb = w.slice(ndarray::s![rows.clone(), ..]);
                let hb = ht.slice(ndarray::s![cols.clone(), ..]);
                faer::linalg::matmul::matmul(
                    view_mut(&mut out.view_mut()),
                    Accum::Replace,
                    view(&wb),
                    view(&hb).transpose(),
                    T::one(),
                    Par::Seq,
                );
                let xb = x.slice(ndarray::s![rows, cols]);
                // Eight independent sums, so that the loop vectorises.
                let mut acc = [0.0f64; 8];
                let mut tail = 0.0;
                for (x_row, wh_row) in xb.rows().into_iter().zip(out.rows()) {
                    let (Some(xs), Some(whs)) = (x_row.to_slice(), wh_row.to_slice()) else {
                        // Rows that are not contiguous: element by element.
                        for (a, b) in x_row.iter().zip(wh_row) {
                            let d = a.to_f64() - b.to_f64();
                            tail += d * d;
                        }
                        continue;
                    };
                    let (x8, x_rest) = xs.as_chunks::<8>();
                    let (wh8, wh_rest) = whs.as_chunks::<8>();
                    for (a, b) in x8.iter().zip(wh8) {
                        for k in 0..8 {
                            let d = a[k].to_f64() - b[k].to_f64();
                            acc[k] += d * d;
                        }
                    }
                    for (a, b) in x_rest.iter().zip(wh_rest) {
                        let d = a.to_f64() - b.to_f64();
                        tail += d * d;
                    }
                }
                acc.iter().sum::<f64>() + tail
            },
        )
        .collect();
    partials.iter().sum()
}

/// `out = lhs^T rhs` for tall row-major `lhs` (k x p) and `rhs` (k x q), with buffers kept
/// between calls.
///
/// When k is long and the output small (X^T W on tall X, Gram matrices), faer can only spread the
/// small output over the threads; splitting k instead, one slab per thread, each a sequential
/// product, and summing the slabs in a fixed order keeps both cores busy and the bits
/// reproducible for a given thread count.
#[derive(Debug)]
pub(crate) struct TallProduct<T> {
    partials: Vec<Array2<T>>,
}

impl<T: Float> TallProduct<T> {
    /// Buffers for an output of `rows` x `cols`.
    pub(crate) fn new(rows: usize, cols: usize) -> Self {
        let slabs = rayon::current_num_threads().max(1);
        TallProduct {
            partials: (0..slabs).map(|_| Array2::zeros((rows, cols))).collect(),
        }
    }

    pub(crate) fn compute(
        &mut self,
        out: &mut Array2<T>,
        lhs: &ArrayView2<T>,
        rhs: &ArrayView2<T>,
    ) {
        self.compute_with(out, lhs, rhs, Accum::Replace);
    }

    /// `out += lhs^T rhs`: a sum over column blocks formed in place, without a product of
    /// each block to add afterwards.
    pub(crate) fn add_to(&mut self, out: &mut Array2<T>, lhs: &ArrayView2<T>, rhs: &ArrayView2<T>) {
        self.compute_with(out, lhs, rhs, Accum::Add);
    }

    fn compute_with(
        &mut self,
        out: &mut Array2<T>,
        lhs: &ArrayView2<T>,
        rhs: &ArrayView2<T>,
        accum: Accum,
    ) {
        let k = lhs.nrows();
        let slabs = self.partials.len();
        // Splitting pays only when the reduction is much longer than the output is tall.
        if slabs == 1 || k < 1024 || k < 4 * out.nrows() {
            matmul_with(out, view(lhs).transpose(), view(rhs), accum);
            return;
        }
        let slab = k.div_ceil(slabs);
        self.partials
            .par_iter_mut()
            .enumerate()
            .for_each(|(s, part)| {
                let (lo, hi) = ((s * slab).min(k), ((s + 1) * slab).min(k));
                let l = lhs.slice(ndarray::s![lo..hi, ..]);
                let r = rhs.slice(ndarray::s![lo..hi, ..]);
                let mut dst = part.view_mut();
                faer::linalg::matmul::matmul(
                    view_mut(&mut dst),
                    Accum::Replace,
                    view(&l).transpose(),
                    view(&r),
                    T::one(),
                    Par::Seq,
                );
            });
        let (first, rest) = self.partials.split_first().expect("at least one slab");
        match accum {
            Accum::Replace => out.assign(first),
            Accum::Add => *out += first,
        }
        for part in rest {
            *out += part;
        }
    }
}

/// Each column's relative error `||x_j - W h_j|| / ||x_j||` and the whole one, for X (m x n),
/// W (m x r) and H (r x n). Each column's sums run over its pixels in order, a block of 256
/// at a time added to its total, whichever way X is laid out (the same bits either way).
pub fn column_errors<T: Float>(
    x: &ArrayView2<T>,
    w: &ArrayView2<T>,
    h: &ArrayView2<T>,
) -> (Vec<f64>, f64) {
    let totals = if x.ncols() > 1 && x.t().is_standard_layout() {
        image_rows_sums(&x.t(), w, h)
    } else {
        pixel_rows_sums(x, w, h)
    };
    let per_column = totals
        .iter()
        .map(|&(e, s)| if s > 0.0 { (e / s).sqrt() } else { 0.0 })
        .collect();
    let (residual, total) = totals
        .iter()
        .fold((0.0, 0.0), |a, t| (a.0 + t.0, a.1 + t.1));
    let whole = if total > 0.0 {
        (residual / total).sqrt()
    } else {
        0.0
    };
    (per_column, whole)
}

/// Pixels summed in order before the partial sum is added to its column's total.
const BLOCK_ROWS: usize = 256;

/// Each column's `(||x_j - W h_j||^2, ||x_j||^2)` for X in rows of pixels (standard layout):
/// `W H` formed a block of rows at a time (the rows of X are contiguous), each block's
/// per-column sums added in order.
fn pixel_rows_sums<T: Float>(
    x: &ArrayView2<T>,
    w: &ArrayView2<T>,
    h: &ArrayView2<T>,
) -> Vec<(f64, f64)> {
    let (m, n) = x.dim();
    let partials: Vec<Vec<(f64, f64)>> = (0..m.div_ceil(BLOCK_ROWS))
        .into_par_iter()
        .map(|b| {
            let rows = b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(m);
            let wb = w.slice(ndarray::s![rows.clone(), ..]);
            let mut wh = Array2::<T>::zeros((rows.len(), n));
            faer::linalg::matmul::matmul(
                view_mut(&mut wh.view_mut()),
                faer::Accum::Replace,
                view(&wb),
                view(h),
                T::one(),
                faer::Par::Seq,
            );
            let mut sums = vec![(0.0, 0.0); n];
            for (x_row, wh_row) in x
                .slice(ndarray::s![rows, ..])
                .rows()
                .into_iter()
                .zip(wh.rows())
            {
                for ((sum, &v), &f) in sums.iter_mut().zip(x_row).zip(wh_row) {
                    let (v, f) = (v.to_f64(), f.to_f64());
                    sum.0 += (v - f) * (v - f);
                    sum.1 += v * v;
                }
            }
            sums
        })
        .collect();
    let mut totals = vec![(0.0, 0.0); n];
    for part in &partials {
        for (t, p) in totals.iter_mut().zip(part) {
            t.0 += p.0;
            t.1 += p.1;
        }
    }
    totals
}

/// [`pixel_rows_sums`] for X^T given as rows of images (standard layout; a streamed block):
/// `W H` formed a tile of images at a time as `H^T W^T`, in a buffer each thread keeps, and
/// each image's sums run along its own contiguous row in the same order. Down X's strided
/// rows instead, every face's error of a streamed run of 200,000 took longer than its fit's
/// start.
fn image_rows_sums<T: Float>(
    xt: &ArrayView2<T>,
    w: &ArrayView2<T>,
    h: &ArrayView2<T>,
) -> Vec<(f64, f64)> {
    const TILE: usize = 64;
    let (n, m) = xt.dim();
    let tiles: Vec<Vec<(f64, f64)>> = (0..n.div_ceil(TILE))
        .into_par_iter()
        .map_init(
            || Array2::<T>::zeros((TILE, m)),
            |buffer, t| {
                let images = t * TILE..((t + 1) * TILE).min(n);
                let mut wh = buffer.slice_mut(ndarray::s![..images.len(), ..]);
                let ht = h.slice(ndarray::s![.., images.clone()]);
                let mut target = wh.view_mut();
                faer::linalg::matmul::matmul(
                    view_mut(&mut target),
                    faer::Accum::Replace,
                    view(&ht).transpose(),
                    view(w).transpose(),
                    T::one(),
                    faer::Par::Seq,
                );
                xt.slice(ndarray::s![images, ..])
                    .rows()
                    .into_iter()
                    .zip(wh.rows())
                    .map(|(x_row, wh_row)| {
                        let mut total = (0.0, 0.0);
                        for start in (0..m).step_by(BLOCK_ROWS) {
                            let end = (start + BLOCK_ROWS).min(m);
                            let mut sum = (0.0, 0.0);
                            for (&v, &f) in x_row
                                .slice(ndarray::s![start..end])
                                .iter()
                                .zip(wh_row.slice(ndarray::s![start..end]))
                            {
                                let (v, f) = (v.to_f64(), f.to_f64());
                                sum.0 += (v - f) * (v - f);
                                sum.1 += v * v;
                            }
                            total.0 += sum.0;
                            total.1 += sum.1;
                        }
                        total
                    })
                    .collect()
            },
        )
        .collect();
    tiles.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn filled(rows: usize, cols: usize, seed: usize) -> Array2<f64> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            ((i * 31 + j * 17 + seed * 7) % 23) as f64 / 23.0
        })
    }

    #[test]
    fn column_norms_are_the_same_bits_whole_in_rows_or_strided() {
        let f = filled(70, 9, 4).mapv(|v| (v * 1.37) as f32);
        let whole = column_norms_sq(&f);
        // Each column's sum in row order, one element at a time.
        let direct: Vec<f64> = (0..9)
            .map(|k| {
                f.column(k)
                    .iter()
                    .fold(0.0f64, |s, &v| s + f64::from(v) * f64::from(v))
            })
            .collect();
        assert_eq!(whole, direct);
        // Rows strided apart (a column block of a wider array) and entries strided (a
        // transposed array) walk the other paths.
        let mut wide = Array2::<f32>::zeros((70, 12));
        wide.slice_mut(ndarray::s![.., 2..11]).assign(&f);
        assert_eq!(column_norms_sq(&wide.slice(ndarray::s![.., 2..11])), whole);
        let ft = f.t().as_standard_layout().into_owned();
        assert_eq!(column_norms_sq(&ft.t()), whole);
        // Pieces of rows added in order sum as the whole.
        let mut sums = vec![0.0; 9];
        add_squares(&mut sums, &f.slice(ndarray::s![..33, ..]));
        add_squares(&mut sums, &f.slice(ndarray::s![33.., ..]));
        assert_eq!(sums, whole);
    }

    #[test]
    fn split_tall_product_equals_the_naive_product() {
        // k = 3000 >= 1024 and >= 4 * 7: the split path (when more than one thread).
        let (lhs, rhs) = (filled(3000, 7, 1), filled(3000, 5, 2));
        let mut out = Array2::zeros((7, 5));
        TallProduct::new(7, 5).compute(&mut out, &lhs.view(), &rhs.view());
        let naive = lhs.t().dot(&rhs);
        assert!((&out - &naive).iter().all(|d| d.abs() < 1e-9));
        // A transposed (non-standard) left side: X H^T computed as (X^T)^T H^T.
        let x = filled(6, 3000, 3);
        let mut out = Array2::zeros((6, 5));
        TallProduct::new(6, 5).compute(&mut out, &x.t(), &rhs.view());
        assert!((&out - &x.dot(&rhs)).iter().all(|d| d.abs() < 1e-9));
    }

    #[test]
    fn residual_over_many_tiles_and_of_a_transposed_x_is_the_direct_norm() {
        // Three tiles each way, the last ones partial.
        let (w, ht) = (filled(130, 3, 1), filled(2100, 3, 2));
        let x = filled(130, 2100, 3);
        let direct = (&x - &w.dot(&ht.t())).mapv(|v| v * v).sum();
        assert!((residual_sq(&x.view(), &w, &ht) - direct).abs() < 1e-9 * direct);
        // X^T in memory, as a streamed block is read.
        let xt = x.t().as_standard_layout().into_owned();
        assert!((residual_sq(&xt.t(), &w, &ht) - direct).abs() < 1e-9 * direct);
        // A column block of X (rows contiguous, strided between rows).
        let block = x.slice(ndarray::s![.., 1000..2100]);
        let ht_block = ht.slice(ndarray::s![1000..2100, ..]);
        let direct = (&block - &w.dot(&ht_block.t())).mapv(|v| v * v).sum();
        assert!((residual_sq(&block, &w, &ht_block) - direct).abs() < 1e-9 * direct);
    }

    #[test]
    fn every_column_error_is_the_same_bits_from_x_or_from_x_transposed() {
        // 600 pixels: two full blocks of 256 and a partial one; 150 images: tiles of 64 and a
        // partial one.
        let (m, n, r) = (600, 150, 4);
        let x = filled(m, n, 7);
        let (w, h) = (filled(m, r, 8), filled(r, n, 9));
        let (errors, whole) = column_errors(&x.view(), &w.view(), &h.view());
        let xt = x.t().as_standard_layout().into_owned();
        let (errors_t, whole_t) = column_errors(&xt.t(), &w.view(), &h.view());
        assert_eq!(errors_t, errors);
        assert_eq!(whole_t.to_bits(), whole.to_bits());
        // And they are the errors.
        let wh = w.dot(&h);
        for j in [0, 63, 64, 149] {
            let (d, s) = (&x.column(j) - &wh.column(j), x.column(j));
            let direct = (d.dot(&d) / s.dot(&s)).sqrt();
            assert!(
                (errors[j] - direct).abs() < 1e-12,
                "{j}: {} {direct}",
                errors[j]
            );
        }
        // f32 too (the fit's type), where the products' bits matter.
        let (x32, w32, h32) = (
            x.mapv(|v| v as f32),
            w.mapv(|v| v as f32),
            h.mapv(|v| v as f32),
        );
        let xt32 = x32.t().as_standard_layout().into_owned();
        assert_eq!(
            column_errors(&xt32.t(), &w32.view(), &h32.view()),
            column_errors(&x32.view(), &w32.view(), &h32.view())
        );
    }

    #[test]
    fn residual_is_the_direct_frobenius_norm() {
        let (x, w, ht) = (filled(9, 11, 4), filled(9, 2, 5), filled(11, 2, 6));
        let direct = (&x - &w.dot(&ht.t())).mapv(|v| v * v).sum();
        assert!((residual_sq(&x.view(), &w, &ht) - direct).abs() < 1e-9);
    }
}

/// Does now, once per process, what the first matrix product of a process otherwise does in
/// the middle of its first fit: faer's products read the CPU's cache sizes from `/sys` on their
/// first product larger than a few dozen rows (1.3-1.9 ms on the machines here, most of a
/// fresh process's first product), and the first parallel product hands work to the thread
/// pool. A program calls this on a spare thread while it loads its images, so that the fit's
/// clock measures the fit; the scikit-learn side of the benchmarks likewise times its fit
/// after a warm-up fit. Calling it again costs one small product.
pub fn warm_up() {
    // Large enough to be planned with the cache sizes and split over the threads (above
    // `SEQUENTIAL_FLOPS`, below the rows that split into slabs).
    let (rows, inner) = (SLAB_ROWS, 2 * SLAB_ROWS);
    let a = Array2::<f32>::zeros((rows, inner));
    let b = Array2::<f32>::zeros((inner, rows));
    let mut c = Array2::<f32>::zeros((rows, rows));
    matmul(&mut c, view(&a.view()), view(&b.view()));
}

/// The two large products of one iteration, `X^T W` (n x r) and `X H^T` (m x r), computed as the
/// fit computes them (4 m n r flops together). Public for benchmarks: the roofline of a solver
/// is its iteration time over the time of these products.
#[derive(Debug)]
pub struct Products<T> {
    xtw: TallProduct<T>,
    xh: TallProduct<T>,
    /// `X^T W`, n x r, after [`Products::compute`].
    pub xtw_out: Array2<T>,
    /// `X H^T`, m x r, after [`Products::compute`].
    pub xh_out: Array2<T>,
}

impl<T: Float> Products<T> {
    /// Buffers for X of m x n and rank r.
    pub fn new(m: usize, n: usize, r: usize) -> Self {
        Products {
            xtw: TallProduct::new(n, r),
            xh: TallProduct::new(m, r),
            xtw_out: Array2::zeros((n, r)),
            xh_out: Array2::zeros((m, r)),
        }
    }

    /// Computes both products for `x` (m x n), `w` (m x r) and `ht` = H^T (n x r).
    ///
    /// # Panics
    /// If the shapes do not match those given to [`Products::new`].
    pub fn compute(&mut self, x: &ArrayView2<T>, w: &ArrayView2<T>, ht: &ArrayView2<T>) {
        self.xtw.compute(&mut self.xtw_out, x, w);
        self.xh.compute(&mut self.xh_out, &x.t(), ht);
    }
}
