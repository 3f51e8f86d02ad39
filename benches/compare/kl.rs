//! The Kullback-Leibler run of the comparison: multiplicative updates for the KL divergence
//! against scikit-learn's `mu` with `beta_loss='kullback-leibler'`, on the same X, same init
//! (nndsvda), same rank and iteration count; and facenmf's coordinate descent for KL
//! (`--solver cd --loss kl`) timed to the divergence scikit-learn's float64 `mu` ends at: with
//! its default start (a short Frobenius fit first, with the image shape as `facenmf learn`
//! gives it) and from the init itself (`--warm-start 0`), alternating.
//!
//! `sklearn_nmf.py` reads X as `.npy` (written by facenmf's loader, so both fit exactly the
//! same matrix), fits it once untimed for one iteration (warm-up), then times `fit_transform`,
//! and reports scikit-learn's own divergence (`_beta_divergence`, float64) of the result. Every configuration (float32/float64 x 1/2 threads) runs once; the fastest then
//! alternates with facenmf `repeat` times.

use std::path::Path;

use anyhow::{Result, bail};
use serde::Serialize;

use facenmf::{Faces, Loader, Loss, Nmf, Solver, render};

use super::median;
use super::sklearn::Python;

/// The setting: rank 20, 200 iterations, nndsvda.
pub(super) const RANK: usize = 20;
const ITERATIONS: usize = 200;

/// One scikit-learn KL fit.
#[derive(Debug, Clone, Serialize)]
pub(super) struct SklearnKl {
    config: String,
    dtype: String,
    threads: usize,
    seconds: f64,
    divergence: f64,
    rel_error: f64,
}

/// One facenmf KL fit.
#[derive(Debug, Clone, Serialize)]
struct FacenmfKl {
    precision: String,
    seconds: f64,
    divergence: f64,
    rel_error: f64,
}

/// Results of the KL comparison.
#[derive(Debug, Serialize)]
pub(super) struct KlResult {
    dataset: String,
    m: usize,
    n: usize,
    rank: usize,
    iterations: usize,
    facenmf: Vec<FacenmfKl>,
    sklearn_configs: Vec<SklearnKl>,
    sklearn_fastest: Option<String>,
    facenmf_seconds: Vec<f64>,
    sklearn_seconds: Vec<f64>,
    /// The divergence coordinate descent is timed to, and what it is.
    target: f64,
    target_from: String,
    /// Coordinate descent's sweeps and seconds (start included) to `target`, per run, with
    /// the default warm start.
    cd_sweeps: Vec<usize>,
    cd_seconds: Vec<f64>,
    /// The same from the init itself (`warm_start(0)`).
    cold_sweeps: Vec<usize>,
    cold_seconds: Vec<f64>,
}

/// Sweeps of coordinate descent a timed fit may make on its way to the target.
const CD_SWEEPS: usize = 60;

/// The first iteration of `fit` at or below `target`: its number and seconds.
fn time_to(fit: &facenmf::Factorization<f32>, target: f64) -> Option<(usize, f64)> {
    fit.history
        .iter()
        .find(|i| i.divergence.is_some_and(|d| d <= target))
        .map(|i| (i.iter, i.seconds))
}

