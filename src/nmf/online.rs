//! Online NMF: W moves after every batch of images, from decayed sums over the batches seen.
//!
//! J. Mairal, F. Bach, J. Ponce and G. Sapiro, "Online learning for matrix factorization and
//! sparse coding", JMLR 11, 2010 (Algorithms 1 and 2). The W half-step needs only
//! `A = sum_b H_b H_b^T` and `B = sum_b X_b H_b^T`; kept as running sums over the batches, they
//! let W move after every batch instead of once per pass over all images, and a pass costs
//! what a batch pass of the column-block seam costs. W's update from `(B, A)` is the solver's
//! own (HALS: Mairal et al.'s block coordinate descent, projected on W >= 0).
//!
//! Older batches were coded with an older W, so their share shrinks as new batches come:
//! scikit-learn's `MiniBatchNMF` (after A. Lefèvre, F. Bach and C. Févotte, "Online
//! algorithms for nonnegative matrix factorization with the Itakura-Saito divergence", WASPAA
//! 2011) keeps the same sums for multiplicative updates and scales them by
//! `rho = forget^(batch / n)` per batch, so that one pass later a batch counts `forget` times
//! what it did. The same rule is used here, with a smaller default (see [`DEFAULT_FORGET`]).

use ndarray::Array2;

use super::hals;
use crate::Float;

/// Images per batch unless told otherwise: scikit-learn's `MiniBatchNMF` default.
pub const DEFAULT_BATCH_IMAGES: usize = 1024;
/// The share of the sums kept after one pass unless told otherwise. scikit-learn's default is
/// 0.7; with HALS updates 0.1 fitted better at every time measured on CBCL and on 50,000
/// synthetic faces (README, "Online": 0.0454 against 0.0665 after 12 passes on the latter).
pub const DEFAULT_FORGET: f64 = 0.1;

/// Online fitting ([`Nmf::online`](super::Nmf::online)): W is updated after every batch of
/// images rather than after every pass, from the batches' sums, older batches weighted down.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Online {
    /// Images per batch, rounded up to whole groups of
    /// [`SHARE_GROUP`](super::SHARE_GROUP) (the HALS kernel's rows). A batch of all the
    /// images is plain alternating NMF.
    pub batch_images: usize,
    /// The share of a batch's weight in the sums left after one more pass over the images,
    /// in (0, 1]; 1 forgets nothing.
    pub forget: f64,
}

impl Default for Online {
    fn default() -> Self {
        Online {
            batch_images: DEFAULT_BATCH_IMAGES,
            forget: DEFAULT_FORGET,
        }
    }
}

impl Online {
    /// Batches of `batch_images` images, with the default forgetting factor.
    pub fn new(batch_images: usize) -> Self {
        Online {
            batch_images,
            ..Online::default()
        }
    }

    /// The share of a batch's weight kept after one pass (default [`DEFAULT_FORGET`]).
    pub fn forget(self, forget: f64) -> Self {
        Online { forget, ..self }
    }
}

/// The decayed sums of an online fit and what W's update after each batch needs.
#[derive(Debug)]
pub(crate) struct BatchSums<T> {
    /// `sum_b rho^age H_b H_b^T`, r x r.
    pub(crate) hh: Array2<T>,
    /// `sum_b rho^age X_b H_b^T`, m x r.
    pub(crate) xh: Array2<T>,
    /// Sweeps of W's update per batch.
    pub(crate) sweeps: usize,
    forget: f64,
    /// Images over all batches, n.
    images: usize,
}

impl<T: Float> BatchSums<T> {
    /// Empty sums for W of m x r over n images in batches of `batch`; `repeats_sweeps`: the
    /// solver repeats its sweeps while they pay (accelerated HALS).
    pub(crate) fn new(
        online: Online,
        (m, n, r): (usize, usize, usize),
        batch: usize,
        repeats_sweeps: bool,
    ) -> Self {
        BatchSums {
            hh: Array2::zeros((r, r)),
            xh: Array2::zeros((m, r)),
            sweeps: if repeats_sweeps {
                hals::max_sweeps(m, batch, r)
            } else {
                1
            },
            forget: online.forget,
            images: n,
        }
    }

    /// Adds a batch of `len` images, its `X_b H_b^T` and `H_b H_b^T`, the sums before it
    /// weighted down by `forget^(len / n)`.
    pub(crate) fn absorb(&mut self, len: usize, xh: &Array2<T>, hh: &Array2<T>) {
        let rho = T::from_f64(self.forget.powf(len as f64 / self.images as f64));
        self.xh.zip_mut_with(xh, |s, &v| *s = *s * rho + v);
        self.hh.zip_mut_with(hh, |s, &v| *s = *s * rho + v);
    }
}
