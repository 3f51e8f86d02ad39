//! No lost work: signals write the best iterate, outputs are replaced as a set, and an
//! unusable output folder is found before the fit.

mod common;

use common::{facenmf, npy_shape, stderr};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A synthetic face folder `d/faces` under `root`.
fn faces(root: &Path, count: usize) {
    let count = count.to_string();
    let out = facenmf(&["synth", "--out", "d", "--count", &count], root);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Reads run.json and checks that W.npy and H.npy belong to it: one complete set.
fn complete_set(out: &Path) -> serde_json::Value {
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let shape = |name: &str| {
        let (rows, cols, _) = npy_shape(&out.join(name));
        (rows as u64, cols as u64)
    };
    let (pixels, images, rank) = (
        run["height"].as_u64().unwrap() * run["width"].as_u64().unwrap(),
        run["images"].as_u64().unwrap(),
        run["rank"].as_u64().unwrap(),
    );
    assert_eq!(shape("W.npy"), (pixels, rank), "W.npy is not run.json's");
    assert_eq!(shape("H.npy"), (rank, images), "H.npy is not run.json's");
    for png in facenmf::render::REPORT_PICTURES
        .iter()
        .chain(&[facenmf::render::REPORT_FILE])
    {
        assert!(out.join(png).is_file(), "{png} missing");
    }
    run
}

/// Starts `facenmf learn ARGS` in `root` and returns once it has loaded its faces (or opened
/// them to stream), its stderr drained so that it never blocks on a full pipe.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn spawn_learn(root: &Path, args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_facenmf"))
        .arg("learn")
        .args(args)
        .current_dir(root)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let loaded = lines
        .by_ref()
        .map_while(|l| l.ok())
        .any(|l| l.starts_with("loaded") || l.starts_with("streaming"));
    assert!(loaded, "the fit did not start");
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Starts a long fit and returns once it is iterating.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn start_long_fit(root: &Path, out: &str) -> Child {
    let child = spawn_learn(
        root,
        &[
            "d/faces",
            "-r",
            "8",
            "--solver",
            "cd",
            "--tol",
            "0",
            "--max-iter",
            "100000000",
            "-o",
            out,
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    child
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn signal(child: &Child, sig: i32) {
    // SAFETY: kill only sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_signal_finishes_the_iteration_and_writes_the_best_iterate() {
    let tmp = tempfile::tempdir().unwrap();
    faces(tmp.path(), 60);
    for (sig, code) in [
        (libc::SIGINT, 130),
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 129),
    ] {
        let out = format!("out-{sig}");
        let mut child = start_long_fit(tmp.path(), &out);
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "signal {sig}");
        let run = complete_set(&tmp.path().join(&out));
        assert_eq!(run["stop"], "interrupted", "signal {sig}");
        assert_eq!(run["converged"], false);
        assert!(run["iterations"].as_u64().unwrap() > 0);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_second_signal_ends_at_once_and_leaves_a_complete_set() {
    let tmp = tempfile::tempdir().unwrap();
    faces(tmp.path(), 60);
    let first = facenmf(
        &["learn", "d/faces", "-r", "3", "-q", "-o", "out"],
        tmp.path(),
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let mut child = start_long_fit(tmp.path(), "out");
    signal(&child, libc::SIGINT);
    std::thread::sleep(std::time::Duration::from_millis(20));
    signal(&child, libc::SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    // Whenever the second signal landed, the folder holds one run's files, not a mix.
    let run = complete_set(&tmp.path().join("out"));
    assert!([3, 8].contains(&run["rank"].as_u64().unwrap()));
    // The next run cleans up whatever the killed one left beside or inside the folder.
    let again = facenmf(
        &["learn", "d/faces", "-r", "3", "-q", "-o", "out"],
        tmp.path(),
    );
    assert!(again.status.success(), "{}", stderr(&again));
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("facenmf-")), "{names:?}");
}

#[test]
fn an_unusable_output_folder_is_found_before_the_fit() {
    let tmp = tempfile::tempdir().unwrap();
    faces(tmp.path(), 10);
    std::fs::write(tmp.path().join("file"), "not a folder").unwrap();
    std::fs::create_dir_all(tmp.path().join("busy/inner")).unwrap();
    for (out, expect) in [("file", "is a file"), ("busy", "holds a folder (inner)")] {
        let run = facenmf(
            &[
                "learn",
                "d/faces",
                "-r",
                "3",
                "--max-iter",
                "1000000",
                "--tol",
                "0",
                "-o",
                out,
            ],
            tmp.path(),
        );
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{err}");
        assert!(
            err.contains(expect) && !err.contains("loaded"),
            "{out}: {err}"
        );
    }
}

#[test]
fn an_output_folder_inside_the_image_folder_is_not_read_as_faces() {
    let tmp = tempfile::tempdir().unwrap();
    faces(tmp.path(), 10);
    let dir = tmp.path().join("d/faces");
    for _ in 0..2 {
        let out = facenmf(&["learn", ".", "-r", "3", "-q", "-o", "output"], &dir);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(complete_set(&dir.join("output"))["images"], 10);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_leaves_the_previous_outputs_whole() {
    let tmp = tempfile::tempdir().unwrap();
    faces(tmp.path(), 40);
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1000k", "tmpfs"])
        .arg(&disk)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!(
            "\n!!!!!!!! FULL-DISK TEST NOT RUN: cannot mount a tmpfs here (needs root) !!!!!!!!\n"
        );
        return;
    }
    let out = disk.join("out");
    let out = out.to_str().unwrap();
    let result = std::panic::catch_unwind(|| {
        let small = facenmf(
            &["learn", "d/faces", "-r", "2", "-q", "-o", out],
            tmp.path(),
        );
        assert!(small.status.success(), "{}", stderr(&small));
        // Rank 40 needs more room than is left beside the first set.
        let big = facenmf(
            &[
                "learn", "d/faces", "-r", "40", "--init", "random", "-q", "-o", out,
            ],
            tmp.path(),
        );
        let err = stderr(&big);
        assert_eq!(big.status.code(), Some(1), "{err}");
        assert!(err.contains("No space left"), "{err}");
        assert_eq!(complete_set(Path::new(out))["rank"], 2);
        let left: Vec<_> = std::fs::read_dir(&disk).unwrap().collect();
        assert_eq!(left.len(), 1, "staging left behind: {left:?}");
    });
    let _ = Command::new("umount").arg(&disk).status();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A fit of the synthetic faces that runs a few seconds, with `extra` arguments.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn spawn_fit(root: &Path, out: &str, extra: &[&str]) -> Child {
    let mut args = vec!["d/faces", "-r", "8", "--tol", "0", "--threads", "2"];
    args.extend(["--max-iter", "20000", "-o", out]);
    args.extend(extra);
    spawn_learn(root, &args)
}

/// The same W and H bytes, and run.json's history of errors.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn same_result(a: &Path, b: &Path) {
    for name in ["W.npy", "H.npy"] {
        let (x, y) = (
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
        );
        assert!(
            x == y,
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    let errors = |dir: &Path| {
        let run = complete_set(dir);
        let history: Vec<f64> = run["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["rel_error"].as_f64().unwrap())
            .collect();
        (history, run["iterations"].clone(), run["stop"].clone())
    };
    assert_eq!(errors(a), errors(b));
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn an_interrupted_run_resumes_to_the_result_of_one_never_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    faces(tmp.path(), 60);
    finish_fit(tmp.path(), "whole", &[]);
    let out = interrupt_fit(tmp.path(), "out", &[]);
    // Another setting beside --resume is refused by name, not ignored, and costs nothing.
    let changed = facenmf(&["learn", "--resume", "out", "--max-iter", "5"], tmp.path());
    assert!(!changed.status.success());
    assert!(
        stderr(&changed).contains("--max-iter cannot be given with it")
            && stderr(&changed).contains("--init-from OUT"),
        "{}",
        stderr(&changed)
    );
    assert!(out.join("checkpoint.facenmf").is_file());
    // Resumed from another working folder: the checkpoint knows where the run started.
    let resumed = facenmf(
        &["learn", "--resume", out.to_str().unwrap()],
        Path::new("/"),
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("resuming after iteration"),
        "{}",
        stderr(&resumed)
    );
    same_result(&out, &tmp.path().join("whole"));
    assert!(
        !out.join("checkpoint.facenmf").exists(),
        "a finished run keeps its checkpoint"
    );
    // A finished run has nothing to resume, and says so.
    let again = facenmf(&["learn", "--resume", "out"], tmp.path());
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("no checkpoint there"),
        "{}",
        stderr(&again)
    );
}

/// Runs the long fit with `extra` arguments into `out` to its end.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn finish_fit(root: &Path, out: &str, extra: &[&str]) {
    let whole = spawn_fit(root, out, extra).wait_with_output().unwrap();
    assert!(
        whole.status.success(),
        "the fit into {out} failed ({extra:?})"
    );
}

/// Starts the long fit with `extra` arguments into `out`, interrupts it (SIGINT) once it
/// iterates, and checks that it wrote its set, stopped as interrupted, and left a checkpoint.
/// Returns the output folder.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn interrupt_fit(root: &Path, out: &str, extra: &[&str]) -> std::path::PathBuf {
    let child = spawn_fit(root, out, extra);
    std::thread::sleep(std::time::Duration::from_millis(700));
    signal(&child, libc::SIGINT);
    let interrupted = child.wait_with_output().unwrap();
    assert_eq!(interrupted.status.code(), Some(130));
    let dir = root.join(out);
    assert_eq!(complete_set(&dir)["stop"], "interrupted");
    assert!(
        dir.join("checkpoint.facenmf").is_file(),
        "no checkpoint left"
    );
    dir
}

/// Starts a long fit with `extra` arguments that saves a checkpoint every 0.2 s into `out`,
/// and kills it (SIGKILL) once one is written.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn kill_after_a_checkpoint(root: &Path, out: &str, extra: &[&str]) {
    let mut args = extra.to_vec();
    args.extend(["--checkpoint-every", "0.2"]);
    let mut child = spawn_fit(root, out, &args);
    let checkpoint = root.join(out).join("checkpoint.facenmf");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !checkpoint.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    assert!(
        checkpoint.is_file(),
        "no checkpoint written while the fit ran ({extra:?})"
    );
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    faces(tmp.path(), 60);
    finish_fit(tmp.path(), "whole", &[]);
    kill_after_a_checkpoint(tmp.path(), "out", &[]);
    let resumed = facenmf(&["learn", "--resume", "out", "-q"], tmp.path());
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    same_result(&tmp.path().join("out"), &tmp.path().join("whole"));
}

/// Streamed from a decoded cache: a run killed after a checkpoint, and one interrupted, each
/// go on to the result of the same streamed run never stopped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_streamed_run_resumes_from_its_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    faces(tmp.path(), 60);
    let streamed = ["--cache", "cache", "--stream", "--block-images", "16"];
    finish_fit(tmp.path(), "whole", &streamed);
    assert!(complete_set(&tmp.path().join("whole"))["stop"] == "max-iter reached");

    kill_after_a_checkpoint(tmp.path(), "killed", &streamed);
    let resumed = facenmf(&["learn", "--resume", "killed", "-q"], tmp.path());
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    same_result(&tmp.path().join("killed"), &tmp.path().join("whole"));

    let out = interrupt_fit(tmp.path(), "interrupted", &streamed);
    let resumed = facenmf(&["learn", "--resume", "interrupted", "-q"], tmp.path());
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    same_result(&out, &tmp.path().join("whole"));
    assert!(!out.join("checkpoint.facenmf").exists());
}

#[test]
fn a_damaged_checkpoint_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("out")).unwrap();
    std::fs::write(
        tmp.path().join("out/checkpoint.facenmf"),
        b"facenmf checkpoint 1\n\x05",
    )
    .unwrap();
    let out = facenmf(&["learn", "--resume", "out"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("truncated or damaged"),
        "{}",
        stderr(&out)
    );
    let both = facenmf(&["learn", "d", "--resume", "out"], tmp.path());
    assert!(!both.status.success());
    let runs = facenmf(
        &["learn", "d", "--runs", "2", "--checkpoint-every", "5"],
        tmp.path(),
    );
    assert!(stderr(&runs).contains("cover one run"), "{}", stderr(&runs));
}

/// A run too large to hold shows at most 4 million pixel values of faces (never fewer than 100
/// faces, nor more than the baselines take), spread evenly over the folder.
#[test]
fn a_streamed_run_shows_a_sample_bounded_in_pixels() {
    use facenmf::render::{BASELINE_FACES, SHOWN_VALUES, shown_columns};
    // 64 x 64 faces: 1024 of 200,000, evenly spread, ascending, both ends reached.
    let shown = shown_columns(200_000, 64 * 64);
    assert_eq!(shown.len(), SHOWN_VALUES / 4096);
    assert!(shown.windows(2).all(|p| p[0] < p[1]));
    assert!(shown[0] < 200 && *shown.last().unwrap() > 199_800);
    // CBCL's 19 x 19: the baselines' cap.
    assert_eq!(shown_columns(200_000, 361).len(), BASELINE_FACES);
    // Huge images: never fewer than 100 faces.
    assert_eq!(shown_columns(200_000, 100_000_000).len(), 100);
    // Fewer images than the cap: all of them.
    assert_eq!(shown_columns(300, 4096), (0..300).collect::<Vec<_>>());
}