/// Runs the comparison on the images in `dir`; `python` is None when scikit-learn is absent.
pub(super) fn run(
    name: &str,
    dir: &Path,
    python: Option<&Python>,
    repeat: usize,
    scratch: &Path,
) -> Result<KlResult> {
    let faces: Faces<f64> = Loader::new(dir).load()?;
    let (m, n) = faces.x.dim();
    let x_sum: f64 = faces.x.sum();
    let x32 = faces.x.mapv(|v| v as f32);
    let params = Nmf::params(RANK)
        .solver(Solver::Mu)
        .loss(Loss::KullbackLeibler)
        .max_iter(ITERATIONS)
        .tol(0.0);
    let fit32 = params.fit(&x32.view())?; // also the warm-up
    let fit64 = params.fit(&faces.x.view())?;
    let facenmf = vec![
        FacenmfKl {
            precision: "f32 (default)".into(),
            seconds: fit32.seconds,
            divergence: fit32.divergence.unwrap_or(f64::NAN),
            rel_error: fit32.rel_error,
        },
        FacenmfKl {
            precision: "f64".into(),
            seconds: fit64.seconds,
            divergence: fit64.divergence.unwrap_or(f64::NAN),
            rel_error: fit64.rel_error,
        },
    ];
    for f in &facenmf {
        eprintln!(
            "  facenmf KL {}: divergence {:.6}, {:.3} s",
            f.precision, f.divergence, f.seconds
        );
    }

    let mut configs = Vec::new();
    let mut fastest = None;
    let x_path = scratch.join(format!("kl-{name}-X.npy"));
    if let Some(python) = python {
        render::npy::write(&x_path, &faces.x.view())?;
        let result = (|| -> Result<()> {
            for dtype in ["float32", "float64"] {
                for threads in [1, 2] {
                    let run = sklearn_kl(python, &x_path, dtype, threads, x_sum)?;
                    eprintln!(
                        "  scikit-learn KL {}: divergence {:.6}, {:.3} s",
                        run.config, run.divergence, run.seconds
                    );
                    configs.push(run);
                }
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&x_path);
        }
        result?;
        fastest = configs
            .iter()
            .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
            .cloned();
    }

    // Coordinate descent is timed to scikit-learn's float64 divergence (or, without
    // scikit-learn, to facenmf's own multiplicative updates' after as many iterations).
    let (target, target_from) = match configs.iter().find(|c| c.dtype == "float64") {
        Some(c) => (c.divergence, format!("scikit-learn {}", c.config)),
        None => (
            fit64.divergence.unwrap_or(f64::NAN),
            "facenmf mu f64".into(),
        ),
    };
    let cd = Nmf::params(RANK)
        .solver(Solver::Cd)
        .loss(Loss::KullbackLeibler)
        .image_shape(faces.height, faces.width)
        .max_iter(CD_SWEEPS)
        .tol(0.0);
    let cold = cd.clone().warm_start(0);

    // facenmf's default precision (both solvers) and scikit-learn's fastest configuration,
    // alternating.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let (mut cd_sweeps, mut cd_seconds) = (Vec::new(), Vec::new());
    let (mut cold_sweeps, mut cold_seconds) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        params.clone().max_iter(1).fit(&x32.view())?; // warm-up, as scikit-learn's
        ours.push(params.fit(&x32.view())?.seconds);
        for (fit, sweeps, seconds) in [
            (&cd, &mut cd_sweeps, &mut cd_seconds),
            (&cold, &mut cold_sweeps, &mut cold_seconds),
        ] {
            fit.clone().max_iter(1).fit(&x32.view())?;
            match time_to(&fit.fit(&x32.view())?, target) {
                Some((to_target, time)) => {
                    sweeps.push(to_target);
                    seconds.push(time);
                }
                None => bail!("coordinate descent did not reach {target} in {CD_SWEEPS} sweeps"),
            }
        }
        if let (Some(python), Some(best)) = (python, &fastest) {
            theirs.push(sklearn_kl(python, &x_path, &best.dtype, best.threads, x_sum)?.seconds);
        }
    }
    if python.is_some() {
        let _ = std::fs::remove_file(&x_path);
    }
    Ok(KlResult {
        dataset: name.to_string(),
        m,
        n,
        rank: RANK,
        iterations: ITERATIONS,
        facenmf,
        sklearn_configs: configs,
        sklearn_fastest: fastest.map(|f| f.config),
        facenmf_seconds: ours,
        sklearn_seconds: theirs,
        target,
        target_from,
        cd_sweeps,
        cd_seconds,
        cold_sweeps,
        cold_seconds,
    })
}

