//! The parts benchmarks: does each solver, with its defaults, find the known parts of the
//! swimmer, bars and outlined-demo sets, at the exact rank and over-complete, in f32 and f64?
//!
//! `cargo bench --bench parts [-- --set swimmer|bars|outlined] [--solver S] [--rank-extra 0,3]
//! [--max-iter 2000] [--tol T] [--init I] [--extrapolate on|off] [--multilevel on|off]`
//! prints one row per fit: the least cosine between an identifiable true part and its matched
//! basis image (optimal assignment), how many parts are below 0.95, the relative error,
//! iterations, stop reason, time, the components left dead (a zero column of W or row of H) and
//! the parts below 0.95 by name.

use std::time::Instant;

use facenmf::synth::{self, PartsSet};
use facenmf::{Float, Nmf, Solver};

struct Options {
    max_iter: usize,
    set: Option<String>,
    solver: Option<String>,
    extra: Vec<usize>,
    tol: Option<f64>,
    extrapolate: Option<bool>,
    init: Option<facenmf::Init>,
    multilevel: Option<bool>,
}

fn options() -> Options {
    let mut o = Options {
        max_iter: 2000,
        set: None,
        solver: None,
        extra: vec![0, 3],
        tol: None,
        extrapolate: None,
        init: None,
        multilevel: None,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| panic!("{a} needs a value"))
        };
        match a.as_str() {
            "--max-iter" => o.max_iter = value().parse().expect("--max-iter N"),
            "--set" => o.set = Some(value()),
            "--solver" => o.solver = Some(value()),
            "--tol" => o.tol = Some(value().parse().expect("--tol T")),
            "--multilevel" => o.multilevel = Some(value() == "on"),
            "--init" => o.init = Some(value().parse().expect("--init I")),
            "--extrapolate" => o.extrapolate = Some(value() == "on"),
            "--rank-extra" => {
                o.extra = value()
                    .split(',')
                    .map(|v| v.parse().expect("--rank-extra K,L"))
                    .collect()
            }
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn run<T: Float>(set: &PartsSet, solver: Solver, rank: usize, o: &Options) -> String {
    let x = set.x().mapv(T::from_f64);
    let mut params = Nmf::params(rank)
        .solver(solver)
        .max_iter(o.max_iter)
        .image_shape(set.height, set.width);
    if let Some(t) = o.tol {
        params = params.tol(t);
    }
    if let Some(on) = o.multilevel {
        params = params.multilevel(on);
    }
    if let Some(i) = o.init {
        params = params.init(i);
    }
    if let Some(e) = o.extrapolate {
        params = params.extrapolate(e);
    }
    let start = Instant::now();
    match params.fit(&x.view()) {
        Ok(fit) => {
            let found = set.match_basis(&fit.w.view());
            let missed = found.below(&set.part_names, &set.identifiable, 0.95);
            let dead = fit
                .w
                .columns()
                .into_iter()
                .zip(fit.h.view().rows())
                .filter(|(w, h)| {
                    w.iter().all(|v| v.to_f64() == 0.0) || h.iter().all(|v| v.to_f64() == 0.0)
                })
                .count();
            format!(
                "{:>7.3} {:>7} {:>10.6} {:>6} {:>10} {:>8.2} {dead:>5} {}",
                found.min_cosine(&set.identifiable),
                missed.len(),
                fit.rel_error,
                fit.n_iter,
                format!("{:?}", fit.stop),
                start.elapsed().as_secs_f64(),
                missed
                    .iter()
                    .map(|(name, c)| format!("{name}:{c:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        Err(e) => format!("error: {e}"),
    }
}

fn main() {
    let o = options();
    let sets = [
        synth::swimmer(),
        synth::bars(12, 600, 0),
        synth::with_outline(300, 0),
    ];
    println!(
        "{:<9} {:<6} {:>4} {:<4} {:>7} {:>7} {:>10} {:>6} {:>10} {:>8} {:>5} parts below 0.95",
        "set",
        "solver",
        "rank",
        "prec",
        "min cos",
        "missed",
        "rel err",
        "iters",
        "stop",
        "seconds",
        "dead"
    );
    for set in &sets {
        if o.set.as_ref().is_some_and(|s| s != set.name) {
            continue;
        }
        let parts = set.parts.ncols();
        for solver in ["hals", "cd", "mu", "fpgm", "anls"] {
            if o.solver.as_ref().is_some_and(|s| s != solver) {
                continue;
            }
            let s: Solver = solver.parse().expect("a solver");
            for &extra in &o.extra {
                let rank = parts + extra;
                for (prec, row) in [
                    ("f32", run::<f32>(set, s, rank, &o)),
                    ("f64", run::<f64>(set, s, rank, &o)),
                ] {
                    println!("{:<9} {solver:<6} {rank:>4} {prec:<4} {row}", set.name);
                }
            }
        }
    }
}
