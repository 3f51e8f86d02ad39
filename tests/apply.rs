//! Applying a model: `facenmf project` (a learned model's parts applied to new faces) and `facenmf rank`
//! (the rank chosen by held-out error), through the real binary, and on real faces where the
//! datasets are present.

mod common;

use common::{facenmf, npy_shape, stderr};

use std::path::Path;

fn read_f32_npy(path: &Path) -> Vec<f32> {
    let (rows, cols, _) = npy_shape(path);
    let bytes = std::fs::read(path).unwrap();
    let data = &bytes[bytes.len() - 4 * rows * cols..];
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn project_writes_h_run_json_and_reconstructions_for_new_faces() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for (dir, seed) in [("train", "0"), ("new", "1")] {
        let out = facenmf(
            &["synth", "--out", dir, "--count", "80", "--seed", seed],
            root,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let learn = facenmf(
        &[
            "learn",
            "train/faces",
            "-r",
            "12",
            "--tol",
            "1e-7",
            "--max-iter",
            "3000",
            "-q",
            "-o",
            "model",
        ],
        root,
    );
    assert!(learn.status.success(), "{}", stderr(&learn));
    let out = facenmf(&["project", "model", "new/faces", "-o", "proj"], root);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("projected 80 faces"),
        "{}",
        stderr(&out)
    );
    let (rows, cols, _) = npy_shape(&root.join("proj/H.npy"));
    assert_eq!((rows, cols), (12, 80));
    assert!(
        read_f32_npy(&root.join("proj/H.npy"))
            .iter()
            .all(|&v| v >= 0.0)
    );
    assert!(root.join("proj/reconstructions.png").is_file());
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("proj/run.json")).unwrap()).unwrap();
    assert_eq!(run["rank"], 12);
    assert!(run["kkt"].as_f64().unwrap() <= run["tol"].as_f64().unwrap());
    let faces = run["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 80);
    assert!(faces[0]["file"].as_str().unwrap().ends_with(".png"));
    // New faces drawn from the same parts are explained about as well as the training ones.
    let trained: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("model/run.json")).unwrap()).unwrap();
    let (new, old) = (
        run["rel_error"].as_f64().unwrap(),
        trained["rel_error"].as_f64().unwrap(),
    );
    assert!(
        new < 2.0 * old + 0.02,
        "new faces {new} against training {old}"
    );

    // The training faces projected give back the fit's H (it converged).
    let again = facenmf(
        &["project", "model", "train/faces", "-o", "same", "-q"],
        root,
    );
    assert!(again.status.success(), "{}", stderr(&again));
    let (a, b) = (
        read_f32_npy(&root.join("same/H.npy")),
        read_f32_npy(&root.join("model/H.npy")),
    );
    let diff: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    assert!(
        diff <= 1e-3 * norm,
        "projected H {:.2e} from the fit's",
        diff / norm
    );
}

#[test]
fn project_says_what_is_wrong_with_the_model_or_the_faces() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let out = facenmf(&["synth", "--out", "d", "--count", "20"], root);
    assert!(out.status.success());
    let learn = facenmf(&["learn", "d/faces", "-r", "4", "-q", "-o", "model"], root);
    assert!(learn.status.success(), "{}", stderr(&learn));
    // Faces of another size: the error names both sizes and the --resize that fixes it.
    let bars = facenmf(
        &["synth", "--set", "bars", "--out", "b", "--count", "20"],
        root,
    );
    assert!(bars.status.success());
    let out = facenmf(&["project", "model", "b/faces"], root);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("12x12") && text.contains("--resize"),
        "{text}"
    );
    // The demo faces' size is read from run.json; --resize to it makes them projectable.
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("model/run.json")).unwrap()).unwrap();
    let size = format!("{}x{}", run["width"], run["height"]);
    let resized_ok = facenmf(
        &["project", "model", "b/faces", "--resize", &size, "-q"],
        root,
    );
    assert!(resized_ok.status.success(), "{}", stderr(&resized_ok));
    // A folder that is not a model.
    let out = facenmf(&["project", "d", "d/faces"], root);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot use d as a model"),
        "{}",
        stderr(&out)
    );
    // A model whose W.npy is from another run.
    std::fs::copy(root.join("model/H.npy"), root.join("model/W.npy")).unwrap();
    let out = facenmf(&["project", "model", "d/faces"], root);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("mixes two runs"), "{}", stderr(&out));
}

/// The issue's speed floor is measured in `cargo bench --bench project`; this checks on real
/// faces that projection agrees with the fit on ORL.
#[test]
fn orl_faces_project_onto_their_own_parts() {
    let Some(faces) = common::faces::<f64>("orl") else {
        return;
    };
    let fit = facenmf::Nmf::params(25)
        .solver(facenmf::Solver::Anls)
        .tol(1e-7)
        .max_iter(3000)
        .fit(&faces.x.view())
        .unwrap();
    let p = facenmf::nmf::project(&fit.w.view(), &faces.x.view(), 0.0, 0.0, 1e-8).unwrap();
    let d = (&p.h - &fit.h).mapv(|v| v * v).sum().sqrt() / fit.h.mapv(|v| v * v).sum().sqrt();
    assert!(fit.converged(), "{:?}", fit.stop);
    assert!(d <= 1e-3, "ORL: projected H {d:e} from the fit's");
}

#[test]
fn rank_writes_its_study_and_chooses_among_the_ranks_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let out = facenmf(
        &["synth", "--set", "bars", "--out", "b", "--count", "150"],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = facenmf(
        &[
            "rank",
            "b/faces",
            "--ranks",
            "8,24,40",
            "--replicates",
            "2",
            "--max-iter",
            "300",
            "-o",
            "r",
        ],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("chosen rank"), "{text}");
    assert!(root.join("r/rank.png").is_file());
    let study: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("r/rank.json")).unwrap()).unwrap();
    assert_eq!(study["fits"].as_array().unwrap().len(), 6);
    // 24 bars: too few parts are worse on the hidden pixels than the true number.
    let chosen = study["chosen_rank"].as_u64().unwrap();
    assert!(chosen == 24 || chosen == 40, "chose {chosen}: {text}");
    assert!(study["one_se_rank"].as_u64().unwrap() <= chosen);
    let bad = facenmf(&["rank", "b/faces", "--ranks", "0"], root);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("--ranks"), "{}", stderr(&bad));
}
