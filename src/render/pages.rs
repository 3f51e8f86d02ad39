//! The report pages of the apply commands: `project`, `rank` and `recognize` each write a
//! `report.html` beside their files, self-contained as the learn report is.

use super::html::Page;
use super::report::seconds;
use crate::eval::{RankReport, RankStudy, Recognition, RecognitionReport, Split};
use crate::nmf::Projection;
use crate::{Faces, Float, Model};

/// Faces listed as the worst explained by a projection.
const WORST: usize = 10;

/// The page of a projection: what was projected onto what, to which tolerance, the faces
/// beside their reconstructions and the worst-explained faces.
pub(crate) fn projection_page<T: Float>(
    faces: &Faces<T>,
    model: &Model<T>,
    projection: &Projection<T>,
    reconstructions_png: &[u8],
    secs: f64,
) -> String {
    let mut page = Page::titled(format!(
        "facenmf: {} projected onto {}",
        faces.root.display(),
        model.dir.display()
    ));
    page.summary_table(&[
        ("model", model.dir.display().to_string()),
        ("model learned from", model.trained_on.clone()),
        ("model solver", model.solver.clone()),
        ("faces", faces.root.display().to_string()),
        ("images", faces.x.ncols().to_string()),
        ("size", format!("{}x{} pixels", faces.width, faces.height)),
        ("rank", model.rank().to_string()),
        (
            "method",
            "nonnegative least squares with W fixed (block principal pivoting, KKT-checked, \
             refined by coordinate descent where needed)"
                .to_string(),
        ),
        ("tolerance", format!("{:.1e}", projection.tol)),
        ("KKT measure reached", format!("{:.1e}", projection.kkt)),
        ("faces refined", projection.refined.to_string()),
        ("time", seconds(secs)),
        ("relative error", format!("{:.5}", projection.rel_error)),
    ]);
    page.section("reconstructions", "Faces and their reconstructions");
    page.paragraph(
        "Faces spread over the folder, each beside W h, its reconstruction from the model's parts.",
    );
    page.picture(
        "reconstructions.png",
        reconstructions_png,
        "faces beside their reconstructions",
    );
    let mut order: Vec<usize> = (0..projection.rel_errors.len()).collect();
    order.sort_by(|&a, &b| projection.rel_errors[b].total_cmp(&projection.rel_errors[a]));
    order.truncate(WORST);
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|&j| {
            vec![
                (j + 1).to_string(),
                faces.name(j),
                format!("{:.4}", projection.rel_errors[j]),
            ]
        })
        .collect();
    page.section("worst", "The worst-explained faces");
    page.paragraph(
        "Faces the model's parts rebuild worst: the first to look at when a projection is off.",
    );
    page.table(
        &["face", "file", "relative error"],
        &rows,
        "By relative error, worst first",
    );
    page.finish()
}

