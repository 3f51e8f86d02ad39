//! `facenmf bench`: facenmf against scikit-learn on the same X, in the same run.
//!
//! Part of the binary, not the library: it spawns Python, times, and prints. For each dataset:
//!
//! 1. X is loaded once by facenmf's loader (scikit-learn's script loads the same files the same
//!    way; both report x_sum, which is checked).
//! 2. The target E is 1.01 x the error scikit-learn `cd` (float64) reaches in 200 iterations:
//!    the figure of `../shared/bench/baseline.md` for the three bundled sets, else measured.
//! 3. Every `cd` configuration (float32/float64 x 1/2 threads) runs once with a per-iteration
//!    error trace; the one that reaches E soonest is scikit-learn's best.
//! 4. facenmf (default settings) and that best configuration then alternate `--repeat` times,
//!    each timed fit after an untimed one-iteration fit (as scikit-learn's script does); the
//!    medians of their times to E are compared.
//! 5. Roofline: the two large products of an iteration (4 m n r flops) are timed alone, and each
//!    solver's time per iteration is given as a multiple of them. Peak RSS of a fit is read from
//!    /proc after resetting the high-water mark.
//!
//! Then KL multiplicative updates against scikit-learn's on one dataset ([`kl`]).

mod kl;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::Array2;
use serde::Serialize;

use facenmf::nmf::Products;
use facenmf::{Faces, Iteration, Loader, Nmf, Solver, render};

/// Arguments of `facenmf bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Datasets as NAME=DIR, or names of folders under --data (default: cbcl orl olivetti).
    datasets: Vec<String>,
    /// Folder holding the named datasets.
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Rank of every fit.
    #[arg(short, long, default_value_t = 49)]
    rank: usize,
    /// Alternating timed runs of facenmf and scikit-learn's best configuration.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Python with scikit-learn (default: ../shared/bench/.bench-venv/bin/python, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// scikit-learn reference script.
    #[arg(long, default_value = "../shared/bench/sklearn_ref.py")]
    sklearn_ref: PathBuf,
    /// Run facenmf only.
    #[arg(long)]
    no_sklearn: bool,
    /// Also time iterations on synthetic 4096 x n matrices, n = 12.5k .. 100k, rank 64.
    #[arg(long)]
    scale: bool,
    /// Also plot error against time of every Frobenius solver on each dataset
    /// (solvers-NAME.png), each run for this many seconds.
    #[arg(long, value_name = "SECS")]
    solvers: Option<f64>,
    /// Also compare KL multiplicative updates with scikit-learn's `mu` (beta_loss
    /// 'kullback-leibler', rank 20, 200 iterations, nndsvda) on this dataset (a name under
    /// --data, or NAME=DIR); "none" skips it.
    #[arg(long, default_value = "olivetti", value_name = "DATASET")]
    kl: String,
    /// Where results.md, results.json and the error-against-time plots go.
    #[arg(short, long, default_value = "bench-results")]
    out: PathBuf,
}

/// Known targets (1.01 x scikit-learn cd float64 after 200 iterations, baseline.md).
const KNOWN_TARGETS: [(&str, f64); 3] = [
    ("cbcl", 0.084904),
    ("orl", 0.149378),
    ("olivetti", 0.093705),
];

