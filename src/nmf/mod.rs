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

mod hals;
pub(crate) mod init;
pub(crate) mod linalg;
mod mu;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};


use ndarray::{Array2, ArrayView2};

use crate::{Error, Float, Result};
use linalg::{dot, gram, matmul, residual_sq, sq_norm, view};

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
    tol: f64,
    #[serde(rename = "max_time_seconds")]
    max_time: Option<f64>,
    seed: u64,
}

fn as_string<S: serde::Serializer, D: fmt::Display>(v: &D, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The result of a fit.
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
    /// Relative error after the initialisation and after every iteration.
    pub history: Vec<Iteration>,
    /// The parameters that produced this fit.
    pub params: Nmf,
}

impl<T> Factorization<T> {
    /// Whether the tolerance was met (false when `max_iter` or `max_time` stopped the loop).
    pub fn converged(&self) -> bool {
        self.stop == Stop::Tolerance
    }
}

impl Nmf {
    /// Parameters for a rank-`rank` factorization, with the defaults below.
    pub fn params(rank: usize) -> Self {
        Nmf {
            rank,
            solver: Solver::default(),
            init: Init::default(),
            max_iter: 200,
            tol: 1e-4,
            max_time: None,
            seed: 0,
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

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Name of the update rule, as the CLI spells it.
    pub fn solver_name(&self) -> String {
        self.solver.to_string()
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
        mut progress: impl FnMut(&Iteration),
    ) -> Result<Factorization<T>> {
        let start = Instant::now();
        let x = x.as_standard_layout();
        let x = x.view();
        self.check(&x)?;
        let (m, n) = x.dim();
        let r = self.rank;
        let x_ref = view(&x);
        let xx = sq_norm(&x);
        let x_norm = xx.sqrt();

        let (mut w, mut ht) = init::initialize(self.init, &x, r, self.seed)?;
        let mut xh = Array2::<T>::zeros((m, r)); // X H^T, for the W update
        let mut xtw = Array2::<T>::zeros((n, r)); // X^T W, for the H update
        let mut ww = Array2::<T>::zeros((r, r)); // W^T W
        let mut hh = Array2::<T>::zeros((r, r)); // H H^T
        let mut scratch_w = Array2::<T>::zeros(if self.solver == Solver::Mu { (m, r) } else { (0, 0) });
        let mut scratch_h = Array2::<T>::zeros(if self.solver == Solver::Mu { (n, r) } else { (0, 0) });
        let (sweeps_w, sweeps_h) = match self.solver {
            Solver::Hals => (hals::max_sweeps(m, n, r), hals::max_sweeps(n, m, r)),
            Solver::Cd | Solver::Mu => (1, 1),
        };

        // Scale W so that alpha W H is the best multiple of the initial product: the NNDSVDa
        // fill otherwise starts far above X (scikit-learn starts at relative error ~8 on faces).
        gram(&mut ww, &w);
        gram(&mut hh, &ht);
        matmul(&mut xh, x_ref, view(&ht.view()));
        let (cross, quad) = (dot(&xh, &w), dot(&hh, &ww));
        let mut err_sq = xx;
        if quad > 0.0 && cross > 0.0 {
            let alpha = cross / quad;
            let a = T::from_f64(alpha);
            w.mapv_inplace(|v| v * a);
            ww.mapv_inplace(|v| v * a * a);
            err_sq = xx - 2.0 * alpha * cross + alpha * alpha * quad;
        }
        let rel = |err_sq: f64| err_sq.max(0.0).sqrt() / x_norm;
        let mut history = Vec::with_capacity(self.max_iter.min(100_000) + 1);
        let first = Iteration {
            iter: 0,
            seconds: start.elapsed().as_secs_f64(),
            rel_error: rel(err_sq),
        };
        progress(&first);
        history.push(first);

        let mut stop = Stop::MaxIter;
        for iter in 1..=self.max_iter {
            // H step: H^T (n x r) from X^T W and W^T W.
            matmul(&mut xtw, x_ref.transpose(), view(&w.view()));
            self.update(&mut ht, &xtw, &ww, sweeps_h, &mut scratch_h);
            // W step: W (m x r) from X H^T and H H^T.
            matmul(&mut xh, x_ref, view(&ht.view()));
            gram(&mut hh, &ht);
            self.update(&mut w, &xh, &hh, sweeps_w, &mut scratch_w);
            gram(&mut ww, &w);
            // ||X - WH||^2 = ||X||^2 - 2 <X H^T, W> + <H H^T, W^T W>
            err_sq = xx - 2.0 * dot(&xh, &w) + dot(&hh, &ww);

            let record = Iteration {
                iter,
                seconds: start.elapsed().as_secs_f64(),
                rel_error: rel(err_sq),
            };
            progress(&record);
            history.push(record);

            if self.tol > 0.0 && iter >= TOL_WINDOW {
                let before = history[iter - TOL_WINDOW].rel_error;
                if before - record.rel_error <= self.tol * before {
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

        let rel_error = residual_sq(&x, &w, &ht).max(0.0).sqrt() / x_norm;
        let h = ht.t().as_standard_layout().into_owned();
        Ok(Factorization {
            w,
            h,
            n_iter: history.len() - 1,
            stop,
            seconds: start.elapsed().as_secs_f64(),
            rel_error,
            history,
            params: self.clone(),
        })
    }

    /// One update of factor `f` (rows independent) from the product `a` and the other
    /// factor's Gram matrix `g`.
    fn update<T: Float>(
        &self,
        f: &mut Array2<T>,
        a: &Array2<T>,
        g: &Array2<T>,
        sweeps: usize,
        scratch: &mut Array2<T>,
    ) {
        match self.solver {
            Solver::Hals | Solver::Cd => {
                hals::update(f, a, g, sweeps);
            }
            Solver::Mu => mu::update(f, a, g, scratch),
        }
    }

    /// Rejects parameters and input the fit cannot take.
    fn check<T: Float>(&self, x: &ArrayView2<T>) -> Result<()> {
        let (m, n) = x.dim();
        if m == 0 || n == 0 {
            return Err(Error::InvalidInput {
                reason: format!("X is {m} x {n}; it needs at least one row and one column"),
            });
        }
        if self.rank == 0 {
            return Err(Error::param("rank", "must be at least 1"));
        }
        let nndsvd = matches!(self.init, Init::Nndsvd | Init::Nndsvda | Init::Nndsvdar);
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
        if !(self.tol >= 0.0) {
            return Err(Error::param("tol", format!("{} must be 0 or more", self.tol)));
        }
        let mut any_positive = false;
        for ((i, j), &v) in x.indexed_iter() {
            if !v.to_f64().is_finite() {
                return Err(Error::InvalidInput {
                    reason: format!("entry ({i}, {j}) is {v}; NMF needs finite values"),
                });
            }
            if v < T::zero() {
                return Err(Error::InvalidInput {
                    reason: format!("entry ({i}, {j}) is {v}; NMF needs nonnegative values"),
                });
            }
            any_positive |= v > T::zero();
        }
        if !any_positive {
            return Err(Error::InvalidInput {
                reason: "every entry is zero (every image is blank); there is nothing to factorize"
                    .into(),
            });
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
            _ => Err(Error::param("solver", format!("unknown solver '{s}' (expected hals, cd or mu)"))),
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
            _ => Err(Error::param(
                "init",
                format!("unknown init '{s}' (expected nndsvda, nndsvd, nndsvdar or random)"),
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
