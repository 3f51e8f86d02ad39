//! Stage 3: pictures and files from a factorization.
//!
//! - [`build_report`]: `report.html`, one self-contained page of every picture of a run
//!   (basis, each part, their similarity, reconstructions, the worst faces, convergence, one
//!   face as a sum of parts, NMF beside PCA and VQ), each picture also written as a PNG.
//! - [`basis_grid`], [`reconstruction_grid`]: plain grayscale montages (projections use them).
//! - [`convergence_plot`], [`rank_plot`]: plots.
//! - [`npy`]: factors as `.npy` files numpy loads directly.
//!
//! Every file is written atomically: to a temporary name in the same folder, then renamed, so an
//! interrupted run never leaves a half-written file where a good one was.

mod canvas;
mod folder;
mod html;
mod look;
mod montage;
pub mod npy;
mod pages;
mod plot;
mod recognition;
mod report;

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use folder::prepare_output_dir;
pub use look::{DEFAULT_TILE_SCALE, Look, Palette, TileScale};
pub use montage::{Grid, basis_grid, reconstruction_grid, sample_indices};
pub use plot::{convergence_plot, rank_plot};
pub use recognition::{RECOGNITION_FILES, write_recognition};
pub use report::{
    BASELINE_FACES, REPORT_FILE, REPORT_PICTURES, Report, RunSummary, ShownFace, SkippedSummary,
    build_report,
};

use crate::loader::ImagePaths;
use crate::nmf::Projection;
use crate::{
    CoarseLevel, Coefficients, Error, Faces, Factorization, Float, Iteration, Model, Nmf, Result,
};

pub use crate::files::write_atomic;
use crate::files::write_atomic_with;

/// Encodes an 8-bit grayscale or RGB buffer as PNG and writes it atomically.
pub(crate) fn write_png(path: &Path, img: &image::DynamicImage) -> Result<()> {
    write_atomic(path, &png_bytes(path, img)?)
}

/// An image as PNG bytes (`path` names it in an error).
fn png_bytes(path: &Path, img: &image::DynamicImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::Encode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(bytes)
}

/// The file an interrupted run leaves its last state in, for `learn --resume`; a finished
/// run's set has none, so an earlier run's is dropped with the rest of its outputs.
pub const CHECKPOINT_FILE: &str = "checkpoint.facenmf";

/// Names of the files [`write_outputs`] writes, in the order it writes them: the factors,
/// run.json, the report's pictures ([`REPORT_PICTURES`]) and the report.
pub const OUTPUT_FILES: [&str; 12] = [
    "W.npy",
    "H.npy",
    "run.json",
    REPORT_PICTURES[0],
    REPORT_PICTURES[1],
    REPORT_PICTURES[2],
    REPORT_PICTURES[3],
    REPORT_PICTURES[4],
    REPORT_PICTURES[5],
    REPORT_PICTURES[6],
    REPORT_PICTURES[7],
    REPORT_FILE,
];

/// The first entries of [`OUTPUT_FILES`], written whether or not the report can be built.
const FACTOR_FILES: usize = 3;

/// How `learn` writes its outputs.
#[derive(Debug, Clone, Copy)]
pub struct OutputOptions {
    /// Faces shown beside their reconstructions.
    pub samples: usize,
    /// Worker threads the fit ran on (per process), recorded in run.json.
    pub threads: usize,
    /// MPI processes the fit was split over, recorded in run.json when more than one.
    pub processes: usize,
    /// How basis images are shown, recorded in run.json.
    pub look: Look,
    /// The `--resize` the faces were loaded with (width, height), recorded so that
    /// `facenmf report` loads them the same way.
    pub resize: Option<(u32, u32)>,
}

/// A fit in one process: run.json says nothing of processes then.
fn one_process(processes: &usize) -> bool {
    *processes == 1
}

