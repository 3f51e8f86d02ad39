//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the real binary with `args` in `cwd` and waits for it.
pub fn facenmf(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facenmf"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

/// What the binary printed to stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The folder of a real face dataset (`cbcl`, `orl`, `olivetti`) under `../shared/data`, or
/// `$FACENMF_DATA` if set.
///
/// Where the data is absent the test fails loudly, naming the folder; set
/// `FACENMF_ALLOW_MISSING_DATA=1` to turn that into a printed skip (for machines without the
/// datasets: run with `--nocapture` to see it).
pub fn dataset(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("FACENMF_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = root.join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    let message = format!(
        "REAL-DATA TEST NOT RUN: {} is missing. These tests need the face datasets in \
         ../shared/data (or FACENMF_DATA=DIR).",
        dir.display()
    );
    if std::env::var_os("FACENMF_ALLOW_MISSING_DATA").is_some() {
        eprintln!("\n!!!!!!!! {message} (skipped: FACENMF_ALLOW_MISSING_DATA is set) !!!!!!!!\n");
        None
    } else {
        panic!("{message} Set FACENMF_ALLOW_MISSING_DATA=1 to skip them explicitly.");
    }
}

/// A real dataset loaded as X (see [`dataset`] for what happens when it is absent).
pub fn faces<T: facenmf::Float>(name: &str) -> Option<facenmf::Faces<T>> {
    let dir = dataset(name)?;
    Some(
        facenmf::Loader::new(dir)
            .load::<T>()
            .expect("the shared dataset loads"),
    )
}

/// The scikit-learn reference figures of `../shared/bench/baseline.md` for one dataset.
pub struct Baseline {
    pub m: usize,
    pub n: usize,
    pub x_sum: f64,
    pub x_fro: f64,
    pub first: &'static str,
    pub last: &'static str,
}

pub fn baseline(name: &str) -> Baseline {
    match name {
        "cbcl" => Baseline {
            m: 361,
            n: 2429,
            x_sum: 437092.129412,
            x_fro: 512.448033,
            first: "face00001.pgm",
            last: "face02429.pgm",
        },
        "orl" => Baseline {
            m: 10304,
            n: 400,
            x_sum: 1820474.917647,
            x_fro: 980.853438,
            first: "s1/1.pgm",
            last: "s9/9.pgm",
        },
        "olivetti" => Baseline {
            m: 4096,
            n: 400,
            x_sum: 850581.968627,
            x_fro: 696.777821,
            first: "face000.pgm",
            last: "face399.pgm",
        },
        other => panic!("no baseline for {other}"),
    }
}

/// The bundled demo set.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Shape of a `.npy` file, read from its header.
pub fn npy_shape(path: &Path) -> (usize, usize, String) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    let shape = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let dims: Vec<usize> = shape
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let itemsize = descr[2..].parse::<usize>().unwrap();
    assert_eq!(
        bytes.len(),
        10 + len + dims[0] * dims[1] * itemsize,
        "data size"
    );
    (dims[0], dims[1], descr.to_string())
}

/// The page size the residency checks count in (the smallest Linux uses).
pub const PAGE: usize = 4096;

/// How many of the pages spanned by `len` bytes from `ptr` are in memory, and how many
/// pages that is (`mincore`).
#[cfg(target_os = "linux")]
pub fn resident_pages(ptr: *const u8, len: usize) -> (usize, usize) {
    let start = ptr as usize / PAGE * PAGE;
    let end = (ptr as usize + len).div_ceil(PAGE) * PAGE;
    let mut flags = vec![0u8; (end - start) / PAGE];
    // SAFETY: [start, end) covers a live allocation's pages; `flags` holds one byte per page.
    let status =
        unsafe { libc::mincore(start as *mut libc::c_void, end - start, flags.as_mut_ptr()) };
    assert_eq!(status, 0, "mincore: {}", std::io::Error::last_os_error());
    (flags.iter().filter(|&&f| f & 1 == 1).count(), flags.len())
}
