//! Stage 2: the factorization X ~ W H with W, H >= 0.
//!
//! Orientation follows the literature (N. Gillis, *Nonnegative Matrix Factorization*, SIAM
//! 2020): X is m x n with one image per **column**, W (m x r) holds the basis images as columns,
//! H (r x n) the coefficients of each image. scikit-learn fits the transpose, `X.T ~ H.T W.T`,
//! so its `components_` is our W transposed and its `fit_transform` output our H transposed.
//! Inside the engine H is kept transposed (H^T, n x r, row-major), so that both factors are
//! updated row by row by the same kernels; results are handed out as H.
//!
//! The rooms:
//!
//! - `params`: the [`Nmf`] builder, [`Solver`] and [`Loss`], each solver's policy, the check.
//! - `fit`: the one loop. It owns the start (given factors, a multilevel start or an [`Init`]),
//!   the stopping rules, the history, the progress callback and keep-best. Within an iteration
//!   H is updated before W, as scikit-learn does.
//! - `step`: the two half-steps and the only `match` over the solver kernels; `blocks`: the
//!   images as column blocks, the seam where X streamed from disk or split over processes
//!   plugs in.
//! - `result`: [`Factorization`], [`Iteration`], [`Stop`].
//! - One file per kernel with its paper: `hals`, `mu`, `fpgm`, `anls`, `beta`; beside them
//!   `init`, `extrapolate`, `multilevel`, `missing`, `online` (the sums of an online fit),
//!   `penalty`, `sparseness`, `canonical`, `linalg` (faer products on ndarray memory),
//!   `spill` (the extrapolation's copies of H^T in a file beside a streamed fit's cache),
//!   `awake` (the thread pool kept from sleeping between a fit's parallel loops) and `seed`.
//!
//! The objective is `||X - WH||_F^2`; the relative error `||X - WH||_F / ||X||_F` is computed
//! every iteration from the Gram matrices the update already has, at the cost of two r x r and
//! one m x r dot products, and once exactly (from WH itself) at the end.

mod anls;
mod awake;
mod beta;
mod blocks;
mod canonical;
mod checkpoint;
mod extrapolate;
mod fit;
mod fpgm;
mod hals;
mod init;
mod kl_cd;
mod linalg;
mod missing;
mod mu;
mod multilevel;
mod online;
mod params;
mod penalty;
mod project;
mod result;
mod revive;
mod seed;
mod sparseness;
mod spill;
mod split;
mod step;

#[cfg(test)]
mod tests;

pub use blocks::ColumnBlocks;
pub use canonical::hoyer_sparseness;
pub use checkpoint::{Checkpoint, checkpoint_context};
pub use fit::{Checkpointing, TOL_WINDOW};
pub use init::Init;
pub use linalg::Products;
pub use linalg::{column_errors, warm_up};
pub use missing::random_mask;
pub use multilevel::ImageShape;
pub use online::{DEFAULT_BATCH_IMAGES, DEFAULT_FORGET, Online};
pub use params::{Interrupt, Loss, Nmf, Solver, WARM_START};
pub use project::{PROJECT_TOL, Projection, project};
pub use result::{CoarseLevel, Coefficients, Factorization, Iteration, Stop};
pub(crate) use seed::nth as mix_seed;
pub(crate) use seed::nth_uniform as uniform_draw;
pub use split::{Collective, SHARE_GROUP, Share, ThreadRank, Threads};
