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
    let page = std::fs::read_to_string(root.join("proj/report.html")).unwrap();
    assert!(page.contains("KKT measure reached") && page.contains("data:image/png;base64,"));
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
fn lee_seung_setting_is_recorded_and_followed_by_project_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let out = facenmf(&["synth", "--out", "train", "--count", "60"], root);
    assert!(out.status.success(), "{}", stderr(&out));
    let learn = facenmf(
        &[
            "learn",
            "train/faces",
            "-r",
            "12",
            "--preprocess",
            "lee-seung",
            "--solver",
            "mu",
            "--loss",
            "kl",
            "--unit-sum-w",
            "--max-iter",
            "300",
            "-q",
            "-o",
            "model",
        ],
        root,
    );
    assert!(learn.status.success(), "{}", stderr(&learn));
    let read_json = |path: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(root.join(path)).unwrap()).unwrap()
    };
    let trained = read_json("model/run.json");
    assert_eq!(trained["preprocess"], "lee-seung");
    assert_eq!(trained["params"]["unit_sum_w"], true);
    // Lee & Seung's basis images each sum to 1 (W is 1024 x 12, row-major).
    let w = read_f32_npy(&root.join("model/W.npy"));
    for k in 0..12 {
        let sum: f64 = w.iter().skip(k).step_by(12).map(|&v| f64::from(v)).sum();
        assert!((sum - 1.0).abs() < 1e-4, "basis image {k} sums to {sum}");
    }
    // Projected with the model's preprocessing, the training faces are fitted at least as
    // well as the fit's own H fits them (it is one of the nonnegative H the projection
    // chooses among); the raw faces would not be.
    let again = facenmf(
        &["project", "model", "train/faces", "-o", "same", "-q"],
        root,
    );
    assert!(again.status.success(), "{}", stderr(&again));
    let projected = read_json("same/run.json")["rel_error"].as_f64().unwrap();
    let fitted = trained["rel_error"].as_f64().unwrap();
    assert!(
        projected <= fitted * (1.0 + 1e-5),
        "{projected} against {fitted}"
    );
    // Through the library, raw faces are refused by the model, naming what differs.
    let model = facenmf::Model::<f32>::load(&root.join("model")).unwrap();
    assert_eq!(model.preprocess, facenmf::Preprocess::LeeSeung);
    let raw = facenmf::Loader::new(root.join("train/faces"))
        .load::<f32>()
        .unwrap();
    let err = model.project(&raw, 1e-6).unwrap_err().to_string();
    assert!(
        err.contains("preprocessed 'none'") && err.contains("'lee-seung'"),
        "{err}"
    );
    // The report is rebuilt from faces loaded the same way: the same page.
    let page = std::fs::read(root.join("model/report.html")).unwrap();
    let report = facenmf(&["report", "model", "-q"], root);
    assert!(report.status.success(), "{}", stderr(&report));
    assert!(std::fs::read(root.join("model/report.html")).unwrap() == page);
    // Without the kl loss the normalisation is refused, naming the flag.
    let refused = facenmf(
        &[
            "learn",
            "train/faces",
            "-r",
            "4",
            "--unit-sum-w",
            "-o",
            "no",
        ],
        root,
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--unit-sum-w"),
        "{}",
        stderr(&refused)
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
    let d = (&p.h - &fit.h.view()).mapv(|v| v * v).sum().sqrt()
        / fit.h.view().mapv(|v| v * v).sum().sqrt();
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
    let page = std::fs::read_to_string(root.join("r/report.html")).unwrap();
    assert!(page.contains("chosen rank") && page.contains("data:image/png;base64,"));
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

/// `people` folders of `each` 16 x 16 faces: a person is a fixed pattern of bright blocks,
/// each image of them that pattern with its own faint noise.
fn identities(root: &Path, people: usize, each: usize) {
    for p in 0..people {
        let dir = root.join(format!("ids/p{}", p + 1));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..each {
            let img = image::GrayImage::from_fn(16, 16, |x, y| {
                let block = ((x / 4) + 4 * (y / 4)) as usize;
                let on = (block * 7 + p * 5) % 16 < 6;
                let noise = ((x * 13 + y * 7 + i as u32 * 31 + p as u32 * 17) % 23) as u8;
                image::Luma([if on { 200 } else { 30 } + noise])
            });
            // Natural order: 2 before 10, so the first K are 1 ... K whatever the digits.
            img.save(dir.join(format!("{}.png", i + 1))).unwrap();
        }
    }
}

#[test]
fn recognize_tells_distinct_people_apart_and_writes_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    identities(root, 5, 11);
    let out = facenmf(
        &["recognize", "ids", "-r", "6", "--train", "9", "-o", "rec"],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("rec/recognition.json")).unwrap()).unwrap();
    assert_eq!(record["people"], 5);
    let train: Vec<&str> = record["train_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    // Natural order: the first nine of p1 are 1 ... 9, so 10 and 11 test.
    assert_eq!(
        &train[..9],
        &[
            "p1/1.png", "p1/2.png", "p1/3.png", "p1/4.png", "p1/5.png", "p1/6.png", "p1/7.png",
            "p1/8.png", "p1/9.png"
        ]
    );
    assert_eq!(record["test_files"][0], "p1/10.png");
    assert_eq!(record["test_files"].as_array().unwrap().len(), 10);
    let methods = record["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 6);
    for m in methods {
        assert_eq!(m["accuracy"], 1.0, "{m}");
    }
    let face = &record["faces"][0];
    assert_eq!(face["person"], "p1");
    assert_eq!(face["predicted"]["nmf/cosine"], "p1");
    assert!(image::open(root.join("rec/confusion.png")).is_ok());
    let page = std::fs::read_to_string(root.join("rec/report.html")).unwrap();
    assert!(page.contains("1-NN accuracy") && page.contains("The faces NMF got wrong (0)"));

    // With the eyes hidden: still a full record.
    let out = facenmf(
        &[
            "recognize",
            "ids",
            "-r",
            "6",
            "--train",
            "9",
            "--occlude",
            "eyes",
            "-o",
            "occ",
        ],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("occ/recognition.json")).unwrap()).unwrap();
    assert_eq!(record["occlusion"], "eyes");
    assert_eq!(record["hidden_pixels"], 4 * 16);
}