#[derive(Debug, Serialize)]
struct DatasetResult {
    name: String,
    m: usize,
    n: usize,
    target: f64,
    target_source: String,
    facenmf_time_to_e: Vec<f64>,
    facenmf_iters_to_e: Option<usize>,
    /// How the default fit started (with a multilevel start, its coarse levels) and when its
    /// first full-resolution error was known.
    facenmf_start: String,
    facenmf_start_seconds: f64,
    facenmf_per_iter: f64,
    facenmf_error_200: f64,
    sklearn_best: Option<String>,
    sklearn_configs: Vec<SklearnRun>,
    sklearn_time_to_e: Vec<f64>,
    products_seconds: f64,
    products_gflops: f64,
    solver_per_iter: Vec<(String, f64)>,
    peak_rss_bytes: Option<u64>,
    factor_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
struct SklearnRun {
    config: String,
    dtype: String,
    threads: usize,
    time_to_e: Option<f64>,
    iter_to_e: Option<usize>,
    fit_seconds: f64,
    iterations: usize,
    rel_error: f64,
    x_sum: f64,
    #[serde(skip)]
    trace: Vec<Iteration>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let datasets = resolve_datasets(args)?;
    let python = find_python(args);
    let sklearn = if args.no_sklearn {
        None
    } else if !args.sklearn_ref.is_file() {
        eprintln!(
            "note: {} not found; running facenmf only",
            args.sklearn_ref.display()
        );
        None
    } else if !python_has_sklearn(&python) {
        eprintln!(
            "note: {} has no scikit-learn (see ../shared/bench/README.md); running facenmf only",
            python.display()
        );
        None
    } else {
        Some((python, args.sklearn_ref.clone()))
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let machine = Machine::read();
    eprintln!("{}", machine.describe());
    let mut results = Vec::new();
    for (name, dir) in &datasets {
        eprintln!("\n== {name}: {}", dir.display());
        results.push(bench_dataset(args, name, dir, sklearn.as_ref())?);
        if let Some(seconds) = args.solvers {
            plot_solvers(args, name, dir, seconds, results.last().map(|r| r.target))?;
        }
    }
    let kl = match resolve_kl(args)? {
        Some((name, dir)) => {
            eprintln!("\n== KL divergence, {name}: {}", dir.display());
            let python = sklearn.as_ref().map(|(python, _)| python.as_path());
            Some(kl::run(&name, &dir, python, args.repeat, &args.out)?)
        }
        None => None,
    };
    let scale = if args.scale {
        Some(bench_scale()?)
    } else {
        None
    };

    let mut report = report(&machine, &results, scale.as_deref(), args.repeat);
    if let Some(kl) = &kl {
        report.push_str(&kl::report(kl, args.repeat));
    }
    println!("{report}");
    render::write_atomic(&args.out.join("results.md"), report.as_bytes())?;
    let json = serde_json::json!({
        "machine": machine,
        "datasets": results,
        "scale": scale,
        "kl": kl,
    });
    render::write_atomic(
        &args.out.join("results.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    eprintln!(
        "wrote results.md, results.json and plots to {}",
        args.out.display()
    );
    Ok(())
}

fn resolve_datasets(args: &BenchArgs) -> Result<Vec<(String, PathBuf)>> {
    let names: Vec<String> = if args.datasets.is_empty() {
        vec!["cbcl".into(), "orl".into(), "olivetti".into()]
    } else {
        args.datasets.clone()
    };
    let mut out = Vec::new();
    for spec in names {
        let (name, dir) = match spec.split_once('=') {
            Some((n, d)) => (n.to_string(), PathBuf::from(d)),
            None => (spec.clone(), args.data.join(&spec)),
        };
        if !dir.is_dir() {
            bail!(
                "{}: no such folder (dataset {name}; pass NAME=DIR or --data)",
                dir.display()
            );
        }
        out.push((name, dir));
    }
    Ok(out)
}

/// The dataset of the KL comparison, or None for "none" or (with a note) a missing folder.
fn resolve_kl(args: &BenchArgs) -> Result<Option<(String, PathBuf)>> {
    if args.kl == "none" {
        return Ok(None);
    }
    let (name, dir) = match args.kl.split_once('=') {
        Some((n, d)) => (n.to_string(), PathBuf::from(d)),
        None => (args.kl.clone(), args.data.join(&args.kl)),
    };
    if !dir.is_dir() {
        eprintln!(
            "note: {}: no such folder; skipping the KL comparison (--kl NAME=DIR or --kl none)",
            dir.display()
        );
        return Ok(None);
    }
    Ok(Some((name, dir)))
}

fn find_python(args: &BenchArgs) -> PathBuf {
    if let Some(p) = &args.python {
        return p.clone();
    }
    let venv = args
        .sklearn_ref
        .parent()
        .unwrap_or(Path::new("."))
        .join(".bench-venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn python_has_sklearn(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import sklearn, numpy, PIL, threadpoolctl"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn bench_dataset(
    args: &BenchArgs,
    name: &str,
    dir: &Path,
    sklearn: Option<&(PathBuf, PathBuf)>,
) -> Result<DatasetResult> {
    let faces: Faces<f32> = Loader::new(dir).load()?;
    let (m, n) = faces.x.dim();
    let x_sum: f64 = faces.x.iter().map(|&v| f64::from(v)).sum();
    let r = args.rank;
    let known = KNOWN_TARGETS
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, e)| *e);

    let (target, target_source) = match (known, sklearn) {
        (Some(e), _) if r == 49 => (
            e,
            "baseline.md (1.01 x scikit-learn cd float64, 200 it.)".to_string(),
        ),
        (_, Some(sk)) => {
            let run = sklearn_run(sk, dir, r, "float64", 1, 200, None)?;
            (
                1.01 * run.rel_error,
                "measured: 1.01 x scikit-learn cd float64, 200 it.".into(),
            )
        }
        _ => {
            let x64 = faces.x.mapv(f64::from);
            let fit = Nmf::params(r)
                .solver(Solver::Cd)
                .tol(0.0)
                .fit(&x64.view())?;
            (
                1.01 * fit.rel_error,
                "measured: 1.01 x facenmf cd float64, 200 it.".into(),
            )
        }
    };
    eprintln!("X {m} x {n}, x_sum {x_sum:.6}, target E = {target:.6} ({target_source})");

    // scikit-learn: every cd configuration once, to find its best.
    let mut configs = Vec::new();
    if let Some(sk) = sklearn {
        for dtype in ["float32", "float64"] {
            for threads in [1, 2] {
                let run = sklearn_run(sk, dir, r, dtype, threads, 200, Some(target))?;
                if (run.x_sum - x_sum).abs() > 1e-6 * x_sum.abs().max(1.0) {
                    bail!(
                        "{name}: scikit-learn loaded another X (x_sum {} vs {x_sum})",
                        run.x_sum
                    );
                }
                eprintln!(
                    "  sklearn {}: time to E {}, {} it. in {:.3} s, error {:.6}",
                    run.config,
                    fmt_opt(run.time_to_e),
                    run.iterations,
                    run.fit_seconds,
                    run.rel_error
                );
                configs.push(run);
            }
        }
    }
    let best = configs
        .iter()
        .filter(|c| c.time_to_e.is_some())
        .min_by(|a, b| a.time_to_e.partial_cmp(&b.time_to_e).expect("finite times"))
        .cloned();

    // Alternate facenmf and scikit-learn's best.
    // facenmf's defaults on an image folder: the image shape is known, so the start is
    // multilevel where it applies (loading, where the shape comes from, is not timed).
    let defaults = || Nmf::params(r).image_shape(faces.height, faces.width);
    let params = defaults().tol(0.0).max_iter(200);
    // Each timed fit follows an untimed warm-up fit, as each of scikit-learn's does in its
    // script. scikit-learn's is one iteration, which with its start takes 27 / 104 / 41 ms on
    // cbcl / orl / olivetti; facenmf's one iteration took 5 ms on CBCL, too short to wake cores
    // that idled through the scikit-learn process before (its timed CBCL fits then took 39-50
    // ms, against 23-26 ms back to back). So facenmf's warm-up is the fit itself up to E,
    // untimed: about as long as scikit-learn's on CBCL, shorter on the others.
    let probe = params.fit(&faces.x.view())?;
    let probe_iterations = first_at(&probe.history, target).map_or(probe.n_iter, |h| h.iter);
    let warm_up = params.clone().max_iter(probe_iterations.max(1));
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut last_fit = None;
    let mut last_sklearn_trace = best.as_ref().map(|b| b.trace.clone());
    for rep in 0..args.repeat {
        warm_up.fit(&faces.x.view())?;
        let fit = params.fit(&faces.x.view())?;
        let hit = first_at(&fit.history, target);
        ours.push(hit.map_or(f64::INFINITY, |h| h.seconds));
        let line = format!(
            "  run {}: facenmf to E {}",
            rep + 1,
            fmt_opt(hit.map(|h| h.seconds))
        );
        last_fit = Some((fit, hit.map(|h| h.iter)));
        if let (Some(sk), Some(b)) = (sklearn, &best) {
            let iters = b.iter_to_e.unwrap_or(200).max(1);
            let run = sklearn_run(sk, dir, r, &b.dtype, b.threads, iters, Some(target))?;
            theirs.push(run.time_to_e.unwrap_or(f64::INFINITY));
            eprintln!(
                "{line}, scikit-learn {} to E {}",
                b.config,
                fmt_opt(run.time_to_e)
            );
            last_sklearn_trace = Some(run.trace);
        } else {
            eprintln!("{line}");
        }
    }
    let (fit, iters_to_e) = last_fit.expect("repeat >= 1");
    let per_iter = per_iteration(&fit.history);

    let mut series: Vec<(String, &[Iteration])> = vec![("facenmf (default)".into(), &fit.history)];
    if let (Some(b), Some(trace)) = (&best, &last_sklearn_trace) {
        series.push((format!("scikit-learn {}", b.config), trace));
    }
    let labelled: Vec<(&str, &[Iteration])> =
        series.iter().map(|(l, h)| (l.as_str(), *h)).collect();
    let plot = render::convergence_plot(&labelled, Some(target))?;
    let plot_path = args.out.join(format!("time-{name}.png"));
    let mut png = Vec::new();
    plot.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    render::write_atomic(&plot_path, &png)?;

    // Roofline: the products alone, then each solver per iteration.
    let (products_seconds, products_gflops) = time_products(&faces.x, r);
    let mut solver_per_iter = Vec::new();
    for (label, nmf) in [
        ("cd (plain HALS)", Nmf::params(r).solver(Solver::Cd)),
        (
            "hals, no extrapolation (A-HALS)",
            Nmf::params(r).extrapolate(false),
        ),
        ("hals (E-A-HALS, default)", defaults()),
        ("anls (BPP)", Nmf::params(r).solver(Solver::Anls)),
        ("mu", Nmf::params(r).solver(Solver::Mu)),
    ] {
        // Best of three 30-iteration fits, as the products are best of 25: one fit moved by
        // 10-30% between runs with the machine's other tenants.
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let fit = nmf.clone().tol(0.0).max_iter(30).fit(&faces.x.view())?;
            best = best.min(per_iteration(&fit.history));
        }
        solver_per_iter.push((label.to_string(), best));
    }

    let peak_rss_bytes = peak_rss_of(|| {
        let _ = params.fit(&faces.x.view());
    });
    let factor_bytes = 4 * (m * n + m * r + r * n) as u64;

    Ok(DatasetResult {
        name: name.to_string(),
        m,
        n,
        target,
        target_source,
        facenmf_time_to_e: ours,
        facenmf_iters_to_e: iters_to_e,
        facenmf_start: fit.start.clone(),
        facenmf_start_seconds: fit.history[0].seconds,
        facenmf_per_iter: per_iter,
        facenmf_error_200: fit.rel_error,
        sklearn_best: best.as_ref().map(|b| b.config.clone()),
        sklearn_configs: configs,
        sklearn_time_to_e: theirs,
        products_seconds,
        products_gflops,
        solver_per_iter,
        peak_rss_bytes,
        factor_bytes,
    })
}

/// Every Frobenius solver on one dataset for `seconds` each, error against time in one plot.
fn plot_solvers(
    args: &BenchArgs,
    name: &str,
    dir: &Path,
    seconds: f64,
    target: Option<f64>,
) -> Result<()> {
    let faces: Faces<f32> = Loader::new(dir).load()?;
    let r = args.rank;
    let mut runs = Vec::new();
    // Only the default gets the image shape (so a multilevel start); the rest start at full
    // resolution, as solvers compared on their own.
    let shape = (faces.height, faces.width);
    for (label, nmf) in [
        (
            "hals (E-A-HALS, default: multilevel start)",
            Nmf::params(r).image_shape(shape.0, shape.1),
        ),
        ("hals (E-A-HALS, full-resolution start)", Nmf::params(r)),
        (
            "hals, no extrapolation (A-HALS)",
            Nmf::params(r).extrapolate(false),
        ),
        ("cd (plain HALS)", Nmf::params(r).solver(Solver::Cd)),
        ("fpgm", Nmf::params(r).solver(Solver::Fpgm)),
        (
            "fpgm, extrapolated",
            Nmf::params(r).solver(Solver::Fpgm).extrapolate(true),
        ),
        ("anls (BPP)", Nmf::params(r).solver(Solver::Anls)),
        ("mu", Nmf::params(r).solver(Solver::Mu)),
    ] {
        let fit = nmf
            .tol(0.0)
            .max_iter(100_000)
            .max_time(Some(std::time::Duration::from_secs_f64(seconds)))
            .fit(&faces.x.view())?;
        eprintln!(
            "  {label}: {} iterations, error {:.6}",
            fit.n_iter, fit.rel_error
        );
        runs.push((label, fit.history));
    }
    let series: Vec<(&str, &[Iteration])> = runs.iter().map(|(l, h)| (*l, h.as_slice())).collect();
    let plot = render::convergence_plot(&series, target)?;
    let mut png = Vec::new();
    plot.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    render::write_atomic(&args.out.join(format!("solvers-{name}.png")), &png)?;
    Ok(())
}

/// The first point of a history at or below relative error `target`.
fn first_at(history: &[Iteration], target: f64) -> Option<Iteration> {
    history.iter().find(|h| h.rel_error <= target).copied()
}

/// Seconds per iteration from a history (initialisation excluded).
fn per_iteration(history: &[Iteration]) -> f64 {
    match (history.first(), history.last()) {
        (Some(a), Some(b)) if b.iter > a.iter => (b.seconds - a.seconds) / (b.iter - a.iter) as f64,
        _ => f64::NAN,
    }
}

/// Best-of-25 seconds of the two large products and their GFLOP/s (4 m n r flops): what the
/// machine can attain for them, the yardstick of the roofline (a median would mostly measure
/// the other tenants of a shared machine).
fn time_products(x: &Array2<f32>, r: usize) -> (f64, f64) {
    let (m, n) = x.dim();
    let w = Array2::from_shape_fn((m, r), |(i, j)| ((i + 3 * j) % 7) as f32 / 7.0);
    let ht = Array2::from_shape_fn((n, r), |(i, j)| ((2 * i + j) % 5) as f32 / 5.0);
    let mut products = Products::new(m, n, r);
    products.compute(&x.view(), &w.view(), &ht.view());
    let times: Vec<f64> = (0..25)
        .map(|_| {
            let t = Instant::now();
            products.compute(&x.view(), &w.view(), &ht.view());
            t.elapsed().as_secs_f64()
        })
        .collect();
    let t = times.iter().copied().fold(f64::INFINITY, f64::min);
    (t, 4.0 * (m * n * r) as f64 / t / 1e9)
}

/// Peak resident memory while `f` runs: the high-water mark is reset first (Linux).
fn peak_rss_of(f: impl FnOnce()) -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    f();
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn sklearn_run(
    (python, script): &(PathBuf, PathBuf),
    dir: &Path,
    rank: usize,
    dtype: &str,
    threads: usize,
    max_iter: usize,
    target: Option<f64>,
) -> Result<SklearnRun> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--images", &dir.to_string_lossy()])
        .args([
            "--rank",
            &rank.to_string(),
            "--solver",
            "cd",
            "--init",
            "nndsvda",
        ])
        .args(["--max-iter", &max_iter.to_string(), "--dtype", dtype])
        .args(["--threads", &threads.to_string()]);
    match target {
        Some(e) => cmd.args(["--trace", "hook", "--time-to-error", &e.to_string()]),
        None => cmd.args(["--trace", "none"]),
    };
    let json = python_json(cmd, &format!("{} {}", python.display(), script.display()))?;
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

/// Runs a Python command (scikit-learn) and parses the JSON object it prints. `what` names it
/// in errors.
pub(crate) fn python_json(mut cmd: Command, what: &str) -> Result<serde_json::Value> {
    // OpenBLAS runs slower with these set (see ../shared/bench/README.md).
    cmd.env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE");
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{what} printed no JSON"))
}

/// Per-iteration time on synthetic 4096 x n (rank 64, f32) for n = 12.5k .. 100k.
fn bench_scale() -> Result<Vec<ScalePoint>> {
    let (m, r) = (4096, 64);
    let mut points = Vec::new();
    for n in [12_500, 25_000, 50_000, 100_000] {
        eprintln!("\n== scale: {m} x {n}, rank {r}");
        let x = synthetic(m, n, r);
        let mut fit = None;
        let peak = peak_rss_of(|| {
            fit = Some(Nmf::params(r).tol(0.0).max_iter(10).fit(&x.view()));
        });
        let fit = fit.expect("ran")?;
        let per_iter = per_iteration(&fit.history);
        eprintln!(
            "  {:.1} ms per iteration, init {:.2} s",
            per_iter * 1e3,
            fit.history[0].seconds
        );
        points.push(ScalePoint {
            m,
            n,
            rank: r,
            per_iter,
            init_seconds: fit.history[0].seconds,
            peak_rss_bytes: peak,
            factor_bytes: 4 * (m * n + m * r + r * n) as u64,
        });
    }
    Ok(points)
}

#[derive(Debug, Serialize)]
struct ScalePoint {
    m: usize,
    n: usize,
    rank: usize,
    per_iter: f64,
    init_seconds: f64,
    peak_rss_bytes: Option<u64>,
    factor_bytes: u64,
}

/// A nonnegative low-rank-plus-noise matrix, generated in parallel from a fixed formula.
fn synthetic(m: usize, n: usize, r: usize) -> Array2<f32> {
    use rayon::prelude::*;
    let hash = |a: usize, b: usize| {
        let mut h = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 32;
        (h >> 40) as f32 / (1u64 << 24) as f32
    };
    let w: Vec<f32> = (0..m * r).map(|i| hash(i, 1)).collect();
    let h: Vec<f32> = (0..r * n).map(|i| hash(i, 2)).collect();
    let mut x = Array2::<f32>::zeros((m, n));
    x.axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            for (j, v) in row.iter_mut().enumerate() {
                let s: f32 = (0..r).map(|k| w[i * r + k] * h[k * n + j]).sum();
                *v = s / r as f32 + 0.05 * hash(i * n + j, 3);
            }
        });
    x
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    model: String,
    mhz: f64,
    simd: &'static str,
    flops_per_cycle: f64,
    /// cores x nominal clock x f32 flops per cycle.
    nominal_peak_gflops: f64,
    /// Measured: independent FMAs on every thread, f32.
    peak_gflops: f64,
}

