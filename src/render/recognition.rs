//! What `recognize` writes: recognition.json and confusion.png.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::canvas::{heat_map, labelled_grid};
use super::report::encode;
use super::{write_as_set, write_atomic};
use crate::eval::{MethodScore, Recognition, RecognitionReport, Split, confusion};
use crate::{Faces, Float, Nmf, Result};

/// Names of the files [`write_recognition`] writes.
pub const RECOGNITION_FILES: [&str; 3] = ["confusion.png", "recognition.json", super::REPORT_FILE];

#[derive(serde::Serialize)]
struct Record<'a> {
    facenmf: &'static str,
    folder: String,
    images: usize,
    height: usize,
    width: usize,
    people: usize,
    split: String,
    occlusion: Option<String>,
    hidden_pixels: usize,
    rank: usize,
    pca_rank: usize,
    solver: String,
    params: &'a Nmf,
    nmf_train_error: f64,
    nmf_iterations: usize,
    seconds: f64,
    methods: Vec<MethodRecord>,
    train_files: Vec<String>,
    test_files: Vec<String>,
    faces: Vec<FaceRecord<'a>>,
}

#[derive(serde::Serialize)]
struct MethodRecord {
    method: &'static str,
    distance: &'static str,
    accuracy: f64,
    correct: usize,
    total: usize,
}

#[derive(serde::Serialize)]
struct FaceRecord<'a> {
    file: String,
    person: &'a str,
    predicted: BTreeMap<String, &'a str>,
}

/// Writes a recognition test into `dir` as one set: `recognition.json` (the split, every
/// method's accuracy, the training and test files, each test face's prediction by each method),
/// `report.html` (the same on one page) and `confusion.png` (true identity down, identity given across, for NMF's and PCA's better
/// distance). Returns the paths written.
///
/// # Errors
/// The folder cannot take the outputs or a file cannot be written; `dir` is then untouched.
pub fn write_recognition<T: Float>(
    dir: &Path,
    faces: &Faces<T>,
    study: &Recognition,
    report: &RecognitionReport,
    params: &Nmf,
    seconds: f64,
) -> Result<Vec<PathBuf>> {
    let best = |method: &str| -> &MethodScore {
        report
            .scores
            .iter()
            .filter(|s| s.method == method)
            .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
            .expect("every method is scored")
    };
    let people = report.people.len();
    let cell = (480 / people.max(1)).clamp(3, 24) as u32;
    let maps: Vec<(image::RgbImage, String)> = ["nmf", "pca"]
        .iter()
        .map(|m| {
            let s = best(m);
            (
                heat_map(&confusion(report, s), people, cell),
                format!(
                    "{} ({}): {:.1}%",
                    m.to_uppercase(),
                    s.distance,
                    100.0 * s.accuracy
                ),
            )
        })
        .collect();
    let png = encode(&labelled_grid(&maps, 2, [255, 255, 255]))?;
    let record = Record {
        facenmf: env!("CARGO_PKG_VERSION"),
        folder: faces.root.display().to_string(),
        images: faces.x.ncols(),
        height: faces.height,
        width: faces.width,
        people,
        split: match study.split {
            Split::First(k) => format!("the first {k} of each person train"),
            Split::Fraction(f) => {
                format!(
                    "a fraction {f} of each person trains, drawn from seed {}",
                    study.seed
                )
            }
        },
        occlusion: study.occlusion.map(|o| o.to_string()),
        hidden_pixels: report.known.iter().filter(|k| !**k).count(),
        rank: report.rank,
        pca_rank: report.pca_rank,
        solver: params.solver.to_string(),
        params,
        nmf_train_error: report.nmf_train_error,
        nmf_iterations: report.nmf_iterations,
        seconds,
        methods: report
            .scores
            .iter()
            .map(|s| MethodRecord {
                method: s.method,
                distance: s.distance,
                accuracy: s.accuracy,
                correct: s.correct,
                total: report.test.len(),
            })
            .collect(),
        train_files: report.train.iter().map(|&j| faces.name(j)).collect(),
        test_files: report.test.iter().map(|&j| faces.name(j)).collect(),
        faces: report
            .test
            .iter()
            .enumerate()
            .map(|(t, &j)| FaceRecord {
                file: faces.name(j),
                person: &report.people[report.identity[j]],
                predicted: report
                    .scores
                    .iter()
                    .map(|s| {
                        (
                            format!("{}/{}", s.method, s.distance),
                            report.people[s.predictions[t]].as_str(),
                        )
                    })
                    .collect(),
            })
            .collect(),
    };
    write_as_set(dir, |staged| {
        write_atomic(&staged.join(RECOGNITION_FILES[0]), &png)?;
        let json = serde_json::to_vec_pretty(&record).expect("recognition record serialises");
        write_atomic(&staged.join(RECOGNITION_FILES[1]), &json)?;
        let page = super::pages::recognition_page(faces, study, report, &png, seconds);
        write_atomic(&staged.join(RECOGNITION_FILES[2]), page.as_bytes())
    })?;
    Ok(RECOGNITION_FILES.iter().map(|n| dir.join(n)).collect())
}
