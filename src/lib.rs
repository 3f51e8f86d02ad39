#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod alloc;
pub mod baselines;
mod error;
pub mod eval;
mod files;
mod float;
pub mod loader;
pub mod model;
pub mod mpi;
pub mod nmf;
pub mod render;
pub mod synth;

pub use error::{Error, Result};
pub use float::Float;
pub use loader::{Faces, Listing, Loader, Preprocess, SkipReason, Skipped};
pub use model::Model;
pub use nmf::{
    Checkpoint, Checkpointing, CoarseLevel, Coefficients, Factorization, ImageShape, Init,
    Interrupt, Iteration, Loss, Nmf, Online, Solver, Stop, warm_up,
};