#[test]
fn recognize_says_what_is_wrong_with_the_folder_or_the_split() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    identities(root, 3, 4);
    let failure = |args: &[&str], expect: &[&str]| {
        let out = facenmf(args, root);
        let err = stderr(&out);
        // 1 for a failed run, 2 for a usage error clap reports.
        assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        for e in expect {
            assert!(err.contains(e), "{args:?}: expected {e:?} in {err}");
        }
    };
    failure(
        &["recognize", "ids", "-r", "2", "--train", "4"],
        &["p1", "4 images", "--train 4"],
    );
    failure(
        &["recognize", "ids/p1", "-r", "2", "--train", "2"],
        &["1.png", "subfolder"],
    );
    failure(
        &["recognize", "ids", "-r", "2", "--train", "0"],
        &["--train"],
    );
    failure(
        &["recognize", "ids", "-r", "50", "--train", "3"],
        &["rank", "9 training faces"],
    );
    failure(
        &["recognize", "ids", "-r", "2", "--occlude", "nose"],
        &["eyes", "mouth"],
    );
    std::fs::create_dir_all(root.join("solo/p1")).unwrap();
    for i in 0..3 {
        std::fs::copy(
            root.join(format!("ids/p1/{}.png", i + 1)),
            root.join(format!("solo/p1/{i}.png")),
        )
        .unwrap();
    }
    failure(&["recognize", "solo", "-r", "2", "--train", "2"], &["two"]);
}

/// ORL, rank 49, five training images per person: eigenfaces near the published 89.5%
/// (Lawrence et al. 1997), NMF's parts within 3 points of them.
#[test]
fn orl_recognition_by_parts_is_within_3_points_of_eigenfaces() {
    let Some(dir) = common::dataset("orl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = facenmf(
        &[
            "recognize",
            dir.to_str().unwrap(),
            "-r",
            "49",
            "--train",
            "5",
            "-o",
            "rec",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("rec/recognition.json")).unwrap())
            .unwrap();
    let best = |method: &str| {
        record["methods"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["method"] == method)
            .map(|m| m["accuracy"].as_f64().unwrap())
            .fold(0.0, f64::max)
    };
    let (nmf, pca) = (best("nmf"), best("pca"));
    assert!((0.865..=0.925).contains(&pca), "PCA {pca}");
    assert!(nmf >= pca - 0.03, "NMF {nmf}, PCA {pca}");
    assert_eq!(record["test_files"].as_array().unwrap().len(), 200);
}
