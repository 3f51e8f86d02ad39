//! facenmf against scikit-learn on the same X, in the same run:
//!
//! ```text
//! cargo bench --bench compare -- [OPTIONS] DATASET...      (DATASET: DIR or NAME=DIR)
//! ```
//!
//! A bench target, not part of the user's binary: it spawns Python (`sklearn_nmf.py` beside
//! this file, with the pinned `requirements.txt`), times, and prints. For each dataset:
//!
//! 1. X is loaded once by facenmf's loader; the Python script loads the same files its own way
//!    (Pillow) and both report x_sum, which is checked.
//! 2. The target E is 1.01 x the error scikit-learn `cd` (float64) reaches in 200 iterations:
//!    the team's measured figure for cbcl, orl and olivetti at rank 49, else measured here.
//! 3. Every `cd` configuration (float32/float64 x 1/2 threads) runs once with a per-iteration
//!    error trace; the one that reaches E soonest is scikit-learn's best.
//! 4. facenmf (default settings) and that best configuration then alternate `--repeat` times,
//!    each timed fit after an untimed warm-up; the medians of their times to E are compared.
//! 5. Roofline: the two large products of an iteration (4 m n r flops) are timed alone, and each
//!    solver's time per iteration is given as a multiple of them. Peak RSS of a fit is read from
//!    /proc after resetting the high-water mark.
//!
//! Then KL multiplicative updates against scikit-learn's on one dataset ([`kl`]).

mod kl;
mod machine;
mod report;
mod scale;
mod sklearn;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use ndarray::Array2;
use serde::Serialize;

use facenmf::nmf::Products;
use facenmf::{Faces, Iteration, Loader, Nmf, Solver, render};
use machine::Machine;
use report::report;
use scale::bench_scale;
use sklearn::{Python, sklearn_run};

// The allocator the command-line program runs with (and, first thing in `main`, its heap
// settings), so that the bench times what it does.
#[global_allocator]
static ALLOCATOR: facenmf::alloc::Recycling = facenmf::alloc::Recycling;

/// facenmf against scikit-learn on the same images, in the same run: time to a target error,
/// per-iteration roofline, peak memory, and error against time for both.
///
/// Set up scikit-learn once (see the README): python3 -m venv benches/compare/.venv &&
/// benches/compare/.venv/bin/pip install -r benches/compare/requirements.txt
#[derive(Debug, Parser)]
#[command(name = "compare", about, long_about)]
struct Args {
    /// Image folders to compare on, as DIR or NAME=DIR (NAME defaults to the folder's name).
    datasets: Vec<String>,
    /// Rank of every fit.
    #[arg(short, long, default_value_t = 49)]
    rank: usize,
    /// Alternating timed runs of facenmf and scikit-learn's best configuration.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Python with scikit-learn (default: benches/compare/.venv/bin/python, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
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
    /// 'kullback-leibler', rank 20, 200 iterations, nndsvda) on this dataset: the NAME of one
    /// of the datasets, or DIR, or NAME=DIR; "none" skips it. Default: the dataset named
    /// olivetti, if given.
    #[arg(long, value_name = "DATASET")]
    kl: Option<String>,
    /// Where results.md, results.json and the error-against-time plots go.
    #[arg(short, long, default_value = "bench-results")]
    out: PathBuf,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    facenmf::alloc::keep_freed_heap();
    let args = Args::parse();
    if args.datasets.is_empty() {
        // `cargo bench` runs every target without arguments: say how to run this one.
        eprintln!(
            "compare: no datasets given; run `cargo bench --bench compare -- DIR...` \
             (NAME=DIR to name one; --help for all options)"
        );
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Targets the team measured for the three public face sets at rank 49 (1.01 x scikit-learn
/// cd float64 after 200 iterations, medians of five runs), recognised by X's shape and sum
/// rather than by name: (m, n, x_sum, target).
const KNOWN_TARGETS: [(usize, usize, f64, f64); 3] = [
    (361, 2429, 437_092.129_412, 0.084904),    // CBCL
    (10304, 400, 1_820_474.917_647, 0.149378), // ORL
    (4096, 400, 850_581.968_627, 0.093705),    // Olivetti
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

fn run(args: &Args) -> Result<()> {
    let datasets = resolve_datasets(&args.datasets)?;
    let sklearn = if args.no_sklearn {
        None
    } else {
        Python::find(args.python.as_deref())
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
    let kl = match resolve_kl(args.kl.as_deref(), &datasets)? {
        Some((name, dir)) => {
            eprintln!("\n== KL divergence, {name}: {}", dir.display());
            Some(kl::run(
                &name,
                &dir,
                sklearn.as_ref(),
                args.repeat,
                &args.out,
            )?)
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

/// The datasets as (name, folder); a bare DIR is named after its last component.
fn resolve_datasets(specs: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for spec in specs {
        let (name, dir) = dataset(spec);
        if !dir.is_dir() {
            bail!(
                "{}: no such folder (dataset {name}; pass DIR or NAME=DIR)",
                dir.display()
            );
        }
        out.push((name, dir));
    }
    Ok(out)
}

fn dataset(spec: &str) -> (String, PathBuf) {
    match spec.split_once('=') {
        Some((name, dir)) => (name.to_string(), PathBuf::from(dir)),
        None => {
            let dir = PathBuf::from(spec);
            let name = dir
                .file_name()
                .map_or_else(|| spec.to_string(), |n| n.to_string_lossy().into_owned());
            (name, dir)
        }
    }
}

/// The dataset of the KL comparison: `spec` names one of `datasets` or is a folder; without
/// it, the dataset named olivetti, if any. None (with a note) when there is none.
fn resolve_kl(
    spec: Option<&str>,
    datasets: &[(String, PathBuf)],
) -> Result<Option<(String, PathBuf)>> {
    let by_name = |name: &str| datasets.iter().find(|(n, _)| n == name).cloned();
    let chosen = match spec {
        Some("none") => return Ok(None),
        None => by_name("olivetti"),
        Some(spec) => by_name(spec).or_else(|| Some(dataset(spec))),
    };
    let Some((name, dir)) = chosen else {
        eprintln!("note: no dataset named olivetti; skipping the KL comparison (--kl DATASET)");
        return Ok(None);
    };
    if !dir.is_dir() {
        bail!("{}: no such folder (--kl {name})", dir.display());
    }
    Ok(Some((name, dir)))
}

fn bench_dataset(
    args: &Args,
    name: &str,
    dir: &Path,
    sklearn: Option<&Python>,
) -> Result<DatasetResult> {
    let faces: Faces<f32> = Loader::new(dir).load()?;
    let (m, n) = faces.x.dim();
    let x_sum: f64 = faces.x.iter().map(|&v| f64::from(v)).sum();
    let r = args.rank;
    let known = KNOWN_TARGETS
        .iter()
        .find(|&&(km, kn, ks, _)| (km, kn) == (m, n) && (ks - x_sum).abs() < 1e-6 * ks)
        .map(|&(.., e)| e);

    let (target, target_source) = match (known, sklearn) {
        (Some(e), _) if r == 49 => (
            e,
            "known: 1.01 x scikit-learn cd float64, 200 it.".to_string(),
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
    let plot = render::convergence_plot(&labelled, Some(target), &[])?;
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
    args: &Args,
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
    let plot = render::convergence_plot(&series, target, &[])?;
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
