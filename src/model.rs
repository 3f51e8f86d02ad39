//! Apply: a learned model is the output folder of `learn` (`W.npy` and `run.json`), loaded back
//! to project new faces onto its parts.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::nmf::{self, Projection};
use crate::{Error, Faces, Float, Preprocess, Result};

/// A basis learned by an earlier run, with what new faces must match.
#[derive(Debug, Clone)]
pub struct Model<T> {
    /// The folder it was loaded from.
    pub dir: PathBuf,
    /// W, pixels x rank: the basis images as columns.
    pub w: Array2<T>,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// The fit's penalty on H (`alpha_h`, `l1_ratio`), which a projection applies too.
    pub alpha_h: f64,
    /// Share of L1 in that penalty.
    pub l1_ratio: f64,
    /// The folder of images the model was learned from, as run.json records it.
    pub trained_on: String,
    /// The solver and precision the model was learned with.
    pub solver: String,
    /// f32 or f64, as the model was learned.
    pub precision: String,
    /// What was done to the training faces after decoding; new faces need the same.
    pub preprocess: Preprocess,
}

/// The fields of run.json a model needs.
#[derive(serde::Deserialize)]
struct ModelRecord {
    folder: String,
    height: usize,
    width: usize,
    rank: usize,
    solver: String,
    precision: String,
    params: ParamsRecord,
    /// Absent in run.json files written before preprocessing existed: none.
    #[serde(default)]
    preprocess: Preprocess,
}

#[derive(serde::Deserialize)]
struct ParamsRecord {
    alpha_h: f64,
    l1_ratio: f64,
}

/// The precision recorded in `dir/run.json`, to load the model at it.
///
/// # Errors
/// As [`Model::load`].
pub fn model_precision(dir: &Path) -> Result<String> {
    Ok(read_record(dir)?.precision)
}

fn read_record(dir: &Path) -> Result<ModelRecord> {
    let path = dir.join("run.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Model {
        path,
        reason: format!("not the run.json of a facenmf learn run ({e})"),
    })
}

impl<T: Float> Model<T> {
    /// Reads `dir/W.npy` and `dir/run.json`, as `learn` writes them.
    ///
    /// # Errors
    /// A missing or unreadable file, and a W that does not agree with run.json (its shape, or
    /// a negative, non-finite or all-zero basis image).
    pub fn load(dir: &Path) -> Result<Self> {
        let record = read_record(dir)?;
        let w_path = dir.join("W.npy");
        let w: Array2<T> = crate::render::npy::read(&w_path)?;
        let bad = |reason: String| Error::Model {
            path: w_path.clone(),
            reason,
        };
        let pixels = record.height * record.width;
        if w.dim() != (pixels, record.rank) {
            return Err(bad(format!(
                "is {} x {}, but run.json says {} pixels ({}x{}) and rank {}; the folder mixes \
                 two runs",
                w.nrows(),
                w.ncols(),
                pixels,
                record.width,
                record.height,
                record.rank
            )));
        }
        if w.iter().any(|v| !v.to_f64().is_finite() || *v < T::zero()) {
            return Err(bad("holds a negative or non-finite value".into()));
        }
        if let Some(k) = (0..w.ncols()).find(|&k| w.column(k).iter().all(|v| *v == T::zero())) {
            return Err(bad(format!("basis image {k} is all zero")));
        }
        Ok(Model {
            dir: dir.to_path_buf(),
            w,
            height: record.height,
            width: record.width,
            alpha_h: record.params.alpha_h,
            l1_ratio: record.params.l1_ratio,
            trained_on: record.folder,
            solver: record.solver,
            precision: record.precision,
            preprocess: record.preprocess,
        })
    }

    /// The number of parts.
    pub fn rank(&self) -> usize {
        self.w.ncols()
    }

    /// Checks that `faces` can be projected: the model's image size and preprocessing.
    ///
    /// # Errors
    /// Faces of another size, naming both and the `--resize` that would fix it; faces
    /// preprocessed otherwise than the training faces (load them with
    /// [`Loader::preprocess`](crate::Loader::preprocess) set to [`Model::preprocess`]).
    pub fn check(&self, faces: &Faces<T>) -> Result<()> {
        if faces.preprocess != self.preprocess {
            return Err(Error::Model {
                path: faces.root.clone(),
                reason: format!(
                    "the faces were preprocessed '{}', the model's training faces '{}' (in {}); \
                     load them with the model's preprocessing",
                    faces.preprocess,
                    self.preprocess,
                    self.dir.display()
                ),
            });
        }
        if (faces.height, faces.width) != (self.height, self.width) {
            return Err(Error::Model {
                path: faces.root.clone(),
                reason: format!(
                    "the faces are {}x{}, the model's {}x{} (in {}); resample them with \
                     --resize {}x{}",
                    faces.width,
                    faces.height,
                    self.width,
                    self.height,
                    self.dir.display(),
                    self.width,
                    self.height
                ),
            });
        }
        Ok(())
    }

    /// The coefficients of `faces` on the model's parts, with its penalty on H, to a relative
    /// projected gradient of `tol` (see [`nmf::project`]).
    ///
    /// # Errors
    /// As [`Model::check`] and [`nmf::project`].
    pub fn project(&self, faces: &Faces<T>, tol: f64) -> Result<Projection<T>> {
        self.check(faces)?;
        nmf::project(
            &self.w.view(),
            &faces.x.view(),
            self.alpha_h,
            self.l1_ratio,
            tol,
        )
    }
}
