//! Stage 2: the factorization X ~ W H with W, H >= 0.
//!
//! Orientation follows the literature (N. Gillis, *Nonnegative Matrix Factorization*, SIAM
//! 2020): X is m x n with one image per **column**, W (m x r) holds the basis images as columns,
//! H (r x n) the coefficients of each image. scikit-learn fits the transpose, `X.T ~ H.T W.T`,
//! so its `components_` is our W transposed and its `fit_transform` output our H transposed.
//!
//! One loop ([`Nmf::fit_with`]) owns initialisation, the stopping rules, the history and the
//! progress callback; each solver only updates one factor given the products it needs. Within
//! an iteration H is updated before W, as scikit-learn does. The objective is
//! `||X - WH||_F^2`; the relative error `||X - WH||_F / ||X||_F` is computed every iteration
//! from the Gram matrices the update already has, at the cost of two r x r and one m x r dot
//! products, and once exactly (from WH itself) at the end.

mod anls;
mod beta;
mod canonical;
mod extrapolate;
mod fpgm;
mod hals;
pub(crate) mod init;
mod linalg;
mod missing;
mod mu;
mod multilevel;
mod penalty;
mod sparseness;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::{Error, Float, Result};
pub use canonical::hoyer_sparseness;
use extrapolate::Extrapolation;
pub use linalg::Products;
use linalg::{TallProduct, dot, residual_sq};
pub use multilevel::ImageShape;
use penalty::Penalty;

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Solver {
    /// Accelerated HALS: coordinate descent with inner repetitions (Gillis & Glineur 2012).
    #[default]
    Hals,
    /// Plain HALS, one sweep per factor per iteration: scikit-learn's `cd` solver.
    Cd,
    /// Multiplicative updates (Lee & Seung 2001).
    Mu,
    /// Fast projected gradient with Nesterov momentum (Gillis 2020, section 8.3).
    Fpgm,
    /// Alternating nonnegative least squares, each factor solved exactly by block principal
    /// pivoting (Kim & Park 2011).
    Anls,
}

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

/// The measure of fit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Loss {
    /// `1/2 ||X - WH||_F^2` (beta = 2): every solver.
    #[default]
    Frobenius,
    /// Generalised Kullback-Leibler divergence (beta = 1): multiplicative updates only.
    KullbackLeibler,
    /// Itakura-Saito divergence (beta = 0): multiplicative updates only; X must be positive.
    ItakuraSaito,
    /// Any beta-divergence: multiplicative updates only.
    Beta(f64),
}

impl Loss {
    /// The beta of the divergence.
    pub fn beta(&self) -> f64 {
        match *self {
            Loss::Frobenius => 2.0,
            Loss::KullbackLeibler => 1.0,
            Loss::ItakuraSaito => 0.0,
            Loss::Beta(b) => b,
        }
    }

    fn is_frobenius(&self) -> bool {
        self.beta() == 2.0
    }
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The relative error decreased by less than `tol` over the last [`TOL_WINDOW`] iterations.
    Tolerance,
    /// `max_iter` iterations were run.
    MaxIter,
    /// `max_time` was reached.
    MaxTime,
}

/// The stopping rule compares the error with the one this many iterations before.
pub const TOL_WINDOW: usize = 10;

/// One point of the convergence history, also what the progress callback receives.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Iteration {
    /// Iteration number; 0 is the initialisation.
    pub iter: usize,
    /// Seconds since the fit started, initialisation included.
    pub seconds: f64,
    /// `||X - WH||_F / ||X||_F` after this iteration.
    pub rel_error: f64,
    /// The beta-divergence after this iteration, for a loss other than Frobenius.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<f64>,
}

/// Parameters of a factorization; build with [`Nmf::params`].
///
/// ```
/// use facenmf::{Init, Nmf, Solver};
/// use ndarray::Array2;
///
/// let x = Array2::from_shape_fn((30, 20), |(i, j)| ((i * j) % 7) as f32 + 1.0);
/// let fit = Nmf::params(3).solver(Solver::Hals).init(Init::Nndsvda).max_iter(50).fit(&x.view())?;
/// assert_eq!(fit.w.dim(), (30, 3));
/// assert_eq!(fit.h.dim(), (3, 20));
/// # Ok::<(), facenmf::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Nmf {
    rank: usize,
    #[serde(serialize_with = "as_string")]
    solver: Solver,
    #[serde(serialize_with = "as_string")]
    init: Init,
    max_iter: usize,
    extrapolate: Option<bool>,
    #[serde(serialize_with = "as_string")]
    loss: Loss,
    tol: f64,
    #[serde(rename = "max_time_seconds")]
    max_time: Option<f64>,
    seed: u64,
    runs: usize,
    alpha_w: f64,
    alpha_h: f64,
    l1_ratio: f64,
    sparsity_w: Option<f64>,
    sparsity_h: Option<f64>,
    image_shape: Option<ImageShape>,
    multilevel: Option<bool>,
}

fn as_string<S: serde::Serializer, D: fmt::Display>(
    v: &D,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The result of a fit, in canonical form: each column of W has maximum 1 and components are
/// sorted by their share of the reconstruction, largest first.
#[derive(Debug, Clone)]
pub struct Factorization<T> {
    /// Basis images, m x r (one per column).
    pub w: Array2<T>,
    /// Coefficients, r x n (one column per image).
    pub h: Array2<T>,
    /// Iterations run (not counting the initialisation).
    pub n_iter: usize,
    /// Why the loop stopped.
    pub stop: Stop,
    /// Wall time of the fit, initialisation included.
    pub seconds: f64,
    /// Final `||X - WH||_F / ||X||_F`, computed exactly from WH.
    pub rel_error: f64,
    /// Final objective, `1/2 ||X - WH||_F^2` plus any elastic-net terms ([`Nmf::objective`]).
    pub objective: f64,
    /// The final beta-divergence D(X | WH), for a loss other than Frobenius (then also the
    /// objective).
    pub divergence: Option<f64>,
    /// With [`Nmf::fit_masked`]: the relative error on the hidden entries (and `rel_error` is
    /// the error on the known ones).
    pub hidden_error: Option<f64>,
    /// Relative error after the initialisation and after every iteration.
    pub history: Vec<Iteration>,
    /// The parameters that produced this fit.
    pub params: Nmf,
    /// How the factors started: the init's name, or `"given"` for [`Nmf::fit_from`].
    pub start: String,
    /// Final relative error of every run (one unless [`Nmf::runs`] asked for more).
    pub run_errors: Vec<f64>,
    /// Which run this result is (the one with the least error), counting from 0.
    pub best_run: usize,
    /// The coarse levels of a multilevel start ([`Nmf::multilevel`]), coarsest first; empty
    /// when the fit started at full resolution.
    pub coarse_levels: Vec<CoarseLevel>,
}

/// One coarse level of a multilevel start: the same images at lower resolution, fitted before
/// the full-resolution fit started from its parts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CoarseLevel {
    /// Size of the images at this level.
    pub shape: ImageShape,
    /// Iterations run at this level.
    pub iterations: usize,
    /// Relative error of the coarse fit against the coarse images.
    pub rel_error: f64,
    /// Seconds spent at this level (coarser levels included).
    pub seconds: f64,
}

/// A mask of `shape` with each entry hidden (false) with probability `fraction`, reproducible
/// from `seed` (a counter-based hash per entry).
pub fn random_mask(shape: (usize, usize), fraction: f64, seed: u64) -> Array2<bool> {
    let cols = shape.1 as u64;
    Array2::from_shape_fn(shape, |(i, j)| {
        let z = run_seed(
            seed ^ 0x005E_ED0F_4D15_C0DE,
            (i as u64 * cols + j as u64 + 1) as usize,
        );
        ((z >> 11) as f64 / (1u64 << 53) as f64) >= fraction
    })
}