/// Everything about one run that `run.json` records.
#[derive(Debug, serde::Serialize)]
struct RunRecord<'a> {
    facenmf: &'static str,
    folder: String,
    images: usize,
    height: usize,
    width: usize,
    rank: usize,
    solver: String,
    init: String,
    precision: &'static str,
    seed: u64,
    threads: usize,
    #[serde(skip_serializing_if = "one_process")]
    processes: usize,
    params: &'a Nmf,
    iterations: usize,
    seconds: f64,
    rel_error: f64,
    hidden_error: Option<f64>,
    objective: f64,
    loss: String,
    divergence: Option<f64>,
    converged: bool,
    stop: String,
    display: Look,
    resize: Option<[u32; 2]>,
    preprocess: crate::Preprocess,
    sparseness_w: f64,
    sparseness_h: f64,
    run_errors: &'a [f64],
    best_run: usize,
    coarse_levels: &'a [CoarseLevel],
    restarts: usize,
    warnings: &'a [String],
    files: FileNames<'a>,
    skipped: Vec<SkippedRecord>,
    reconstructions: Vec<ReconstructionRecord>,
    history: &'a [Iteration],
}

#[derive(Debug, serde::Serialize)]
struct SkippedRecord {
    file: String,
    reason: String,
}

#[derive(Debug, serde::Serialize)]
struct ReconstructionRecord {
    index: usize,
    file: String,
    rel_error: f64,
}

/// Writes the outputs of a run into `dir` (created if missing): `W.npy` (m x r), `H.npy`
/// (r x n), `run.json`, the report's pictures and `report.html` (see [`build_report`];
/// `options.samples` faces beside their reconstructions), and with `checkpoint`
/// [`CHECKPOINT_FILE`]. Returns the paths written.
///
/// They are written into a staging folder beside `dir` and swapped in as a set (see
/// [`prepare_output_dir`]): `dir` holds the previous run's outputs or these, never a mix.
/// A report that cannot be built does not cost the fit: the factors and run.json are written
/// and the reason is returned in [`Outputs::report_error`].
///
/// # Errors
/// The folder cannot take the outputs or a file cannot be written; `dir` is then untouched.
pub fn write_outputs<T: Float>(
    dir: &Path,
    faces: &Faces<T>,
    fit: &Factorization<T>,
    options: &OutputOptions,
    checkpoint: Option<&[u8]>,
) -> Result<Outputs> {
    let (errors, _) = crate::nmf::column_errors(&faces.x.view(), &fit.w.view(), &fit.h.view());
    let shown = Shown {
        faces,
        columns: None,
        names: &faces.paths,
        errors,
    };
    write_shown(dir, &shown, fit, options, checkpoint)
}

/// The faces a run's outputs speak of: every face named and measured, and those shown held.
struct Shown<'a, T> {
    /// The faces held: all of X, or its columns `columns` (ascending).
    faces: &'a Faces<T>,
    columns: Option<Vec<usize>>,
    /// Every face's file, in column order.
    names: &'a dyn ImagePaths,
    /// Every face's relative error.
    errors: Vec<f64>,
}

/// Writes the outputs of a fit over images streamed from a decoded cache, as
/// [`write_outputs`] does, without holding X: every face's error is measured block by block,
/// and the pictures and the report show a sample of faces spread evenly ([`shown_columns`];
/// the report says so). `W.npy`, `H.npy` and `run.json` cover every face; with
/// `checkpoint`, [`CHECKPOINT_FILE`] joins the set.
///
/// # Errors
/// As [`write_outputs`].
pub fn write_streamed_outputs<T: Float>(
    dir: &Path,
    images: &crate::loader::CachedImages,
    fit: &Factorization<T>,
    options: &OutputOptions,
    checkpoint: Option<&[u8]>,
) -> Result<Outputs> {
    let n = images.count();
    let errors = errors_by_blocks(images, 0..n, &fit.w.view(), &fit.h);
    let columns = shown_columns(n, images.pixels());
    let faces = images.select::<T>(&columns);
    let shown = Shown {
        faces: &faces,
        columns: Some(columns),
        names: &images.paths,
        errors,
    };
    write_shown(dir, &shown, fit, options, checkpoint)
}

