//! The one loop: start, then for each iteration update H, update W, measure, decide
//! (extrapolation accept or restart, keep-best), record, and stop.

use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::awake::KeepAwake;
use super::beta::BetaMu;
use super::blocks::{ColumnBlocks, Images};
use super::canonical;
use super::checkpoint::{Checkpoint, Meta};
use super::extrapolate::Extrapolated;
use super::init;
use super::missing::Missing;
use super::multilevel::{self, ImageShape};
use super::params::{Level, Loss, Nmf, Solver};
use super::penalty::Penalty;
use super::result::{CoarseLevel, Coefficients, Factorization, Iteration, Stop};
use super::revive::Revival;
use super::seed;
use super::spill::{HtStore, Release};
use super::split::Share;
use super::step::Step;
use crate::{Error, Float, Result};

/// Where the loop finds X: whole in memory, or block by block from a source, this many images
/// at a time.
#[derive(Clone, Copy)]
enum Source<'a, T> {
    Memory(&'a ArrayView2<'a, T>),
    Blocks(&'a dyn ColumnBlocks<T>, usize),
}

/// The stopping rule compares the error with the one this many iterations before.
pub const TOL_WINDOW: usize = 10;

impl Nmf {
    /// Fits X (m x n, one sample per column) without progress reports.
    ///
    /// # Errors
    /// Invalid parameters or input; see [`Nmf::fit_with`].
    pub fn fit<T: Float>(&self, x: &ArrayView2<T>) -> Result<Factorization<T>> {
        self.fit_with(x, |_| {})
    }

    /// Fits X, calling `progress` after the initialisation and after every iteration.
    ///
    /// Same parameters, same seed and same number of threads give the same bits.
    ///
    /// # Errors
    /// Rank 0; rank above min(m, n) for the NNDSVD inits; an empty, negative, NaN, infinite or
    /// all-zero X; a negative or NaN `tol`; [`Error::NonFinite`] when the iterates overflow
    /// (an extreme beta, or f32 under strong constraints), rather than a result that is not a
    /// number.
    pub fn fit_with<T: Float>(
        &self,
        x: &ArrayView2<T>,
        mut progress: impl FnMut(&Iteration) + Send,
    ) -> Result<Factorization<T>> {
        if self.runs == 0 {
            return Err(Error::param("runs", "must be at least 1"));
        }
        let mut best: Option<Factorization<T>> = None;
        let mut errors = Vec::with_capacity(self.runs);
        for run in 0..self.runs {
            if run > 0 && self.interrupt.is_raised() {
                break;
            }
            let params = Nmf {
                seed: seed::run_seed(self.seed, run),
                ..self.clone()
            };
            let fit = params.fit_inner(x, None, None, &mut progress)?;
            errors.push(fit.rel_error);
            if best.as_ref().is_none_or(|b| fit.rel_error < b.rel_error) {
                best = Some(Factorization {
                    best_run: run,
                    ..fit
                });
            }
        }
        let mut best = best.expect("at least one run");
        best.run_errors = errors;
        Ok(best)
    }

    /// Fits X given block by block, `width` images at a time, without ever holding it whole:
    /// images streamed from a decoded cache on disk
    /// ([`CachedImages`](crate::loader::CachedImages)), say. Memory holds W and one block of
    /// images; H and the extrapolation's copies of it go to files in the folder the source
    /// gives ([`ColumnBlocks::scratch`]; the result's H stays mapped from its file, see
    /// [`Coefficients`]), or stay in memory when it gives none. The pass over the blocks is
    /// the in-memory fit's pass, so the iterates are the same up to the order of sums (f64:
    /// relative errors equal to 1e-9 at every iteration).
    ///
    /// The multilevel start is not made (it would need X at half resolution whole); with
    /// [`Nmf::multilevel`] off an in-memory fit makes the same iterates.
    ///
    /// # Errors
    /// As [`Nmf::fit_with`], and what needs X whole: missing data, the divergences (they form
    /// W H every iteration), a sparseness constraint on H (it couples all images), the spa
    /// init, and [`Nmf::runs`] above 1.
    pub fn fit_blocks<T: Float>(
        &self,
        blocks: &dyn ColumnBlocks<T>,
        width: usize,
        progress: impl FnMut(&Iteration) + Send,
    ) -> Result<Factorization<T>> {
        self.fit_one(Source::Blocks(blocks, width.max(1)), None, progress)
    }

    /// One run (with run 0's seed, as [`Nmf::fit_with`]'s first) over `source`, split over
    /// processes by `share` if given.
    fn fit_one<T: Float>(
        &self,
        source: Source<'_, T>,
        share: Option<Share<'_>>,
        progress: impl FnMut(&Iteration) + Send,
    ) -> Result<Factorization<T>> {
        let params = Nmf {
            seed: seed::run_seed(self.seed, 0),
            ..self.clone()
        };
        params
            .fit_inner_checkpointed(source, share, None, None, progress, None)
            .map(|(fit, _)| fit)
    }

    /// Fits X split by columns over a group of processes
    /// ([`Collective`](super::Collective)), each calling this with its own images: `x` holds
    /// columns `share.first..share.first + x.ncols()` of X
    /// (m x `share.total`). W is replicated and each process keeps its own columns of H: the
    /// returned [`Factorization::h`] holds only those (the caller gathers H if it wants it
    /// whole). Per iteration the processes exchange one sum of `X H^T` and `H H^T` (m r + r r
    /// numbers) and the stopping flags; every decision comes from summed values, so the
    /// iterates are the single process's up to the order of sums (f64: relative errors equal
    /// to 1e-9 at every iteration), and the same bits for the same group size.
    ///
    /// Every process must call this with the same parameters; progress is reported on each.
    /// There is no multilevel start (X at half resolution would be split too); with
    /// [`Nmf::multilevel`] off a single process makes the same iterates.
    ///
    /// # Errors
    /// As [`Nmf::fit_blocks`], and the L1/L2 penalties; the same error on every process
    /// (a bad entry in any process's images ends every process's fit with it).
    pub fn fit_share<T: Float>(
        &self,
        x: &ArrayView2<T>,
        share: Share<'_>,
        progress: impl FnMut(&Iteration) + Send,
    ) -> Result<Factorization<T>> {
        self.fit_one(Source::Memory(x), Some(share), progress)
    }

