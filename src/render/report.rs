//! The report: every picture of a run, and what they say, in one self-contained HTML page.
//!
//! The page is built from what the output folder holds (run.json, W, H) and the faces, so that
//! `learn` and `facenmf report OUT` build the same page. Its pictures are PNGs inlined as
//! `data:` addresses and also written beside it; it has no script and fetches nothing.

use image::RgbImage;
use ndarray::{Array1, ArrayView2, Axis};
use rayon::prelude::*;

use super::canvas::{
    face_tile, heat_map, histogram, labelled_grid, part_tile, scale_for, side_by_side, stacked,
};
use super::html::Page;
use super::look::Look;
use super::{Iteration, sample_indices};
use crate::baselines::{KMeans, Pca, pca_and_kmeans};
use crate::{CoarseLevel, Error, Float, Result};

/// The pictures the report shows, as the files they are also written to.
pub const REPORT_PICTURES: [&str; 8] = [
    "basis.png",
    "components.png",
    "similarity.png",
    "reconstructions.png",
    "worst.png",
    "convergence.png",
    "anatomy.png",
    "comparison.png",
];

/// The report page's file name.
pub const REPORT_FILE: &str = "report.html";

/// Faces listed as the worst explained.
const WORST: usize = 8;
/// Faces shown as using a part most.
const TOP_FACES: usize = 6;
/// Parts an anatomy of a face adds up.
const ANATOMY_PARTS: usize = 8;
/// Pairs of parts listed as the most alike.
const ALIKE_PAIRS: usize = 5;
/// The frame between tiles of faces: gray, so that such pictures stay grayscale.
const FRAME: [u8; 3] = [200, 200, 200];
/// Cosine above which two parts are called near duplicates.
const DUPLICATE_COSINE: f64 = 0.9;

/// A run as its run.json records it: what the report says about it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RunSummary {
    /// The folder the faces came from.
    pub folder: String,
    /// Faces fitted.
    pub images: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Rank of the fit.
    pub rank: usize,
    /// Solver name.
    pub solver: String,
    /// The start (initialisation, or what it started from).
    pub init: String,
    /// f32 or f64.
    pub precision: String,
    /// The loss fitted.
    pub loss: String,
    /// The seed.
    pub seed: u64,
    /// Iterations run.
    pub iterations: usize,
    /// Seconds the fit took.
    pub seconds: f64,
    /// Final relative error.
    pub rel_error: f64,
    /// The error on hidden entries, for a missing-data fit.
    pub hidden_error: Option<f64>,
    /// The final divergence, for a loss other than Frobenius.
    pub divergence: Option<f64>,
    /// Why the fit stopped.
    pub stop: String,
    /// Whether the tolerance was met.
    pub converged: bool,
    /// Components restarted.
    pub restarts: usize,
    /// What the fit warned of.
    pub warnings: Vec<String>,
    /// Hoyer sparseness of W and H.
    pub sparseness_w: f64,
    /// Hoyer sparseness of H.
    pub sparseness_h: f64,
    /// The coarse levels of a multilevel start.
    pub coarse_levels: Vec<CoarseLevel>,
    /// The convergence history.
    pub history: Vec<Iteration>,
    /// Each column's file, relative to the folder.
    pub files: Vec<String>,
    /// Files left out, with why.
    #[serde(default)]
    pub skipped: Vec<SkippedSummary>,
    /// The display chosen.
    #[serde(default)]
    pub display: Look,
    /// The `--resize` the faces were loaded with, width and height.
    #[serde(default)]
    pub resize: Option<[u32; 2]>,
    /// What was done to each face after decoding.
    #[serde(default)]
    pub preprocess: crate::Preprocess,
    /// The faces shown beside their reconstructions.
    #[serde(default)]
    pub reconstructions: Vec<ShownFace>,
    /// The facenmf version that wrote it.
    pub facenmf: String,
}

/// A face shown beside its reconstruction.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ShownFace {
    /// Its column.
    pub index: usize,
    /// Its relative error.
    pub rel_error: f64,
}

