//! The parameters of a fit: the [`Nmf`] builder with its defaults, the closed sets [`Solver`]
//! and [`Loss`], what each solver implies ([`Solver::policy`]), and the one check of parameters
//! against the shape of X before anything is computed.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ndarray::ArrayView2;

use super::init::Init;
use super::linalg::residual_sq;
use super::multilevel::ImageShape;
use super::online::Online;
use super::penalty::Penalty;
use super::split::Share;
use super::{fpgm, hals};
use crate::{Error, Float, Result};

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Solver {
    /// Accelerated HALS: coordinate descent with inner repetitions (Gillis & Glineur 2012).
    #[default]
    Hals,
    /// Plain HALS, one sweep per factor per iteration: scikit-learn's `cd` solver. With
    /// [`Loss::KullbackLeibler`], coordinate descent for KL (Hsieh & Dhillon 2011): one
    /// Newton step per coefficient per sweep.
    Cd,
    /// Multiplicative updates (Lee & Seung 2001).
    Mu,
    /// Fast projected gradient with Nesterov momentum (Gillis 2020, section 8.3).
    Fpgm,
    /// Alternating nonnegative least squares, each factor solved exactly by block principal
    /// pivoting (Kim & Park 2011).
    Anls,
}

/// What a solver implies for the rest of the fit: the one table of solver facts outside the
/// kernels' own match in `step.rs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Extrapolation (Ang & Gillis 2019) is on unless asked otherwise.
    pub(crate) extrapolates: bool,
    /// The multilevel start is on unless asked otherwise.
    pub(crate) multilevel: bool,
    /// Each half-step repeats its inner sweeps while they pay (Gillis & Glineur 2012's rule);
    /// otherwise one sweep per half-step.
    pub(crate) repeats_sweeps: bool,
    /// A multiplicative update: it keeps the sign of every entry, so extrapolated points are
    /// floored at 0, penalties enter its denominator rather than its numerator, its start needs
    /// scikit-learn's accurate SVD (it keeps much of the start's structure), and it is the
    /// solver of the beta-divergences.
    pub(crate) multiplicative: bool,
    /// The shape of the kernel's scratch space for a factor of (rows, rank).
    pub(crate) scratch_shape: fn(usize, usize) -> (usize, usize),
}

impl Solver {
    /// This solver's row of the policy table.
    pub(crate) fn policy(self) -> Policy {
        let row =
            |extrapolates, multilevel, repeats_sweeps, multiplicative, scratch_shape| Policy {
                extrapolates,
                multilevel,
                repeats_sweeps,
                multiplicative,
                scratch_shape,
            };
        let hals: fn(usize, usize) -> (usize, usize) = |rows, r| (1, hals::scratch_len(rows, r));
        match self {
            //                  extrapolates multilevel repeats_sweeps multiplicative scratch
            Solver::Hals => row(true, true, true, false, hals),
            Solver::Cd => row(false, false, false, false, hals),
            Solver::Mu => row(false, false, false, true, |rows, r| (rows, r)),
            Solver::Fpgm => row(false, false, true, false, |rows, r| {
                (fpgm::scratch_rows(rows), r)
            }),
            // ANLS keeps per-thread workspaces (see anls.rs).
            Solver::Anls => row(false, false, false, false, |_, _| (0, 0)),
        }
    }
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

    pub(crate) fn is_frobenius(&self) -> bool {
        self.beta() == 2.0
    }
}