    /// [`Nmf::fit_share`] with this process's images read block by block from `blocks`
    /// (`width` at a time), as [`Nmf::fit_blocks`] reads them: a split of a decoded cache, say.
    ///
    /// # Errors
    /// As [`Nmf::fit_share`].
    pub fn fit_blocks_share<T: Float>(
        &self,
        blocks: &dyn ColumnBlocks<T>,
        width: usize,
        share: Share<'_>,
        progress: impl FnMut(&Iteration) + Send,
    ) -> Result<Factorization<T>> {
        self.fit_one(Source::Blocks(blocks, width.max(1)), Some(share), progress)
    }

    /// Fits X from given factors W0 (m x r) and H0 (r x n) instead of [`Nmf::init`]; W0 is
    /// still rescaled to the best multiple. Calls `progress` as [`Nmf::fit_with`] does.
    ///
    /// # Errors
    /// As [`Nmf::fit_with`], and factors whose shapes do not match X and the rank, or that
    /// hold negative or non-finite values.
    pub fn fit_from<T: Float>(
        &self,
        x: &ArrayView2<T>,
        w0: &ArrayView2<T>,
        h0: &ArrayView2<T>,
        progress: impl FnMut(&Iteration) + Send,
    ) -> Result<Factorization<T>> {
        let start = self.given_start(x, w0, h0)?;
        self.fit_inner(x, Some(start), None, progress)
    }

    /// W0 and H0 checked against X and the rank, as the loop takes them (W and H^T).
    fn given_start<T: Float>(
        &self,
        x: &ArrayView2<T>,
        w0: &ArrayView2<T>,
        h0: &ArrayView2<T>,
    ) -> Result<(Array2<T>, Array2<T>)> {
        let (m, n) = x.dim();
        let r = self.rank;
        for (name, factor, shape) in [("W0", w0, (m, r)), ("H0", h0, (r, n))] {
            if factor.dim() != shape {
                return Err(Error::param(
                    "init",
                    format!(
                        "{name} is {} x {}, expected {} x {} for X of {m} x {n} at rank {r}",
                        factor.nrows(),
                        factor.ncols(),
                        shape.0,
                        shape.1
                    ),
                ));
            }
            if factor
                .iter()
                .any(|v| !v.to_f64().is_finite() || *v < T::zero())
            {
                return Err(Error::param(
                    "init",
                    format!("{name} holds a negative or non-finite value"),
                ));
            }
            if factor.iter().all(|v| *v == T::zero()) {
                return Err(Error::param(
                    "init",
                    format!("{name} is all zero; the updates cannot leave a zero factor"),
                ));
            }
        }
        Ok((
            w0.as_standard_layout().into_owned(),
            h0.t().as_standard_layout().into_owned(),
        ))
    }

    /// Fits X as [`Nmf::fit_with`] does (or from given factors as [`Nmf::fit_from`], or on the
    /// known entries as [`Nmf::fit_masked`]), saving a [`Checkpoint`] every
    /// [`Checkpointing::every`] seconds, or going on from [`Checkpointing::resume`]. A resumed
    /// fit ends with the same bits as one that never stopped, at the same thread count.
    /// Returns the fit, and for an interrupted one ([`crate::Interrupt`]) its last state, to
    /// resume from.
    ///
    /// # Errors
    /// As the fits named, [`Nmf::runs`] above 1 (a checkpoint covers one run), and a
    /// checkpoint made on other images, with other parameters or at another precision.
    pub fn fit_checkpointed<T: Float>(
        &self,
        x: &ArrayView2<T>,
        start: Option<(&ArrayView2<T>, &ArrayView2<T>)>,
        known: Option<&ArrayView2<bool>>,
        progress: impl FnMut(&Iteration) + Send,
        mut checkpointing: Checkpointing<'_, T>,
    ) -> Result<(Factorization<T>, Option<Checkpoint<T>>)> {
        self.check_one_run()?;
        let start = match start {
            Some((w0, h0)) => Some(self.given_start(x, w0, h0)?),
            None => None,
        };
        let params = Nmf {
            seed: seed::run_seed(self.seed, 0),
            extrapolate: if known.is_some() {
                Some(false)
            } else {
                self.extrapolate
            },
            ..self.clone()
        };
        params.fit_inner_checkpointed(
            Source::Memory(x),
            None,
            start,
            known.map(|k| k.view()),
            progress,
            Some(&mut checkpointing),
        )
    }

    /// Fits images behind the column-block seam as [`Nmf::fit_blocks`] does, with checkpoints
    /// as [`Nmf::fit_checkpointed`]: a streamed fit of hours loses at most `every` seconds of
    /// work. The checkpoint holds W, H and the extrapolation's pairs, not X; a resume reads
    /// the blocks again and checks their sum and norm against the checkpoint's.
    ///
    /// # Errors
    /// As [`Nmf::fit_blocks`] and [`Nmf::fit_checkpointed`].
    pub fn fit_blocks_checkpointed<T: Float>(
        &self,
        blocks: &dyn ColumnBlocks<T>,
        width: usize,
        progress: impl FnMut(&Iteration) + Send,
        mut checkpointing: Checkpointing<'_, T>,
    ) -> Result<(Factorization<T>, Option<Checkpoint<T>>)> {
        self.check_one_run()?;
        let params = Nmf {
            seed: seed::run_seed(self.seed, 0),
            ..self.clone()
        };
        params.fit_inner_checkpointed(
            Source::Blocks(blocks, width.max(1)),
            None,
            None,
            None,
            progress,
            Some(&mut checkpointing),
        )
    }

    /// Checkpoints cover one run.
    fn check_one_run(&self) -> Result<()> {
        if self.runs != 1 {
            return Err(Error::param(
                "runs",
                "a checkpoint covers one run; checkpoints need runs = 1",
            ));
        }
        Ok(())
    }

    /// Fits X using only the entries where `known` is true: the objective sums over them, and
    /// [`Factorization::rel_error`] is the error on them; [`Factorization::hidden_error`] the
    /// error on the others (for validation: hide entries you know, then compare). Extrapolation
    /// is off.
    ///
    /// # Errors
    /// As [`Nmf::fit_with`], and a mask of another shape or one that hides every nonzero entry.
    pub fn fit_masked<T: Float>(
        &self,
        x: &ArrayView2<T>,
        known: &ArrayView2<bool>,
        progress: impl FnMut(&Iteration) + Send,
    ) -> Result<Factorization<T>> {
        let params = Nmf {
            extrapolate: Some(false),
            ..self.clone()
        };
        params.fit_inner(x, None, Some(known.view()), progress)
    }

