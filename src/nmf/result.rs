//! What a fit returns: the factors in canonical form, the history and why the loop stopped.

use std::fmt;

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

use super::canonical::hoyer_sparseness;
use super::multilevel::ImageShape;
use super::params::Nmf;
use super::spill::{HtStore, by_pieces};
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
    /// Coefficients, r x n (one column per image), stored image by image: in memory, or for
    /// a fit over streamed images, in a file mapped into memory ([`Coefficients`]).
    pub h: Coefficients<T>,
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

/// One coarse level of a multilevel start, fitted before the full fit started from its parts:
/// the images at lower resolution, or a sample of them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CoarseLevel {
    /// Size of the images at this level (for a sample of a fit given no image shape, the
    /// pixels as one column).
    pub shape: ImageShape,
    /// How many images this level fitted when it fitted a sample of them (every k-th); `None`
    /// when it fitted all of them at lower resolution.
    #[serde(default)]
    pub images: Option<usize>,
    /// Iterations run at this level.
    pub iterations: usize,
    /// Relative error of the coarse fit against its own images (coarse, or the sample), as its
    /// iterations measured it (from the Gram matrices, not formed again from the images).
    pub rel_error: f64,
    /// Seconds spent at this level (coarser levels included; for a sample, also fitting every
    /// image's H to its parts).
    pub seconds: f64,
}

impl std::fmt::Display for CoarseLevel {
    /// The level's images: their size ("32x32"), or for a sample their number ("608 images").
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.images {
            Some(count) => write!(f, "{count} images"),
            None => write!(f, "{}", self.shape),
        }
    }
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
        let Some(release) = self.h.0.release() else {
            return mean(self.h.view().rows().into_iter().map(hoyer_sparseness));
        };
        // Mapped: the rows' sums a piece of images at a time, each sum in image order as
        // `hoyer_sparseness` takes it (the same bits), the pages dropped as they are summed.
        let ht = self.h.t();
        let (n, r) = ht.dim();
        let (mut l1, mut l2) = (vec![0.0f64; r], vec![0.0f64; r]);
        by_pieces(n, COEFFICIENT_PIECE, Some(&release), false, |images| {
            for row in ht.slice(ndarray::s![images, ..]).rows() {
                for (k, v) in row.iter().enumerate() {
                    let v = v.to_f64();
                    l1[k] += v.abs();
                    l2[k] += v * v;
                }
            }
        });
        mean((0..r).map(|k| hoyer_of_sums(n, l1[k], l2[k].sqrt())))
    }
}

/// Images per piece of a pass over mapped coefficients.
const COEFFICIENT_PIECE: usize = 16_384;

/// The coefficients H of a fit, r x n (one column per image, stored image by image, so that
/// `h.t()` is in standard layout).
///
/// Held in memory, or, for a fit over images streamed from a decoded cache
/// ([`Nmf::fit_blocks`]), in a file beside the cache mapped into memory: reading them brings
/// their pages into the process, and [`Coefficients::release_memory`] drops them again, so
/// that a run's memory need not grow with its number of images. The values are the same
/// either way.
#[derive(Debug)]
pub struct Coefficients<T>(HtStore<T>);

impl<T: Float> Coefficients<T> {
    /// From H^T (n x r) as the loop holds it.
    pub(crate) fn from_ht(ht: HtStore<T>) -> Self {
        Coefficients(ht)
    }

    /// H, r x n.
    pub fn view(&self) -> ArrayView2<'_, T> {
        self.0.view().reversed_axes()
    }

    /// H, r x n, to change in place.
    pub fn view_mut(&mut self) -> ArrayViewMut2<'_, T> {
        self.0.view_mut().reversed_axes()
    }

    /// H^T, n x r: one row per image.
    pub fn t(&self) -> ArrayView2<'_, T> {
        self.0.view()
    }

    /// (r, n).
    pub fn dim(&self) -> (usize, usize) {
        self.view().dim()
    }

    /// r, the number of components.
    pub fn nrows(&self) -> usize {
        self.view().nrows()
    }

    /// n, the number of images.
    pub fn ncols(&self) -> usize {
        self.view().ncols()
    }

    /// Every coefficient, image by image.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.0.view().into_iter()
    }

    /// The coefficients of image `j` (column j of H).
    ///
    /// # Panics
    /// If `j` is not an image of the fit.
    pub fn column(&self, j: usize) -> ArrayView1<'_, T> {
        self.view().index_axis_move(Axis(1), j)
    }

    /// The coefficients of component `k` over every image (row k of H).
    ///
    /// # Panics
    /// If `k` is not a component of the fit.
    pub fn row(&self, k: usize) -> ArrayView1<'_, T> {
        self.view().index_axis_move(Axis(0), k)
    }

    /// H in memory, r x n.
    pub fn to_owned(&self) -> Array2<T> {
        let h = self.view().to_owned();
        self.release_memory();
        h
    }

    /// Whether H is kept in a file mapped into memory (see [`Coefficients`]).
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, HtStore::Mapped(_))
    }

    /// Drops from the process the pages of a mapped H that reading it brought in; they are
    /// read back from the page cache or the file on the next access. Nothing for H held in
    /// memory.
    pub fn release_memory(&self) {
        self.0.release_all();
    }

    /// Drops the pages of images `images` of a mapped H (nothing when held).
    pub fn release_images(&self, images: std::ops::Range<usize>) {
        if let Some(release) = self.0.release() {
            release.rows(images);
        }
    }
}

impl<T: Float> From<Array2<T>> for Coefficients<T> {
    /// H (r x n) held in memory.
    fn from(h: Array2<T>) -> Self {
        Coefficients(HtStore::Held(h.reversed_axes()))
    }
}

impl<T: Clone> Clone for Coefficients<T> {
    /// A copy in memory (of a mapped H too).
    fn clone(&self) -> Self {
        Coefficients(HtStore::Held(self.0.view().to_owned()))
    }
}

impl<T: Float> PartialEq for Coefficients<T> {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

/// [`hoyer_sparseness`] of a vector of `n` entries from its L1 and L2 norms.
fn hoyer_of_sums(n: usize, l1: f64, l2: f64) -> f64 {
    let n = n as f64;
    if n <= 1.0 || l2 == 0.0 {
        return 0.0;
    }
    ((n.sqrt() - l1 / l2) / (n.sqrt() - 1.0)).clamp(0.0, 1.0)
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
