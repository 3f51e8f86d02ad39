//! The Markdown report of a comparison.

use super::machine::Machine;
use super::scale::ScalePoint;
use super::{DatasetResult, fmt_opt, median};

pub(crate) fn report(
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