    /// [`Nmf::fit_loop`] on one of rayon's worker threads. Called from any other thread, every
    /// parallel loop of a fit (hundreds per second) would hand all its work to the pool and put
    /// the calling thread to sleep on a condition variable until the pool is done; from a
    /// worker, the caller works on the loop itself and the others are kept awake for it
    /// ([`KeepAwake`]).
    fn fit_inner<T: Float>(
        &self,
        x: &ArrayView2<T>,
        start_factors: Option<(Array2<T>, Array2<T>)>,
        known: Option<ArrayView2<bool>>,
        progress: impl FnMut(&Iteration) + Send,
    ) -> Result<Factorization<T>> {
        self.fit_inner_checkpointed(
            Source::Memory(x),
            None,
            start_factors,
            known,
            progress,
            None,
        )
        .map(|(fit, _)| fit)
    }

    /// [`Nmf::fit_inner`] with checkpoints; returns the last state of an interrupted fit too.
    fn fit_inner_checkpointed<T: Float>(
        &self,
        source: Source<'_, T>,
        share: Option<Share<'_>>,
        start_factors: Option<(Array2<T>, Array2<T>)>,
        known: Option<ArrayView2<bool>>,
        progress: impl FnMut(&Iteration) + Send,
        checkpointing: Option<&mut Checkpointing<'_, T>>,
    ) -> Result<(Factorization<T>, Option<Checkpoint<T>>)> {
        if rayon::current_thread_index().is_some() {
            return self.fit_loop(source, share, start_factors, known, progress, checkpointing);
        }
        rayon::scope(|_| {
            // In memory and in one process only: a streamed fit waits on its reads, and
            // processes split over a machine share its cores and wait on each other.
            let _awake = (matches!(source, Source::Memory(_)) && share.is_none())
                .then(KeepAwake::start)
                .flatten();
            self.fit_loop(source, share, start_factors, known, progress, checkpointing)
        })
    }

    /// Whether a multilevel start may apply to this fit: on, and a plain Frobenius fit.
    fn multilevel_on(&self) -> bool {
        let plain = self.loss.is_frobenius()
            && self.sparsity_w.is_none()
            && self.sparsity_h.is_none()
            && self.alpha_w == 0.0
            && self.alpha_h == 0.0;
        let on =
            self.multilevel.unwrap_or(self.solver.policy().multilevel) && self.online.is_none();
        plain && on
    }

    /// The coarse shape a multilevel start would fit first, if it applies to this fit.
    fn coarse_level(&self) -> Option<ImageShape> {
        self.image_shape
            .filter(|_| self.multilevel_on())
            .and_then(|shape| shape.coarse_level(self.rank))
    }

    /// The multilevel start, if it applies, with the levels fitted (coarsest first) in
    /// `levels`. A sample of every k-th image comes first where there are enough images per
    /// part (its own fit may then halve the resolution, or sample again); otherwise the images
    /// at half resolution, where they keep enough pixels per part.
    fn coarse_start<T: Float>(
        &self,
        x: &ArrayView2<T>,
        levels: &mut Vec<CoarseLevel>,
    ) -> Result<Option<CoarseStart<T>>> {
        if !self.multilevel_on() {
            return Ok(None);
        }
        let started = Instant::now();
        let params = |image_shape, level| Nmf {
            image_shape,
            tol: multilevel::COARSE_TOL,
            runs: 1,
            level,
            ..self.clone()
        };
        if let Some(step) = multilevel::sample_step(x.ncols(), self.rank) {
            let sample = multilevel::sample(x, step);
            let fit = params(self.image_shape, Level::Sample).fit_inner(
                &sample.view(),
                None,
                None,
                |_| {},
            )?;
            // H for every image, the sample's included: its H was fitted to a W that has since
            // moved.
            let (ht, xtw) = init::coefficients_for(x, &fit.w, init::FIXED_W_SWEEPS);
            levels.extend(fit.coarse_levels);
            levels.push(CoarseLevel {
                shape: self.image_shape.unwrap_or(ImageShape {
                    height: x.nrows(),
                    width: 1,
                }),
                images: Some(sample.ncols()),
                iterations: fit.n_iter,
                rel_error: fit.rel_error,
                seconds: started.elapsed().as_secs_f64(),
            });
            return Ok(Some(CoarseStart {
                w: fit.w,
                ht,
                xtw: Some(xtw),
            }));
        }
        let (Some(coarse), Some(shape)) = (self.coarse_level(), self.image_shape) else {
            return Ok(None);
        };
        let xc = multilevel::restrict(x, shape);
        let fit = params(Some(coarse), Level::Halved).fit_inner(&xc.view(), None, None, |_| {})?;
        levels.extend(fit.coarse_levels);
        levels.push(CoarseLevel {
            shape: coarse,
            images: None,
            iterations: fit.n_iter,
            rel_error: fit.rel_error,
            seconds: fit.seconds,
        });
        Ok(Some(CoarseStart {
            w: multilevel::prolong(&fit.w, coarse, shape),
            ht: fit.h.t().as_standard_layout().into_owned(),
            xtw: None,
        }))
    }

    /// The start of a divergence fit ([`Nmf::warm_start`]), if it has one: the W and H^T of a
    /// short Frobenius fit from the same init, and how that went, for [`Factorization::start`].
    fn frobenius_start<T: Float>(&self, x: &ArrayView2<T>) -> Result<Option<(Factors<T>, String)>> {
        let iterations = self.warm_iterations();
        if iterations == 0 {
            return Ok(None);
        }
        let params = Nmf {
            loss: Loss::Frobenius,
            solver: Solver::Hals,
            extrapolate: None,
            max_iter: iterations,
            runs: 1,
            unit_sum_w: false,
            warm_start: None,
            ..self.clone()
        };
        let fit = params.fit_inner(x, None, None, |_| {})?;
        let how = format!(
            "{}, then {} Frobenius iterations (hals, relative error {:.6})",
            fit.start, fit.n_iter, fit.rel_error
        );
        Ok(Some((
            (fit.w, fit.h.t().as_standard_layout().into_owned()),
            how,
        )))
    }

