//! One iteration's two half-steps, H then W, and the only `match` over the solver kernels.
//!
//! The H half-step visits the images block by block ([`Images`]): each block's X^T W, its
//! coefficients' update, whatever the loop does to them next (extrapolation), and the block's
//! share of the two sums the W half-step needs, `X H^T` and `H H^T`. With one block (X in
//! memory) the products run on all of X and H^T in place, exactly as a plain loop would.
//! Penalties and sparseness constraints enter here; everything the loop decides (the error,
//! extrapolation, keep-best, stopping) stays in `fit.rs`.

use std::ops::Range;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};

use super::blocks::Images;
use super::linalg::{TallProduct, dot};
use super::online::BatchSums;
use super::params::{Nmf, Solver};
use super::penalty::{self, Penalty};
use super::spill::Rows;
use super::{anls, fpgm, hals, mu, sparseness};
use crate::Float;

/// The buffers of the H half-step for blocks of one width.
#[derive(Debug)]
struct BlockBuffers<T> {
    /// `X_b^T W`, block x r.
    xtw: Array2<T>,
    product: TallProduct<T>,
    /// The block's rows of H^T while they are updated (empty with one block: updated in place).
    ht: Array2<T>,
    /// `X_b^T W` less the L1 penalty (empty without penalties).
    a_pen: Array2<T>,
    /// The kernel's scratch space.
    scratch: Array2<T>,
}

/// The products, Gram matrices and scratch space of the half-steps, allocated once per fit.
#[derive(Debug)]
pub(crate) struct Step<T> {
    solver: Solver,
    multiplicative: bool,
    penalty: Penalty,
    sparsity_w: Option<f64>,
    sparsity_h: Option<f64>,
    sweeps_w: usize,
    sweeps_h: usize,
    /// For blocks of the full width, then (if narrower) for the last block.
    blocks: Vec<BlockBuffers<T>>,
    /// The first H half-step may use the X^T W the start computed (one block, unchanged X).
    xtw_ready: bool,
    /// With blocks, the start's X^T W of every block (n x r: in a file beside the images when
    /// their source gives a folder, as H^T is, else in memory) and the factor W was scaled by
    /// since: the first H half-step reads it instead of forming it again, as `xtw_ready` does
    /// with one block.
    xtw_kept: Option<(Rows<T>, T)>,
    /// `X H^T`, m x r, summed over the blocks.
    xh: Array2<T>,
    xh_product: TallProduct<T>,
    /// `H H^T`, r x r, summed over the blocks.
    hh: Array2<T>,
    gram_h: TallProduct<T>,
    /// Online, one block's share of `X H^T` and `H H^T` (empty otherwise).
    xh_part: Array2<T>,
    hh_part: Array2<T>,
    /// `W^T W`, r x r.
    ww: Array2<T>,
    gram_w: TallProduct<T>,
    scratch_w: Array2<T>,
    a_pen_w: Array2<T>,
    g_pen: Array2<T>,
    partials: Vec<f64>,
    /// An online fit's decayed sums: W moves after every block (none with one block).
    batch_sums: Option<BatchSums<T>>,
}