/// A file the loader left out.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SkippedSummary {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// A built report: the page and its pictures as PNG files.
#[derive(Debug, Clone)]
pub struct Report {
    /// The HTML page.
    pub html: String,
    /// Each picture's file name and PNG bytes, in [`REPORT_PICTURES`] order.
    pub pictures: Vec<(&'static str, Vec<u8>)>,
}

/// Builds the report of a fit of `x` (pixels x faces) as W (m x r) and H (r x n), whose run
/// is `run` and whose faces' relative errors are `errors`; `samples` faces are shown beside
/// their reconstructions.
///
/// # Errors
/// Factors that do not match X or `run`, or a picture that cannot be drawn or encoded.
pub fn build_report<T: Float>(
    x: &ArrayView2<T>,
    w: &ArrayView2<T>,
    h: &ArrayView2<T>,
    errors: &[f64],
    run: &RunSummary,
    samples: usize,
) -> Result<Report> {
    let (m, n) = x.dim();
    let r = w.ncols();
    if w.nrows() != m || h.dim() != (r, n) || errors.len() != n || m != run.height * run.width {
        return Err(Error::param(
            "report",
            format!(
                "the factors do not fit the faces: X is {m} x {n}, W {} x {r}, H {} x {}, \
                 images {}x{}",
                w.nrows(),
                h.nrows(),
                h.ncols(),
                run.width,
                run.height
            ),
        ));
    }
    let parts = Parts::new(w, h);
    let sections = Sections {
        x,
        w,
        h,
        errors,
        run,
        parts: &parts,
    };
    // The baselines are the slow part on large folders: they run beside the pictures.
    let (baselines, pictures) = rayon::join(
        || Baselines::fit(x, w, h, run),
        || {
            let mut page = Page::new(run);
            sections
                .nmf_pictures(&mut page, samples)
                .map(|files| (page, files))
        },
    );
    let baselines = baselines?;
    let (mut page, mut files) = pictures?;
    let comparison = sections.comparison(&mut page, &baselines)?;
    files.push(("comparison.png", comparison));
    Ok(Report {
        html: page.finish(),
        pictures: files,
    })
}

/// What is said of each part: its share of the reconstruction and how alike the parts are.
struct Parts {
    /// Share of each part, `||w_k|| ||h_k||` over their sum.
    shares: Vec<f64>,
    /// `||w_k||`.
    w_norms: Vec<f64>,
    /// Cosines between basis images, r x r row-major.
    cosines: Vec<f64>,
}

impl Parts {
    fn new<T: Float>(w: &ArrayView2<T>, h: &ArrayView2<T>) -> Parts {
        let r = w.ncols();
        let wf = w.mapv(|v| v.to_f64());
        let gram = wf.t().dot(&wf);
        let w_norms: Vec<f64> = (0..r).map(|k| gram[[k, k]].sqrt()).collect();
        let h_norms: Vec<f64> = h
            .rows()
            .into_iter()
            .map(|row| row.iter().map(|v| v.to_f64().powi(2)).sum::<f64>().sqrt())
            .collect();
        let raw: Vec<f64> = w_norms.iter().zip(&h_norms).map(|(a, b)| a * b).collect();
        let total: f64 = raw.iter().sum();
        let shares = raw
            .iter()
            .map(|s| if total > 0.0 { s / total } else { 0.0 })
            .collect();
        let cosines = (0..r * r)
            .map(|e| {
                let (i, j) = (e / r, e % r);
                let d = w_norms[i] * w_norms[j];
                if d > 0.0 { gram[[i, j]] / d } else { 0.0 }
            })
            .collect();
        Parts {
            shares,
            w_norms,
            cosines,
        }
    }