/// The relative error of each image of `columns` of `images` given W and those columns' H
/// (r x columns), read block by block: X is never held.
pub fn errors_by_blocks<T: Float>(
    images: &dyn crate::nmf::ColumnBlocks<T>,
    columns: std::ops::Range<usize>,
    w: &ndarray::ArrayView2<T>,
    coefficients: &Coefficients<T>,
) -> Vec<f64> {
    let h = coefficients.view();
    // Blocks of about 4 million values (the block and its W H are both held).
    let block = (4_000_000 / images.pixels().max(1)).max(1);
    let mut errors = Vec::with_capacity(columns.len());
    for start in columns.clone().step_by(block) {
        let range = start..(start + block).min(columns.end);
        let rows = images.rows(range.clone());
        let local = range.start - columns.start..range.end - columns.start;
        let h = h.slice(ndarray::s![.., local.clone()]);
        errors.extend(crate::nmf::column_errors(&rows.t(), w, &h).0);
        // A mapped H's pages of these images leave the process.
        coefficients.release_images(local);
    }
    errors
}

/// Pixel values of the faces a run too large to hold shows, at most: 16 MB in f32, and the
/// report's baselines (PCA and k-means, in f64, with the faces' Gram matrix and its
/// eigenvectors) then stay near 100 MB. With 2500 faces of 64 x 64 they took about 250 MB,
/// the peak of a streamed run of 50,000 faces (399 MB against 146 MB for its fit).
pub const SHOWN_VALUES: usize = 4 << 20;

/// The columns of X whose faces a run over `n` images of `pixels` pixels, too many to hold,
/// shows: at most [`BASELINE_FACES`] and [`SHOWN_VALUES`] pixel values (never fewer than 100
/// faces), spread evenly, ascending.
pub fn shown_columns(n: usize, pixels: usize) -> Vec<usize> {
    let faces = (SHOWN_VALUES / pixels.max(1)).clamp(100, BASELINE_FACES);
    sample_indices(n, faces)
}

/// Writes the outputs of a fit whose images are not held whole, as [`write_outputs`] does:
/// `shown` holds the faces of X's columns `columns` ([`shown_columns`]), `paths` every
/// face's file and `errors` every face's relative error, in column order. `W.npy`, `H.npy`
/// and `run.json` cover every face; the pictures and the report show the faces held (the
/// report says so).
///
/// # Errors
/// As [`write_outputs`].
pub fn write_sampled_outputs<T: Float>(
    dir: &Path,
    shown: &Faces<T>,
    columns: Vec<usize>,
    paths: &dyn ImagePaths,
    errors: Vec<f64>,
    fit: &Factorization<T>,
    options: &OutputOptions,
) -> Result<Outputs> {
    let shown = Shown {
        faces: shown,
        columns: Some(columns),
        names: paths,
        errors,
    };
    write_shown(dir, &shown, fit, options, None)
}

/// Faces' files as run.json names them (relative, with forward slashes): every face's, or
/// those of `columns`. Each name is made as it is written, not held: a streamed run's 200,000
/// names were 11 MB held through its report.
#[derive(Debug, Clone, Copy)]
struct FileNames<'a> {
    paths: &'a dyn ImagePaths,
    columns: Option<&'a [usize]>,
}

impl FileNames<'_> {
    fn len(&self) -> usize {
        self.columns.map_or(self.paths.len(), <[usize]>::len)
    }

    /// The name of the `k`-th face named.
    fn get(&self, k: usize) -> String {
        let j = self.columns.map_or(k, |c| c[k]);
        crate::loader::slash_string(self.paths.path(j))
    }
}

impl serde::Serialize for FileNames<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq((0..self.len()).map(|k| self.get(k)))
    }
}

/// Writes the set of `shown` (and `checkpoint`, if any) into `dir` as one (see
/// [`write_as_set`]) and lists what it wrote.
fn write_shown<T: Float>(
    dir: &Path,
    shown: &Shown<'_, T>,
    fit: &Factorization<T>,
    options: &OutputOptions,
    checkpoint: Option<&[u8]>,
) -> Result<Outputs> {
    let mut report_error = None;
    write_as_set(dir, |staged| {
        report_error = write_set(staged, shown, fit, options)?;
        match checkpoint {
            Some(bytes) => write_atomic(&staged.join(CHECKPOINT_FILE), bytes),
            None => Ok(()),
        }
    })?;
    let mut paths: Vec<PathBuf> = OUTPUT_FILES
        .iter()
        .take(if report_error.is_some() {
            FACTOR_FILES
        } else {
            OUTPUT_FILES.len()
        })
        .map(|n| dir.join(n))
        .collect();
    if checkpoint.is_some() {
        paths.push(dir.join(CHECKPOINT_FILE));
    }
    Ok(Outputs {
        paths,
        report_error,
    })
}

