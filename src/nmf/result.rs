//! What a fit returns: the factors in canonical form, the history and why the loop stopped.

use std::fmt;

use ndarray::Array2;

use super::canonical::hoyer_sparseness;
use super::multilevel::ImageShape;
use super::params::Nmf;
use crate::Float;

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The relative error decreased by less than `tol` over the last
    /// [`TOL_WINDOW`](super::TOL_WINDOW) iterations.
    Tolerance,
    /// `max_iter` iterations were run.
    MaxIter,
    /// `max_time` was reached.
    MaxTime,
    /// The [`Interrupt`](super::Interrupt) was raised; the result is the best iterate so far.
    Interrupted,
}

/// One point of the convergence history, also what the progress callback receives.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// The result of a fit, in canonical form: each column of W has maximum 1 and components are
/// sorted by their share of the reconstruction, largest first.
#[derive(Debug, Clone)]
pub struct Factorization<T> {
    /// Basis images, m x r (one per column).
    pub w: Array2<T>,
    /// Coefficients, r x n (one column per image), stored image by image (column-major, so
    /// that a large fit need not copy it): `h.t()` is in standard layout.
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
    /// Dead components (a zero basis image or coefficient row, a saddle no update leaves) the
    /// loop restarted from the worst-explained image, in this run.
    pub restarts: usize,
    /// What the caller should know about this result (a constrained fit that ends worse than
    /// its unconstrained start, say); empty when there is nothing to say.
    pub warnings: Vec<String>,
}

/// One coarse level of a multilevel start: the same images at lower resolution, fitted before
/// the full-resolution fit started from its parts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
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

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::Tolerance => "tolerance reached",
            Stop::MaxIter => "max-iter reached",
            Stop::MaxTime => "max-time reached",
            Stop::Interrupted => "interrupted",
        })
    }
}