/// f32 GFLOP/s of a register-resident FMA loop on every thread at once: the machine's
/// attainable peak (clock boost included), the yardstick for the products.
fn measured_peak() -> f64 {
    const ITERS: usize = 20_000_000;
    // Best of five, as for the products: on a shared machine one trial can lose a core.
    (0..5)
        .map(|_| {
            let per_thread: Vec<f64> = rayon::broadcast(|_| {
                let t = Instant::now();
                let flops = fma_loop(ITERS);
                flops / t.elapsed().as_secs_f64()
            });
            per_thread.iter().sum::<f64>() / 1e9
        })
        .fold(0.0, f64::max)
}

/// Runs `iters` rounds of 12 independent vector FMAs (f32); returns the flops done.
fn fma_loop(iters: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present, checked just above.
            return unsafe { fma_avx512(iters) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA are present, checked just above.
            return unsafe { fma_avx2(iters) };
        }
    }
    let (a, b) = (
        std::hint::black_box(0.999_999_9f32),
        std::hint::black_box(1e-7f32),
    );
    let mut acc = [1.0f32; 12];
    for _ in 0..iters / 16 {
        for v in acc.iter_mut() {
            *v = *v * a + b;
        }
    }
    std::hint::black_box(acc);
    ((iters / 16) * 12 * 2) as f64
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_avx512(iters: usize) -> f64 {
    use std::arch::x86_64::{_mm512_fmadd_ps, _mm512_set1_ps};
    let a = _mm512_set1_ps(std::hint::black_box(0.999_999_9));
    let b = _mm512_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    std::hint::black_box(acc);
    (iters * 12 * 16 * 2) as f64
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_avx2(iters: usize) -> f64 {
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_set1_ps};
    let a = _mm256_set1_ps(std::hint::black_box(0.999_999_9));
    let b = _mm256_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    std::hint::black_box(acc);
    (iters * 12 * 8 * 2) as f64
}

