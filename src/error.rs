//! The one error type of the library.
//!
//! Messages put the path or the parameter first, lowercase, with no trailing period, and say what
//! to do where there is something to do.

use std::path::PathBuf;

/// Everything that can go wrong in facenmf's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image folder does not exist or is not a folder.
    #[error("{}: no such folder", path.display())]
    NoSuchFolder {
        /// The folder that was asked for.
        path: PathBuf,
    },
    /// Reading a file or walking a folder failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// A file looked like an image but could not be decoded.
    #[error("{}: cannot decode image: {reason}", path.display())]
    Undecodable {
        /// The offending file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// An image's header gives more pixels than the loader's limit.
    #[error(
        "{}: image is {width}x{height} ({} pixels), above the limit of {max_pixels} pixels per image",
        path.display(),
        u64::from(*width) * u64::from(*height)
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its width, from its header.
        width: u32,
        /// Its height, from its header.
        height: u32,
        /// The limit ([`crate::Loader::max_pixels`]).
        max_pixels: u64,
    },
    /// The folder held no image at all.
    #[error("{}: no images found ({skipped} other files skipped)", path.display())]
    NoImages {
        /// The folder that was searched.
        path: PathBuf,
        /// How many non-image or unreadable files were skipped.
        skipped: usize,
    },
    /// NMF needs at least two images.
    #[error("{}: only one image found; NMF needs at least two", path.display())]
    OneImage {
        /// The folder that was searched.
        path: PathBuf,
    },
    /// Images of different sizes were found and no common size was requested.
    #[error(
        "{}: image is {found_w}x{found_h} but {} is {first_w}x{first_h}; \
         all images must have one size (resize them to one)",
        path.display(),
        first.display()
    )]
    MixedSizes {
        /// The first image, which sets the size.
        first: PathBuf,
        /// Its width.
        first_w: u32,
        /// Its height.
        first_h: u32,
        /// An image of another size.
        path: PathBuf,
        /// Its width.
        found_w: u32,
        /// Its height.
        found_h: u32,
    },
    /// A mask folder does not match the faces.
    #[error("{}: {reason}", path.display())]
    Mask {
        /// The mask folder or the missing mask.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A parameter is out of its valid range.
    #[error("{name}: {reason}")]
    InvalidParameter {
        /// The parameter, as the builder method that sets it is named (`alpha_w`).
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The data matrix holds a value NMF cannot take.
    #[error("input matrix: {reason}")]
    InvalidInput {
        /// What is wrong with it.
        reason: String,
    },
    /// The iterates overflowed: a NaN or infinite value appeared during the fit.
    #[error(
        "the fit produced non-finite values in {what} at iteration {iteration}; the numbers \
         overflow at this precision and setting (more precision, or a milder loss or \
         constraint, avoids it)"
    )]
    NonFinite {
        /// The iteration (0: the start).
        iteration: usize,
        /// What was not finite.
        what: &'static str,
    },
    /// A linear-algebra routine failed (an SVD that did not converge).
    #[error("linear algebra: {0}")]
    Linalg(String),
    /// A `.npy` file could not be read as a matrix.
    #[error("{}: {reason}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The output folder cannot take a run's outputs.
    #[error("{}: {reason}", path.display())]
    Output {
        /// The output folder.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A model folder cannot be used, or new faces do not fit it.
    #[error("{}: {reason}", path.display())]
    Model {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A decoded cache that cannot be read as its manifest says.
    #[error("{}: not a usable facenmf cache: {reason}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A checkpoint cannot be read, or belongs to another fit.
    #[error("checkpoint: {reason}")]
    Checkpoint {
        /// What is wrong with it.
        reason: String,
    },
    /// Encoding an output image failed.
    #[error("{}: cannot encode image: {reason}", path.display())]
    Encode {
        /// The output file.
        path: PathBuf,
        /// What the encoder said.
        reason: String,
    },
}

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}