    /// The one iteration loop: initialisation (unless `start_factors` gives W and H^T),
    /// stopping, history, progress and keep-best.
    fn fit_loop<T: Float>(
        &self,
        source: Source<'_, T>,
        share: Option<Share<'_>>,
        start_factors: Option<(Array2<T>, Array2<T>)>,
        known: Option<ArrayView2<bool>>,
        mut progress: impl FnMut(&Iteration),
        mut checkpointing: Option<&mut Checkpointing<'_, T>>,
    ) -> Result<(Factorization<T>, Option<Checkpoint<T>>)> {
        let start = Instant::now();
        let standard;
        // Streamed, X is never whole: `x` is then empty, and what needs it whole (missing
        // data, the divergences, a multilevel start, SPA) is refused or left out below.
        let (x, blocks) = match source {
            Source::Memory(x) => {
                standard = x.as_standard_layout();
                (standard.view(), None)
            }
            // Online, a block is a batch.
            Source::Blocks(blocks, width) => (
                ArrayView2::from_shape((0, 0), &[]).expect("an empty view"),
                Some((blocks, self.online.map_or(width, |o| o.batch_images))),
            ),
        };
        // n counts the images of every process; this process holds `local` of them.
        let (m, local) = match blocks {
            Some((b, _)) => (b.pixels(), b.count()),
            None => x.dim(),
        };
        let n = share.map_or(local, |s| s.total);
        if let Some(share) = &share {
            let (given, checkpointed) = (start_factors.is_some(), checkpointing.is_some());
            self.check_shareable(share, m, local, given, checkpointed)?;
        }
        self.check(m, n)?;
        if start_factors.is_some() && self.warm_start.is_some_and(|k| k > 0) {
            return Err(Error::param(
                "warm_start",
                "a fit from given factors starts from them, not from a Frobenius fit: leave the \
                 warm start out (or set it to 0)",
            ));
        }
        if blocks.is_some() || share.is_some() {
            self.check_streamable(known.is_some(), share.is_some())?;
        }
        // Streamed, the extrapolation's copies of H^T go to a file beside the images.
        let spill = blocks.and_then(|(b, _)| b.scratch());
        // A streamed fit reads each block into this buffer, allocated once.
        let stream_buffer = std::cell::RefCell::new(Array2::zeros((0, 0)));
        // Once H^T is mapped from a file (streamed), passes over the images drop each block's
        // rows of it from memory after the block.
        let mut release: Option<Release> = None;
        let (sum, xx) = match blocks {
            Some((b, width)) => scan(
                &Images::streamed(b, width, &stream_buffer).with_share(share),
                None,
            )?,
            None => scan(&Images::in_memory(x, None).with_share(share), Some(&x))?,
        };
        if known.is_some() && !self.loss.is_frobenius() {
            return Err(Error::param(
                "loss",
                format!("{} does not combine with missing data yet", self.loss),
            ));
        }
        // With missing entries the updates see X with its hidden entries filled in, and errors
        // are measured on the known ones.
        let mut missing = known.map(|k| Missing::new(&x, k)).transpose()?;
        fn data<'v, T: Float>(
            x: &'v ArrayView2<'v, T>,
            missing: &'v Option<Missing<'_, T>>,
        ) -> ArrayView2<'v, T> {
            match missing {
                Some(mi) => mi.filled.view(),
                None => x.view(),
            }
        }
        let policy = self.solver.policy();
        let checkpointed = checkpointing
            .as_ref()
            .is_some_and(|c| c.every.is_some() || c.resume.is_some());
        if self.online.is_some() && (missing.is_some() || checkpointed) {
            let what = if missing.is_some() {
                "missing data (it fills X whole)"
            } else {
                "checkpoints (the batches' sums are not kept)"
            };
            return Err(Error::param(
                "online",
                format!("online fitting does not combine with {what}"),
            ));
        }
        // Blocks of images only where nothing couples all of them; online, a block is a batch.
        let width = self.online.map(|o| o.batch_images).or(self
            .column_block
            .filter(|_| missing.is_none() && self.sparsity_h.is_none()));

        let penalty = Penalty::new(self.alpha_w, self.alpha_h, self.l1_ratio, m, n);
        // Under a sparseness constraint the start does not satisfy it: the first iterate that
        // does is the reference of the stopping rule, not the start.
        let constrained = self.sparsity_w.is_some() || self.sparsity_h.is_some();
        let first_feasible = usize::from(constrained);
        let x_norm = missing
            .as_ref()
            .map_or(xx.sqrt(), |mi| mi.known_norm_sq.sqrt());
        let rel = |err_sq: f64| err_sq.max(0.0).sqrt() / x_norm;
        // Decisions (extrapolation, keep-best, tolerance) use the relative error, or with
        // penalties the whole objective.
        let score = |err_sq: f64, w: &Array2<T>, ht: &ArrayView2<T>, divergence: Option<f64>| {
            if let Some(d) = divergence {
                d
            } else if penalty.is_active() {
                0.5 * err_sq.max(0.0) + penalty.value(&w.view(), ht)
            } else {
                rel(err_sq)
            }
        };
        // The images as the half-steps visit them.
        macro_rules! images {
            () => {
                match blocks {
                    Some((b, stream_width)) => {
                        Images::streamed(b, stream_width, &stream_buffer).releasing(release.clone())
                    }
                    None => Images::in_memory(data(&x, &missing), width),
                }
                .with_share(share)
            };
        }
        let mut step = Step::new(self, m, &images!());
        // A divergence starts from the init as it is (as scikit-learn does); its error comes
        // from WH itself.
        let mut beta_mu = (!self.loss.is_frobenius()).then(|| {
            let updates = BetaMu::new(m, n, self.rank, self.loss.beta(), self.unit_sum_w);
            match self.solver {
                super::Solver::Cd => updates.by_coordinate_descent(&x, self.rank),
                _ => updates,
            }
        });
        let params_record = serde_json::to_string(self).expect("parameters serialise");
        let resume = checkpointing.as_mut().and_then(|c| c.resume.take());
        let carried = match resume {
            Some(saved) => {
                let meta = &saved.meta;
                if meta.shape != (m, n)
                    || meta.x_sum != sum.to_bits()
                    || meta.x_norm_sq != xx.to_bits()
                {
                    return Err(Error::Checkpoint {
                        reason: format!(
                            "it was made on {} images of {} pixels with other values, not these \
                             {n} of {m}; resume on the same images",
                            meta.shape.1, meta.shape.0
                        ),
                    });
                }
                if meta.params != params_record {
                    return Err(Error::Checkpoint {
                        reason: format!(
                            "it was made with other parameters ({}), not {params_record}",
                            meta.params
                        ),
                    });
                }
                // What is a function of the factors is recomputed; W^T W is as the last
                // half-step left it.
                step.restore_gram_w(&saved.gram_w);
                if let Some(b) = &mut beta_mu {
                    b.product(&saved.w, &saved.ht);
                    b.measure(&x);
                }
                if let Some(mi) = &mut missing {
                    mi.refresh(&x, &saved.w, &saved.ht);
                }
                // Streamed, H^T itself is mapped from a file beside the images (`spill.rs`),
                // so that the memory of the loop does not grow with the number of images.
                let (ht, ht_warning) = HtStore::place(saved.ht, spill);
                release = ht.release();
                let extrapolation = match (meta.extrapolation, saved.extrapolation) {
                    (Some(scalars), Some(arrays)) => Some(Extrapolated::restore(
                        scalars,
                        arrays,
                        policy.multiplicative,
                        spill,
                        release.clone(),
                    )),
                    _ => None,
                };
                let bits = |v: &[u64]| v.iter().map(|&b| f64::from_bits(b)).collect::<Vec<_>>();
                let best_by_iter = bits(&meta.best_by_iter);
                let last = *meta
                    .history
                    .last()
                    .expect("a checkpoint holds an iteration");
                progress(&last);
                Carried {
                    w: saved.w,
                    ht,
                    ht_warning,
                    history: meta.history.clone(),
                    scores: bits(&meta.scores),
                    best: *best_by_iter
                        .last()
                        .expect("a checkpoint holds an iteration"),
                    best_by_iter,
                    extrapolation,
                    revival: meta
                        .restarts
                        .map(|state| Revival::restored(self.rank, state)),
                    escape_pending: meta.escape_pending,
                    quiet_until: meta.quiet_until,
                    coarse_levels: meta.coarse_levels.clone(),
                    warm_start: meta.warm_start.clone(),
                    given: meta.given,
                    seconds_before: meta.seconds,
                }
            }
            None => {
                // Start: given factors, a multilevel start, or the init.
                let given = start_factors.is_some();
                let mut coarse_levels = Vec::new();
                let coarse = match (&start_factors, &missing) {
                    (None, None) if blocks.is_none() && share.is_none() => {
                        self.coarse_start(&x, &mut coarse_levels)?
                    }
                    _ => None,
                };
                let (coarse, mut coarse_xtw) = match coarse {
                    Some(c) => (Some((c.w, c.ht)), c.xtw),
                    None => (None, None),
                };
                // Extrapolation ramps up after a start from an init, except at a multilevel
                // start's half resolution: there it cost Olivetti one iteration to E (4 against
                // 3) and changed no least cosine on the parts benchmarks. A sample of CBCL
                // fitted with it started the full fit closer (0.0881 against 0.0896, to the
                // same tolerance), which then reached E in 4 iterations instead of 12.
                let from_init = !given && coarse.is_none() && self.level != Level::Halved;
                // A divergence fit starts from a short Frobenius fit unless given factors.
                let warm = match (&start_factors, &missing) {
                    (None, None) if blocks.is_none() && share.is_none() => {
                        self.frobenius_start(&x)?
                    }
                    _ => None,
                };
                let (warm, warm_start) = warm.unzip();
                // Streamed, H^T is made or put in a file beside the images (see the resume
                // above).
                let (mut w, mut ht, ht_warning) = match start_factors.or(coarse).or(warm) {
                    Some((w, ht)) => {
                        let (ht, warning) = HtStore::place(ht, spill);
                        (w, ht, warning)
                    }
                    None => init::initialize_with(
                        self.init,
                        &images!(),
                        self.rank,
                        self.seed,
                        sum / (m * n) as f64,
                        policy.multiplicative,
                        spill,
                    )?,
                };
                release = ht.release();
                let (mut err_sq, start_divergence) = match &mut beta_mu {
                    Some(b) => {
                        b.product(&w, &ht.view());
                        let (frobenius_sq, divergence) = b.measure(&x);
                        (frobenius_sq, Some(divergence))
                    }
                    None => {
                        // Scale W so that alpha W H is the best multiple of the initial
                        // product: the NNDSVDa fill otherwise starts far above X. With missing
                        // data the imputation below changes the data the start's X^T W was
                        // taken from.
                        let images = images!();
                        let (cross, quad) = step.start(
                            &images,
                            &w,
                            &ht.view(),
                            missing.is_none(),
                            coarse_xtw.take(),
                        );
                        let mut err_sq = xx;
                        if quad > 0.0 && cross > 0.0 {
                            let alpha = cross / quad;
                            let a = T::from_f64(alpha);
                            w.mapv_inplace(|v| v * a);
                            step.scale(a);
                            err_sq = xx - 2.0 * alpha * cross + alpha * alpha * quad;
                        }
                        (err_sq, None)
                    }
                };
                if let Some(mi) = &mut missing {
                    // The first error and imputation come from the scaled start.
                    err_sq = mi.refresh(&x, &w, ht.held_mut());
                }
                if !err_sq.is_finite() || start_divergence.is_some_and(|d| !d.is_finite()) {
                    return Err(Error::NonFinite {
                        iteration: 0,
                        what: "the error of the start",
                    });
                }
                let mut history = Vec::with_capacity(self.max_iter.min(100_000) + 1);
                let first = Iteration {
                    iter: 0,
                    seconds: start.elapsed().as_secs_f64(),
                    rel_error: rel(err_sq),
                    divergence: start_divergence,
                };
                progress(&first);
                history.push(first);
                // (w, ht) are the points the updates start from and overwrite; with
                // extrapolation the last accepted and the best pair are kept beside them, as
                // extrapolated errors are not monotone.
                let extrapolation = self.extrapolates().then(|| {
                    Extrapolated::new(
                        &w,
                        &ht.view(),
                        policy.multiplicative,
                        from_init,
                        spill,
                        release.clone(),
                    )
                });
                let mut scores = Vec::with_capacity(history.capacity());
                scores.push(score(err_sq, &w, &ht.view(), first.divergence));
                let best = if constrained {
                    f64::INFINITY
                } else {
                    scores[0]
                };
                let mut best_by_iter = Vec::with_capacity(history.capacity());
                best_by_iter.push(best);
                Carried {
                    w,
                    ht,
                    ht_warning,
                    history,
                    scores,
                    best,
                    best_by_iter,
                    extrapolation,
                    // Penalties and sparseness constraints zero components on purpose; online,
                    // the batches' sums would pull a restarted component back.
                    revival: (!constrained && !penalty.is_active() && self.online.is_none())
                        .then(|| Revival::new(self.rank)),
                    // A stall the tolerance rule finds tries an escape at the next
                    // iteration's top; a kept one gives the fit another window before the
                    // stopping rule is asked again.
                    escape_pending: false,
                    quiet_until: 0,
                    coarse_levels,
                    warm_start,
                    given,
                    seconds_before: 0.0,
                }
            }
        };
        let Carried {
            mut w,
            mut ht,
            ht_warning,
            mut history,
            mut scores,
            mut best,
            mut best_by_iter,
            mut extrapolation,
            mut revival,
            mut escape_pending,
            mut quiet_until,
            coarse_levels,
            warm_start,
            given,
            seconds_before,
        } = carried;
        // Where the folder given for H^T and its copies could not take them, the result says
        // so.
        let spill_warning = extrapolation.as_mut().and_then(Extrapolated::spill_warning);
        let spill_warnings: Vec<String> = ht_warning.into_iter().chain(spill_warning).collect();
        let elapsed = || seconds_before + start.elapsed().as_secs_f64();
        let context = checkpointing
            .as_ref()
            .map_or_else(String::new, |c| c.context.clone());
        // The state between two iterations, for a checkpoint.
        macro_rules! checkpoint {
            ($iter:expr) => {{
                let (scalars, arrays) = extrapolation
                    .as_ref()
                    .map(Extrapolated::state)
                    .transpose()?
                    .unzip();
                Checkpoint {
                    context: context.clone(),
                    meta: Meta {
                        precision: T::NAME.into(),
                        params: params_record.clone(),
                        shape: (m, n),
                        x_sum: sum.to_bits(),
                        x_norm_sq: xx.to_bits(),
                        iter: $iter,
                        seconds: elapsed(),
                        history: history.clone(),
                        scores: scores.iter().map(|s| s.to_bits()).collect(),
                        best_by_iter: best_by_iter.iter().map(|s| s.to_bits()).collect(),
                        restarts: revival.as_ref().map(Revival::state),
                        escape_pending,
                        quiet_until,
                        given,
                        coarse_levels: coarse_levels.clone(),
                        warm_start: warm_start.clone(),
                        extrapolation: scalars,
                    },
                    w: w.clone(),
                    ht: {
                        let copy = ht.view().to_owned();
                        ht.release_all();
                        copy
                    },
                    gram_w: step.gram_w().clone(),
                    extrapolation: arrays,
                }
            }};
        }
        let mut last_saved = Instant::now();
        let mut err_sq;
        let resumed_at = history.len();
        let mut stop = Stop::MaxIter;
        for iter in resumed_at..=self.max_iter {
            // Checked before each iteration: raised during the start (a multilevel level, say),
            // the start is the result.
            // Split over processes, all stop together: after the start here, else at the foot
            // of the iteration below.
            if (share.is_none() || iter == resumed_at)
                && on_any(share.as_ref(), self.interrupt.is_raised())
            {
                stop = Stop::Interrupted;
                break;
            }
            // After an iteration's measurement rather than before the first one (the start's
            // residual is a worse guide than the first iterate's: min cosine 0.58-0.90 on the
            // swimmer against >= 0.97), and only when another iteration follows, so that
            // every iterate the loop returns is one it measured.
            let restarted = match revival.as_mut().filter(|_| iter > 1) {
                // An escape from the stall the tolerance rule found: refused, the fit stops
                // where it stalled, with W and H as they were (the same bits as without it).
                Some(r) if std::mem::take(&mut escape_pending) => {
                    let images = images!();
                    // Judged by the loss the fit minimises.
                    let loss = |w: &Array2<T>, ht: &ArrayView2<T>| match &mut beta_mu {
                        Some(b) => {
                            b.product(w, ht);
                            b.measure(&x).1
                        }
                        None => images.residual_sq(w, ht),
                    };
                    let kept = r.escape(&images, &mut w, &mut ht.view_mut(), loss)?;
                    ht.release_all();
                    if !kept {
                        stop = Stop::Tolerance;
                        break;
                    }
                    true
                }
                Some(r) => r.revive(&images!(), &mut w, &mut ht.view_mut()),
                None => false,
            };
            if restarted {
                ht.release_all();
                step.refresh_gram_w(&w);
                // The divergence's updates divide by W H: the restarted one.
                if let Some(b) = &mut beta_mu {
                    b.product(&w, &ht.view());
                }
            }
            let divergence = match &mut beta_mu {
                Some(b) => {
                    let (frobenius_sq, d) = b.iterate(&x, &mut w, ht.held_mut());
                    err_sq = frobenius_sq;
                    Some(d)
                }
                None => {
                    let cross = {
                        let images = images!();
                        step.update_h(&images, &mut w, &mut ht.view_mut(), |rows, ht_block| {
                            if let Some(e) = &mut extrapolation {
                                e.extrapolate_h(rows, ht_block);
                            }
                        });
                        if let Some(failure) =
                            extrapolation.as_mut().and_then(Extrapolated::failure)
                        {
                            return Err(failure);
                        }
                        let cross = step.update_w(&mut w, &mut ht.view_mut());
                        ht.release_all();
                        cross
                    };
                    err_sq = match &mut missing {
                        Some(mi) => {
                            let filled_error_sq = step.error_sq(mi.filled_norm_sq, &w, cross);
                            mi.update(&x, &w, ht.held_mut(), filled_error_sq)
                        }
                        None => step.error_sq(xx, &w, cross),
                    };
                    None
                }
            };
            if !err_sq.is_finite() || divergence.is_some_and(|d| !d.is_finite()) {
                // The Gram products can overflow in f32 while the factors stay finite (a
                // sparseness constraint shrinks W and grows H): then measure directly.
                let finite = w.iter().chain(ht.view()).all(|v| v.to_f64().is_finite());
                ht.release_all();
                if finite && beta_mu.is_none() && missing.is_none() {
                    err_sq = images!().residual_sq(&w, &ht.view());
                }
                if !err_sq.is_finite() || divergence.is_some_and(|d| !d.is_finite()) {
                    return Err(Error::NonFinite {
                        iteration: iter,
                        what: if finite { "the error" } else { "the factors" },
                    });
                }
            }
            let error = rel(err_sq);
            let current = score(err_sq, &w, &ht.view(), divergence);
            ht.release_all();
            scores.push(current);

            if let Some(e) = &mut extrapolation {
                e.judge(&mut w, &mut ht.view_mut(), current, scores[iter - 1], best);
                if let Some(failure) = e.failure() {
                    return Err(failure);
                }
                step.refresh_gram_w(&w);
            }
            best = best.min(current);
            best_by_iter.push(best);

            let record = Iteration {
                iter,
                seconds: elapsed(),
                rel_error: error,
                divergence,
            };
            progress(&record);
            history.push(record);

            if self.tol > 0.0 && iter >= (first_feasible + TOL_WINDOW).max(quiet_until) {
                let before = best_by_iter[iter - TOL_WINDOW];
                if before - best <= self.tol * before {
                    // A plateau may be a local minimum where a part is held twice or two
                    // parts share a component: one escape is tried before the fit stops.
                    // Not at a coarse level of the multilevel start: it is only a start,
                    // and there a kept escape would cost time to E.
                    let full = self.level == Level::Full;
                    if full && revival.as_ref().is_some_and(Revival::can_escape) {
                        escape_pending = true;
                        quiet_until = iter + TOL_WINDOW;
                    } else {
                        stop = Stop::Tolerance;
                        break;
                    }
                }
            }
            let time_up = self.max_time.is_some_and(|limit| elapsed() >= limit);
            if let Some(share) = &share {
                // One process's clock or signal stops every process at the same iterate.
                let mut flags =
                    [time_up, self.interrupt.is_raised()].map(|f| f64::from(u8::from(f)));
                share.group.sum(&mut flags);
                if flags[0] > 0.0 {
                    stop = Stop::MaxTime;
                    break;
                }
                if flags[1] > 0.0 {
                    stop = Stop::Interrupted;
                    break;
                }
            } else if time_up {
                stop = Stop::MaxTime;
                break;
            }
            if let Some(c) = checkpointing.as_mut()
                && c.every
                    .is_some_and(|every| last_saved.elapsed().as_secs_f64() >= every)
            {
                let saved = checkpoint!(iter);
                (c.save)(&saved);
                last_saved = Instant::now();
            }
        }
        // An interrupted fit's last state, to go on from (none before its first iteration:
        // there is nothing to keep that a new start would not redo; none online, whose
        // batches' sums it would not hold).
        let last_state = if stop == Stop::Interrupted && history.len() > 1 && self.online.is_none()
        {
            Some(checkpoint!(history.len() - 1))
        } else {
            None
        };

        let (mut w, mut ht) = match extrapolation {
            Some(e) => {
                // The loop's iterate goes before the best is taken (from its file, as it is):
                // at 200,000 faces they are 39 MB each.
                drop(ht);
                e.into_best(history.len() > 1)?
            }
            None => (w, ht),
        };
        // The best pair's H^T may be another file's map.
        release = ht.release();
        // Rescaling W against H would change the penalty terms, so penalised results are only
        // reordered.
        // Lee & Seung's unit column sums are part of their result: kept, only reordered.
        let rescale = !penalty.is_active() && !self.unit_sum_w;
        canonical::canonicalize(
            &mut w,
            &mut ht.view_mut(),
            rescale,
            |norms| images!().sum(norms),
            release.as_ref(),
        );
        let (rel_error, residual, hidden_error) = match &mut missing {
            Some(mi) => {
                let (known, hidden) = mi.errors(&x, &w, ht.held_mut());
                (known, known * known * mi.known_norm_sq, Some(hidden))
            }
            // A coarse level is only a start (a plain Frobenius fit): the error of its best
            // pair as the loop measured it, not another pass over X to form it exactly (0.36
            // ms of a CBCL sample's 14 ms).
            None if self.level != Level::Full => {
                let residual = (best * x_norm).powi(2);
                (best, residual, None)
            }
            None => {
                let residual = images!().residual_sq(&w, &ht.view()).max(0.0);
                (residual.sqrt() / x_norm, residual, None)
            }
        };
        let divergence = beta_mu.as_mut().map(|b| {
            b.product(&w, &ht.view());
            b.measure(&x).1
        });
        let penalties = penalty.value(&w.view(), &ht.view());
        ht.release_all();
        let objective = divergence.unwrap_or(0.5 * residual + penalties);
        let mut warnings = spill_warnings;
        if constrained && rel_error > history[0].rel_error {
            warnings.push(format!(
                "the sparseness constraint costs fit: relative error {rel_error:.6} against \
                 {:.6} for the unconstrained start",
                history[0].rel_error
            ));
        }
        // H is H^T's memory seen the other way (image by image, column-major): no copy.
        let h = Coefficients::from_ht(ht);
        let fit = Factorization {
            w,
            h,
            n_iter: history.len() - 1,
            stop,
            seconds: elapsed(),
            rel_error,
            hidden_error,
            objective,
            divergence,
            history,
            params: self.clone(),
            start: self.start_name(given, &coarse_levels, warm_start.as_deref()),
            run_errors: vec![rel_error],
            best_run: 0,
            coarse_levels,
            restarts: revival.map_or(0, |r| r.count),
            warnings,
        };
        Ok((fit, last_state))
    }

    /// How the factors started, for [`Factorization::start`].
    fn start_name(
        &self,
        given: bool,
        coarse_levels: &[CoarseLevel],
        warm_start: Option<&str>,
    ) -> String {
        if given {
            return "given".into();
        }
        if let Some(warm) = warm_start {
            return warm.into();
        }
        if coarse_levels.is_empty() {
            return self.init.to_string();
        }
        let path: Vec<String> = coarse_levels
            .iter()
            .map(|l| format!("{l} ({} iterations)", l.iterations))
            .collect();
        format!(
            "{} at {} -> full size (multilevel)",
            self.init,
            path.join(" -> ")
        )
    }
}