    /// The most alike pairs of distinct parts, most alike first.
    fn most_alike(&self, count: usize) -> Vec<(usize, usize, f64)> {
        let r = self.shares.len();
        let mut pairs: Vec<(usize, usize, f64)> = (0..r)
            .flat_map(|i| (i + 1..r).map(move |j| (i, j)))
            .map(|(i, j)| (i, j, self.cosines[i * r + j]))
            .collect();
        pairs.sort_by(|a, b| b.2.total_cmp(&a.2));
        pairs.truncate(count);
        pairs
    }
}

/// PCA and VQ at the fit's rank, on at most [`BASELINE_FACES`] faces.
struct Baselines {
    pca: Pca,
    vq: KMeans,
    /// Faces they were fitted on, spread evenly over the folder (all of them up to the cap).
    faces: usize,
    /// NMF's relative error on those same faces.
    nmf_error: f64,
}

/// The baselines are fitted on at most this many faces (evenly spread), so that their cost
/// stays bounded on large folders; NMF's error is then given on the same faces.
pub const BASELINE_FACES: usize = 2500;

impl Baselines {
    fn fit<T: Float>(
        x: &ArrayView2<T>,
        w: &ArrayView2<T>,
        h: &ArrayView2<T>,
        run: &RunSummary,
    ) -> Result<Baselines> {
        let (m, n) = x.dim();
        let (sample, nmf_error) = if n > BASELINE_FACES {
            let picked = sample_indices(n, BASELINE_FACES);
            let xs = x.select(Axis(1), &picked);
            let hs = h.select(Axis(1), &picked);
            let (_, error) = crate::nmf::column_errors(&xs.view(), w, &hs.view());
            (Some(xs), error)
        } else {
            (None, run.rel_error)
        };
        let xs = sample.as_ref().map_or(x.view(), |s| s.view());
        let faces = xs.ncols();
        // A rank above what the faces allow (an over-complete fit) is shown at that most.
        let rank = run.rank.min(m).min(faces);
        let (pca, vq) = pca_and_kmeans(&xs, rank, run.rank.min(faces), run.seed)?;
        Ok(Baselines {
            pca,
            vq,
            faces,
            nmf_error,
        })
    }
}

/// The report's sections, each writing its part of the page and returning its picture.
struct Sections<'a, T> {
    x: &'a ArrayView2<'a, T>,
    w: &'a ArrayView2<'a, T>,
    h: &'a ArrayView2<'a, T>,
    errors: &'a [f64],
    run: &'a RunSummary,
    parts: &'a Parts,
}

