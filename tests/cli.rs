//! The real binary: outputs, their sizes and contents, and clean failures on bad input.

mod common;

use common::{facenmf, npy_shape, stderr};

use std::path::Path;

#[test]
fn learn_writes_every_output_with_the_right_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = facenmf(
        &["synth", "--out", "data", "--count", "40", "--seed", "3"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = facenmf(
        &[
            "learn",
            "data/faces",
            "-r",
            "4",
            "-o",
            "result",
            "--max-iter",
            "30",
            "--precision",
            "f64",
            "--threads",
            "1",
            "--runs",
            "2",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("40 images") && err.contains("relative error"),
        "{err}"
    );

    let dir = tmp.path().join("result");
    let dims = |name: &str| image::image_dimensions(dir.join(name)).unwrap();
    // 4 tiles of 32x32 -> 2x2 grid, upscaled x2 to 64 px, 4 px gaps, a 16 px label under each.
    assert_eq!(dims("basis.png"), (2 * 64 + 3 * 4, 2 * (64 + 16) + 3 * 4));
    // 16 pairs -> 4x4 grid of pairs (4 + 64 + 4 + 64 + 4 wide, 4 + 64 + 4 high), labelled.
    assert_eq!(
        dims("reconstructions.png"),
        (4 * 140 + 5 * 4, 4 * (72 + 16) + 5 * 4)
    );
    assert_eq!(dims("convergence.png"), (1200, 480));
    assert_eq!(npy_shape(&dir.join("W.npy")), (1024, 4, "<f8".into()));
    assert_eq!(npy_shape(&dir.join("H.npy")), (4, 40, "<f8".into()));

    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["images"], 40);
    assert_eq!(run["height"], 32);
    assert_eq!(run["width"], 32);
    assert_eq!(run["rank"], 4);
    assert_eq!(run["solver"], "hals");
    // 32 x 32 at rank 4 starts from 8 x 8, then 16 x 16 (each level keeps 16 pixels per part).
    let init = run["init"].as_str().unwrap();
    assert!(
        init.starts_with("nndsvda at 8x8 (") && init.contains(") -> 16x16 ("),
        "{init}"
    );
    assert!(init.ends_with(" -> full size (multilevel)"), "{init}");
    let levels = run["coarse_levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    assert_eq!(levels[0]["shape"]["width"], 8);
    assert_eq!(levels[1]["shape"]["height"], 16);
    assert!(levels[1]["iterations"].as_u64().unwrap() >= 1);
    assert_eq!(run["precision"], "f64");
    // The seed recorded is the best run's: the given one for the first run, a scramble after.
    if run["best_run"] == 0 {
        assert_eq!(run["seed"], 0);
    } else {
        assert_ne!(run["seed"], 0);
    }
    assert_eq!(run["threads"], 1);
    let iterations = run["iterations"].as_u64().unwrap() as usize;
    assert!((1..=30).contains(&iterations));
    assert_eq!(run["history"].as_array().unwrap().len(), iterations + 1);
    assert_eq!(run["files"].as_array().unwrap().len(), 40);
    assert_eq!(run["files"][0], "face-000.png");
    assert_eq!(run["reconstructions"].as_array().unwrap().len(), 16);
    let rel = run["rel_error"].as_f64().unwrap();
    assert!(rel > 0.0 && rel < 1.0, "{rel}");
    assert!(run["converged"].is_boolean() && run["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(run["run_errors"].as_array().unwrap().len(), 2);
    assert!(err.contains("best of 2 runs"), "{err}");
    for key in ["sparseness_w", "sparseness_h"] {
        let s = run[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&s), "{key} = {s}");
    }
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        facenmf::render::OUTPUT_FILES.len(),
        "{names:?}"
    );
}

#[test]
fn no_arguments_runs_the_demo_into_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = facenmf(&[], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    for name in facenmf::render::OUTPUT_FILES {
        assert!(
            tmp.path().join("output").join(name).is_file(),
            "{name} missing"
        );
    }
    assert_eq!(
        npy_shape(&tmp.path().join("output/W.npy")).1,
        facenmf::synth::parts().len()
    );
}

fn assert_clean_failure(args: &[&str], cwd: &Path, expect: &[&str]) {
    let out = facenmf(args, cwd);
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for e in expect {
        assert!(err.contains(e), "{args:?}: '{e}' not in: {err}");
    }
}

#[test]
fn bad_input_exits_non_zero_with_a_message_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir(root.join("empty")).unwrap();
    assert_clean_failure(
        &["learn", "missing"],
        root,
        &["error:", "missing", "no such folder"],
    );
    assert_clean_failure(&["learn", "empty"], root, &["error:", "no images found"]);

    let out = facenmf(&["synth", "--out", "d", "--count", "6"], root);
    assert!(out.status.success());
    assert_clean_failure(
        &["learn", "d/faces", "-r", "0"],
        root,
        &["rank", "at least 1"],
    );
    assert_clean_failure(
        &["learn", "d/faces", "-r", "7"],
        root,
        &["rank", "min(pixels, images) = 6"],
    );
    assert_clean_failure(
        &["learn", "d/faces", "--resize", "ax3"],
        root,
        &["--resize", "WIDTHxHEIGHT"],
    );
    assert_clean_failure(
        &["learn", "d/faces", "--solver", "magic"],
        root,
        &["unknown solver"],
    );
    assert_clean_failure(
        &["learn", "d/faces", "--max-time=-1"],
        root,
        &["--max-time"],
    );
    // The library names its parameters; the command line names them by their flags.
    assert_clean_failure(
        &["learn", "d/faces", "-r", "2", "--alpha-w=-1"],
        root,
        &["error: --alpha-w: -1 must be a finite number >= 0"],
    );
    assert_clean_failure(
        &["learn", "d/faces", "-r", "2", "--sparsity-h", "1.5"],
        root,
        &["error: --sparsity-h: 1.5 must be in [0, 1]"],
    );
    assert_clean_failure(
        &["learn", "d/faces", "-r", "2", "--loss", "kl"],
        root,
        &[
            "error: --loss: ",
            "use the cd solver (coordinate descent, the faster) or the mu solver for kl",
        ],
    );

    std::fs::write(
        root.join("d/faces/broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    assert_clean_failure(
        &["learn", "d/faces", "-r", "2"],
        root,
        &["broken.png", "--skip-unreadable"],
    );
    let out = facenmf(
        &[
            "learn",
            "d/faces",
            "-r",
            "2",
            "--skip-unreadable",
            "-o",
            "o",
        ],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("broken.png"));

    image::GrayImage::new(5, 5)
        .save(root.join("d/faces/small.png"))
        .unwrap();
    assert_clean_failure(
        &["learn", "d/faces", "--skip-unreadable"],
        root,
        &["small.png", "5x5", "--resize"],
    );

    // An output path that is a file, not a folder.
    std::fs::write(root.join("taken"), b"x").unwrap();
    assert_clean_failure(
        &[
            "learn",
            "d/faces",
            "-r",
            "2",
            "--skip-unreadable",
            "--resize",
            "32x32",
            "-o",
            "taken",
        ],
        root,
        &["error:", "taken"],
    );
}

#[test]
fn init_from_continues_an_earlier_run_and_rejects_mismatched_factors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    assert!(
        facenmf(&["synth", "--out", "d", "--count", "30"], root)
            .status
            .success()
    );
    let first = facenmf(
        &[
            "learn",
            "d/faces",
            "-r",
            "5",
            "-o",
            "first",
            "--max-iter",
            "20",
            "--tol",
            "0",
        ],
        root,
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let again = facenmf(
        &[
            "learn",
            "d/faces",
            "--init-from",
            "first",
            "-o",
            "again",
            "--max-iter",
            "20",
        ],
        root,
    );
    assert!(again.status.success(), "{}", stderr(&again));
    let read = |dir: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(root.join(dir).join("run.json")).unwrap()).unwrap()
    };
    let (a, b) = (read("first"), read("again"));
    assert_eq!(b["rank"], 5, "rank taken from W.npy");
    assert_eq!(b["init"], "given");
    assert!(b["rel_error"].as_f64().unwrap() <= a["rel_error"].as_f64().unwrap() + 1e-9);

    assert_clean_failure(
        &["learn", "d/faces", "--init-from", "first", "-r", "6"],
        root,
        &["first", "W0 is 1024 x 5, expected 1024 x 6"],
    );
    assert_clean_failure(
        &["learn", "d/faces", "--init-from", "nowhere"],
        root,
        &["W.npy"],
    );
    std::fs::write(root.join("first/H.npy"), b"not numpy").unwrap();
    assert_clean_failure(
        &["learn", "d/faces", "--init-from", "first"],
        root,
        &["H.npy", "magic"],
    );
}