/// Default of [`Nmf::warm_start`] for KL by coordinate descent: most Frobenius iterations
/// before the divergence fit.
pub const WARM_START: usize = 30;

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
    pub(crate) rank: usize,
    #[serde(serialize_with = "as_string")]
    pub(crate) solver: Solver,
    #[serde(serialize_with = "as_string")]
    pub(crate) init: Init,
    pub(crate) max_iter: usize,
    pub(crate) extrapolate: Option<bool>,
    #[serde(serialize_with = "as_string")]
    pub(crate) loss: Loss,
    pub(crate) tol: f64,
    #[serde(rename = "max_time_seconds")]
    pub(crate) max_time: Option<f64>,
    pub(crate) seed: u64,
    pub(crate) runs: usize,
    pub(crate) alpha_w: f64,
    pub(crate) alpha_h: f64,
    pub(crate) l1_ratio: f64,
    pub(crate) sparsity_w: Option<f64>,
    pub(crate) sparsity_h: Option<f64>,
    pub(crate) image_shape: Option<ImageShape>,
    pub(crate) multilevel: Option<bool>,
    /// Recorded only when on, so that run.json and checkpoints of other fits read as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) unit_sum_w: bool,
    /// Online fitting: W moves after every batch. Recorded only when on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) online: Option<Online>,
    /// Most Frobenius iterations before a divergence fit ([`Nmf::warm_start`]); `None`: the
    /// default. Recorded only when given, so that run.json and checkpoints of other fits read
    /// as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) warm_start: Option<usize>,
    /// Images per column block of the H half-step (see `blocks.rs`); `None`: all in one.
    #[serde(skip)]
    pub(crate) column_block: Option<usize>,
    #[serde(skip)]
    pub(crate) interrupt: Interrupt,
    /// Which level of a multilevel start this fit is.
    #[serde(skip)]
    pub(crate) level: Level,
}

/// Which level of a multilevel start a fit is: the coarse levels are only starts, so they try
/// no escape at a plateau.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Level {
    /// The fit asked for.
    #[default]
    Full,
    /// The images at half resolution.
    Halved,
    /// A sample of the images, every k-th.
    Sample,
}

/// A flag another thread (or a signal handler) raises to stop a fit after its current
/// iteration; the fit then returns its best iterate with [`Stop::Interrupted`](super::Stop).
/// Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A lowered flag.
    pub fn new() -> Self {
        Interrupt::default()
    }

    /// Asks every fit holding this flag to stop after its current iteration.
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the flag was raised.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The shared flag itself, for a signal handler to set.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