impl Machine {
    fn read() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |key: &str| {
            info.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let cores = rayon::current_num_threads();
        let mhz: f64 = field("cpu MHz").parse().unwrap_or(f64::NAN);
        let flags = field("flags");
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        // f32 flops per cycle per core: 2 FMA units x lanes x 2 flops.
        let (simd, flops_per_cycle) = if has("avx512f") {
            ("AVX-512", 64.0)
        } else if has("avx2") && has("fma") {
            ("AVX2+FMA", 32.0)
        } else {
            ("SSE", 8.0)
        };
        Machine {
            cores,
            model: field("model name"),
            mhz,
            simd,
            flops_per_cycle,
            nominal_peak_gflops: cores as f64 * mhz * 1e-3 * flops_per_cycle,
            peak_gflops: measured_peak(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "machine: {} threads, {} at {:.0} MHz nominal, {}. f32 peak: {:.0} GFLOP/s measured \
             (FMA loop on every thread, {:.0} per thread); nominal {:.0}",
            self.cores,
            self.model,
            self.mhz,
            self.simd,
            self.peak_gflops,
            self.peak_gflops / self.cores as f64,
            self.nominal_peak_gflops
        )
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        0.5 * (v[k / 2 - 1] + v[k / 2])
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("not reached".into(), |s| format!("{:.3} s", s))
}

fn report(
    machine: &Machine,
    results: &[DatasetResult],
    scale: Option<&[ScalePoint]>,
    repeat: usize,
) -> String {
    let mut s = String::new();
    s.push_str(&format!("{}\n\n", machine.describe()));
    s.push_str(&format!(
        "Time to E (fit wall time, init included, loading excluded; median of {repeat} alternating runs):\n\n"
    ));
    s.push_str("| dataset | m x n | E | facenmf to E | start | iters | scikit-learn best | its time to E | speed-up | facenmf s/iter | products | GFLOP/s (share of peak) | peak RSS (budget) |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for d in results {
        let ours = median(&mut d.facenmf_time_to_e.clone());
        let theirs = median(&mut d.sklearn_time_to_e.clone());
        let ratio = if theirs.is_finite() && ours.is_finite() {
            format!("{:.1}x", theirs / ours)
        } else {
            "-".into()
        };
        let budget = 1.5 * d.factor_bytes as f64 + 100e6;
        s.push_str(&format!(
            "| {} | {} x {} | {:.6} | {} | {:.1} ms | {} | {} | {} | {} | {:.2} ms | {:.2} ms | {:.0} ({:.0}%) | {} ({:.0} MB) |\n",
            d.name,
            d.m,
            d.n,
            d.target,
            ms(ours),
            d.facenmf_start_seconds * 1e3,
            d.facenmf_iters_to_e.map_or("-".into(), |i| i.to_string()),
            d.sklearn_best.clone().unwrap_or("-".into()),
            ms(theirs),
            ratio,
            d.facenmf_per_iter * 1e3,
            d.products_seconds * 1e3,
            d.products_gflops,
            100.0 * d.products_gflops / machine.peak_gflops,
            d.peak_rss_bytes.map_or("-".into(), |b| format!("{:.0} MB", b as f64 / 1e6)),
            budget / 1e6,
        ));
    }
    s.push_str("\nStart (last timed fit; iters count full-resolution iterations after it):\n\n");
    for d in results {
        s.push_str(&format!("- {}: {}\n", d.name, d.facenmf_start));
    }
    s.push_str("\nTime per iteration as a multiple of the two products' time:\n\n| dataset |");
    if let Some(first) = results.first() {
        for (label, _) in &first.solver_per_iter {
            s.push_str(&format!(" {label} |"));
        }
        s.push_str("\n|---|");
        for _ in &first.solver_per_iter {
            s.push_str("---|");
        }
        s.push('\n');
    }
    for d in results {
        s.push_str(&format!("| {} |", d.name));
        for (_, t) in &d.solver_per_iter {
            s.push_str(&format!(
                " {:.2} ms ({:.2}x) |",
                t * 1e3,
                t / d.products_seconds
            ));
        }
        s.push('\n');
    }
    let any_sklearn = results.iter().any(|d| !d.sklearn_configs.is_empty());
    if any_sklearn {
        s.push_str("\nscikit-learn cd configurations (one run each, per-iteration trace):\n\n");
        s.push_str("| dataset | config | time to E | iter at E | 200 it. (s) | error at 200 |\n|---|---|---|---|---|---|\n");
        for d in results {
            for c in &d.sklearn_configs {
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {:.3} | {:.6} |\n",
                    d.name,
                    c.config,
                    fmt_opt(c.time_to_e),
                    c.iter_to_e.map_or("-".into(), |i| i.to_string()),
                    c.fit_seconds,
                    c.rel_error
                ));
            }
        }
    }
    s.push_str("\nfacenmf error after 200 iterations (default settings): ");
    let errs: Vec<String> = results
        .iter()
        .map(|d| format!("{} {:.6}", d.name, d.facenmf_error_200))
        .collect();
    s.push_str(&errs.join(", "));
    s.push('\n');
    if let Some(points) = scale {
        s.push_str("\nScale (synthetic, rank 64, f32, default solver):\n\n| m x n | X (GB) | ms/iter | ms/iter per 10k columns | init (s) | peak RSS (budget) |\n|---|---|---|---|---|---|\n");
        for p in points {
            let budget = 1.5 * p.factor_bytes as f64 + 100e6;
            s.push_str(&format!(
                "| {} x {} | {:.2} | {:.1} | {:.2} | {:.2} | {} ({:.0} MB) |\n",
                p.m,
                p.n,
                (4 * p.m * p.n) as f64 / 1e9,
                p.per_iter * 1e3,
                p.per_iter * 1e3 * 1e4 / p.n as f64,
                p.init_seconds,
                p.peak_rss_bytes
                    .map_or("-".into(), |b| format!("{:.0} MB", b as f64 / 1e6)),
                budget / 1e6
            ));
        }
    }
    s
}

fn ms(seconds: f64) -> String {
    if seconds.is_finite() {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        "not reached".into()
    }
}
