//! Loading a face folder: facenmf's decoding against Pillow's (the way the comparison script
//! loads, `benches/compare/sklearn_nmf.py`), building the decoded cache, and reading it back.
//!
//! `cargo bench --bench load -- DIR... [--repeat K] [--python PATH]`: per folder, K rounds in
//! which each way loads once (files warm in the page cache after the first), medians printed
//! as milliseconds and images per second. Python's time is measured inside Python around its
//! loading function, so its start-up is not counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use facenmf::Loader;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One timed Pillow load of `dir` in seconds, or None if that Python cannot run the script.
fn pillow_seconds(python: &Path, dir: &Path) -> Option<f64> {
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare");
    let code = format!(
        "import sys, time, numpy as np; sys.path.insert(0, {here:?}); import sklearn_nmf as s; \
         t = time.perf_counter(); x = s.load_images({dir:?}, np); \
         print(time.perf_counter() - t, x.shape[1])",
        dir = dir.display().to_string()
    );
    let out = Command::new(python).args(["-c", &code]).output().ok()?;
    if !out.status.success() {
        eprintln!("note: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next()?.parse().ok()
}

fn main() {
    let mut dirs = Vec::new();
    let mut repeat = 5;
    let mut python = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/compare/.venv/bin/python"
    ));
    if !python.is_file() {
        python = PathBuf::from("python3");
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repeat" => repeat = args.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--python" => python = PathBuf::from(args.next().unwrap_or_default()),
            "--bench" => {}
            "--help" | "-h" => {
                println!("cargo bench --bench load -- DIR... [--repeat K] [--python PATH]");
                return;
            }
            dir => dirs.push(PathBuf::from(dir)),
        }
    }
    if dirs.is_empty() {
        println!("no folders given: cargo bench --bench load -- DIR... (see --help)");
        return;
    }
    println!(
        "| folder | images | Pillow (ms) | facenmf decode (ms) | cache build (ms) | cache read (ms) | images/s: Pillow / facenmf / cache read |"
    );
    println!("|---|---|---|---|---|---|---|");
    for dir in &dirs {
        let loader = Loader::new(dir);
        let n = match loader.load::<f32>() {
            Ok(faces) => faces.x.ncols(),
            Err(e) => {
                eprintln!("{}: {e}", dir.display());
                continue;
            }
        };
        let (mut pillow, mut decode, mut build, mut read) = (vec![], vec![], vec![], vec![]);
        for _ in 0..repeat {
            if let Some(s) = pillow_seconds(&python, dir) {
                pillow.push(s);
            }
            let t = Instant::now();
            let faces = loader.load::<f32>().expect("loaded once already");
            decode.push(t.elapsed().as_secs_f64());
            drop(faces);
            let cache = tempfile::tempdir().expect("a temporary folder");
            let t = Instant::now();
            loader
                .load_cached::<f32>(cache.path(), |_| {})
                .expect("the cache builds");
            build.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            loader
                .load_cached::<f32>(cache.path(), |_| {})
                .expect("the cache reads");
            read.push(t.elapsed().as_secs_f64());
        }
        let ms = |v: &Vec<f64>| {
            if v.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.1}", 1e3 * median(v.clone()))
            }
        };
        let rate = |v: &Vec<f64>| {
            if v.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.0}", n as f64 / median(v.clone()))
            }
        };
        println!(
            "| {} | {n} | {} | {} | {} | {} | {} / {} / {} |",
            dir.display(),
            ms(&pillow),
            ms(&decode),
            ms(&build),
            ms(&read),
            rate(&pillow),
            rate(&decode),
            rate(&read)
        );
    }
}