/// How [`Nmf::fit_checkpointed`] saves and resumes.
pub struct Checkpointing<'a, T> {
    /// Seconds between checkpoints while the fit runs (`None`: none).
    pub every: Option<f64>,
    /// Called with each checkpoint. Writing it is the caller's, and so is a failure to: the
    /// fit goes on.
    pub save: &'a mut (dyn FnMut(&Checkpoint<T>) + Send),
    /// A checkpoint to go on from instead of starting.
    pub resume: Option<Checkpoint<T>>,
    /// Kept in every checkpoint as [`Checkpoint::context`].
    pub context: String,
}

/// W and H^T, as the loop holds them.
type Factors<T> = (Array2<T>, Array2<T>);

/// A multilevel start's factors for the full fit.
struct CoarseStart<T> {
    w: Array2<T>,
    ht: Array2<T>,
    /// X^T W of this W, where the start formed it (fitting every image's H to the sample's W):
    /// the full fit's first product, not formed again.
    xtw: Option<Array2<T>>,
}

/// What the loop carries from one iteration to the next, from a start or a checkpoint.
struct Carried<T> {
    w: Array2<T>,
    ht: HtStore<T>,
    /// Why H^T is held in memory although the images gave a folder for it.
    ht_warning: Option<String>,
    history: Vec<Iteration>,
    scores: Vec<f64>,
    best: f64,
    best_by_iter: Vec<f64>,
    extrapolation: Option<Extrapolated<T>>,
    revival: Option<Revival>,
    escape_pending: bool,
    quiet_until: usize,
    coarse_levels: Vec<CoarseLevel>,
    /// How the Frobenius fit a divergence fit started from went ([`Nmf::warm_start`]).
    warm_start: Option<String>,
    given: bool,
    seconds_before: f64,
}