/// Seed of restart `run`: the given seed for the first, then a SplitMix64 scramble of it, so that
/// `--runs K` starts are distinct and the first run is the single fit of the same seed.
fn run_seed(seed: u64, run: usize) -> u64 {
    if run == 0 {
        return seed;
    }
    let mut z = seed.wrapping_add((run as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<T: Float> Factorization<T> {
    /// Whether the tolerance was met (false when `max_iter` or `max_time` stopped the loop).
    pub fn converged(&self) -> bool {
        self.stop == Stop::Tolerance
    }

    /// Mean Hoyer sparseness of the basis images (columns of W), in [0, 1].
    pub fn sparseness_w(&self) -> f64 {
        mean(self.w.columns().into_iter().map(hoyer_sparseness))
    }

    /// Mean Hoyer sparseness of the coefficient rows of H (one per component), in [0, 1].
    pub fn sparseness_h(&self) -> f64 {
        mean(self.h.rows().into_iter().map(hoyer_sparseness))
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    if count == 0 { 0.0 } else { sum / count as f64 }
}

impl Nmf {
    /// Parameters for a rank-`rank` factorization, with the defaults below.
    pub fn params(rank: usize) -> Self {
        Nmf {
            rank,
            solver: Solver::default(),
            init: Init::default(),
            max_iter: 200,
            extrapolate: None,
            loss: Loss::Frobenius,
            tol: 1e-4,
            max_time: None,
            seed: 0,
            runs: 1,
            alpha_w: 0.0,
            alpha_h: 0.0,
            l1_ratio: 0.0,
            sparsity_w: None,
            sparsity_h: None,
            image_shape: None,
            multilevel: None,
        }
    }

    /// The update rule. Default: [`Solver::Hals`].
    pub fn solver(mut self, solver: Solver) -> Self {
        self.solver = solver;
        self
    }

    /// The initialisation. Default: [`Init::Nndsvda`].
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Extrapolate between iterations with restarts (Ang & Gillis 2019), returning the best
    /// iterate. Default: on for [`Solver::Hals`] (E-A-HALS), off for [`Solver::Cd`] and
    /// [`Solver::Mu`], which then make the same updates as scikit-learn's `cd` and `mu` (from a
    /// slightly different start: the randomized SVD differs, and W is rescaled).
    pub fn extrapolate(mut self, on: bool) -> Self {
        self.extrapolate = Some(on);
        self
    }

    /// The loss to minimise. Other than [`Loss::Frobenius`] needs [`Solver::Mu`]. Default:
    /// Frobenius.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Whether this fit extrapolates (never under a sparseness constraint, whose projections
    /// the extrapolated points would leave, nor for a divergence loss).
    pub fn extrapolates(&self) -> bool {
        let constrained =
            self.sparsity_w.is_some() || self.sparsity_h.is_some() || !self.loss.is_frobenius();
        !constrained && self.extrapolate.unwrap_or(self.solver == Solver::Hals)
    }

    /// The images' height and width (their pixels are the rows of X, index = y * width + x),
    /// which a multilevel start needs. Default: unknown (no multilevel start).
    pub fn image_shape(mut self, height: usize, width: usize) -> Self {
        self.image_shape = Some(ImageShape { height, width });
        self
    }

    /// Start from a fit of the images at half resolution, its parts interpolated back up
    /// (Gillis & Glineur 2012), when [`Nmf::image_shape`] is given and the half-size images keep
    /// at least 16 pixels per part, recursively while they do (ORL's 92 x 112 at rank 49 starts
    /// from 46 x 56; at rank 40 from 23 x 28, then 46 x 56). Only for the Frobenius loss without penalties, sparseness constraints or
    /// missing data. Default: on for [`Solver::Hals`], off for the others (so that `cd` and
    /// `mu` make scikit-learn's updates from its start).
    pub fn multilevel(mut self, on: bool) -> Self {
        self.multilevel = Some(on);
        self
    }

    /// The coarse shape a multilevel start would fit first, if it applies to this fit.
    fn coarse_level(&self) -> Option<ImageShape> {
        let plain = self.loss.is_frobenius()
            && self.sparsity_w.is_none()
            && self.sparsity_h.is_none()
            && self.alpha_w == 0.0
            && self.alpha_h == 0.0;
        let on = self.multilevel.unwrap_or(self.solver == Solver::Hals);
        self.image_shape
            .filter(|_| plain && on)
            .and_then(|shape| shape.coarse_level(self.rank))
    }

    /// The multilevel start, if it applies: the coarse fit's W interpolated to full resolution
    /// and its H. Records the levels fitted (coarsest first) in `levels`.
    fn coarse_start<T: Float>(
        &self,
        x: &ArrayView2<T>,
        levels: &mut Vec<CoarseLevel>,
    ) -> Result<Option<(Array2<T>, Array2<T>)>> {
        let (Some(coarse), Some(shape)) = (self.coarse_level(), self.image_shape) else {
            return Ok(None);
        };
        let xc = multilevel::restrict(x, shape);
        let params = Nmf {
            image_shape: Some(coarse),
            tol: multilevel::COARSE_TOL,
            runs: 1,
            ..self.clone()
        };
        let fit = params.fit_inner(&xc.view(), None, None, |_| {})?;
        levels.extend(fit.coarse_levels);
        levels.push(CoarseLevel {
            shape: coarse,
            iterations: fit.n_iter,
            rel_error: fit.rel_error,
            seconds: fit.seconds,
        });
        let w = multilevel::prolong(&fit.w, coarse, shape);
        Ok(Some((w, fit.h.t().as_standard_layout().into_owned())))
    }

    /// Constrain every basis image (column of W) to Hoyer sparseness `target` in [0, 1]
    /// (Hoyer 2004): after each update of W its columns are projected onto that sparseness.
    /// Turns extrapolation off. Default: none.
    pub fn sparsity_w(mut self, target: Option<f64>) -> Self {
        self.sparsity_w = target;
        self
    }

    /// Constrain every row of H (one component's coefficients over the images) to Hoyer
    /// sparseness `target`, as [`Nmf::sparsity_w`] does for W. Default: none.
    pub fn sparsity_h(mut self, target: Option<f64>) -> Self {
        self.sparsity_h = target;
        self
    }

    /// The most iterations to run. Default: 200.
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Stop when the relative error fell by less than `tol` (as a fraction of itself) over the
    /// last [`TOL_WINDOW`] iterations; 0 disables the rule. Default: 1e-4.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Stop after the iteration during which this much time has passed. Default: no limit.
    pub fn max_time(mut self, max_time: Option<Duration>) -> Self {
        self.max_time = max_time.map(|d| d.as_secs_f64());
        self
    }

    /// Seed of every random choice (random inits, the randomized SVD). Default: 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fit this many times from distinct seeds (derived from [`Nmf::seed`]) and keep the
    /// result with the least error; every run's error is in [`Factorization::run_errors`].
    /// Matters for random starts; NNDSVD starts differ little between seeds. Default: 1.
    pub fn runs(mut self, runs: usize) -> Self {
        self.runs = runs;
        self
    }

    /// Elastic-net weight on W (scaled by the number of images, as scikit-learn scales the
    /// penalty of its `components_`: this is scikit-learn's `alpha_H`). Default: 0.
    pub fn alpha_w(mut self, alpha: f64) -> Self {
        self.alpha_w = alpha;
        self
    }

    /// Elastic-net weight on H (scaled by the number of pixels: scikit-learn's `alpha_W`).
    /// Default: 0.
    pub fn alpha_h(mut self, alpha: f64) -> Self {
        self.alpha_h = alpha;
        self
    }

    /// Share of L1 in the elastic net, in [0, 1] (0: ridge, 1: lasso). Default: 0.
    pub fn l1_ratio(mut self, ratio: f64) -> Self {
        self.l1_ratio = ratio;
        self
    }

    /// The objective of factors W (m x r) and H (r x n) for X under these parameters:
    /// `1/2 ||X - WH||_F^2` plus the elastic-net terms (see [`Nmf::alpha_w`]), as
    /// scikit-learn defines it for the transposed problem.
    ///
    /// # Panics
    /// If the shapes do not match.
    pub fn objective<T: Float>(
        &self,
        x: &ArrayView2<T>,
        w: &ArrayView2<T>,
        h: &ArrayView2<T>,
    ) -> f64 {
        let (m, n) = x.dim();
        let x = x.as_standard_layout();
        let w = w.as_standard_layout().into_owned();
        let ht = h.t().as_standard_layout().into_owned();
        let penalty = Penalty::new(self.alpha_w, self.alpha_h, self.l1_ratio, m, n);
        0.5 * residual_sq(&x.view(), &w, &ht) + penalty.value(&w.view(), &ht.view())
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Name of the update rule, as the CLI spells it.
    pub fn solver_name(&self) -> String {
        self.solver.to_string()
    }

    /// Name of the loss, as the CLI spells it.
    pub fn loss_name(&self) -> String {
        self.loss.to_string()
    }

    /// Name of the initialisation, as the CLI spells it.
    pub fn init_name(&self) -> String {
        self.init.to_string()
    }

    /// The seed of every random choice.
    pub fn seed_value(&self) -> u64 {
        self.seed
    }

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
    /// all-zero X; a negative or NaN `tol`.
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
            let params = Nmf {
                seed: run_seed(self.seed, run),
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
        }
        let start = (
            w0.as_standard_layout().into_owned(),
            h0.t().as_standard_layout().into_owned(),
        );
        self.fit_inner(x, Some(start), None, progress)
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
    /// the calling thread to sleep on a condition variable until the pool is done; from a worker,
    /// the caller works on the loop itself and only wakes the others (time to scikit-learn's
    /// error, medians of 8 alternating runs: CBCL 31 -> 28 ms, Olivetti 33 -> 30 ms).
    fn fit_inner<T: Float>(
        &self,
        x: &ArrayView2<T>,
        start_factors: Option<(Array2<T>, Array2<T>)>,
        known: Option<ArrayView2<bool>>,
        progress: impl FnMut(&Iteration) + Send,
    ) -> Result<Factorization<T>> {
        if rayon::current_thread_index().is_some() {
            return self.fit_loop(x, start_factors, known, progress);
        }
        rayon::scope(|_| self.fit_loop(x, start_factors, known, progress))
    }

    /// The one iteration loop: initialisation (unless `start_factors` gives W and H^T), stopping,
    /// history, progress and keep-best.
    fn fit_loop<T: Float>(
        &self,
        x: &ArrayView2<T>,
        start_factors: Option<(Array2<T>, Array2<T>)>,
        known: Option<ArrayView2<bool>>,
        mut progress: impl FnMut(&Iteration),
    ) -> Result<Factorization<T>> {
        let start = Instant::now();
        let x = x.as_standard_layout();
        let x = x.view();
        let (sum, xx) = self.check(&x)?;
        let (m, n) = x.dim();
        let r = self.rank;
        let x_norm = xx.sqrt();
        // With missing entries the updates see X with its hidden entries filled in, and errors
        // are measured on the known ones.
        if known.is_some() && !self.loss.is_frobenius() {
            return Err(Error::param(
                "loss",
                format!("{} does not combine with missing data yet", self.loss),
            ));
        }
        let mut missing = known.map(|k| missing::Missing::new(&x, k)).transpose()?;
        fn data<'v, T: Float>(
            x: &'v ArrayView2<'v, T>,
            missing: &'v Option<missing::Missing<'_, T>>,
        ) -> ArrayView2<'v, T> {
            match missing {
                Some(mi) => mi.filled.view(),
                None => x.view(),
            }
        }

        let mean = sum / (m * n) as f64;
        let given = start_factors.is_some();
        let mut coarse_levels = Vec::new();
        let coarse = match (&start_factors, &missing) {
            (None, None) => self.coarse_start(&x, &mut coarse_levels)?,
            _ => None,
        };
        let (mut w, mut ht) = match start_factors.or(coarse) {
            Some(factors) => factors,
            None => init::initialize_with(
                self.init,
                &data(&x, &missing),
                r,
                self.seed,
                mean,
                self.solver == Solver::Mu,
            )?,
        };
        let mut xh = Array2::<T>::zeros((m, r)); // X H^T, for the W update
        let mut xtw = Array2::<T>::zeros((n, r)); // X^T W, for the H update
        let mut ww = Array2::<T>::zeros((r, r)); // W^T W
        let mut hh = Array2::<T>::zeros((r, r)); // H H^T
        let mut xtw_product = TallProduct::new(n, r);
        let mut gram_w = TallProduct::new(r, r);
        let mut gram_h = TallProduct::new(r, r);
        let mut xh_product = TallProduct::new(m, r);
        let mut scratch_w = self.scratch(m, r);
        let mut scratch_h = self.scratch(n, r);
        let (sweeps_w, sweeps_h) = match self.solver {
            Solver::Hals | Solver::Fpgm => (hals::max_sweeps(m, n, r), hals::max_sweeps(n, m, r)),
            Solver::Cd | Solver::Mu | Solver::Anls => (1, 1),
        };

        // Scale W so that alpha W H is the best multiple of the initial product: the NNDSVDa
        // fill otherwise starts far above X (scikit-learn starts at relative error ~8 on faces).
        // <X, W H> comes from X^T W, which (scaled) is also the first H update's product.
        gram_w.compute(&mut ww, &w.view(), &w.view());
        gram_h.compute(&mut hh, &ht.view(), &ht.view());
        xtw_product.compute(&mut xtw, &data(&x, &missing), &w.view());
        let mut partials = Vec::new();
        let (cross, quad) = (dot(&xtw, &ht, &mut partials), dot(&hh, &ww, &mut partials));
        let mut err_sq = xx;
        // A divergence starts from the init as it is (as scikit-learn does); its error comes
        // from WH itself.
        let mut beta_mu =
            (!self.loss.is_frobenius()).then(|| beta::BetaMu::new(m, n, r, self.loss.beta()));
        let mut start_divergence = None;
        if let Some(b) = &mut beta_mu {
            b.product(&w, &ht);
            let (frobenius_sq, divergence) = b.measure(&x);
            err_sq = frobenius_sq;
            start_divergence = Some(divergence);
        } else if quad > 0.0 && cross > 0.0 {
            let alpha = cross / quad;
            let a = T::from_f64(alpha);
            w.mapv_inplace(|v| v * a);
            ww.mapv_inplace(|v| v * a * a);
            xtw.mapv_inplace(|v| v * a);
            err_sq = xx - 2.0 * alpha * cross + alpha * alpha * quad;
        }
        // With missing data the imputation below changes the data X^T W was taken from.
        let mut xtw_ready = beta_mu.is_none() && missing.is_none();
        if let Some(mi) = &mut missing {
            // The first error and imputation come from the scaled start.
            err_sq = mi.refresh(&x, &w, &ht);
        }
        let x_norm = missing
            .as_ref()
            .map_or(x_norm, |mi| mi.known_norm_sq.sqrt());
        let rel = |err_sq: f64| err_sq.max(0.0).sqrt() / x_norm;
        // Decisions (extrapolation, keep-best, tolerance) use the relative error, or with
        // penalties the whole objective.
        let penalty = Penalty::new(self.alpha_w, self.alpha_h, self.l1_ratio, m, n);
        let score = |err_sq: f64, w: &Array2<T>, ht: &Array2<T>, divergence: Option<f64>| {
            if let Some(d) = divergence {
                d
            } else if penalty.is_active() {
                0.5 * err_sq.max(0.0) + penalty.value(&w.view(), &ht.view())
            } else {
                rel(err_sq)
            }
        };
        let penalized = |rows: usize| {
            Array2::<T>::zeros(if penalty.is_active() {
                (rows, r)
            } else {
                (0, 0)
            })
        };
        let (mut a_pen_h, mut a_pen_w, mut g_pen) = (penalized(n), penalized(m), penalized(r));
        let keep_a = self.solver == Solver::Mu;
        let mut history = Vec::with_capacity(self.max_iter.min(100_000) + 1);
        let first = Iteration {
            iter: 0,
            seconds: start.elapsed().as_secs_f64(),
            rel_error: rel(err_sq),
            divergence: start_divergence,
        };
        progress(&first);
        history.push(first);

        // (wy, hty) are the points the updates start from and overwrite. With extrapolation,
        // (w, ht) are the last accepted iterates and the best pair is kept, as extrapolated
        // errors are not monotone; without it, only (wy, hty) are used.
        let mut extrapolation = self.extrapolates().then(Extrapolation::new);
        let spare = |a: &Array2<T>| {
            if extrapolation.is_some() {
                a.clone()
            } else {
                Array2::zeros((0, 0))
            }
        };
        let (mut w_new, mut ht_new) = (spare(&w), spare(&ht));
        let (mut best_w, mut best_ht) = (spare(&w), spare(&ht));
        let (mut wy, mut hty) = (spare(&w), spare(&ht));
        if extrapolation.is_none() {
            std::mem::swap(&mut wy, &mut w);
            std::mem::swap(&mut hty, &mut ht);
        }
        let mut scores = Vec::with_capacity(history.capacity());
        scores.push(score(err_sq, &wy, &hty, first.divergence));
        let mut best = scores[0];
        let mut best_by_iter = Vec::with_capacity(history.capacity());
        best_by_iter.push(best);

        let mut stop = Stop::MaxIter;
        for iter in 1..=self.max_iter {
            let mut divergence = None;
            if let Some(b) = &mut beta_mu {
                b.update_h(&x, &wy, &mut hty, 0.0);
                b.product(&wy, &hty);
                b.update_w(&x, &mut wy, &hty, 0.0);
                b.product(&wy, &hty);
                let (frobenius_sq, d) = b.measure(&x);
                err_sq = frobenius_sq;
                divergence = Some(d);
            } else {
                // H step: H^T (n x r) from X^T W and W^T W.
                if !xtw_ready {
                    xtw_product.compute(&mut xtw, &data(&x, &missing), &wy.view());
                }
                xtw_ready = false;
                if penalty.is_active() {
                    let (l1, l2) = (penalty.l1_h, penalty.l2_h);
                    penalty::penalize(&xtw, &ww, l1, l2, keep_a, &mut a_pen_h, &mut g_pen);
                    let (a, g) = (&a_pen_h, &g_pen);
                    self.update(&mut hty, a, g, sweeps_h, &mut scratch_h, l1, &mut partials);
                } else {
                    let (a, g) = (&xtw, &ww);
                    self.update(&mut hty, a, g, sweeps_h, &mut scratch_h, 0.0, &mut partials);
                }
                if let Some(target) = self.sparsity_h {
                    sparseness::project_columns(&mut hty, target);
                }
                if let Some(e) = &extrapolation {
                    extrapolate::step(&mut hty, &mut ht_new, &ht, None, e.beta, 0.0);
                }
                // W step: W (m x r) from X H^T and H H^T.
                xh_product.compute(&mut xh, &data(&x, &missing).t(), &hty.view());
                gram_h.compute(&mut hh, &hty.view(), &hty.view());
                // <X H^T, W> for the error, when the update gives it for the W it leaves.
                let mut cross = None;
                if penalty.is_active() {
                    let (l1, l2) = (penalty.l1_w, penalty.l2_w);
                    penalty::penalize(&xh, &hh, l1, l2, keep_a, &mut a_pen_w, &mut g_pen);
                    let (a, g) = (&a_pen_w, &g_pen);
                    self.update(&mut wy, a, g, sweeps_w, &mut scratch_w, l1, &mut partials);
                } else {
                    let (a, g) = (&xh, &hh);
                    cross =
                        self.update(&mut wy, a, g, sweeps_w, &mut scratch_w, 0.0, &mut partials);
                }
                if let Some(target) = self.sparsity_w {
                    sparseness::project_columns(&mut wy, target);
                    cross = None;
                }
                gram_w.compute(&mut ww, &wy.view(), &wy.view());
                // ||X - WH||^2 = ||X||^2 - 2 <X H^T, W> + <H H^T, W^T W>
                err_sq = match &mut missing {
                    Some(mi) => mi.refresh(&x, &wy, &hty),
                    None => {
                        let cross = cross.unwrap_or_else(|| dot(&xh, &wy, &mut partials));
                        xx - 2.0 * cross + dot(&hh, &ww, &mut partials)
                    }
                };
            }
            let error = rel(err_sq);
            let current = score(err_sq, &wy, &hty, divergence);
            scores.push(current);

            if let Some(e) = &mut extrapolation {
                let beta = e.beta;
                if e.judge(current, scores[iter - 1]) {
                    // An accepted step is the only kind that can be the best so far.
                    let improved = current <= best;
                    if improved {
                        best_ht.assign(&hty);
                    }
                    // HALS projects every entry it updates, so W may leave the orthant between
                    // iterations (as in the paper); a multiplicative update would keep the sign.
                    let floor = if self.solver == Solver::Mu {
                        0.0
                    } else {
                        f64::NEG_INFINITY
                    };
                    let best_w = improved.then_some(&mut best_w);
                    extrapolate::step(&mut wy, &mut w_new, &w, best_w, beta, floor);
                    std::mem::swap(&mut w, &mut w_new);
                    std::mem::swap(&mut ht, &mut ht_new);
                } else {
                    wy.assign(&w);
                    hty.assign(&ht);
                }
                gram_w.compute(&mut ww, &wy.view(), &wy.view());
            }
            best = best.min(current);
            best_by_iter.push(best);

            let record = Iteration {
                iter,
                seconds: start.elapsed().as_secs_f64(),
                rel_error: error,
                divergence,
            };
            progress(&record);
            history.push(record);

            if self.tol > 0.0 && iter >= TOL_WINDOW {
                let before = best_by_iter[iter - TOL_WINDOW];
                if before - best <= self.tol * before {
                    stop = Stop::Tolerance;
                    break;
                }
            }
            if self
                .max_time
                .is_some_and(|limit| start.elapsed().as_secs_f64() >= limit)
            {
                stop = Stop::MaxTime;
                break;
            }
        }

        let (mut w, mut ht) = match extrapolation {
            Some(_) if history.len() > 1 => (best_w, best_ht),
            Some(_) => (w, ht),
            None => (wy, hty),
        };
        // Rescaling W against H would change the penalty terms, so penalised results are only
        // reordered.
        canonical::canonicalize(&mut w, &mut ht, !penalty.is_active());
        let (rel_error, residual, hidden_error) = match &mut missing {
            Some(mi) => {
                let (known, hidden) = mi.errors(&x, &w, &ht);
                (known, known * known * mi.known_norm_sq, Some(hidden))
            }
            None => {
                let residual = residual_sq(&x, &w, &ht).max(0.0);
                (residual.sqrt() / x_norm, residual, None)
            }
        };
        let divergence = beta_mu.as_mut().map(|b| {
            b.product(&w, &ht);
            b.measure(&x).1
        });
        let objective = divergence.unwrap_or(0.5 * residual + penalty.value(&w.view(), &ht.view()));
        let h = ht.t().as_standard_layout().into_owned();
        Ok(Factorization {
            w,
            h,
            n_iter: history.len() - 1,
            stop,
            seconds: start.elapsed().as_secs_f64(),
            rel_error,
            hidden_error,
            objective,
            divergence,
            history,
            params: self.clone(),
            start: if given {
                "given".into()
            } else if !coarse_levels.is_empty() {
                let path: Vec<String> = coarse_levels
                    .iter()
                    .map(|l| format!("{} ({} iterations)", l.shape, l.iterations))
                    .collect();
                format!(
                    "{} at {} -> full size (multilevel)",
                    self.init,
                    path.join(" -> ")
                )
            } else {
                self.init.to_string()
            },
            run_errors: vec![rel_error],
            best_run: 0,
            coarse_levels,
        })
    }

    /// One update of factor `f` (rows independent) from the product `a` and the other
    /// factor's Gram matrix `g`. The HALS kernels also return `<a, f>` after the update, found
    /// while each block is in cache (`partials` is their reused buffer); the others `None`.
    #[allow(clippy::too_many_arguments)]
    fn update<T: Float>(
        &self,
        f: &mut Array2<T>,
        a: &Array2<T>,
        g: &Array2<T>,
        sweeps: usize,
        scratch: &mut Array2<T>,
        l1: f64,
        partials: &mut Vec<f64>,
    ) -> Option<f64> {
        match self.solver {
            Solver::Hals | Solver::Cd => {
                let rank = f.ncols();
                let a = a.as_slice().expect("standard layout");
                let g = g.as_slice().expect("standard layout");
                let f = f.as_slice_mut().expect("standard layout");
                let scratch = scratch.as_slice_mut().expect("standard layout");
                return Some(hals::update(f, a, g, rank, sweeps, scratch, partials));
            }
            Solver::Mu => mu::update(f, a, g, scratch, l1),
            Solver::Fpgm => fpgm::update(f, a, g, sweeps, scratch),
            Solver::Anls => {
                let rank = f.ncols();
                let a = a.as_slice().expect("standard layout");
                let g = g.as_slice().expect("standard layout");
                anls::update(f.as_slice_mut().expect("standard layout"), a, g, rank);
            }
        }
        None
    }

    /// Scratch space of the solver for a factor with `rows` rows, allocated once per fit.
    fn scratch<T: Float>(&self, rows: usize, rank: usize) -> Array2<T> {
        match self.solver {
            Solver::Hals | Solver::Cd => Array2::zeros((1, hals::scratch_len(rows, rank))),
            Solver::Mu => Array2::zeros((rows, rank)),
            Solver::Fpgm => Array2::zeros((fpgm::scratch_rows(rows), rank)),
            Solver::Anls => Array2::zeros((0, 0)), // per-thread workspaces, see anls.rs
        }
    }

    /// Rejects parameters and input the fit cannot take; returns the sum of X and ||X||^2,
    /// found in the same pass over X.
    fn check<T: Float>(&self, x: &ArrayView2<T>) -> Result<(f64, f64)> {
        let (m, n) = x.dim();
        if m == 0 || n == 0 {
            return Err(Error::InvalidInput {
                reason: format!("X is {m} x {n}; it needs at least one row and one column"),
            });
        }
        if self.rank == 0 {
            return Err(Error::param("rank", "must be at least 1"));
        }
        if let Some(shape) = self.image_shape
            && shape.pixels() != m
        {
            return Err(Error::param(
                "image_shape",
                format!(
                    "{shape} images have {} pixels, but X has {m} rows",
                    shape.pixels()
                ),
            ));
        }
        let nndsvd = matches!(
            self.init,
            Init::Nndsvd | Init::Nndsvda | Init::Nndsvdar | Init::Spa
        );
        if nndsvd && self.rank > m.min(n) {
            return Err(Error::param(
                "rank",
                format!(
                    "{} is above min(pixels, images) = {} allowed by the {} init; \
                     lower the rank or use --init random",
                    self.rank,
                    m.min(n),
                    self.init
                ),
            ));
        }
        for (name, alpha) in [("alpha-w", self.alpha_w), ("alpha-h", self.alpha_h)] {
            if !(alpha.is_finite() && alpha >= 0.0) {
                return Err(Error::param(
                    name,
                    format!("{alpha} must be a finite number >= 0"),
                ));
            }
        }
        for (name, target) in [
            ("sparsity-w", self.sparsity_w),
            ("sparsity-h", self.sparsity_h),
        ] {
            if let Some(t) = target.filter(|t| !(0.0..=1.0).contains(t)) {
                return Err(Error::param(name, format!("{t} must be in [0, 1]")));
            }
        }
        if !(0.0..=1.0).contains(&self.l1_ratio) {
            return Err(Error::param(
                "l1-ratio",
                format!("{} must be in [0, 1]", self.l1_ratio),
            ));
        }
        if !self.loss.is_frobenius() {
            let beta = self.loss.beta();
            if !beta.is_finite() {
                return Err(Error::param("loss", format!("beta {beta} must be finite")));
            }
            if self.solver != Solver::Mu {
                return Err(Error::param(
                    "loss",
                    format!(
                        "the {} solver minimises the Frobenius loss only; use --solver mu for {}",
                        self.solver, self.loss
                    ),
                ));
            }
            if self.alpha_w != 0.0
                || self.alpha_h != 0.0
                || self.sparsity_w.is_some()
                || self.sparsity_h.is_some()
            {
                return Err(Error::param(
                    "loss",
                    format!(
                        "{} does not combine with penalties or sparseness constraints yet",
                        self.loss
                    ),
                ));
            }
        }
        if self.tol.is_nan() || self.tol < 0.0 {
            return Err(Error::param(
                "tol",
                format!("{} must be 0 or more", self.tol),
            ));
        }
        // One parallel pass: the first entry that is negative or not finite, the sum and the
        // sum of squares. Fixed blocks, summed in order: the same bits for any thread count.
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
            let (i, j, v) = (at / n, at % n, values[at]);
            let need = if v.to_f64().is_finite() {
                "nonnegative"
            } else {
                "finite"
            };
            return Err(Error::InvalidInput {
                reason: format!("entry ({i}, {j}) is {v}; NMF needs {need} values"),
            });
        }
        let sum: f64 = scans.iter().map(|s| s.1).sum();
        let sq: f64 = scans.iter().map(|s| s.2).sum();
        if sq == 0.0 {
            return Err(Error::InvalidInput {
                reason: "every entry is zero (every image is blank); there is nothing to factorize"
                    .into(),
            });
        }
        Ok((sum, sq))
    }
}

impl fmt::Display for Solver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Solver::Hals => "hals",
            Solver::Cd => "cd",
            Solver::Mu => "mu",
            Solver::Fpgm => "fpgm",
            Solver::Anls => "anls",
        })
    }
}

