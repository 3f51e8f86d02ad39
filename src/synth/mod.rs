//! Data with known parts: the bundled demo faces and the classic parts benchmarks, and the score
//! of a learned basis against the truth.
//!
//! - [`demo`]: the bundled demo faces (`assets/faces`), and a variant with the outline of the
//!   head in every face.
//! - `swimmer`: Donoho & Stodden's swimmer, a torso and four limbs in four positions each.
//! - `bars`: Foldiak's horizontal and vertical bars, each present with small probability.
//!
//! Each set is a [`PartsSet`]: the parts, the coefficients that mix them into images, and a
//! writer for `facenmf synth`. [`match_parts`] pairs every true part with its own basis image
//! (optimal assignment by cosine) and reports how well each was found.

pub mod bars;
pub mod demo;
mod matching;
pub mod swimmer;

use std::path::Path;

use image::GrayImage;
use ndarray::{Array2, ArrayView2};

pub use bars::bars;
pub use demo::{Demo, Part, generate, parts, with_outline, write};
pub use matching::{PartsMatch, match_parts};
pub use swimmer::swimmer;

use crate::render::write_png;
use crate::{Error, Float, Result};

/// A synthetic data set built from known parts: image j is `sum_k coefficients[k, j] * part k`.
#[derive(Debug, Clone)]
pub struct PartsSet {
    /// Short name, used in file names (`swimmer-017.png`).
    pub name: &'static str,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// One name per part, as in `left-arm-2`.
    pub part_names: Vec<String>,
    /// The parts as columns (pixels x parts, row-major pixels), values in [0, 1].
    pub parts: Array2<f64>,
    /// How much of each part each image holds (parts x images).
    pub coefficients: Array2<f64>,
    /// The parts a learned basis must find. A part with the same coefficient in every image (the
    /// swimmer's torso) can be merged into others without changing the product, so no method
    /// is bound to find it on its own.
    pub identifiable: Vec<bool>,
}

impl PartsSet {
    /// The images as the columns of X (pixels x images), exactly `parts * coefficients`.
    pub fn x(&self) -> Array2<f64> {
        self.parts.dot(&self.coefficients)
    }

    /// The images as 8-bit grayscale, as [`PartsSet::write`] stores them. The sets are built so
    /// that their values are multiples of 1/255 where they can be (swimmer, bars), so that the
    /// loader reads back X itself.
    pub fn images(&self) -> Vec<GrayImage> {
        self.x()
            .columns()
            .into_iter()
            .map(|c| gray_image(self.width, self.height, c.iter().copied()))
            .collect()
    }

    /// The matching of this set's parts with the columns of a learned basis W.
    pub fn match_basis<T: Float>(&self, w: &ArrayView2<T>) -> PartsMatch {
        match_parts(&self.parts.view(), w)
    }

    /// Writes `dir/faces/NAME-NNN.png` (the images) and `dir/parts/PART.png` (the truth).
    /// Returns the number of files written.
    ///
    /// # Errors
    /// A folder or file cannot be written, or `faces/` or `parts/` holds files this set would
    /// not write.
    pub fn write(&self, dir: &Path) -> Result<usize> {
        let images = self.images();
        let digits = images.len().to_string().len().max(3);
        let face_names: Vec<String> = (0..images.len())
            .map(|j| format!("{}-{j:0digits$}.png", self.name))
            .collect();
        let digits = self.part_names.len().to_string().len();
        let part_files: Vec<String> = (self.part_names.iter().enumerate())
            .map(|(k, name)| format!("{k:0digits$}-{name}.png"))
            .collect();
        let (faces_dir, parts_dir) = prepare(dir, &face_names, &part_files)?;
        for (face, name) in images.iter().zip(&face_names) {
            write_png(&faces_dir.join(name), &face.clone().into())?;
        }
        for (part, name) in self.parts.columns().into_iter().zip(&part_files) {
            let image = gray_image(self.width, self.height, part.iter().copied());
            write_png(&parts_dir.join(name), &image.into())?;
        }
        Ok(images.len() + self.part_names.len())
    }
}

/// Values in [0, 1] (clamped), row-major, as an 8-bit image.
fn gray_image(width: usize, height: usize, values: impl Iterator<Item = f64>) -> GrayImage {
    let bytes = values
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    GrayImage::from_raw(width as u32, height as u32, bytes).expect("width x height pixels")
}

/// Makes `dir/faces` and `dir/parts`, refusing folders that hold files other than the ones a
/// set is about to write: two sets in one folder would be loaded as one (and fail on their
/// different sizes, or worse, not).
pub(crate) fn prepare(
    dir: &Path,
    faces: &[String],
    parts: &[String],
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let pairs = [(dir.join("faces"), faces), (dir.join("parts"), parts)];
    for (sub, names) in &pairs {
        std::fs::create_dir_all(sub).map_err(|e| Error::io(sub, e))?;
        let entries = std::fs::read_dir(sub).map_err(|e| Error::io(sub, e))?;
        let mut foreign = 0usize;
        let mut first = None;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(sub, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !names.contains(&name) {
                foreign += 1;
                first.get_or_insert(name);
            }
        }
        if let Some(first) = first {
            return Err(Error::Output {
                path: sub.clone(),
                reason: format!(
                    "holds {foreign} file(s) this set would not write (such as {first}); \
                     write it to an empty folder"
                ),
            });
        }
    }
    let [(faces_dir, _), (parts_dir, _)] = pairs;
    Ok((faces_dir, parts_dir))
}