/// Whether `flag` holds in any process of the group (in this one, when not split).
fn on_any(share: Option<&Share<'_>>, flag: bool) -> bool {
    let Some(share) = share else {
        return flag;
    };
    let mut v = [f64::from(u8::from(flag))];
    share.group.sum(&mut v);
    v[0] > 0.0
}

/// The sum of X and ||X||^2, its values checked: an error names the first entry that is
/// negative or not finite (over all processes, by its column of the whole X). One parallel
/// pass over `x` when given (X in memory, standard layout), else block by block.
fn scan<T: Float>(images: &Images<'_, T>, x: Option<&ArrayView2<T>>) -> Result<(f64, f64)> {
    let local = match x {
        Some(x) => scan_values(x),
        None => scan_blocks(images),
    };
    let (sum, sq) = match images.share() {
        None => local.map_err(|(i, j, v)| bad_entry(i, j, v))?,
        Some(share) => {
            // Every process learns of a bad entry anywhere; sums in rank order.
            let mine = match local {
                Ok((s, q)) => [0.0, 0.0, 0.0, s, q],
                Err((i, j, v)) => [1.0, i as f64, (share.first + j) as f64, v, 0.0],
            };
            let all = share.group.gather(&mine);
            if let Some(bad) = all.chunks(5).find(|c| c[0] != 0.0) {
                return Err(bad_entry(bad[1] as usize, bad[2] as usize, bad[3]));
            }
            all.chunks(5)
                .fold((0.0, 0.0), |(s, q), c| (s + c[3], q + c[4]))
        }
    };
    if sq == 0.0 {
        return Err(all_zero());
    }
    Ok((sum, sq))
}