/// What [`write_outputs`] wrote.
#[derive(Debug)]
pub struct Outputs {
    /// Every file written.
    pub paths: Vec<PathBuf>,
    /// Why the report and its pictures were not written, when they could not be built.
    pub report_error: Option<Error>,
}

/// Writes a set of files into a fresh staging folder beside `dir` with `write`, then swaps it
/// in as a whole (see [`prepare_output_dir`]); on any failure the staging folder goes and `dir`
/// is untouched.
pub(crate) fn write_as_set(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    folder::prepare_output_dir(dir)?;
    let staged = folder::staging(dir)?;
    let written = write(&staged).and_then(|()| folder::swap_in(&staged, dir));
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    written
}

/// The outputs of [`write_outputs`], into `dir`; the error of a report that could not be built.
fn write_set<T: Float>(
    dir: &Path,
    shown: &Shown<'_, T>,
    fit: &Factorization<T>,
    options: &OutputOptions,
) -> Result<Option<Error>> {
    let path = |name: &str| dir.join(name);
    let Shown {
        faces,
        columns,
        names,
        errors,
    } = shown;
    let (height, width) = (faces.height, faces.width);
    // Faces shown beside their reconstructions, as indices into all faces.
    let indices: Vec<usize> = match columns {
        None => sample_indices(faces.x.ncols(), options.samples),
        Some(columns) => sample_indices(columns.len(), options.samples)
            .into_iter()
            .map(|k| columns[k])
            .collect(),
    };
    let mut warnings = fit.warnings.clone();
    if let Some(columns) = columns {
        warnings.push(format!(
            "the images were streamed: this page shows {} of the {} faces, spread evenly \
             (its reconstructions, worst faces and comparisons are among them); W.npy, H.npy \
             and run.json cover all",
            columns.len(),
            names.len()
        ));
    }

    npy::write(&path("W.npy"), &fit.w.view())?;
    npy::write_coefficients(&path("H.npy"), &fit.h)?;

    let mut record = RunRecord {
        facenmf: env!("CARGO_PKG_VERSION"),
        folder: faces.root.display().to_string(),
        images: names.len(),
        height,
        width,
        rank: fit.w.ncols(),
        solver: fit.params.solver.to_string(),
        init: fit.start.clone(),
        precision: T::NAME,
        seed: fit.params.seed,
        threads: options.threads,
        processes: options.processes,
        params: &fit.params,
        iterations: fit.n_iter,
        seconds: fit.seconds,
        rel_error: fit.rel_error,
        hidden_error: fit.hidden_error,
        objective: fit.objective,
        loss: fit.params.loss.to_string(),
        divergence: fit.divergence,
        converged: fit.converged(),
        stop: fit.stop.to_string(),
        display: options.look,
        resize: options.resize.map(|(w, h)| [w, h]),
        preprocess: faces.preprocess,
        sparseness_w: fit.sparseness_w(),
        sparseness_h: fit.sparseness_h(),
        run_errors: &fit.run_errors,
        best_run: fit.best_run,
        coarse_levels: &fit.coarse_levels,
        restarts: fit.restarts,
        warnings: &warnings,
        files: FileNames {
            paths: *names,
            columns: None,
        },
        skipped: faces
            .skipped
            .iter()
            .map(|s| SkippedRecord {
                file: s.name(),
                reason: s.reason.to_string(),
            })
            .collect(),
        reconstructions: indices
            .iter()
            .map(|&index| ReconstructionRecord {
                index,
                file: crate::loader::slash_string(names.path(index)),
                rel_error: errors[index],
            })
            .collect(),
        history: &fit.history,
    };
    // Written as it is serialised: at 200,000 faces run.json is 8 MB.
    write_atomic_with(&path("run.json"), |file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer_pretty(&mut out, &record)?;
        out.flush()
    })?;

    // The report reads the run as run.json records it, as `facenmf report` does; of a
    // streamed run, it sees the faces held as if they were all, and reads only their names.
    if let Some(columns) = columns {
        record.files.columns = Some(columns);
    }
    let json = serde_json::to_vec(&record).expect("run record serialises");
    let mut run: RunSummary = serde_json::from_slice(&json).expect("run.json reads back");
    drop(json);
    let (h, errors) = match columns {
        None => (ndarray::CowArray::from(fit.h.view()), Cow::Borrowed(errors)),
        Some(columns) => {
            run.images = columns.len();
            for face in &mut run.reconstructions {
                face.index = columns
                    .binary_search(&face.index)
                    .expect("shown faces are held");
            }
            let shown = fit.h.view().select(ndarray::Axis(1), columns);
            fit.h.release_memory();
            (
                ndarray::CowArray::from(shown),
                Cow::Owned(columns.iter().map(|&j| errors[j]).collect()),
            )
        }
    };
    let report = match build_report(
        &faces.x.view(),
        &fit.w.view(),
        &h.view(),
        &errors,
        &run,
        options.samples,
    ) {
        Ok(report) => report,
        Err(e) => return Ok(Some(e)),
    };
    for (name, png) in &report.pictures {
        write_atomic(&path(name), png)?;
    }
    write_atomic(&path(REPORT_FILE), report.html.as_bytes())?;
    Ok(None)
}