impl<T: Float> Step<T> {
    /// Buffers for `params` on X of m x n, visited as `images`.
    pub(crate) fn new(params: &Nmf, m: usize, images: &Images<'_, T>) -> Self {
        // The sweeps and penalties are those of the whole X; the buffers hold this process's
        // images.
        let (n, r) = (images.total(), params.rank);
        let policy = params.solver.policy();
        let one_block = images.is_one_block();
        // Online, each block of images is coded against the W of that moment, so its sweeps
        // are those of one block's problem.
        let online = params.online.filter(|_| !one_block);
        let coded = if online.is_some() { images.width() } else { n };
        let (sweeps_w, sweeps_h) = if policy.repeats_sweeps {
            (hals::max_sweeps(m, n, r), hals::max_sweeps(coded, m, r))
        } else {
            (1, 1)
        };
        let batch_sums =
            online.map(|o| BatchSums::new(o, (m, n, r), images.width(), policy.repeats_sweeps));
        let penalty = Penalty::new(params.alpha_w, params.alpha_h, params.l1_ratio, m, n);
        let penalized = |rows: usize| {
            Array2::<T>::zeros(if penalty.is_active() {
                (rows, r)
            } else {
                (0, 0)
            })
        };
        let local = images.count();
        let mut widths = vec![images.width()];
        if !local.is_multiple_of(images.width()) {
            widths.push(local % images.width());
        }
        let blocks = widths
            .into_iter()
            .map(|rows| BlockBuffers {
                xtw: Array2::zeros((rows, r)),
                product: TallProduct::new(rows, r),
                ht: Array2::zeros(if one_block { (0, 0) } else { (rows, r) }),
                a_pen: penalized(rows),
                scratch: Array2::zeros((policy.scratch_shape)(rows, r)),
            })
            .collect();
        // Online, each block's own shares of the sums move W; a batch fit adds the blocks'
        // products straight into the sums.
        let part = |rows| Array2::zeros(if online.is_some() { (rows, r) } else { (0, 0) });
        Step {
            solver: params.solver,
            multiplicative: policy.multiplicative,
            penalty,
            sparsity_w: params.sparsity_w,
            sparsity_h: params.sparsity_h,
            sweeps_w,
            sweeps_h,
            blocks,
            xtw_ready: false,
            xtw_kept: None,
            xh: Array2::zeros((m, r)),
            xh_product: TallProduct::new(m, r),
            hh: Array2::zeros((r, r)),
            gram_h: TallProduct::new(r, r),
            xh_part: part(m),
            hh_part: part(r),
            ww: Array2::zeros((r, r)),
            gram_w: TallProduct::new(r, r),
            scratch_w: Array2::zeros((policy.scratch_shape)(m, r)),
            a_pen_w: penalized(m),
            g_pen: penalized(r),
            partials: Vec::new(),
            batch_sums,
        }
    }

    /// The start's `<X, W H>` and `<H H^T, W^T W>`, from which the loop scales W. With one
    /// block and `keep` the X^T W found here is the first H half-step's, scaled with W by
    /// [`Step::scale`]. `known_xtw` is X^T W when the caller has it already (one block only).
    pub(crate) fn start(
        &mut self,
        images: &Images<'_, T>,
        w: &Array2<T>,
        ht: &ArrayView2<'_, T>,
        keep: bool,
        mut known_xtw: Option<Array2<T>>,
    ) -> (f64, f64) {
        self.gram_w.compute(&mut self.ww, &w.view(), &w.view());
        // With blocks, H H^T is summed over them as the H half-step sums it, so that a mapped
        // H^T is read a block at a time.
        let one_block = images.is_one_block();
        if one_block {
            self.gram_h.compute(&mut self.hh, ht, ht);
        } else {
            self.hh.fill(T::zero());
        }
        let mut cross = 0.0;
        // With blocks, each block's X^T W is kept for the first H half-step, as with one
        // block: streamed over 200,000 faces, forming it again takes about 0.5 s, reading it
        // back from its file (39 MB) a few ms. Online, W moves between blocks, so it would be
        // stale. Where writing the file fails the half-step forms it again.
        let mut kept = if keep && !one_block && self.batch_sums.is_none() {
            Some(Rows::zeros(images.scratch(), images.count(), w.ncols()))
        } else {
            None
        };
        images.for_each(|rows, xb| {
            let width = self.blocks[0].xtw.nrows();
            let buf = &mut self.blocks[usize::from(rows.len() != width)];
            match known_xtw.take() {
                Some(xtw) if one_block && xtw.dim() == buf.xtw.dim() => buf.xtw = xtw,
                _ => buf.product.compute(&mut buf.xtw, &xb, &w.view()),
            }
            if let Some(store) = &mut kept
                && store.write(rows.start, buf.xtw.view()).is_err()
            {
                kept = None;
            }
            cross += if one_block {
                dot(&buf.xtw, ht, &mut self.partials)
            } else {
                let ht_b = ht.slice(s![rows, ..]).to_owned();
                self.gram_h.add_to(&mut self.hh, &ht_b.view(), &ht_b.view());
                dot(&buf.xtw, &ht_b, &mut self.partials)
            };
        });
        self.xtw_ready = keep && images.is_one_block();
        self.xtw_kept = kept.map(|store| (store, T::one()));
        let mut cross = [cross];
        images.sum(&mut cross);
        images.sum_arrays(&mut [&mut self.hh]);
        (cross[0], dot(&self.hh, &self.ww, &mut self.partials))
    }

