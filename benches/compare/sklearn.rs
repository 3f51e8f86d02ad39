//! The scikit-learn side: finding a Python that has it, and running `sklearn_nmf.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use facenmf::Iteration;

use super::SklearnRun;

/// This folder: the script and the default virtual environment live here.
const HERE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare");

/// A Python with scikit-learn and the script that drives it.
#[derive(Debug, Clone)]
pub(crate) struct Python {
    python: PathBuf,
    script: PathBuf,
}

impl Python {
    /// `explicit`, else `benches/compare/.venv/bin/python`, else `python3`, if it imports
    /// scikit-learn; otherwise None, with a note saying how to set it up.
    pub(crate) fn find(explicit: Option<&Path>) -> Option<Python> {
        let venv = Path::new(HERE).join(".venv/bin/python");
        let python = match explicit {
            Some(p) => p.to_path_buf(),
            None if venv.is_file() => venv,
            None => PathBuf::from("python3"),
        };
        let has_sklearn = Command::new(&python)
            .args(["-c", "import sklearn, numpy, PIL, threadpoolctl"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_sklearn {
            eprintln!(
                "note: {} has no scikit-learn; running facenmf only. Set it up with\n  \
                 python3 -m venv {HERE}/.venv && {HERE}/.venv/bin/pip install -r \
                 {HERE}/requirements.txt",
                python.display()
            );
            return None;
        }
        Some(Python {
            python,
            script: Path::new(HERE).join("sklearn_nmf.py"),
        })
    }

    /// The script as a command, with its data source (`--images DIR` or `--npy FILE`).
    pub(crate) fn command(&self, source: &[&str]) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script).args(source);
        cmd
    }

    /// Runs a command made by [`Python::command`] and parses the JSON object it prints.
    pub(crate) fn json(&self, mut cmd: Command) -> Result<serde_json::Value> {
        let what = format!("{} {}", self.python.display(), self.script.display());
        let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| format!("{what} printed no JSON"))
    }
}

/// One scikit-learn `cd` fit of the images in `dir`, with a per-iteration trace and the time
/// to `target` when one is given.
pub(crate) fn sklearn_run(
    sk: &Python,
    dir: &Path,
    rank: usize,
    dtype: &str,
    threads: usize,
    max_iter: usize,
    target: Option<f64>,
) -> Result<SklearnRun> {
    let mut cmd = sk.command(&["--images", &dir.to_string_lossy()]);
    cmd.args([
        "--rank",
        &rank.to_string(),
        "--solver",
        "cd",
        "--init",
        "nndsvda",
    ])
    .args(["--max-iter", &max_iter.to_string(), "--dtype", dtype])
    .args(["--threads", &threads.to_string()]);
    if let Some(e) = target {
        cmd.args(["--trace", "hook", "--time-to-error", &e.to_string()]);
    }
    let json = sk.json(cmd)?;
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let tte = &json["time_to_error"];
    let trace = json["trace"]
        .as_array()
        .map(|points| {
            points
                .iter()
                .map(|p| Iteration {
                    iter: p["iter"].as_u64().unwrap_or(0) as usize,
                    seconds: num(&p["seconds"]),
                    rel_error: num(&p["rel_error"]),
                    divergence: None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(SklearnRun {
        config: format!("cd/{dtype}/{threads}t"),
        dtype: dtype.to_string(),
        threads,
        time_to_e: tte["seconds"].as_f64(),
        iter_to_e: tte["iter"].as_u64().map(|i| i as usize),
        fit_seconds: num(&json["fit_seconds"]),
        iterations: json["iterations"].as_u64().unwrap_or(0) as usize,
        rel_error: num(&json["rel_error"]),
        x_sum: num(&json["data"]["x_sum"]),
        trace,
    })
}