/// Reads the run.json of an output folder as the report needs it.
///
/// # Errors
/// The file is missing, unreadable, or not a facenmf run.json, named in the error.
pub fn read_run(dir: &Path) -> Result<RunSummary> {
    Ok(read_run_record(dir)?.0)
}

/// run.json as the report reads it and as the JSON it is, to write back with a field changed.
fn read_run_record(dir: &Path) -> Result<(RunSummary, serde_json::Value)> {
    let path = dir.join("run.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let not_ours = |e: serde_json::Error| Error::Model {
        path: path.clone(),
        reason: format!("not the run.json of a facenmf learn run ({e}); is this an output folder?"),
    };
    let record: serde_json::Value = serde_json::from_slice(&bytes).map_err(not_ours)?;
    let run = RunSummary::deserialize(&record).map_err(not_ours)?;
    Ok((run, record))
}

/// Builds the report of the output folder `dir` again, from its `run.json`, `W.npy` and
/// `H.npy` and the faces it was learned from (`faces`, loaded by the caller from the folder
/// run.json names), with `look` in place of the recorded display when given (and then
/// recorded). Each file is replaced atomically; the page last. Returns the paths written.
///
/// # Errors
/// A file of the folder missing or corrupt, factors that do not agree with run.json, faces
/// that are not the ones the run was learned from; each names the file or folder.
pub fn rebuild_report<T: Float>(
    dir: &Path,
    faces: &Faces<T>,
    look: Option<Look>,
) -> Result<Vec<PathBuf>> {
    let (mut run, mut record) = read_run_record(dir)?;
    let w: ndarray::Array2<T> = npy::read(&dir.join("W.npy"))?;
    let h: ndarray::Array2<T> = npy::read(&dir.join("H.npy"))?;
    let disagree = |file: &str, reason: String| Error::Model {
        path: dir.join(file),
        reason,
    };
    let m = run.height * run.width;
    if w.dim() != (m, run.rank) {
        return Err(disagree(
            "W.npy",
            format!(
                "is {} x {}, but run.json says {m} pixels ({}x{}) and rank {}",
                w.nrows(),
                w.ncols(),
                run.width,
                run.height,
                run.rank
            ),
        ));
    }
    if h.dim() != (run.rank, run.images) {
        return Err(disagree(
            "H.npy",
            format!(
                "is {} x {}, but run.json says rank {} and {} images",
                h.nrows(),
                h.ncols(),
                run.rank,
                run.images
            ),
        ));
    }
    if [&w, &h]
        .iter()
        .any(|f| f.iter().any(|v| !v.to_f64().is_finite() || *v < T::zero()))
    {
        return Err(disagree(
            "W.npy",
            "W or H holds a negative or non-finite value".into(),
        ));
    }
    let names: Vec<String> = (0..faces.x.ncols()).map(|j| faces.name(j)).collect();
    if (faces.height, faces.width) != (run.height, run.width) || names != run.files {
        let first = names
            .iter()
            .zip(&run.files)
            .position(|(a, b)| a != b)
            .map(|j| format!("; face {} was {}, is now {}", j + 1, run.files[j], names[j]))
            .unwrap_or_default();
        return Err(Error::Model {
            path: faces.root.clone(),
            reason: format!(
                "holds {} faces of {}x{}, but the run in {} was learned from {} of {}x{}{first}; \
                 the folder has changed since, so its report cannot be rebuilt",
                names.len(),
                faces.width,
                faces.height,
                dir.display(),
                run.files.len(),
                run.width,
                run.height
            ),
        });
    }
    if let Some(look) = look {
        run.display = look;
    }
    let (errors, _) = crate::nmf::column_errors(&faces.x.view(), &w.view(), &h.view());
    let samples = run.reconstructions.len();
    let report = build_report(
        &faces.x.view(),
        &w.view(),
        &h.view(),
        &errors,
        &run,
        samples,
    )?;
    let mut written = Vec::new();
    for (name, png) in &report.pictures {
        write_atomic(&dir.join(name), png)?;
        written.push(dir.join(name));
    }
    if look.is_some() {
        let path = dir.join("run.json");
        record["display"] = serde_json::to_value(run.display).expect("look serialises");
        let json = serde_json::to_vec_pretty(&record).expect("run record serialises");
        write_atomic(&path, &json)?;
        written.push(path);
    }
    write_atomic(&dir.join(REPORT_FILE), report.html.as_bytes())?;
    written.push(dir.join(REPORT_FILE));
    Ok(written)
}