#[test]
fn masks_leave_occluded_pixels_out_and_name_a_face_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    assert!(
        facenmf(&["synth", "--out", "d", "--count", "12"], root)
            .status
            .success()
    );
    std::fs::create_dir(root.join("masks")).unwrap();
    for j in 0..12 {
        // Each face loses a different 8x8 block.
        let mask = image::GrayImage::from_fn(32, 32, |x, y| {
            let hidden = (x / 8 + 4 * (y / 8)) as usize == j;
            image::Luma([if hidden { 0 } else { 255 }])
        });
        mask.save(root.join(format!("masks/face-{j:03}.png")))
            .unwrap();
    }
    let out = facenmf(
        &[
            "learn", "d/faces", "-r", "4", "--mask", "masks", "-o", "masked",
        ],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("hidden pixels"), "{}", stderr(&out));
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("masked/run.json")).unwrap()).unwrap();
    assert!(run["hidden_error"].as_f64().unwrap() > 0.0);

    std::fs::remove_file(root.join("masks/face-005.png")).unwrap();
    assert_clean_failure(
        &["learn", "d/faces", "-r", "4", "--mask", "masks"],
        root,
        &["no mask for face face-005.png"],
    );
}

#[test]
fn help_lists_the_user_commands_and_no_benchmark() {
    let tmp = tempfile::tempdir().unwrap();
    let out = facenmf(&["--help"], tmp.path());
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("learn") && help.contains("synth"), "{help}");
    // The comparison with scikit-learn is a bench target of the repository, not a command.
    assert!(!help.contains("bench"), "{help}");
}