impl<T: Float> Sections<'_, T> {
    fn look(&self) -> Look {
        self.run.display
    }

    fn shape(&self) -> (usize, usize) {
        (self.run.height, self.run.width)
    }

    fn part(&self, k: usize, side: usize) -> RgbImage {
        let (height, width) = self.shape();
        let scale = scale_for(height, width, side);
        part_tile(&self.w.column(k), height, width, scale, self.look())
    }

    fn face(&self, pixels: &ndarray::ArrayView1<T>, side: usize) -> RgbImage {
        let (height, width) = self.shape();
        face_tile(pixels, height, width, scale_for(height, width, side))
    }

    fn rebuilt(&self, j: usize) -> Array1<T> {
        self.w.dot(&self.h.column(j))
    }

    fn pair(&self, j: usize, side: usize) -> RgbImage {
        let rebuilt = self.rebuilt(j);
        side_by_side(&[
            self.face(&self.x.column(j), side),
            self.face(&rebuilt.view(), side),
        ])
    }

    /// Every picture but the comparison, each section written into `page`.
    fn nmf_pictures(
        &self,
        page: &mut Page,
        samples: usize,
    ) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let basis = self.basis(page)?;
        let components = self.components(page)?;
        let similarity = self.similarity(page)?;
        let reconstructions = self.reconstructions(page, samples)?;
        let worst = self.worst(page)?;
        let convergence = self.convergence(page)?;
        let anatomy = self.anatomy(page)?;
        Ok(vec![
            ("basis.png", basis),
            ("components.png", components),
            ("similarity.png", similarity),
            ("reconstructions.png", reconstructions),
            ("worst.png", worst),
            ("convergence.png", convergence),
            ("anatomy.png", anatomy),
        ])
    }

    fn basis(&self, page: &mut Page) -> Result<Vec<u8>> {
        let r = self.w.ncols();
        let tiles: Vec<(RgbImage, String)> = (0..r)
            .into_par_iter()
            .map(|k| {
                let label = format!("#{} {:.1}%", k + 1, 100.0 * self.parts.shares[k]);
                (self.part(k, 64), label)
            })
            .collect();
        let cols = (r as f64).sqrt().ceil() as usize;
        let grid = labelled_grid(&tiles, cols, self.look().palette.separator());
        let png = encode(&grid)?;
        page.section("parts", "The parts, by share of the reconstruction");
        page.paragraph(&format!(
            "The {r} basis images (columns of W), largest share first. A part's share is \
             ||w<sub>k</sub>|| ||h<sub>k</sub>|| over the sum of them all. Each tile is scaled \
             to {} of its own values ({}; display: {}).",
            match self.look().tile_scale {
                super::TileScale::Max => "the largest".to_string(),
                super::TileScale::Percentile(p) => format!("the {p}th percentile"),
            },
            self.look().tile_scale,
            self.look().palette,
        ));
        page.picture("basis.png", &png, "the basis images, by share");
        Ok(png)
    }

    fn components(&self, page: &mut Page) -> Result<Vec<u8>> {
        let (r, n) = self.h.dim();
        let strips: Vec<(RgbImage, String)> = (0..r)
            .into_par_iter()
            .map(|k| {
                let row: Vec<f64> = self.h.row(k).iter().map(|v| v.to_f64()).collect();
                let top = row.iter().fold(0.0f64, |a, &v| a.max(v));
                let used = row.iter().filter(|&&v| v > 0.01 * top).count();
                let mut order: Vec<usize> = (0..n).collect();
                let shown = TOP_FACES.min(n);
                if shown < n {
                    order.select_nth_unstable_by(shown - 1, |&a, &b| row[b].total_cmp(&row[a]));
                }
                order.truncate(shown);
                order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                let large = self.part(k, 112);
                let side = large.height();
                let hist = histogram(&row, 32, 224, side);
                let faces: Vec<RgbImage> = order
                    .iter()
                    .map(|&j| self.face(&self.x.column(j), 56))
                    .collect();
                let strip = side_by_side(&[large, hist, side_by_side(&faces)]);
                let text = format!(
                    "#{}: share {:.1}%, used by {:.0}% of the faces (coefficient above 1% of its \
                     largest, {:.3}); the faces that use it most: {}",
                    k + 1,
                    100.0 * self.parts.shares[k],
                    100.0 * used as f64 / n.max(1) as f64,
                    top,
                    order
                        .iter()
                        .map(|&j| self.run.files[j].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                (strip, text)
            })
            .collect();
        page.section("components", "Each part");
        page.paragraph(
            "For each part: the basis image large, the distribution of its coefficients over \
             the faces (counts on a square-root scale), and the faces that use it most.",
        );
        let encoded: Vec<Vec<u8>> = strips
            .par_iter()
            .map(|(img, _)| encode(img))
            .collect::<Result<_>>()?;
        for (k, ((_, text), png)) in strips.iter().zip(&encoded).enumerate() {
            page.detail(
                &format!("Part #{} ({:.1}%)", k + 1, 100.0 * self.parts.shares[k]),
                text,
                png,
            );
        }
        let all: Vec<RgbImage> = strips.into_iter().map(|(img, _)| img).collect();
        encode(&stacked(&all))
    }

    fn similarity(&self, page: &mut Page) -> Result<Vec<u8>> {
        let r = self.w.ncols();
        let cell = (480 / r.max(1)).clamp(3, 24) as u32;
        let png = encode(&heat_map(&self.parts.cosines, r, cell))?;
        let alike = self.parts.most_alike(ALIKE_PAIRS);
        let pairs = r * (r.saturating_sub(1)) / 2;
        let duplicates = self
            .parts
            .most_alike(pairs)
            .iter()
            .filter(|p| p.2 >= DUPLICATE_COSINE)
            .count();
        page.section("similarity", "Are the parts distinct?");
        page.paragraph(&format!(
            "Cosine similarity of every pair of basis images (white 0, dark blue 1). {}",
            if duplicates == 0 {
                format!(
                    "None of the {pairs} pairs is above {DUPLICATE_COSINE}: the parts are \
                     distinct."
                )
            } else {
                format!(
                    "{duplicates} of the {pairs} pairs are above {DUPLICATE_COSINE}: those parts \
                     are near duplicates, and a lower rank may serve as well."
                )
            }
        ));
        page.picture(
            "similarity.png",
            &png,
            "cosine similarity of the basis images",
        );
        let rows: Vec<Vec<String>> = alike
            .iter()
            .map(|&(i, j, c)| {
                vec![
                    format!("#{}", i + 1),
                    format!("#{}", j + 1),
                    format!("{c:.3}"),
                ]
            })
            .collect();
        page.table(&["part", "part", "cosine"], &rows, "The most alike pairs");
        Ok(png)
    }

    fn reconstructions(&self, page: &mut Page, samples: usize) -> Result<Vec<u8>> {
        let n = self.x.ncols();
        let indices = sample_indices(n, samples);
        let png = self.pairs_picture(&indices)?;
        page.section("reconstructions", "Faces and their reconstructions");
        page.paragraph(&format!(
            "{} faces spread over the folder, each beside W h (its reconstruction from the \
             parts), with its relative error ||x - Wh|| / ||x||. Over all {n} faces the error \
             is {:.4}; the median face's is {:.4}.",
            indices.len(),
            self.run.rel_error,
            median(self.errors)
        ));
        page.picture(
            "reconstructions.png",
            &png,
            "faces beside their reconstructions",
        );
        self.face_table(page, &indices, "The faces shown");
        Ok(png)
    }

    fn worst(&self, page: &mut Page) -> Result<Vec<u8>> {
        let mut order: Vec<usize> = (0..self.errors.len()).collect();
        order.sort_by(|&a, &b| self.errors[b].total_cmp(&self.errors[a]));
        order.truncate(WORST);
        let png = self.pairs_picture(&order)?;
        page.section("worst", "The worst-explained faces");
        page.paragraph(
            "The faces the parts rebuild worst: often an odd pose, lighting or framing, or a \
             file that is not a face.",
        );
        page.picture("worst.png", &png, "the worst-explained faces");
        self.face_table(page, &order, "The worst-explained faces");
        Ok(png)
    }

    fn pairs_picture(&self, indices: &[usize]) -> Result<Vec<u8>> {
        let tiles: Vec<(RgbImage, String)> = indices
            .par_iter()
            .map(|&j| {
                (
                    self.pair(j, 64),
                    format!("{}: {:.3}", j + 1, self.errors[j]),
                )
            })
            .collect();
        let cols = (tiles.len() as f64).sqrt().ceil() as usize;
        encode(&labelled_grid(&tiles, cols, FRAME))
    }

    fn face_table(&self, page: &mut Page, indices: &[usize], caption: &str) {
        let rows: Vec<Vec<String>> = indices
            .iter()
            .map(|&j| {
                vec![
                    format!("{}", j + 1),
                    self.run.files[j].clone(),
                    format!("{:.4}", self.errors[j]),
                ]
            })
            .collect();
        page.table(&["face", "file", "relative error"], &rows, caption);
    }

    fn convergence(&self, page: &mut Page) -> Result<Vec<u8>> {
        let plot = super::convergence_plot(
            &[("facenmf", &self.run.history)],
            None,
            &self.run.coarse_levels,
        )?;
        let png = encode(&plot)?;
        page.section("convergence", "Convergence");
        page.paragraph(&format!(
            "Relative error after each iteration, against the iteration and against time \
             (the start included). {} iterations in {}; stopped: {}.",
            self.run.iterations,
            seconds(self.run.seconds),
            super::html::escape(&self.run.stop)
        ));
        page.picture(
            "convergence.png",
            &png,
            "relative error against iteration and time",
        );
        if !self.run.coarse_levels.is_empty() {
            let rows: Vec<Vec<String>> = self
                .run
                .coarse_levels
                .iter()
                .map(|l| {
                    vec![
                        l.to_string(),
                        l.iterations.to_string(),
                        format!("{:.4}", l.rel_error),
                        seconds(l.seconds),
                    ]
                })
                .collect();
            page.table(
                &["coarse level", "iterations", "relative error", "ended at"],
                &rows,
                "The multilevel start: coarse fits (fewer pixels, or a sample of the images) \
                 before the full one (dashed on the time panel)",
            );
        }
        Ok(png)
    }

    fn anatomy(&self, page: &mut Page) -> Result<Vec<u8>> {
        let n = self.x.ncols();
        // The face of median error: a typical face, not the best or the worst.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| self.errors[a].total_cmp(&self.errors[b]));
        let j = order[n / 2];
        let coefficients: Vec<f64> = self.h.column(j).iter().map(|v| v.to_f64()).collect();
        let mut strongest: Vec<usize> = (0..coefficients.len()).collect();
        strongest.sort_by(|&a, &b| {
            let weight = |k: usize| coefficients[k] * self.parts.w_norms[k];
            weight(b).total_cmp(&weight(a))
        });
        strongest.truncate(ANATOMY_PARTS.min(coefficients.len()));
        let original = self.x.column(j);
        let norm = original
            .iter()
            .map(|v| v.to_f64().powi(2))
            .sum::<f64>()
            .sqrt();
        let mut sum = Array1::<T>::zeros(self.x.nrows());
        let (mut parts_row, mut sums_row) = (Vec::new(), Vec::new());
        for (t, &k) in strongest.iter().enumerate() {
            let hk = T::from_f64(coefficients[k]);
            sum.zip_mut_with(&self.w.column(k), |s, &v| *s += hk * v);
            let err = relative(&original, &sum.view(), norm);
            parts_row.push((
                self.part(k, 64),
                format!("#{} x {:.3}", k + 1, coefficients[k]),
            ));
            sums_row.push((
                self.face(&sum.view(), 64),
                format!(
                    "{} part{}: {:.3}",
                    t + 1,
                    if t == 0 { "" } else { "s" },
                    err
                ),
            ));
        }
        let rebuilt = self.rebuilt(j);
        parts_row.push((self.face(&original, 64), "the face".to_string()));
        sums_row.push((
            self.face(&rebuilt.view(), 64),
            format!("all {}: {:.3}", coefficients.len(), self.errors[j]),
        ));
        let cols = parts_row.len();
        let mut tiles = parts_row;
        tiles.extend(sums_row);
        let png = encode(&labelled_grid(&tiles, cols, FRAME))?;
        page.section("anatomy", "Anatomy of a face");
        page.paragraph(&format!(
            "Face {} ({}, the face of median error) as the sum of its strongest parts. Top \
             row: the parts with their coefficients, strongest first (by h<sub>k</sub> \
             ||w<sub>k</sub>||), and the face itself. Bottom row: the sum of the first one, \
             two, ... parts, with the relative error of each sum, and the whole \
             reconstruction.",
            j + 1,
            super::html::escape(&self.run.files[j])
        ));
        page.picture("anatomy.png", &png, "one face as a sum of parts");
        Ok(png)
    }

    fn comparison(&self, page: &mut Page, baselines: &Baselines) -> Result<Vec<u8>> {
        let (height, width) = self.shape();
        let r = self.w.ncols();
        let side = 40;
        let scale = scale_for(height, width, side);
        let look = self.look();
        let cols = (r as f64).sqrt().ceil() as usize;
        let label = |k: usize| format!("{}", k + 1);
        let nmf: Vec<(RgbImage, String)> = (0..r).map(|k| (self.part(k, side), label(k))).collect();
        let pca: Vec<(RgbImage, String)> = (0..baselines.pca.components.ncols())
            .map(|k| {
                let c = baselines.pca.components.column(k);
                (part_tile(&c, height, width, scale, look), label(k))
            })
            .collect();
        let vq: Vec<(RgbImage, String)> = (0..baselines.vq.centroids.ncols())
            .map(|k| {
                let c = baselines.vq.centroids.column(k);
                (face_tile(&c, height, width, scale), label(k))
            })
            .collect();
        let separator = look.palette.separator();
        let grids = [
            (
                labelled_grid(&nmf, cols, separator),
                format!("NMF: error {:.4}", baselines.nmf_error),
            ),
            (
                labelled_grid(&pca, cols, separator),
                format!("PCA: error {:.4}", baselines.pca.rel_error),
            ),
            (
                labelled_grid(&vq, cols, separator),
                format!("VQ: error {:.4}", baselines.vq.rel_error),
            ),
        ];

        // One face rebuilt by each.
        let j = sample_indices(self.x.ncols(), 1)[0];
        let original = self.x.column(j);
        let norm = original
            .iter()
            .map(|v| v.to_f64().powi(2))
            .sum::<f64>()
            .sqrt();
        let nmf_face = self.rebuilt(j);
        let pca_face = baselines
            .pca
            .components
            .dot(&baselines.pca.coefficients.column(j));
        let vq_face = baselines
            .vq
            .centroids
            .column(baselines.vq.assignment[j])
            .to_owned();
        let big = 96;
        let baseline_face = |pixels: &ndarray::ArrayView1<f64>, method: &str| {
            (
                face_tile(pixels, height, width, scale_for(height, width, big)),
                format!("{method} {:.3}", relative_f64(&original, pixels, norm)),
            )
        };
        let faces = [
            (self.face(&original, big), "the face".to_string()),
            (
                self.face(&nmf_face.view(), big),
                format!("NMF {:.3}", relative(&original, &nmf_face.view(), norm)),
            ),
            baseline_face(&pca_face.view(), "PCA"),
            baseline_face(&vq_face.view(), "VQ"),
        ];
        let grids_png: Vec<Vec<u8>> = grids
            .iter()
            .map(|(g, _)| encode(g))
            .collect::<Result<_>>()?;
        let faces_img = labelled_grid(&faces, 4, FRAME);
        let faces_png = encode(&faces_img)?;
        let whole = stacked(&[labelled_grid(&grids, 3, [255, 255, 255]), faces_img]);
        let png = encode(&whole)?;

        let floor = baselines.pca.rel_error;
        let (pca_rank, vq_k) = (
            baselines.pca.components.ncols(),
            baselines.vq.centroids.ncols(),
        );
        let n = self.x.ncols();
        page.section("comparison", "NMF beside PCA and VQ");
        page.paragraph(&format!(
            "The same number of components found three ways, as in Lee &amp; Seung (Nature \
             401, 1999, Fig. 1). NMF: {r} parts that only add. PCA: {pca_rank} eigenfaces, the \
             rank-{pca_rank} truncated SVD of X (uncentred, as in that figure), whose error \
             {floor:.4} is the least any rank-{pca_rank} factorization can reach; negative \
             values in red. VQ: k-means with {vq_k} prototypes (k-means++ start, {} Lloyd \
             iterations), each face replaced by its nearest. NMF's error is {:.4}, {:.1}% above \
             the PCA floor.{}",
            baselines.vq.iterations,
            baselines.nmf_error,
            if floor > 0.0 {
                100.0 * (baselines.nmf_error / floor - 1.0)
            } else {
                0.0
            },
            if baselines.faces < n {
                format!(
                    " PCA and VQ were fitted on {} faces spread evenly over the {n}, and all \
                     three errors here are on those faces.",
                    baselines.faces
                )
            } else {
                String::new()
            }
        ));
        page.figures(
            &grids
                .iter()
                .zip(&grids_png)
                .map(|((_, caption), png)| (caption.as_str(), png.as_slice()))
                .collect::<Vec<_>>(),
        );
        page.paragraph(&format!(
            "Face {} ({}) rebuilt by each, with its relative error:",
            j + 1,
            super::html::escape(&self.run.files[j])
        ));
        page.picture(
            "comparison.png",
            &faces_png,
            "one face rebuilt by NMF, PCA and VQ",
        );
        Ok(png)
    }
}

fn relative<T: Float>(a: &ndarray::ArrayView1<T>, b: &ndarray::ArrayView1<T>, norm: f64) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.to_f64() - y.to_f64()).powi(2))
        .sum();
    if norm > 0.0 {
        diff.sqrt() / norm
    } else {
        diff.sqrt()
    }
}

fn relative_f64<T: Float>(
    a: &ndarray::ArrayView1<T>,
    b: &ndarray::ArrayView1<f64>,
    norm: f64,
) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x.to_f64() - y).powi(2)).sum();
    if norm > 0.0 {
        diff.sqrt() / norm
    } else {
        diff.sqrt()
    }
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1
}

/// Seconds as a person reads them: milliseconds below one.
pub(crate) fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.0} min {:.0} s", (s / 60.0).floor(), s % 60.0)
    }
}

/// PNG bytes of an RGB picture: 8-bit grayscale when it has no colour (faces, gray parts and
/// histograms), which takes a third of the bytes.
pub(crate) fn encode(img: &RgbImage) -> Result<Vec<u8>> {
    let gray = img.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]);
    let picture: image::DynamicImage = if gray {
        let luma: Vec<u8> = img.as_raw().chunks_exact(3).map(|p| p[0]).collect();
        image::GrayImage::from_raw(img.width(), img.height(), luma)
            .expect("one byte per pixel")
            .into()
    } else {
        img.clone().into()
    };
    super::png_bytes(std::path::Path::new(REPORT_FILE), &picture)
}