    /// W was scaled by `alpha`: scale what the start computed from it.
    pub(crate) fn scale(&mut self, alpha: T) {
        self.ww.mapv_inplace(|v| v * alpha * alpha);
        if self.xtw_ready {
            self.blocks[0].xtw.mapv_inplace(|v| v * alpha);
        }
        if let Some((_, scale)) = &mut self.xtw_kept {
            *scale *= alpha;
        }
    }

    /// The H half-step: updates H^T (n x r) given W, block by block; `then` sees each block's
    /// updated rows (for extrapolation) before they enter the sums `X H^T` and `H H^T`.
    /// Online, W moves after every block, from the decayed sums of the blocks so far.
    pub(crate) fn update_h(
        &mut self,
        images: &Images<'_, T>,
        w: &mut Array2<T>,
        ht: &mut ArrayViewMut2<'_, T>,
        mut then: impl FnMut(Range<usize>, ArrayViewMut2<'_, T>),
    ) {
        if images.is_one_block() {
            images.for_each(|rows, x| {
                if !self.xtw_ready {
                    let buf = &mut self.blocks[0];
                    buf.product.compute(&mut buf.xtw, &x, &w.view());
                }
                self.xtw_ready = false;
                self.update_block(0, Some(ht.view_mut()));
                if let Some(target) = self.sparsity_h {
                    sparseness::project_columns(ht, target);
                }
                then(rows, ht.view_mut());
                self.xh_product.compute(&mut self.xh, &x.t(), &ht.view());
                self.gram_h.compute(&mut self.hh, &ht.view(), &ht.view());
            });
            // Split over processes: the W half-step's one exchange.
            images.sum_arrays(&mut [&mut self.xh, &mut self.hh]);
            return;
        }
        assert!(
            self.sparsity_h.is_none(),
            "a sparseness constraint on H couples all images: one block only"
        );
        let mut first = true;
        // The start's X^T W serves this half-step only.
        let kept = self.xtw_kept.take();
        images.for_each(|rows, xb| {
            let len = rows.len();
            let width = self.blocks[0].xtw.nrows();
            let which = usize::from(rows.len() != width);
            let buf = &mut self.blocks[which];
            let read = kept.as_ref().is_some_and(|(store, scale)| {
                let read = store.read(rows.start, buf.xtw.view_mut()).is_ok();
                if read {
                    // As the start scaled it with one block: the same bits.
                    buf.xtw.mapv_inplace(|v| v * *scale);
                }
                read
            });
            if !read {
                buf.product.compute(&mut buf.xtw, &xb, &w.view());
            }
            buf.ht.assign(&ht.slice(s![rows.clone(), ..]));
            self.update_block(which, None);
            let buf = &self.blocks[which];
            let mut ht_b = ht.slice_mut(s![rows.clone(), ..]);
            ht_b.assign(&buf.ht);
            then(rows, ht_b.view_mut());
            let ht_b = ht_b.view();
            if self.batch_sums.is_some() {
                // Online: the block's own shares move W.
                self.xh_product.compute(&mut self.xh_part, &xb.t(), &ht_b);
                self.gram_h.compute(&mut self.hh_part, &ht_b, &ht_b);
                if first {
                    self.xh.assign(&self.xh_part);
                    self.hh.assign(&self.hh_part);
                } else {
                    self.xh += &self.xh_part;
                    self.hh += &self.hh_part;
                }
                self.update_w_after_batch(len, w);
            } else if first {
                self.xh_product.compute(&mut self.xh, &xb.t(), &ht_b);
                self.gram_h.compute(&mut self.hh, &ht_b, &ht_b);
            } else {
                self.xh_product.add_to(&mut self.xh, &xb.t(), &ht_b);
                self.gram_h.add_to(&mut self.hh, &ht_b, &ht_b);
            }
            first = false;
        });
        images.sum_arrays(&mut [&mut self.xh, &mut self.hh]);
    }

    /// Online: adds the block of `len` images just coded (its shares in `xh_part` and
    /// `hh_part`) to the decayed sums and moves W from them.
    fn update_w_after_batch(&mut self, len: usize, w: &mut Array2<T>) {
        let Some(sums) = &mut self.batch_sums else {
            return;
        };
        sums.absorb(len, &self.xh_part, &self.hh_part);
        let (a, g, sweeps) = (&sums.xh, &sums.hh, sums.sweeps);
        kernel(
            self.solver,
            &mut w.view_mut(),
            a,
            g,
            sweeps,
            &mut self.scratch_w,
            0.0,
            &mut self.partials,
        );
        self.refresh_gram_w(w);
    }

    /// One block's coefficients from the X^T W in `blocks[which]`, penalised if asked: `f`, or
    /// with `None` the block's own copy of its rows of H^T.
    fn update_block(&mut self, which: usize, f: Option<ArrayViewMut2<'_, T>>) {
        let Step {
            solver,
            multiplicative,
            penalty: weights,
            sweeps_h,
            blocks,
            ww,
            g_pen,
            partials,
            ..
        } = self;
        let BlockBuffers {
            xtw,
            ht,
            a_pen,
            scratch,
            ..
        } = &mut blocks[which];
        let mut f = f.unwrap_or_else(|| ht.view_mut());
        let (l1, l2) = (weights.l1_h, weights.l2_h);
        let (a, g) = if weights.is_active() {
            penalty::penalize(xtw, ww, l1, l2, *multiplicative, a_pen, g_pen);
            (&*a_pen, &*g_pen)
        } else {
            (&*xtw, &*ww)
        };
        kernel(*solver, &mut f, a, g, *sweeps_h, scratch, l1, partials);
    }

    /// The W half-step: updates W (m x r) from the sums of the H half-step. Returns
    /// `<X H^T, W>` of the new W when the kernel found it on the way (for the error).
    /// Online, W already moved block by block: nothing to do.
    pub(crate) fn update_w(
        &mut self,
        w: &mut Array2<T>,
        ht: &mut ArrayViewMut2<'_, T>,
    ) -> Option<f64> {
        if self.batch_sums.is_some() {
            return None;
        }
        let (l1, l2) = (self.penalty.l1_w, self.penalty.l2_w);
        let (solver, sweeps) = (self.solver, self.sweeps_w);
        let mut cross = None;
        if self.penalty.is_active() {
            let keep_a = self.multiplicative;
            penalty::penalize(
                &self.xh,
                &self.hh,
                l1,
                l2,
                keep_a,
                &mut self.a_pen_w,
                &mut self.g_pen,
            );
            let (a, g) = (&self.a_pen_w, &self.g_pen);
            kernel(
                solver,
                &mut w.view_mut(),
                a,
                g,
                sweeps,
                &mut self.scratch_w,
                l1,
                &mut self.partials,
            );
        } else {
            let (a, g) = (&self.xh, &self.hh);
            cross = kernel(
                solver,
                &mut w.view_mut(),
                a,
                g,
                sweeps,
                &mut self.scratch_w,
                0.0,
                &mut self.partials,
            );
        }
        if let Some(target) = self.sparsity_w {
            sparseness::project_columns(w, target);
            self.refresh_gram_w(w);
            // The projection turns the columns, so W H can fit worse than W = 0. Sparseness is
            // scale-free: the best multiple of the projected W keeps the constraint and never
            // fits worse than zero.
            let cross = dot(&self.xh, w, &mut self.partials);
            let quad = dot(&self.hh, &self.ww, &mut self.partials);
            let alpha = cross / quad;
            let scaled = alpha.is_finite() && alpha > 0.0;
            if scaled {
                let a = T::from_f64(alpha);
                w.mapv_inplace(|v| v * a);
                self.ww.mapv_inplace(|v| v * a * a);
            }
            if !self.penalty.is_active() {
                self.balance(w, ht);
            }
            return scaled.then_some(alpha * cross);
        }
        self.refresh_gram_w(w);
        cross
    }

    /// Unit columns of W, their norms moved into H's rows: W H, the sparseness and the error are
    /// unchanged, but W cannot shrink (nor H grow) from one projection to the next until H H^T
    /// overflows.
    fn balance(&mut self, w: &mut Array2<T>, ht: &mut ArrayViewMut2<'_, T>) {
        let r = w.ncols();
        let norms: Vec<f64> = (0..r)
            .map(|k| self.ww[[k, k]].to_f64().max(0.0).sqrt())
            .collect();
        for (k, &norm) in norms.iter().enumerate() {
            if norm > 0.0 && norm.is_finite() {
                let (down, up) = (T::from_f64(1.0 / norm), T::from_f64(norm));
                w.column_mut(k).mapv_inplace(|v| v * down);
                ht.column_mut(k).mapv_inplace(|v| v * up);
            }
        }
        for ((k, l), v) in self.hh.indexed_iter_mut() {
            let scale =
                [norms[k], norms[l]].map(|n| if n > 0.0 && n.is_finite() { n } else { 1.0 });
            *v = T::from_f64(v.to_f64() * scale[0] * scale[1]);
        }
        self.refresh_gram_w(w);
    }

    /// `W^T W` as the last half-step left it, for a checkpoint.
    pub(crate) fn gram_w(&self) -> &Array2<T> {
        &self.ww
    }

    /// Puts back the `W^T W` of [`Step::gram_w`] on resuming.
    pub(crate) fn restore_gram_w(&mut self, ww: &Array2<T>) {
        self.ww.assign(ww);
    }

    /// `W^T W` for the next H half-step, after the loop moved W.
    pub(crate) fn refresh_gram_w(&mut self, w: &Array2<T>) {
        // W changed, so an X^T W the start kept is stale too.
        self.xtw_ready = false;
        self.gram_w.compute(&mut self.ww, &w.view(), &w.view());
    }

    /// `||X - W H||^2 = ||X||^2 - 2 <X H^T, W> + <H H^T, W^T W>` from the sums of the last
    /// half-steps; `cross` is `<X H^T, W>` when the W half-step returned it.
    pub(crate) fn error_sq(&mut self, xx: f64, w: &Array2<T>, cross: Option<f64>) -> f64 {
        let cross = cross.unwrap_or_else(|| dot(&self.xh, w, &mut self.partials));
        xx - 2.0 * cross + dot(&self.hh, &self.ww, &mut self.partials)
    }
}

/// One update of factor `f` (rows independent) from the product `a` and the other factor's
/// Gram matrix `g`. The HALS kernels also return `<a, f>` after the update, found while each
/// block is in cache (`partials` is their reused buffer); the others `None`.
#[allow(clippy::too_many_arguments)]
fn kernel<T: Float>(
    solver: Solver,
    f: &mut ArrayViewMut2<'_, T>,
    a: &Array2<T>,
    g: &Array2<T>,
    sweeps: usize,
    scratch: &mut Array2<T>,
    l1: f64,
    partials: &mut Vec<f64>,
) -> Option<f64> {
    let rank = f.ncols();
    fn slice<T>(a: &Array2<T>) -> &[T] {
        a.as_slice().expect("standard layout")
    }
    match solver {
        Solver::Hals | Solver::Cd => {
            let (a, g) = (slice(a), slice(g));
            let f = f.as_slice_mut().expect("standard layout");
            let scratch = scratch.as_slice_mut().expect("standard layout");
            Some(hals::update(f, a, g, rank, sweeps, scratch, partials))
        }
        Solver::Mu => {
            mu::update(f, a, g, scratch, l1);
            None
        }
        Solver::Fpgm => {
            fpgm::update(f, a, g, sweeps, scratch);
            None
        }
        Solver::Anls => {
            let f = f.as_slice_mut().expect("standard layout");
            anls::update(f, slice(a), slice(g), rank, anls::PROXIMAL);
            None
        }
    }
}
