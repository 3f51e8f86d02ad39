//! `mpirun -np P facenmf learn`, built with the `mpi` feature: the single process's fit, on
//! loopback. Run by `.ci/run` (`cargo test --release --features mpi --test mpi`), which
//! installs OpenMPI; without the feature this file is empty.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{dataset, facenmf, stderr};
use ndarray::Array2;

/// `mpirun -np P` of the binary; root may run it (CI does), and P may exceed the cores.
fn mpirun(processes: usize, args: &[&str], cwd: &Path) -> Output {
    Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(processes.to_string())
        .arg(env!("CARGO_BIN_EXE_facenmf"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("mpirun runs: OpenMPI's openmpi-bin is installed (.ci/run installs it)")
}

/// Every iteration's relative error from an output folder's run.json, and its file list.
fn history(out: &Path) -> (Vec<f64>, Vec<String>) {
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let errors = run["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rel_error"].as_f64().unwrap())
        .collect();
    let files = run["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    (errors, files)
}

fn factor(out: &Path, name: &str) -> Array2<f64> {
    facenmf::render::npy::read(&out.join(name)).unwrap()
}

fn max_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    (a - b).iter().fold(0.0f64, |m, d| m.max(d.abs()))
}

/// The demo faces, `count` of them, in a new folder.
fn demo_faces(count: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let made = facenmf(
        &["synth", "-o", "set", "--count", &count.to_string()],
        tmp.path(),
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let faces = tmp.path().join("set/faces");
    (tmp, faces)
}

/// Fits `dir` in one process and over each P of `processes` (f64, the same settings), and
/// checks every iteration's relative error to 1e-9 and the factors against the one process.
fn same_as_one_process(dir: &Path, processes: &[usize], extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        "learn",
        dir,
        "--precision",
        "f64",
        "--multilevel",
        "off",
        "--max-iter",
        "25",
        "--tol",
        "0",
        "--threads",
        "1",
        "-q",
        "-r",
        "12",
    ];
    args.extend_from_slice(extra);
    fn with_out<'a>(args: &[&'a str], out: &'a str) -> Vec<&'a str> {
        let mut a = args.to_vec();
        a.extend_from_slice(&["-o", out]);
        a
    }
    let one = facenmf(&with_out(&args, "one"), tmp.path());
    assert!(one.status.success(), "{}", stderr(&one));
    let (errors, files) = history(&tmp.path().join("one"));
    assert_eq!(errors.len(), 26);
    let (w, h) = (
        factor(&tmp.path().join("one"), "W.npy"),
        factor(&tmp.path().join("one"), "H.npy"),
    );
    for &p in processes {
        let out = format!("p{p}");
        let run = mpirun(p, &with_out(&args, &out), tmp.path());
        assert!(run.status.success(), "P = {p}: {}", stderr(&run));
        let folder = tmp.path().join(&out);
        let (split_errors, split_files) = history(&folder);
        assert_eq!(split_files, files, "P = {p}: the file list");
        assert_eq!(split_errors.len(), errors.len(), "P = {p}");
        for (i, (a, b)) in errors.iter().zip(&split_errors).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * a,
                "P = {p}, iteration {i}: {a} in one process, {b} split"
            );
        }
        let dw = max_diff(&w, &factor(&folder, "W.npy"));
        let dh = max_diff(&h, &factor(&folder, "H.npy"));
        assert!(
            dw < 1e-8 && dh < 1e-8,
            "P = {p}: W differs by {dw}, H by {dh}"
        );
        let run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["processes"], p, "P = {p}: run.json's processes");
        // Process 0 wrote every output, the pictures and report included.
        for file in ["basis.png", "reconstructions.png", "report.html"] {
            assert!(folder.join(file).is_file(), "P = {p}: no {file}");
        }
    }
}

#[test]
fn a_split_fit_is_the_single_process_fit() {
    // 150 faces over 2 and 3 processes: 64 + 86 and 32 + 64 + 54, shares of uneven size.
    let (_tmp, faces) = demo_faces(150);
    same_as_one_process(&faces, &[2, 3], &[]);
}

#[test]
fn a_share_of_a_single_image_is_the_single_process_fit() {
    // 33 faces over 2 processes: 32 and 1.
    let (_tmp, faces) = demo_faces(33);
    same_as_one_process(&faces, &[2], &[]);
}

#[test]
fn a_split_fit_through_the_decoded_cache_streamed_is_the_single_process_fit() {
    let (tmp, faces) = demo_faces(150);
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();
    same_as_one_process(
        &faces,
        &[3],
        &["--cache", cache, "--stream", "--block-images", "32"],
    );
}

#[test]
fn orl_split_over_two_and_three_processes_is_the_single_process_fit() {
    let Some(orl) = dataset("orl") else { return };
    same_as_one_process(&orl, &[2, 3], &[]);
}

#[test]
fn a_split_fit_is_bit_reproducible_for_a_given_number_of_processes() {
    let (tmp, faces) = demo_faces(100);
    let faces = faces.to_str().unwrap();
    for out in ["a", "b"] {
        let run = mpirun(
            2,
            &[
                "learn",
                faces,
                "-r",
                "8",
                "--max-iter",
                "15",
                "-q",
                "-o",
                out,
            ],
            tmp.path(),
        );
        assert!(run.status.success(), "{}", stderr(&run));
    }
    for file in ["W.npy", "H.npy"] {
        let a = std::fs::read(tmp.path().join("a").join(file)).unwrap();
        let b = std::fs::read(tmp.path().join("b").join(file)).unwrap();
        assert!(a == b, "{file} differs between two runs over 2 processes");
    }
}

#[test]
fn a_process_that_cannot_read_its_images_stops_every_process_with_its_error() {
    let (tmp, faces) = demo_faces(100);
    // The last file falls to the last of 3 processes; its header stays, its pixels go.
    let mut files: Vec<_> = std::fs::read_dir(&faces)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let broken = files.last().unwrap();
    let bytes = std::fs::read(broken).unwrap();
    std::fs::write(broken, &bytes[..bytes.len().min(60)]).unwrap();
    let run = mpirun(
        3,
        &["learn", faces.to_str().unwrap(), "-q", "-o", "out"],
        tmp.path(),
    );
    assert!(!run.status.success());
    let err = stderr(&run);
    let name = broken.file_name().unwrap().to_str().unwrap();
    assert!(err.contains("process 2 of 3"), "{err}");
    assert!(err.contains(name), "{err}");
    // Said once, by process 0.
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(!tmp.path().join("out/W.npy").exists());
}

#[test]
fn more_processes_than_groups_of_images_is_a_clear_error() {
    let (tmp, faces) = demo_faces(40);
    let run = mpirun(3, &["learn", faces.to_str().unwrap(), "-q"], tmp.path());
    assert!(!run.status.success());
    let err = stderr(&run);
    assert!(
        err.contains("3 processes for 40 images") && err.contains("at most 2 processes"),
        "{err}"
    );
}

#[test]
fn what_a_split_fit_cannot_do_is_refused_by_name() {
    let (tmp, faces) = demo_faces(100);
    let faces = faces.to_str().unwrap();
    for (flag, value) in [("--runs", "2"), ("--alpha-h", "0.1"), ("--init", "spa")] {
        let run = mpirun(2, &["learn", faces, "-q", flag, value], tmp.path());
        assert!(!run.status.success(), "{flag}");
        let err = stderr(&run);
        assert!(err.contains(flag), "{flag}: {err}");
    }
}