#[test]
fn an_overflowing_fit_is_an_error_not_a_perfect_score() {
    // beta = 1000 overflows at once: it used to exit 0 with H mostly NaN, "relative error
    // 0.000000" and converged: true.
    let tmp = tempfile::tempdir().unwrap();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/faces");
    for beta in ["beta:1000", "beta:-100", "beta:1e308"] {
        let out = facenmf(
            &[
                "learn", demo, "-r", "12", "--solver", "mu", "--loss", beta, "-o", "o",
            ],
            tmp.path(),
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{beta}: {err}");
        assert!(err.contains("non-finite values"), "{beta}: {err}");
        assert!(!err.contains("relative error 0.000000"), "{beta}: {err}");
    }
}

#[test]
fn more_threads_than_cores_are_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    assert!(
        facenmf(&["synth", "--out", "d", "--count", "6"], root)
            .status
            .success()
    );
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = (cores + 3).to_string();
    let out = facenmf(
        &["learn", "d/faces", "-r", "2", "-q", "--threads", &threads],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("more than the"), "{}", stderr(&out));
}

#[test]
fn synth_writes_each_parts_set_and_never_mixes_two_in_one_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let out = facenmf(&["synth", "--set", "swimmer", "--out", "s"], root);
    assert!(out.status.success(), "{}", stderr(&out));
    let count = |d: &str| std::fs::read_dir(root.join(d)).unwrap().count();
    assert_eq!((count("s/faces"), count("s/parts")), (256, 17));
    // The same set again into its own folder is a regeneration, not a mixture.
    let out = facenmf(&["synth", "--set", "swimmer", "--out", "s"], root);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_clean_failure(
        &["synth", "--set", "bars", "--out", "s", "--count", "50"],
        root,
        &[
            "error:",
            "s/faces",
            "256 file(s) this set would not write",
            "empty folder",
        ],
    );
    assert_eq!(count("s/faces"), 256, "the refused set wrote files");
    let out = facenmf(
        &["synth", "--set", "bars", "--out", "b", "--count", "50"],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!((count("b/faces"), count("b/parts")), (50, 24));
    let out = facenmf(
        &[
            "learn",
            "b/faces",
            "-r",
            "24",
            "-o",
            "fit",
            "--max-iter",
            "20",
        ],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A binary without the mpi feature started by an MPI launcher runs the whole fit in each
/// process: it says so, and how to build the one that splits it.
#[cfg(not(feature = "mpi"))]
#[test]
fn an_mpi_launcher_without_the_mpi_feature_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let made = facenmf(&["synth", "--out", "data", "--count", "20"], tmp.path());
    assert!(made.status.success(), "{}", stderr(&made));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_facenmf"))
        .args([
            "learn",
            "data/faces",
            "-r",
            "3",
            "--max-iter",
            "5",
            "-q",
            "-o",
            "out",
        ])
        .env("OMPI_COMM_WORLD_SIZE", "4")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("MPI launcher with 4 processes") && err.contains("--features mpi"),
        "{err}"
    );
    // Without a launcher, nothing is said.
    let plain = facenmf(
        &[
            "learn",
            "data/faces",
            "-r",
            "3",
            "--max-iter",
            "5",
            "-q",
            "-o",
            "out2",
        ],
        tmp.path(),
    );
    assert!(!stderr(&plain).contains("MPI"), "{}", stderr(&plain));
}