impl FromStr for Solver {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "hals" | "a-hals" => Ok(Solver::Hals),
            "cd" => Ok(Solver::Cd),
            "mu" => Ok(Solver::Mu),
            "fpgm" => Ok(Solver::Fpgm),
            "anls" | "anls-bpp" => Ok(Solver::Anls),
            _ => Err(Error::param(
                "solver",
                format!("unknown solver '{s}' (expected hals, cd, mu, fpgm or anls)"),
            )),
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::Frobenius => f.write_str("fro"),
            Loss::KullbackLeibler => f.write_str("kl"),
            Loss::ItakuraSaito => f.write_str("is"),
            Loss::Beta(b) => write!(f, "beta:{b}"),
        }
    }
}

impl FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "fro" | "frobenius" => Ok(Loss::Frobenius),
            "kl" | "kullback-leibler" => Ok(Loss::KullbackLeibler),
            "is" | "itakura-saito" => Ok(Loss::ItakuraSaito),
            other => match other.strip_prefix("beta:").map(str::parse::<f64>) {
                Some(Ok(b)) if b.is_finite() => Ok(match b {
                    2.0 => Loss::Frobenius,
                    1.0 => Loss::KullbackLeibler,
                    0.0 => Loss::ItakuraSaito,
                    b => Loss::Beta(b),
                }),
                _ => Err(Error::param(
                    "loss",
                    format!("unknown loss '{s}' (expected fro, kl, is or beta:<number>)"),
                )),
            },
        }
    }
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

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::Tolerance => "tolerance reached",
            Stop::MaxIter => "max-iter reached",
            Stop::MaxTime => "max-time reached",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Zip, array};
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{Rng, SeedableRng};

    fn uniform(rng: &mut ChaCha8Rng) -> f64 {
        (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A nonnegative m x n matrix of exact rank r: W0 with about a third zeros, H0 dense.
    fn low_rank(m: usize, n: usize, r: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w0 = Array2::from_shape_simple_fn((m, r), || {
            let v = uniform(&mut rng);
            if v < 0.33 { 0.0 } else { v }
        });
        let h0 = Array2::from_shape_simple_fn((r, n), || uniform(&mut rng));
        w0.dot(&h0)
    }

    fn noisy(m: usize, n: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        low_rank(m, n, 8, seed) + Array2::from_shape_simple_fn((m, n), || 0.3 * uniform(&mut rng))
    }

    const ALL_SOLVERS: [Solver; 5] = [
        Solver::Hals,
        Solver::Cd,
        Solver::Mu,
        Solver::Fpgm,
        Solver::Anls,
    ];
    const ALL_INITS: [Init; 5] = [
        Init::Nndsvd,
        Init::Nndsvda,
        Init::Nndsvdar,
        Init::Random,
        Init::Spa,
    ];

    #[test]
    fn factors_stay_nonnegative_for_every_solver_and_init() {
        let x = noisy(40, 30, 1);
        for solver in ALL_SOLVERS {
            for init in ALL_INITS {
                let fit = Nmf::params(5)
                    .solver(solver)
                    .init(init)
                    .max_iter(30)
                    .fit(&x.view())
                    .unwrap();
                assert!(
                    fit.w.iter().chain(fit.h.iter()).all(|&v| v >= 0.0),
                    "{solver}/{init}"
                );
                assert!(
                    fit.rel_error.is_finite() && fit.rel_error < 1.0,
                    "{solver}/{init}"
                );
            }
        }
    }

    #[test]
    fn no_solver_increases_the_loss_without_extrapolation() {
        let x = noisy(50, 40, 2);
        for solver in ALL_SOLVERS {
            let fit = Nmf::params(6)
                .solver(solver)
                .extrapolate(false)
                .init(Init::Nndsvda)
                .max_iter(100)
                .tol(0.0)
                .fit(&x.view())
                .unwrap();
            for pair in fit.history.windows(2) {
                assert!(
                    pair[1].rel_error <= pair[0].rel_error * (1.0 + 1e-9),
                    "{solver}: error rose from {} to {} at iteration {}",
                    pair[0].rel_error,
                    pair[1].rel_error,
                    pair[1].iter
                );
            }
            assert!(fit.history.last().unwrap().rel_error < fit.history[0].rel_error);
        }
    }

    #[test]
    fn extrapolation_returns_the_best_iterate_and_beats_plain_hals() {
        let x = noisy(60, 50, 11);
        for solver in ALL_SOLVERS {
            let plain = Nmf::params(6)
                .solver(solver)
                .extrapolate(false)
                .max_iter(40)
                .tol(0.0);
            let extra = plain.clone().extrapolate(true);
            let plain = plain.fit(&x.view()).unwrap();
            let extra = extra.fit(&x.view()).unwrap();
            let best = extra
                .history
                .iter()
                .map(|h| h.rel_error)
                .fold(f64::MAX, f64::min);
            assert!(
                (extra.rel_error - best).abs() < 1e-9,
                "{solver}: returned {} best {best}",
                extra.rel_error
            );
            assert!(
                extra.rel_error <= plain.rel_error * (1.0 + 1e-9),
                "{solver}: {} vs {}",
                extra.rel_error,
                plain.rel_error
            );
            assert!(
                extra.w.iter().chain(extra.h.iter()).all(|&v| v >= 0.0),
                "{solver}"
            );
        }
    }

    #[test]
    fn exact_low_rank_matrix_is_recovered() {
        let x = low_rank(60, 50, 4, 3);
        for solver in ALL_SOLVERS {
            // Multiplicative updates converge sublinearly: more iterations and a looser bar.
            let (iterations, bar) = if solver == Solver::Mu {
                (30_000, 1e-3)
            } else {
                (3000, 1e-4)
            };
            let fit = Nmf::params(4)
                .solver(solver)
                .max_iter(iterations)
                .tol(0.0)
                .fit(&x.view())
                .unwrap();
            assert!(
                fit.rel_error < bar,
                "{solver}: relative error {}",
                fit.rel_error
            );
        }
    }

    #[test]
    fn gram_error_matches_the_direct_error() {
        let x = noisy(30, 20, 4);
        let fit = Nmf::params(3).max_iter(20).tol(0.0).fit(&x.view()).unwrap();
        let direct =
            (&x - &fit.w.dot(&fit.h)).mapv(|v| v * v).sum().sqrt() / x.mapv(|v| v * v).sum().sqrt();
        assert!((fit.rel_error - direct).abs() < 1e-12);
        assert!((fit.history.last().unwrap().rel_error - direct).abs() < 1e-9);
    }

    #[test]
    fn nndsvd_of_a_diagonal_matrix_is_exact() {
        // X = diag(2, 1): singular pairs (2, e1, e1), (1, e2, e2), so by hand
        // W = [sqrt(2) e1, e2], H = [sqrt(2) e1, e2]^T and WH = X.
        let x = array![[2.0, 0.0], [0.0, 1.0]];
        let (w, ht) = init::initialize(Init::Nndsvd, &x.view(), 2, 0, x.mean().unwrap()).unwrap();
        let s = 2f64.sqrt();
        let expect = array![[s, 0.0], [0.0, 1.0]];
        assert!((&w - &expect).iter().all(|d| d.abs() < 1e-12), "W = {w}");
        assert!(
            (&ht - &expect).iter().all(|d| d.abs() < 1e-12),
            "H^T = {ht}"
        );
    }

    #[test]
    fn nndsvd_of_a_rank_one_matrix_is_its_scaled_singular_pair() {
        // X = u v^T with u = (1, 2, 2) (norm 3), v = (3, 4) (norm 5): sigma = 15, and by hand
        // W = sqrt(15) u / 3, H = sqrt(15) v / 5; the second component has nothing left (zero).
        let x = array![[3.0, 4.0], [6.0, 8.0], [6.0, 8.0]];
        let (w, ht) = init::initialize(Init::Nndsvd, &x.view(), 1, 0, x.mean().unwrap()).unwrap();
        let s = 15f64.sqrt();
        for (got, want) in w.iter().zip([1.0, 2.0, 2.0]) {
            assert!((got - s * want / 3.0).abs() < 1e-12);
        }
        for (got, want) in ht.iter().zip([3.0, 4.0]) {
            assert!((got - s * want / 5.0).abs() < 1e-12);
        }
    }

    #[test]
    fn nndsvda_fills_zeros_with_the_mean_and_nndsvdar_with_small_values() {
        let x = array![[2.0, 0.0], [0.0, 1.0]];
        let (w, _) = init::initialize(Init::Nndsvda, &x.view(), 2, 0, x.mean().unwrap()).unwrap();
        assert_eq!(w[[0, 1]], 0.75);
        let (w, _) = init::initialize(Init::Nndsvdar, &x.view(), 2, 0, x.mean().unwrap()).unwrap();
        assert!(w[[0, 1]] > 0.0 && w[[0, 1]] < 0.75 / 10.0);
    }

    #[test]
    fn same_seed_gives_the_same_bits_and_another_seed_differs() {
        let x = noisy(40, 30, 5);
        for init in ALL_INITS {
            let a = Nmf::params(4)
                .init(init)
                .seed(7)
                .max_iter(20)
                .fit(&x.view())
                .unwrap();
            let b = Nmf::params(4)
                .init(init)
                .seed(7)
                .max_iter(20)
                .fit(&x.view())
                .unwrap();
            assert_eq!(a.w, b.w, "{init}");
            assert_eq!(a.h, b.h, "{init}");
        }
        let a = Nmf::params(4)
            .init(Init::Random)
            .seed(1)
            .max_iter(5)
            .fit(&x.view())
            .unwrap();
        let b = Nmf::params(4)
            .init(Init::Random)
            .seed(2)
            .max_iter(5)
            .fit(&x.view())
            .unwrap();
        assert_ne!(a.w, b.w);
    }

    #[test]
    fn f32_and_f64_agree() {
        let x = noisy(40, 30, 6);
        let a = Nmf::params(4).max_iter(50).fit(&x.view()).unwrap();
        let b = Nmf::params(4)
            .max_iter(50)
            .fit(&x.mapv(|v| v as f32).view())
            .unwrap();
        assert!((a.rel_error - b.rel_error).abs() < 1e-3 * a.rel_error);
    }

    #[test]
    fn tolerance_stops_early_and_reports_convergence() {
        let x = noisy(30, 30, 8);
        let fit = Nmf::params(4)
            .max_iter(10_000)
            .tol(1e-3)
            .fit(&x.view())
            .unwrap();
        assert!(fit.converged());
        assert!(fit.n_iter < 10_000);
        let fit = Nmf::params(6).max_iter(3).tol(1e-3).fit(&x.view()).unwrap();
        assert!(!fit.converged());
        assert_eq!(fit.stop, Stop::MaxIter);
        assert_eq!(fit.history.len(), 4);
    }

    #[test]
    fn max_time_stops_the_loop() {
        let x = noisy(40, 30, 9);
        let fit = Nmf::params(4)
            .max_iter(1_000_000)
            .tol(0.0)
            .max_time(Some(Duration::from_millis(50)))
            .fit(&x.view())
            .unwrap();
        assert_eq!(fit.stop, Stop::MaxTime);
        assert!(fit.n_iter < 1_000_000);
    }

    /// Textbook formulas for one iteration of each solver, entry by entry, on a small problem:
    /// H^T (n x r) first, then W, as the loop does.
    mod naive {
        use ndarray::Array2;

        /// An update of factor F from A and G.
        pub(super) type Update = fn(&mut Array2<f64>, &Array2<f64>, &Array2<f64>);

        /// F^T F for F with rows as samples.
        pub(super) fn gram(f: &Array2<f64>) -> Array2<f64> {
            f.t().dot(f)
        }

        /// One HALS sweep over every row of f (p x r) for `min 1/2 <F G, F> - <A, F>`.
        pub(super) fn hals_sweep(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>) {
            let r = f.ncols();
            for i in 0..f.nrows() {
                for k in 0..r {
                    let fg: f64 = (0..r).map(|l| f[[i, l]] * g[[l, k]]).sum();
                    f[[i, k]] = (f[[i, k]] + (a[[i, k]] - fg) / g[[k, k]]).max(0.0);
                }
            }
        }

        /// Lee and Seung's Frobenius update with scikit-learn's floor.
        pub(super) fn mu(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>) {
            let fg = f.dot(g);
            for ((v, &num), &den) in f.iter_mut().zip(a).zip(&fg) {
                *v *= num / den.max(f32::EPSILON as f64);
            }
        }

        /// The exact NNLS solution of each row by trying every passive set (r <= 4).
        pub(super) fn nnls(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>) {
            let r = f.ncols();
            let objective = |x: &[f64], i: usize| {
                let mut v = 0.0;
                for k in 0..r {
                    v -= a[[i, k]] * x[k];
                    for l in 0..r {
                        v += 0.5 * x[k] * g[[k, l]] * x[l];
                    }
                }
                v
            };
            for i in 0..f.nrows() {
                let mut best = (vec![0.0; r], 0.0);
                for set in 1..1u32 << r {
                    let idx: Vec<usize> = (0..r).filter(|k| set & (1 << k) != 0).collect();
                    // Solve G_PP x = a_P by Gaussian elimination.
                    let p = idx.len();
                    let mut m: Vec<Vec<f64>> = idx
                        .iter()
                        .map(|&k| {
                            let mut row: Vec<f64> = idx.iter().map(|&l| g[[k, l]]).collect();
                            row.push(a[[i, k]]);
                            row
                        })
                        .collect();
                    for c in 0..p {
                        let pivot = m[c].clone();
                        for row in m.iter_mut().skip(c + 1) {
                            let factor = row[c] / pivot[c];
                            for (v, &pv) in row.iter_mut().zip(&pivot).skip(c) {
                                *v -= factor * pv;
                            }
                        }
                    }
                    let mut sol = vec![0.0; p];
                    for c in (0..p).rev() {
                        let rest: f64 = (c + 1..p).map(|cc| m[c][cc] * sol[cc]).sum();
                        sol[c] = (m[c][p] - rest) / m[c][c];
                    }
                    if sol.iter().any(|&v| v < 0.0) {
                        continue;
                    }
                    let mut x = vec![0.0; r];
                    for (&k, &v) in idx.iter().zip(&sol) {
                        x[k] = v;
                    }
                    let value = objective(&x, i);
                    if value < best.1 {
                        best = (x, value);
                    }
                }
                for k in 0..r {
                    f[[i, k]] = best.0[k];
                }
            }
        }

        /// `steps` projected gradient steps with Nesterov's momentum from alpha = 0.05, step 1/L
        /// with L the largest eigenvalue of G (power iteration to convergence).
        pub(super) fn fpgm(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>, steps: usize) {
            let mut v = ndarray::Array1::<f64>::ones(g.nrows());
            let mut l = 0.0;
            for _ in 0..10_000 {
                let gv = g.dot(&v);
                l = gv.dot(&gv).sqrt();
                v = gv / l;
            }
            let mut y = f.clone();
            let mut alpha: f64 = 0.05;
            for _ in 0..steps {
                let previous = f.clone();
                *f = (&y - &((y.dot(g) - a) / l)).mapv(|v| v.max(0.0));
                let next = 0.5 * ((alpha.powi(4) + 4.0 * alpha * alpha).sqrt() - alpha * alpha);
                let beta = alpha * (1.0 - alpha) / (alpha * alpha + next);
                alpha = next;
                y = &*f + &((&*f - &previous) * beta);
            }
        }

        /// Kullback-Leibler multiplicative update of H^T given W (X is m x n).
        pub(super) fn kl_h(x: &Array2<f64>, w: &Array2<f64>, ht: &mut Array2<f64>) {
            let wh = w.dot(&ht.t());
            let ratio = Array2::from_shape_fn(x.dim(), |(i, j)| {
                x[[i, j]] / wh[[i, j]].max(f32::EPSILON as f64)
            });
            let num = ratio.t().dot(w); // n x r
            let den = w.sum_axis(ndarray::Axis(0)); // r
            for ((j, k), v) in ht.indexed_iter_mut() {
                *v *= num[[j, k]] / den[k].max(f32::EPSILON as f64);
            }
        }
    }

    #[test]
    fn one_iteration_of_each_solver_matches_its_textbook_formula() {
        let x = noisy(7, 6, 21);
        let r = 3;
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        let w0 = Array2::from_shape_simple_fn((7, r), || 0.1 + uniform(&mut rng));
        let h0 = Array2::from_shape_simple_fn((r, 6), || 0.1 + uniform(&mut rng));
        // The loop first scales W to the best multiple of W0 H0.
        let wh0 = w0.dot(&h0);
        let alpha = (&x * &wh0).sum() / (&wh0 * &wh0).sum();
        let one = |solver: Solver, loss: Loss| {
            Nmf::params(r)
                .solver(solver)
                .loss(loss)
                .extrapolate(false)
                .max_iter(1)
                .tol(0.0)
                .fit_from(&x.view(), &w0.view(), &h0.view(), |_| {})
                .unwrap()
        };
        let frobenius_step = |update: naive::Update| {
            let mut w = &w0 * alpha;
            let mut ht = h0.t().to_owned();
            update(&mut ht, &x.t().dot(&w), &naive::gram(&w));
            update(&mut w, &x.dot(&ht), &naive::gram(&ht));
            w.dot(&ht.t())
        };
        let close_to = |label: &str, fit: &Factorization<f64>, expect: &Array2<f64>, tol: f64| {
            let got = fit.w.dot(&fit.h);
            let diff = (&got - expect)
                .mapv(f64::abs)
                .fold(0.0f64, |a, &b| a.max(b));
            assert!(diff < tol, "{label}: WH differs by {diff}");
        };
        let close = |label: &str, fit: &Factorization<f64>, expect: &Array2<f64>| {
            close_to(label, fit, expect, 1e-10)
        };
        // FPGM makes as many Nesterov steps per factor as the A-HALS rule allows; its step 1/L
        // comes from a power iteration stopped at 1e-6, so the agreement is to about that.
        let mut w = &w0 * alpha;
        let mut ht = h0.t().to_owned();
        let (steps_h, steps_w) = (hals::max_sweeps(6, 7, r), hals::max_sweeps(7, 6, r));
        naive::fpgm(&mut ht, &x.t().dot(&w), &naive::gram(&w), steps_h);
        naive::fpgm(&mut w, &x.dot(&ht), &naive::gram(&ht), steps_w);
        let fpgm = one(Solver::Fpgm, Loss::Frobenius);
        close_to("fpgm", &fpgm, &w.dot(&ht.t()), 1e-5);
        close(
            "cd",
            &one(Solver::Cd, Loss::Frobenius),
            &frobenius_step(naive::hals_sweep),
        );
        close(
            "mu",
            &one(Solver::Mu, Loss::Frobenius),
            &frobenius_step(naive::mu),
        );
        close(
            "anls",
            &one(Solver::Anls, Loss::Frobenius),
            &frobenius_step(naive::nnls),
        );
        // A divergence starts from the given factors unscaled.
        let mut w = w0.clone();
        let mut ht = h0.t().to_owned();
        naive::kl_h(&x, &w, &mut ht);
        // The W update is the H update of the transposed problem X^T ~ H^T W^T.
        naive::kl_h(&x.t().to_owned(), &ht, &mut w);
        close(
            "mu/kl",
            &one(Solver::Mu, Loss::KullbackLeibler),
            &w.dot(&ht.t()),
        );
    }

    #[test]
    fn fit_from_given_factors_continues_a_fit() {
        let x = noisy(30, 20, 12);
        let first = Nmf::params(3).max_iter(20).tol(0.0).fit(&x.view()).unwrap();
        let more = Nmf::params(3)
            .max_iter(20)
            .tol(0.0)
            .fit_from(&x.view(), &first.w.view(), &first.h.view(), |_| {})
            .unwrap();
        assert!(more.history[0].rel_error <= first.rel_error + 1e-12);
        assert!(more.rel_error <= first.rel_error + 1e-12);
    }

    #[test]
    fn given_factors_of_the_wrong_shape_or_sign_are_rejected() {
        let x = noisy(30, 20, 12);
        let w = Array2::<f64>::ones((30, 3));
        let h = Array2::<f64>::ones((3, 21));
        let err = Nmf::params(3)
            .fit_from(&x.view(), &w.view(), &h.view(), |_| {})
            .unwrap_err();
        assert!(
            err.to_string().contains("H0 is 3 x 21, expected 3 x 20"),
            "{err}"
        );
        let mut h = Array2::<f64>::ones((3, 20));
        h[[1, 1]] = -1.0;
        let err = Nmf::params(3)
            .fit_from(&x.view(), &w.view(), &h.view(), |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
    }

    #[test]
    fn results_are_in_canonical_form() {
        let x = noisy(40, 30, 13);
        for solver in ALL_SOLVERS {
            let fit = Nmf::params(5)
                .solver(solver)
                .max_iter(30)
                .fit(&x.view())
                .unwrap();
            for col in fit.w.columns() {
                let max = col.fold(0.0f64, |a, &v| a.max(v));
                assert!((max - 1.0).abs() < 1e-12, "{solver}: column max {max}");
            }
            let norm = |v: ndarray::ArrayView1<f64>| v.dot(&v).sqrt();
            let shares: Vec<f64> = (0..5)
                .map(|k| norm(fit.w.column(k)) * norm(fit.h.row(k)))
                .collect();
            assert!(
                shares.windows(2).all(|p| p[0] >= p[1]),
                "{solver}: {shares:?}"
            );
            let (sw, sh) = (fit.sparseness_w(), fit.sparseness_h());
            assert!((0.0..=1.0).contains(&sw) && (0.0..=1.0).contains(&sh));
        }
    }

    #[test]
    fn spa_finds_the_basis_of_a_separable_matrix() {
        // X = W0 [I, H1] with the columns shuffled: every basis column is also an image, the
        // others are convex combinations of them (weights summing to 0.9).
        let (m, r, extra) = (30, 4, 40);
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let w0 = Array2::from_shape_simple_fn((m, r), || uniform(&mut rng));
        let mut h = Array2::<f64>::zeros((r, r + extra));
        for k in 0..r {
            h[[k, k]] = 1.0;
        }
        for j in r..r + extra {
            let weights: Vec<f64> = (0..r).map(|_| uniform(&mut rng) + 0.05).collect();
            let total: f64 = weights.iter().sum();
            for k in 0..r {
                h[[k, j]] = 0.9 * weights[k] / total;
            }
        }
        let order: Vec<usize> = (0..r + extra).map(|j| (j * 17) % (r + extra)).collect();
        let x = w0.dot(&h).select(ndarray::Axis(1), &order);
        let (w, ht) = init::initialize(Init::Spa, &x.view(), r, 0, x.mean().unwrap()).unwrap();
        for k in 0..r {
            let found = (0..r).any(|c| {
                (&w.column(c) - &w0.column(k))
                    .iter()
                    .all(|d| d.abs() < 1e-12)
            });
            assert!(found, "basis column {k} not picked");
        }
        let rebuilt = w.dot(&ht.t());
        let rel = (&x - &rebuilt).mapv(|v| v * v).sum().sqrt() / x.mapv(|v| v * v).sum().sqrt();
        assert!(rel < 1e-6, "H fitted to the picked columns leaves {rel}");
    }

    #[test]
    fn several_runs_keep_the_best_and_report_every_error() {
        let x = noisy(40, 30, 15);
        let params = Nmf::params(4).init(Init::Random).max_iter(15).tol(0.0);
        let best = params.clone().runs(4).fit(&x.view()).unwrap();
        assert_eq!(best.run_errors.len(), 4);
        let least = best.run_errors.iter().copied().fold(f64::MAX, f64::min);
        assert_eq!(best.rel_error, least);
        assert_eq!(best.run_errors[best.best_run], least);
        // The first run is the single fit of the same seed.
        let single = params.fit(&x.view()).unwrap();
        assert_eq!(best.run_errors[0], single.rel_error);
        assert!(
            best.run_errors.windows(2).any(|p| p[0] != p[1]),
            "distinct starts"
        );
        assert!(
            Nmf::params(4)
                .runs(0)
                .fit(&x.view())
                .unwrap_err()
                .to_string()
                .starts_with("runs:")
        );
    }

    /// The fixed small problem of the elastic-net tests.
    fn small_problem() -> (Array2<f64>, Array2<f64>, Array2<f64>) {
        let x = Array2::from_shape_fn((6, 5), |(i, j)| ((i * 7 + j * 3) % 11) as f64 / 11.0 + 0.1);
        let w = Array2::from_shape_fn((6, 2), |(i, k)| ((i + 2 * k) % 5) as f64 / 5.0 + 0.2);
        let h = Array2::from_shape_fn((2, 5), |(k, j)| ((3 * k + j) % 4) as f64 / 4.0 + 0.3);
        (x, w, h)
    }

    #[test]
    fn elastic_net_objective_equals_scikit_learns() {
        // scikit-learn 1.9.1 on the transposed problem (X.T, W_sk = H.T, H_sk = W.T) with
        // alpha_W = 0.07 (our alpha_h), alpha_H = 0.03 (our alpha_w), l1_ratio = 0.4:
        // _beta_divergence(..., 2) + its scaled penalty terms = 6.111275 (data term 3.665).
        let (x, w, h) = small_problem();
        let params = Nmf::params(2).alpha_w(0.03).alpha_h(0.07).l1_ratio(0.4);
        let objective = params.objective(&x.view(), &w.view(), &h.view());
        assert!((objective - 6.111275).abs() < 1e-9, "{objective}");
        let plain = Nmf::params(2).objective(&x.view(), &w.view(), &h.view());
        assert!((plain - 3.665).abs() < 1e-9, "{plain}");
    }

    #[test]
    fn penalised_fits_lower_their_own_objective_and_l1_makes_sparser_factors() {
        let x = noisy(40, 30, 16);
        for solver in ALL_SOLVERS {
            let params = Nmf::params(5).solver(solver).max_iter(60).tol(0.0);
            let plain = params.clone().fit(&x.view()).unwrap();
            let lasso = params.clone().alpha_w(0.05).alpha_h(0.05).l1_ratio(1.0);
            let fit = lasso.fit(&x.view()).unwrap();
            // The reported objective is the penalised one, and the fit beats the unpenalised
            // factors on it.
            let own = lasso.objective(&x.view(), &fit.w.view(), &fit.h.view());
            assert!((fit.objective - own).abs() <= 1e-9 * own, "{solver}");
            let other = lasso.objective(&x.view(), &plain.w.view(), &plain.h.view());
            assert!(
                fit.objective < other,
                "{solver}: {} vs {other}",
                fit.objective
            );
            let zeros = |a: &Array2<f64>| a.iter().filter(|&&v| v == 0.0).count();
            assert!(
                zeros(&fit.h) > zeros(&plain.h),
                "{solver}: L1 should zero more of H"
            );
        }
    }

    #[test]
    fn sparseness_constraint_holds_on_the_result() {
        let x = noisy(60, 40, 17);
        for solver in ALL_SOLVERS {
            let fit = Nmf::params(4)
                .solver(solver)
                .sparsity_w(Some(0.6))
                .sparsity_h(Some(0.3))
                .max_iter(40)
                .fit(&x.view())
                .unwrap();
            assert!(
                (fit.sparseness_w() - 0.6).abs() < 1e-6,
                "{solver}: {}",
                fit.sparseness_w()
            );
            assert!(
                (fit.sparseness_h() - 0.3).abs() < 1e-6,
                "{solver}: {}",
                fit.sparseness_h()
            );
        }
        let err = Nmf::params(4)
            .sparsity_w(Some(1.5))
            .fit(&x.view())
            .unwrap_err();
        assert!(err.to_string().starts_with("sparsity-w:"), "{err}");
    }

    #[test]
    fn masked_fits_ignore_hidden_entries_and_predict_them() {
        let x = low_rank(50, 40, 3, 18);
        let mut rng = ChaCha8Rng::seed_from_u64(19);
        let known = Array2::from_shape_simple_fn((50, 40), || uniform(&mut rng) >= 0.3);
        // Garbage in the hidden entries must not matter.
        let mut corrupted = x.clone();
        Zip::from(&mut corrupted).and(&known).for_each(|v, &k| {
            if !k {
                *v = 1000.0;
            }
        });
        for solver in [Solver::Hals, Solver::Cd, Solver::Mu, Solver::Anls] {
            let fit = Nmf::params(3)
                .solver(solver)
                .max_iter(400)
                .tol(0.0)
                .fit_masked(&corrupted.view(), &known.view(), |_| {})
                .unwrap();
            let hidden = fit.hidden_error.unwrap();
            // The hidden entries of `corrupted` are the garbage, so compare WH with x instead.
            let wh = fit.w.dot(&fit.h);
            let (mut err, mut norm) = (0.0, 0.0);
            Zip::from(&wh).and(&x).and(&known).for_each(|&p, &v, &k| {
                if !k {
                    err += (p - v) * (p - v);
                    norm += v * v;
                }
            });
            let predicted = (err / norm).sqrt();
            // MU converges slowly; the HALS solvers fit this exact low-rank matrix closely.
            let (fit_tol, predict_tol) = if solver == Solver::Mu {
                (0.1, 0.15)
            } else {
                (0.02, 0.05)
            };
            assert!(
                fit.rel_error < fit_tol,
                "{solver}: known-entry error {}",
                fit.rel_error
            );
            assert!(
                predicted < predict_tol,
                "{solver}: hidden entries predicted to {predicted}"
            );
            assert!(
                hidden > 0.9,
                "{solver}: the reported hidden error is against the garbage"
            );
            for pair in fit.history.windows(2) {
                assert!(
                    pair[1].rel_error <= pair[0].rel_error * (1.0 + 1e-9),
                    "{solver}: not monotone"
                );
            }
        }
        let wrong = Array2::from_elem((5, 5), true);
        assert!(
            Nmf::params(3)
                .fit_masked(&x.view(), &wrong.view(), |_| {})
                .is_err()
        );
    }

    #[test]
    fn beta_divergence_updates_never_increase_their_divergence() {
        let x = noisy(40, 30, 20);
        for loss in [
            Loss::KullbackLeibler,
            Loss::ItakuraSaito,
            Loss::Beta(1.5),
            Loss::Beta(3.0),
        ] {
            let fit = Nmf::params(4)
                .solver(Solver::Mu)
                .loss(loss)
                .max_iter(60)
                .tol(0.0)
                .fit(&x.view())
                .unwrap();
            let trace: Vec<f64> = fit.history.iter().map(|h| h.divergence.unwrap()).collect();
            for p in trace.windows(2) {
                assert!(p[1] <= p[0] * (1.0 + 1e-9), "{loss}: {} -> {}", p[0], p[1]);
            }
            assert!(trace[60] < trace[0], "{loss}");
            assert_eq!(fit.divergence.unwrap(), fit.objective);
            assert!(
                fit.w.iter().chain(fit.h.iter()).all(|&v| v >= 0.0),
                "{loss}"
            );
            let direct = beta::divergence(&x.view(), &fit.w.dot(&fit.h).view(), loss.beta());
            assert!(
                (direct - fit.divergence.unwrap()).abs() <= 1e-9 * direct,
                "{loss}"
            );
        }
    }

    #[test]
    fn divergence_losses_need_multiplicative_updates() {
        let x = noisy(10, 8, 21);
        for solver in [Solver::Hals, Solver::Cd, Solver::Fpgm, Solver::Anls] {
            let err = Nmf::params(2)
                .solver(solver)
                .loss(Loss::KullbackLeibler)
                .fit(&x.view())
                .unwrap_err();
            assert!(err.to_string().contains("use --solver mu for kl"), "{err}");
        }
        let err = Nmf::params(2)
            .solver(Solver::Mu)
            .loss(Loss::ItakuraSaito)
            .alpha_w(0.1)
            .fit(&x.view())
            .unwrap_err();
        assert!(err.to_string().starts_with("loss:"), "{err}");
        for (text, loss) in [
            ("fro", Loss::Frobenius),
            ("kl", Loss::KullbackLeibler),
            ("is", Loss::ItakuraSaito),
            ("beta:1.5", Loss::Beta(1.5)),
            ("beta:1", Loss::KullbackLeibler),
        ] {
            assert_eq!(text.parse::<Loss>().unwrap(), loss);
        }
        assert!("beta:x".parse::<Loss>().is_err() && "l3".parse::<Loss>().is_err());
        let known = Array2::from_elem((10, 8), true);
        let masked = Nmf::params(2)
            .solver(Solver::Mu)
            .loss(Loss::KullbackLeibler);
        assert!(masked.fit_masked(&x.view(), &known.view(), |_| {}).is_err());
        assert_eq!(
            Loss::Beta(1.5).to_string().parse::<Loss>().unwrap(),
            Loss::Beta(1.5)
        );
    }

    #[test]
    fn invalid_penalties_are_rejected() {
        let x = noisy(6, 5, 0);
        let err = |p: Nmf| p.fit(&x.view()).unwrap_err().to_string();
        assert!(err(Nmf::params(2).alpha_w(-1.0)).starts_with("alpha-w:"));
        assert!(err(Nmf::params(2).alpha_h(f64::NAN)).starts_with("alpha-h:"));
        assert!(err(Nmf::params(2).l1_ratio(1.5)).starts_with("l1-ratio:"));
    }

    #[test]
    fn zero_rank_is_rejected() {
        let err = Nmf::params(0).fit(&noisy(5, 5, 0).view()).unwrap_err();
        assert!(err.to_string().starts_with("rank:"), "{err}");
    }

    #[test]
    fn rank_above_min_dimension_is_rejected_for_nndsvd_inits_only() {
        let x = noisy(10, 4, 0);
        for init in [Init::Nndsvd, Init::Nndsvda, Init::Nndsvdar, Init::Spa] {
            let err = Nmf::params(5).init(init).fit(&x.view()).unwrap_err();
            assert!(err.to_string().contains("min(pixels, images) = 4"), "{err}");
        }
        assert!(
            Nmf::params(5)
                .init(Init::Random)
                .max_iter(5)
                .fit(&x.view())
                .is_ok()
        );
    }

    #[test]
    fn negative_nan_infinite_and_blank_input_is_rejected() {
        let error = |x: &Array2<f64>| Nmf::params(2).fit(&x.view()).unwrap_err().to_string();
        let mut x = noisy(6, 5, 0);
        for (bad, says) in [
            (-0.5, "nonnegative"),
            (f64::NAN, "finite"),
            (f64::INFINITY, "finite"),
        ] {
            x[[2, 3]] = bad;
            let message = error(&x);
            assert!(
                message.contains(says) && message.contains("(2, 3)"),
                "{message}"
            );
        }
        assert!(error(&Array2::zeros((6, 5))).contains("blank"));
        let empty = Array2::<f64>::zeros((0, 5));
        assert!(matches!(
            Nmf::params(1).fit(&empty.view()),
            Err(Error::InvalidInput { .. })
        ));
    }

    /// 60 images of 24 x 24, each a random mix of three smooth blobs, plus a little noise:
    /// images a multilevel start can see at half resolution.
    fn smooth_images(seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = [(6.0, 7.0), (12.0, 17.0), (18.0, 9.0)];
        let blob = |p: usize, (cy, cx): (f64, f64)| {
            let (y, x) = ((p / 24) as f64, (p % 24) as f64);
            (-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / 18.0).exp()
        };
        let h0 = Array2::from_shape_simple_fn((3, 60), || uniform(&mut rng));
        let w0 = Array2::from_shape_fn((576, 3), |(p, k)| blob(p, centres[k]));
        w0.dot(&h0) + Array2::from_shape_simple_fn((576, 60), || 0.01 * uniform(&mut rng))
    }

    #[test]
    fn multilevel_start_fits_half_resolution_first_and_starts_closer() {
        let x = smooth_images(3);
        let params = Nmf::params(3).image_shape(24, 24).max_iter(20).tol(0.0);
        let multilevel = params.fit(&x.view()).unwrap();
        let full = params.clone().multilevel(false).fit(&x.view()).unwrap();
        // 12 x 12 keeps 48 pixels per part; 6 x 6 would keep 12.
        assert_eq!(multilevel.coarse_levels.len(), 1);
        let level = multilevel.coarse_levels[0];
        assert_eq!(
            level.shape,
            ImageShape {
                height: 12,
                width: 12
            }
        );
        assert!(level.iterations >= 1 && level.rel_error < 0.1, "{level:?}");
        assert_eq!(
            multilevel.start,
            format!(
                "nndsvda at 12x12 ({} iterations) -> full size (multilevel)",
                level.iterations
            )
        );
        assert!(full.coarse_levels.is_empty());
        assert_eq!(full.start, "nndsvda");
        // The prolongated parts start far nearer than the full-resolution initialisation, and
        // the fit ends at least as well.
        let (ml0, full0) = (multilevel.history[0].rel_error, full.history[0].rel_error);
        assert!(ml0 < 0.5 * full0, "start {ml0} against {full0}");
        assert!(multilevel.rel_error <= full.rel_error * 1.001);
        assert!(
            multilevel
                .w
                .iter()
                .chain(multilevel.h.iter())
                .all(|&v| v >= 0.0)
        );
        // Its time counts: the first full-resolution error comes after the coarse fit.
        assert!(multilevel.history[0].seconds >= level.seconds);
        // Reproducible.
        let again = params.fit(&x.view()).unwrap();
        assert_eq!(again.w, multilevel.w);
    }

    #[test]
    fn multilevel_start_applies_only_to_plain_frobenius_fits() {
        let x = smooth_images(4);
        let base = Nmf::params(3).image_shape(24, 24).max_iter(3);
        let levels = |nmf: Nmf| nmf.fit(&x.view()).unwrap().coarse_levels.len();
        assert_eq!(levels(base.clone()), 1);
        assert_eq!(levels(Nmf::params(3).max_iter(3)), 0, "no image shape");
        assert_eq!(
            levels(base.clone().solver(Solver::Cd)),
            0,
            "off for cd by default"
        );
        assert_eq!(levels(base.clone().solver(Solver::Cd).multilevel(true)), 1);
        assert_eq!(levels(base.clone().alpha_w(0.1)), 0, "penalty");
        assert_eq!(levels(base.clone().sparsity_w(Some(0.5))), 0, "sparseness");
        assert_eq!(
            levels(base.clone().solver(Solver::Mu).loss(Loss::KullbackLeibler)),
            0,
            "divergence"
        );
        let known = Array2::from_elem(x.dim(), true);
        let masked = base.fit_masked(&x.view(), &known.view(), |_| {}).unwrap();
        assert!(masked.coarse_levels.is_empty(), "missing data");
    }

    #[test]
    fn an_image_shape_that_does_not_match_x_is_rejected() {
        let err = Nmf::params(2)
            .image_shape(5, 5)
            .fit(&noisy(24, 10, 0).view())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("5x5 images have 25 pixels, but X has 24 rows"),
            "{err}"
        );
    }

    #[test]
    fn negative_tolerance_is_rejected() {
        let err = Nmf::params(2)
            .tol(-1.0)
            .fit(&noisy(6, 5, 0).view())
            .unwrap_err();
        assert!(err.to_string().starts_with("tol:"), "{err}");
    }

    #[test]
    fn transposed_input_views_are_accepted() {
        let x = noisy(20, 30, 10);
        let xt = x.t().to_owned();
        let a = Nmf::params(3).max_iter(10).fit(&x.view()).unwrap();
        let b = Nmf::params(3).max_iter(10).fit(&xt.t()).unwrap();
        assert_eq!(a.w, b.w);
    }

    #[test]
    fn names_round_trip_through_from_str() {
        for solver in ALL_SOLVERS {
            assert_eq!(solver.to_string().parse::<Solver>().unwrap(), solver);
        }
        for init in ALL_INITS {
            assert_eq!(init.to_string().parse::<Init>().unwrap(), init);
        }
        assert!(
            "kl".parse::<Solver>()
                .unwrap_err()
                .to_string()
                .contains("expected hals")
        );
    }
}
