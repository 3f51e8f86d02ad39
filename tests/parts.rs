//! The parts benchmarks as tests: every solver with its defaults finds every identifiable true
//! part (cosine >= 0.95 to its own basis image after optimal matching) on the swimmer, bars
//! and outlined-demo sets, at the exact rank and three above it, in f32 and f64.
//!
//! `cargo bench --bench parts` prints the same fits as a table.

use facenmf::synth::{self, PartsSet};
use facenmf::{Float, Nmf, Solver};

/// The least cosine a found part may have.
const FOUND: f64 = 0.95;
/// Components beyond the number of parts in the over-complete fits.
const EXTRA: usize = 3;

/// Fits `set` with `solver`'s defaults at `rank` and returns a line for each part not found.
fn missed<T: Float>(set: &PartsSet, solver: Solver, rank: usize) -> Vec<String> {
    let x = set.x().mapv(T::from_f64);
    let fit = Nmf::params(rank)
        .solver(solver)
        .max_iter(2000)
        .image_shape(set.height, set.width)
        .fit(&x.view())
        .unwrap_or_else(|e| panic!("{} {solver:?} rank {rank}: {e}", set.name));
    let found = set.match_basis(&fit.w.view());
    found
        .below(&set.part_names, &set.identifiable, FOUND)
        .into_iter()
        .map(|(name, c)| {
            format!(
                "{} {solver:?} {} rank {rank}: {name} cosine {c:.3} (rel. error {:.6}, {} iterations, {:?})",
                set.name,
                T::NAME,
                fit.rel_error,
                fit.n_iter,
                fit.stop
            )
        })
        .collect()
}

fn check(sets: &[PartsSet], solvers: &[Solver], extras: &[usize]) {
    let mut failures = Vec::new();
    for set in sets {
        let parts = set.parts.ncols();
        for &solver in solvers {
            for &extra in extras {
                failures.extend(missed::<f32>(set, solver, parts + extra));
                failures.extend(missed::<f64>(set, solver, parts + extra));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "parts not found:\n{}",
        failures.join("\n")
    );
}

const SOLVERS: [Solver; 5] = [
    Solver::Hals,
    Solver::Cd,
    Solver::Mu,
    Solver::Fpgm,
    Solver::Anls,
];

#[test]
fn swimmer_parts_are_found() {
    check(&[synth::swimmer()], &SOLVERS, &[0, EXTRA]);
}

#[test]
fn bars_are_found() {
    let sets = [synth::bars(12, 600, 0), synth::bars(12, 600, 1)];
    check(&sets, &SOLVERS, &[0, EXTRA]);
}

#[test]
fn outlined_demo_parts_are_found() {
    let sets = [synth::with_outline(300, 0), synth::with_outline(300, 1)];
    check(&sets, &SOLVERS, &[0, EXTRA]);
}

/// The matching itself can fail: a basis of the wrong parts is not passed.
#[test]
fn a_wrong_basis_is_not_taken_for_the_parts() {
    let set = synth::swimmer();
    let basis = set.parts.slice(ndarray::s![.., ..9]).to_owned();
    let found = synth::match_parts(&set.parts.view(), &basis.view());
    assert!(found.min_cosine(&set.identifiable) < FOUND);
    let truth = synth::match_parts(&set.parts.view(), &set.parts.view());
    assert!(truth.min_cosine(&set.identifiable) > 0.999_999);
}