fn sklearn_kl(
    python: &Python,
    x_path: &Path,
    dtype: &str,
    threads: usize,
    x_sum: f64,
) -> Result<SklearnKl> {
    let mut cmd = python.command(&["--npy", &x_path.to_string_lossy()]);
    cmd.args([
        "--rank",
        &RANK.to_string(),
        "--max-iter",
        &ITERATIONS.to_string(),
    ])
    .args([
        "--solver",
        "mu",
        "--beta-loss",
        "kullback-leibler",
        "--init",
        "nndsvda",
    ])
    .args(["--dtype", dtype, "--threads", &threads.to_string()]);
    let json = python.json(cmd)?;
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let theirs = num(&json["data"]["x_sum"]);
    if (theirs - x_sum).abs() > 1e-9 * x_sum.abs().max(1.0) {
        bail!("scikit-learn read another X (x_sum {theirs} vs {x_sum})");
    }
    Ok(SklearnKl {
        config: format!("mu/{dtype}/{threads}t"),
        dtype: dtype.to_string(),
        threads,
        seconds: num(&json["fit_seconds"]),
        divergence: num(&json["divergence"]),
        rel_error: num(&json["rel_error"]),
    })
}

/// The report section.
pub(super) fn report(kl: &KlResult, repeat: usize) -> String {
    let mut s = format!(
        "\nKullback-Leibler multiplicative updates ({}, {} x {}, rank {}, {} iterations, nndsvda):\n\n",
        kl.dataset, kl.m, kl.n, kl.rank, kl.iterations
    );
    let reference = kl
        .sklearn_configs
        .iter()
        .find(|c| c.dtype == "float64")
        .map(|c| c.divergence);
    s.push_str("| run | KL divergence | vs scikit-learn float64 | relative error | fit (s) |\n|---|---|---|---|---|\n");
    let versus =
        |d: f64| reference.map_or("-".into(), |r: f64| format!("{:+.3}%", 100.0 * (d - r) / r));
    let rows = kl
        .facenmf
        .iter()
        .map(|f| {
            (
                format!("facenmf {}", f.precision),
                f.divergence,
                f.rel_error,
                f.seconds,
            )
        })
        .chain(kl.sklearn_configs.iter().map(|c| {
            (
                format!("scikit-learn {}", c.config),
                c.divergence,
                c.rel_error,
                c.seconds,
            )
        }));
    for (label, divergence, rel_error, seconds) in rows {
        s.push_str(&format!(
            "| {label} | {divergence:.6} | {} | {rel_error:.6} | {seconds:.3} |\n",
            versus(divergence)
        ));
    }
    let ours = median(&mut kl.facenmf_seconds.clone());
    s.push_str(&format!(
        "\nfacenmf f32, median of {repeat} alternating runs: {ours:.3} s"
    ));
    let theirs = kl
        .sklearn_fastest
        .as_ref()
        .map(|best| (best, median(&mut kl.sklearn_seconds.clone())));
    if let Some((best, theirs)) = theirs {
        s.push_str(&format!(
            "; scikit-learn {best} (its fastest): {theirs:.3} s; speed-up {:.1}x",
            theirs / ours
        ));
    }
    s.push_str(&format!(
        "\n\nfacenmf f32 coordinate descent (`--solver cd --loss kl`) to divergence {:.3} ({}), \
         same runs (seconds include the start):\n",
        kl.target, kl.target_from
    ));
    let starts = [
        (
            "default start (a short Frobenius fit)",
            &kl.cd_seconds,
            &kl.cd_sweeps,
        ),
        (
            "from the init (`--warm-start 0`)",
            &kl.cold_seconds,
            &kl.cold_sweeps,
        ),
    ];
    for (label, seconds, sweeps) in starts {
        let cd = median(&mut seconds.clone());
        s.push_str(&format!("- {label}: {cd:.3} s, sweeps {sweeps:?}"));
        if let Some((best, theirs)) = theirs {
            s.push_str(&format!(
                "; against scikit-learn {best}'s 200 iterations: {:.1}x",
                theirs / cd
            ));
        }
        s.push('\n');
    }
    s
}