impl PartialEq for Interrupt {
    /// Two parameter sets are equal whatever flag they watch.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn as_string<S: serde::Serializer, D: fmt::Display>(
    v: &D,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
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
            unit_sum_w: false,
            online: None,
            warm_start: None,
            column_block: None,
            interrupt: Interrupt::default(),
            level: Level::Full,
        }
    }

    /// Stop after the current iteration once `interrupt` is raised (from a signal handler or
    /// another thread), returning the best iterate so far. Default: a flag nobody raises.
    pub fn interrupt(mut self, interrupt: Interrupt) -> Self {
        self.interrupt = interrupt;
        self
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

    /// The loss to minimise. Other than [`Loss::Frobenius`] needs [`Solver::Mu`], but for
    /// [`Loss::KullbackLeibler`], which [`Solver::Cd`] minimises too. Default:
    /// Frobenius.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Whether this fit extrapolates (never under a sparseness constraint, whose projections
    /// the extrapolated points would leave, nor for a divergence loss, nor online, where W
    /// moves batch by batch).
    pub fn extrapolates(&self) -> bool {
        let never = self.sparsity_w.is_some()
            || self.sparsity_h.is_some()
            || !self.loss.is_frobenius()
            || self.online.is_some();
        !never
            && self
                .extrapolate
                .unwrap_or(self.solver.policy().extrapolates)
    }

    /// The images' height and width (their pixels are the rows of X, index = y * width + x),
    /// which a multilevel start needs. Default: unknown (no multilevel start).
    pub fn image_shape(mut self, height: usize, width: usize) -> Self {
        self.image_shape = Some(ImageShape { height, width });
        self
    }

    /// Start from the parts of a smaller problem (Gillis & Glineur 2012), itself started the
    /// same way while a smaller one is worth fitting:
    /// - with at least 24 images per part, a sample of every k-th image (k from 2 to 4) that
    ///   keeps at least 12 per part (CBCL's 2,429 at rank 49: every 4th), its W kept and H
    ///   fitted for every image by HALS sweeps;
    /// - otherwise, when [`Nmf::image_shape`] is given and the half-size images keep at least 16
    ///   pixels per part, the images at half resolution, their parts interpolated back up (ORL's
    ///   92 x 112 at rank 49 starts from 46 x 56; at rank 40 from 23 x 28, then 46 x 56).
    ///
    /// Only for the Frobenius loss without penalties, sparseness constraints or missing data,
    /// with the images in memory in one process. Default: on for [`Solver::Hals`], off for the
    /// others (so that `cd` and `mu` make scikit-learn's updates from its start).
    pub fn multilevel(mut self, on: bool) -> Self {
        self.multilevel = Some(on);
        self
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

    /// Scale every basis image (column of W) to sum 1 after each update of W, without moving the
    /// scale into H: Lee & Seung's own KL algorithm (Nature 401, 1999, Methods), whose H update
    /// then needs no denominator. Only with [`Loss::KullbackLeibler`] and [`Solver::Mu`]; the
    /// result keeps columns of W that sum to 1 (it is only reordered, not rescaled to the
    /// canonical maximum 1). Default: off.
    pub fn unit_sum_w(mut self, on: bool) -> Self {
        self.unit_sum_w = on;
        self
    }

    /// Fit online (Mairal et al. 2010): W is updated after every batch of images, from sums
    /// over the batches seen with older ones weighted down, instead of after every pass over all
    /// images. An iteration is then one pass over the images (the error and the stopping rule
    /// are measured per pass, exactly, on the H of that pass and the W at its end). It pays on
    /// the largest folders, where a pass is costly: W learns from the first batches on. No
    /// extrapolation, multilevel start, restarts of dead components or checkpoints; not with
    /// missing data, penalties, sparseness constraints, divergences or a split over processes.
    /// Default: off (batch alternating NMF).
    pub fn online(mut self, online: Option<Online>) -> Self {
        self.online = online;
        self
    }

    /// Start a divergence fit (a loss other than [`Loss::Frobenius`]) from a Frobenius fit of
    /// at most `iterations` iterations: E-A-HALS from the same init (with the multilevel start
    /// where it applies), stopping earlier at the tolerance. Its iterations cost a third of a
    /// KL sweep and carry the fit much further: on Olivetti at rank 20, 60 KL coordinate-descent
    /// sweeps end at divergence 8661 from NNDSVDa, 8312 after 20 Frobenius iterations and 8254
    /// after 100 (README). 0: the divergence fit starts from the init, as scikit-learn's does.
    /// Default: [`WARM_START`] for [`Solver::Cd`] with [`Loss::KullbackLeibler`], 0 for the
    /// multiplicative rule (so that `mu` makes scikit-learn's iterates).
    pub fn warm_start(mut self, iterations: usize) -> Self {
        self.warm_start = Some(iterations);
        self
    }

    /// The most Frobenius iterations before this fit ([`Nmf::warm_start`]): 0 for a Frobenius
    /// fit.
    pub(crate) fn warm_iterations(&self) -> usize {
        if self.loss.is_frobenius() {
            return 0;
        }
        self.warm_start.unwrap_or(match (self.solver, self.loss) {
            (Solver::Cd, Loss::KullbackLeibler) => WARM_START,
            _ => 0,
        })
    }

    /// The most iterations to run. Default: 200.
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Stop when the relative error fell by less than `tol` (as a fraction of itself) over the
    /// last [`TOL_WINDOW`](crate::nmf::TOL_WINDOW) iterations; 0 disables the rule. Default: 1e-4.
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
    /// result with the least error; every run's error is in [`Factorization::run_errors`](crate::Factorization::run_errors).
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

    /// Rejects parameters the fit cannot take for an m x n matrix X, before any work, in one
    /// pass over the rules; the values of X are checked by the loop's first scan of it.
    pub(crate) fn check(&self, m: usize, n: usize) -> Result<()> {
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
                     lower the rank or use the random init",
                    self.rank,
                    m.min(n),
                    self.init
                ),
            ));
        }
        if self.rank > m.max(n) {
            return Err(Error::param(
                "rank",
                format!(
                    "{} is above max(pixels, images) = {}: more parts than pixels and than \
                     images describe nothing more",
                    self.rank,
                    m.max(n)
                ),
            ));
        }
        for (name, alpha) in [("alpha_w", self.alpha_w), ("alpha_h", self.alpha_h)] {
            if !(alpha.is_finite() && alpha >= 0.0) {
                return Err(Error::param(
                    name,
                    format!("{alpha} must be a finite number >= 0"),
                ));
            }
        }
        for (name, target) in [
            ("sparsity_w", self.sparsity_w),
            ("sparsity_h", self.sparsity_h),
        ] {
            if let Some(t) = target.filter(|t| !(0.0..=1.0).contains(t)) {
                return Err(Error::param(name, format!("{t} must be in [0, 1]")));
            }
        }
        if !(0.0..=1.0).contains(&self.l1_ratio) {
            return Err(Error::param(
                "l1_ratio",
                format!("{} must be in [0, 1]", self.l1_ratio),
            ));
        }
        if !self.loss.is_frobenius() {
            let beta = self.loss.beta();
            if !beta.is_finite() {
                return Err(Error::param("loss", format!("beta {beta} must be finite")));
            }
            let coordinate_kl = self.solver == Solver::Cd && self.loss == Loss::KullbackLeibler;
            if !self.solver.policy().multiplicative && !coordinate_kl {
                let also = if self.solver == Solver::Cd {
                    " and kl"
                } else {
                    ""
                };
                let which = if self.loss == Loss::KullbackLeibler {
                    "the cd solver (coordinate descent, the faster) or the mu solver"
                } else {
                    "the mu solver"
                };
                return Err(Error::param(
                    "loss",
                    format!(
                        "the {} solver minimises the Frobenius{also} loss only; use {which} for {}",
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
        if self.unit_sum_w && (self.loss != Loss::KullbackLeibler || self.solver != Solver::Mu) {
            return Err(Error::param(
                "unit_sum_w",
                format!(
                    "W's columns summing to 1 is Lee & Seung's KL algorithm: it needs the kl loss \
                     and the mu solver, not {} with {}",
                    self.loss, self.solver
                ),
            ));
        }
        if self.warm_start.is_some_and(|k| k > 0) && self.loss.is_frobenius() {
            return Err(Error::param(
                "warm_start",
                "a warm start is a Frobenius fit before a divergence fit: it needs a loss other \
                 than fro (kl, is or beta:b); a Frobenius fit starts from its init",
            ));
        }
        if let Some(online) = self.online {
            if online.batch_images == 0 {
                return Err(Error::param("online", "a batch needs at least one image"));
            }
            if !(online.forget > 0.0 && online.forget <= 1.0) {
                return Err(Error::param(
                    "online",
                    format!("the forgetting factor {} must be in (0, 1]", online.forget),
                ));
            }
            let refused = if !self.loss.is_frobenius() {
                Some(format!("the {} loss", self.loss))
            } else if self.alpha_w != 0.0 || self.alpha_h != 0.0 {
                Some("penalties".to_string())
            } else if self.sparsity_w.is_some() || self.sparsity_h.is_some() {
                Some("sparseness constraints".to_string())
            } else {
                None
            };
            if let Some(what) = refused {
                return Err(Error::param(
                    "online",
                    format!("online fitting does not combine with {what}"),
                ));
            }
        }
        if self.tol.is_nan() || self.tol < 0.0 {
            return Err(Error::param(
                "tol",
                format!("{} must be 0 or more", self.tol),
            ));
        }
        Ok(())
    }
}

impl Nmf {
    /// Rejects what a fit over column blocks cannot do without X whole (see
    /// [`Nmf::fit_blocks`]); `masked`: missing data was asked for; `split`: the images are
    /// split over processes rather than streamed.
    pub(crate) fn check_streamable(&self, masked: bool, split: bool) -> Result<()> {
        let refuse = |name: &'static str, why: &str| {
            let how = if split {
                "split over processes"
            } else {
                "streamed block by block"
            };
            Err(Error::param(name, format!("{why}; not with images {how}")))
        };
        if masked {
            return refuse("mask", "missing data fills X whole");
        }
        if !self.loss.is_frobenius() {
            return refuse(
                "loss",
                "the divergences form W H, pixels x images, every iteration",
            );
        }
        if self.sparsity_h.is_some() {
            return refuse(
                "sparsity_h",
                "a sparseness constraint on H couples all images",
            );
        }
        if self.runs != 1 {
            return refuse("runs", "one run at a time");
        }
        if split && self.online.is_some() {
            return refuse(
                "online",
                "online fitting moves W after every batch, an exchange per batch",
            );
        }
        Ok(())
    }

    /// Checks that the processes of `share` hold the images as one split (a contiguous run of
    /// columns each, in rank order, `local` here, of the same number of pixels `m`), and
    /// rejects what a split fit does not do. Collective, and called first: every process
    /// gets the same answer, so none waits for another that has stopped.
    pub(crate) fn check_shareable(
        &self,
        share: &Share<'_>,
        m: usize,
        local: usize,
        given: bool,
        checkpointed: bool,
    ) -> Result<()> {
        let mine = [m, share.first, local, share.total].map(|v| v as f64);
        let all = share.group.gather(&mine);
        let mut next = 0;
        for (p, held) in all.chunks(4).enumerate() {
            let [pixels, first, count, total] =
                [held[0], held[1], held[2], held[3]].map(|v| v as usize);
            let wrong = if pixels != m {
                Some(format!("images of {pixels} pixels, not {m}"))
            } else if total != share.total {
                Some(format!("a total of {total} images, not {}", share.total))
            } else if first != next {
                Some(format!("images from column {first}, not {next}"))
            } else if count == 0 {
                Some(format!(
                    "no images ({} images are at most {} shares of whole groups of {})",
                    share.total,
                    Share::most_processes(share.total),
                    super::split::SHARE_GROUP
                ))
            } else if first % super::split::SHARE_GROUP != 0 {
                Some(format!(
                    "images from column {first}, not a multiple of {}",
                    super::split::SHARE_GROUP
                ))
            } else {
                None
            };
            if let Some(wrong) = wrong {
                return Err(Error::InvalidInput {
                    reason: format!(
                        "process {p} of {} holds {wrong}: each process must hold its own \
                         contiguous run of columns of one X, in process order",
                        share.group.size()
                    ),
                });
            }
            next = first + count;
        }
        if next != share.total {
            return Err(Error::InvalidInput {
                reason: format!(
                    "the processes hold {next} images between them, not the {} of X",
                    share.total
                ),
            });
        }
        let refuse = |name: &'static str, why: &str| {
            Err(Error::param(
                name,
                format!("{why}; not with images split over processes"),
            ))
        };
        for (name, alpha) in [("alpha_w", self.alpha_w), ("alpha_h", self.alpha_h)] {
            if alpha > 0.0 {
                return refuse(
                    name,
                    "the penalties' value sums over H, which no process holds whole",
                );
            }
        }
        if self.init == Init::Spa {
            return refuse("init", "spa picks images by passes over all of them");
        }
        if given {
            return refuse("init_from", "a split fit starts from its init");
        }
        if checkpointed {
            return refuse("checkpoint", "each process would save only its part");
        }
        Ok(())
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