/// The page of a rank study: the settings, the picture, and each rank's errors.
pub(crate) fn rank_page<T: Float>(
    faces: &Faces<T>,
    study: &RankStudy,
    report: &RankReport,
    rank_png: &[u8],
) -> String {
    let mut page = Page::titled(format!(
        "facenmf: choosing the rank of {}",
        faces.root.display()
    ));
    page.summary_table(&[
        ("folder", faces.root.display().to_string()),
        ("images", faces.x.ncols().to_string()),
        ("size", format!("{}x{} pixels", faces.width, faces.height)),
        (
            "ranks tried",
            study
                .ranks
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("replicates", study.replicates.to_string()),
        (
            "pixels hidden per face",
            format!("{:.0}%", 100.0 * study.holdout),
        ),
        (
            "faces held out whole",
            format!("{:.0}%", 100.0 * study.heldout_faces),
        ),
        (
            "chosen rank (least mean test error)",
            report.chosen_rank.to_string(),
        ),
        (
            "one-SE rank (smallest within one standard error)",
            report.one_se_rank.to_string(),
        ),
    ]);
    page.section("errors", "Held-out error by rank");
    page.paragraph(
        "Each fit sees only the known pixels; the test error is on the hidden pixels of its \
         training faces, the held-out-face error on faces it never saw, projected afterwards.",
    );
    page.picture("rank.png", rank_png, "held-out error by rank");
    let rows: Vec<Vec<String>> = report
        .summary
        .iter()
        .map(|s| {
            vec![
                s.rank.to_string(),
                format!("{:.4} ± {:.4}", s.mean_test_error, s.se_test_error),
                s.mean_heldout_face_error
                    .map_or("-".to_string(), |e| format!("{e:.4}")),
                format!("{:.4}", s.mean_train_error),
            ]
        })
        .collect();
    page.table(
        &[
            "rank",
            "test error (hidden pixels)",
            "held-out faces",
            "training error",
        ],
        &rows,
        "Means over the replicates, with the standard error of the test error",
    );
    page.finish()
}

/// The page of a recognition test: the split, every method's accuracy and the confusions.
pub(crate) fn recognition_page<T: Float>(
    faces: &Faces<T>,
    study: &Recognition,
    report: &RecognitionReport,
    confusion_png: &[u8],
    secs: f64,
) -> String {
    let mut page = Page::titled(format!(
        "facenmf: recognising the people of {}",
        faces.root.display()
    ));
    page.summary_table(&[
        ("folder", faces.root.display().to_string()),
        ("people", report.people.len().to_string()),
        (
            "faces trained / tested",
            format!("{} / {}", report.train.len(), report.test.len()),
        ),
        (
            "split",
            match study.split {
                Split::First(k) => format!("the first {k} of each person (natural order) train"),
                Split::Fraction(f) => {
                    format!("{f} of each person's faces train (seed {})", study.seed)
                }
            },
        ),
        (
            "occlusion",
            study.occlusion.map_or("none".to_string(), |o| {
                format!("{o} hidden on every test face")
            }),
        ),
        (
            "NMF rank / PCA rank",
            format!("{} / {}", report.rank, report.pca_rank),
        ),
        (
            "NMF training error",
            format!("{:.5}", report.nmf_train_error),
        ),
        ("time", seconds(secs)),
    ]);
    page.section("accuracy", "Accuracy");
    page.paragraph(&format!(
        "Each test face takes the identity of its nearest training face. NMF compares \
         sqrt(h<sub>k</sub> ||w<sub>k</sub>||<sub>1</sub>), the light each part adds; PCA the \
         coefficients of {} eigenfaces centred on the training mean; pixels the faces themselves{}.",
        report.pca_rank,
        if study.occlusion.is_some() { " (their known pixels)" } else { "" }
    ));
    let rows: Vec<Vec<String>> = report
        .scores
        .iter()
        .map(|s| {
            vec![
                s.method.to_string(),
                s.distance.to_string(),
                format!("{:.1}%", 100.0 * s.accuracy),
                format!("{} / {}", s.correct, report.test.len()),
            ]
        })
        .collect();
    page.table(
        &["method", "distance", "accuracy", "correct"],
        &rows,
        "1-NN accuracy",
    );
    page.section("confusion", "Confusions");
    page.paragraph(&format!(
        "True identity down, identity given across ({} people in folder order), for NMF's and \
         PCA's better distance; a dark cell off the diagonal is a person taken for another.",
        report.people.len()
    ));
    page.picture("confusion.png", confusion_png, "confusion matrices");
    let wrong: Vec<Vec<String>> = report
        .scores
        .iter()
        .filter(|s| s.method == "nmf")
        .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
        .map(|best| {
            report
                .test
                .iter()
                .zip(&best.predictions)
                .filter(|(j, p)| report.identity[**j] != **p)
                .map(|(&j, &p)| {
                    vec![
                        faces.name(j),
                        report.people[report.identity[j]].clone(),
                        report.people[p].clone(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    page.table(
        &["test face", "person", "taken for"],
        &wrong,
        &format!("The faces NMF got wrong ({})", wrong.len()),
    );
    page.finish()
}