/// [`scan_values`] block by block: the sum and squared norm, or the pixel, image and value of
/// the first bad entry.
fn scan_blocks<T: Float>(
    images: &Images<'_, T>,
) -> std::result::Result<(f64, f64), (usize, usize, f64)> {
    let (mut sum, mut sq) = (0.0, 0.0);
    let mut failure = None;
    images.for_each(|cols, xb| {
        if failure.is_some() {
            return;
        }
        // The block as images x pixels (how a source gives it): contiguous, so not copied.
        let rows = xb.t();
        let rows = rows.as_standard_layout();
        match scan_values(&rows.view()) {
            Ok((s, q)) => (sum, sq) = (sum + s, sq + q),
            Err(at) => failure = Some((cols.start, at)),
        }
    });
    match failure {
        Some((first, (image, pixel, value))) => Err((pixel, first + image, value)),
        None => Ok((sum, sq)),
    }
}

/// The sum and squared norm of a standard-layout matrix, or the row, column and value of
/// its first entry that is negative or not finite.
fn scan_values<T: Float>(
    x: &ArrayView2<T>,
) -> std::result::Result<(f64, f64), (usize, usize, f64)> {
    let n = x.ncols();
    const BLOCK: usize = 1 << 16;
    let values = x.as_slice().expect("standard layout");
    let scans: Vec<(Option<usize>, f64, f64)> = values
        .par_chunks(BLOCK)
        .map(|chunk| {
            // Eight independent lanes so that the loop vectorises; a NaN or infinite entry
            // makes a sum of squares non-finite and a negative one a lane minimum negative,
            // and only then is the first offending entry searched for.
            let (mut sum, mut sq, mut low) = ([0.0f64; 8], [0.0f64; 8], [0.0f64; 8]);
            let (groups, rest) = chunk.as_chunks::<8>();
            for group in groups {
                for k in 0..8 {
                    let v = group[k].to_f64();
                    sum[k] += v;
                    sq[k] += v * v;
                    low[k] = low[k].min(v);
                }
            }
            for (k, v) in rest.iter().enumerate() {
                let v = v.to_f64();
                sum[k] += v;
                sq[k] += v * v;
                low[k] = low[k].min(v);
            }
            let suspect = sq.iter().any(|s| !s.is_finite()) || low.iter().any(|&l| l < 0.0);
            let first_bad = if suspect {
                chunk
                    .iter()
                    .position(|v| !v.to_f64().is_finite() || *v < T::zero())
            } else {
                None
            };
            (first_bad, sum.iter().sum::<f64>(), sq.iter().sum::<f64>())
        })
        .collect();
    let bad = scans
        .iter()
        .enumerate()
        .find_map(|(c, (bad, _, _))| bad.map(|p| c * BLOCK + p));
    if let Some(at) = bad {
        return Err((at / n, at % n, values[at].to_f64()));
    }
    let sum: f64 = scans.iter().map(|s| s.1).sum();
    let sq: f64 = scans.iter().map(|s| s.2).sum();
    Ok((sum, sq))
}

/// X's entry (i, j) is v, which NMF cannot take.
fn bad_entry(i: usize, j: usize, v: f64) -> Error {
    let need = if v.is_finite() {
        "nonnegative"
    } else {
        "finite"
    };
    Error::InvalidInput {
        reason: format!("entry ({i}, {j}) is {v}; NMF needs {need} values"),
    }
}

fn all_zero() -> Error {
    Error::InvalidInput {
        reason: "every entry is zero (every image is blank); there is nothing to factorize".into(),
    }
}