/// Names of the files [`write_projection`] writes.
pub const PROJECTION_FILES: [&str; 4] = ["reconstructions.png", "H.npy", "run.json", REPORT_FILE];

/// What `project`'s run.json records.
#[derive(Debug, serde::Serialize)]
struct ProjectionRecord<'a> {
    facenmf: &'static str,
    model: String,
    model_trained_on: &'a str,
    model_solver: &'a str,
    folder: String,
    images: usize,
    height: usize,
    width: usize,
    rank: usize,
    precision: &'static str,
    alpha_h: f64,
    l1_ratio: f64,
    method: &'static str,
    tol: f64,
    kkt: f64,
    refined: usize,
    sweeps: usize,
    seconds: f64,
    rel_error: f64,
    faces: Vec<ReconstructionRecord>,
    skipped: Vec<SkippedRecord>,
}

/// Writes a projection of `faces` onto `model` into `dir`, as one set (see
/// [`prepare_output_dir`]): `H.npy` (rank x images), `run.json` (the model, the tolerance and
/// what was reached, each face's file and relative error), `reconstructions.png`
/// (`samples` faces beside their reconstructions) and `report.html` (the same on one page, with
/// the worst-explained faces). Returns the paths written.
///
/// # Errors
/// The folder cannot take the outputs or a file cannot be written; `dir` is then untouched.
pub fn write_projection<T: Float>(
    dir: &Path,
    faces: &Faces<T>,
    model: &Model<T>,
    projection: &Projection<T>,
    samples: usize,
    seconds: f64,
) -> Result<Vec<PathBuf>> {
    write_as_set(dir, |staged| {
        let indices = sample_indices(faces.x.ncols(), samples);
        let (grid, _) = reconstruction_grid(
            &faces.x.view(),
            &model.w.view(),
            &projection.h.view(),
            faces.height,
            faces.width,
            &indices,
        );
        let png_path = staged.join(PROJECTION_FILES[0]);
        let png = png_bytes(&png_path, &grid.into())?;
        write_atomic(&png_path, &png)?;
        npy::write(&staged.join(PROJECTION_FILES[1]), &projection.h.view())?;
        let record = ProjectionRecord {
            facenmf: env!("CARGO_PKG_VERSION"),
            model: model.dir.display().to_string(),
            model_trained_on: &model.trained_on,
            model_solver: &model.solver,
            folder: faces.root.display().to_string(),
            images: faces.x.ncols(),
            height: faces.height,
            width: faces.width,
            rank: model.rank(),
            precision: T::NAME,
            alpha_h: model.alpha_h,
            l1_ratio: model.l1_ratio,
            method: "nonnegative least squares: block principal pivoting, checked by the KKT \
                     conditions, refined by coordinate descent where needed",
            tol: projection.tol,
            kkt: projection.kkt,
            refined: projection.refined,
            sweeps: projection.sweeps,
            seconds,
            rel_error: projection.rel_error,
            faces: projection
                .rel_errors
                .iter()
                .enumerate()
                .map(|(index, &rel_error)| ReconstructionRecord {
                    index,
                    file: faces.name(index),
                    rel_error,
                })
                .collect(),
            skipped: faces
                .skipped
                .iter()
                .map(|s| SkippedRecord {
                    file: s.name(),
                    reason: s.reason.to_string(),
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&record).expect("projection record serialises");
        write_atomic(&staged.join(PROJECTION_FILES[2]), &json)?;
        let page = pages::projection_page(faces, model, projection, &png, seconds);
        write_atomic(&staged.join(PROJECTION_FILES[3]), page.as_bytes())
    })?;
    Ok(PROJECTION_FILES.iter().map(|n| dir.join(n)).collect())
}

/// Names of the files [`write_rank_study`] writes.
pub const RANK_FILES: [&str; 3] = ["rank.png", "rank.json", REPORT_FILE];

/// Writes a rank study into `dir` as one set: `rank.json` (every fit, the per-rank summary,
/// `chosen_rank` and `one_se_rank`, and the study's settings), `rank.png` and `report.html`.
///
/// # Errors
/// The folder cannot take the outputs or a file cannot be written; `dir` is then untouched.
pub fn write_rank_study<T: Float>(
    dir: &Path,
    faces: &Faces<T>,
    study: &crate::eval::RankStudy,
    report: &crate::eval::RankReport,
    params: &Nmf,
) -> Result<Vec<PathBuf>> {
    #[derive(serde::Serialize)]
    struct Record<'a> {
        facenmf: &'static str,
        folder: String,
        images: usize,
        height: usize,
        width: usize,
        precision: &'static str,
        ranks: &'a [usize],
        replicates: usize,
        holdout: f64,
        heldout_faces: f64,
        seed: u64,
        params: &'a Nmf,
        chosen_rank: usize,
        one_se_rank: usize,
        summary: &'a [crate::eval::RankSummary],
        fits: &'a [crate::eval::RankFit],
    }
    write_as_set(dir, |staged| {
        let png_path = staged.join(RANK_FILES[0]);
        let png = png_bytes(&png_path, &rank_plot(report)?.into())?;
        write_atomic(&png_path, &png)?;
        let record = Record {
            facenmf: env!("CARGO_PKG_VERSION"),
            folder: faces.root.display().to_string(),
            images: faces.x.ncols(),
            height: faces.height,
            width: faces.width,
            precision: T::NAME,
            ranks: &study.ranks,
            replicates: study.replicates,
            holdout: study.holdout,
            heldout_faces: study.heldout_faces,
            seed: study.seed,
            params,
            chosen_rank: report.chosen_rank,
            one_se_rank: report.one_se_rank,
            summary: &report.summary,
            fits: &report.fits,
        };
        let json = serde_json::to_vec_pretty(&record).expect("rank record serialises");
        write_atomic(&staged.join(RANK_FILES[1]), &json)?;
        let page = pages::rank_page(faces, study, report, &png);
        write_atomic(&staged.join(RANK_FILES[2]), page.as_bytes())
    })?;
    Ok(RANK_FILES.iter().map(|n| dir.join(n)).collect())
}
