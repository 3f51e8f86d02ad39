//! Micro-benchmarks: the two large products of an iteration, and ten iterations of each solver
//! from a fixed start, on synthetic matrices shaped like CBCL (361 x 2429) and ORL
//! (10304 x 400), rank 49, f32. The solver benchmarks time `fit_from` with 10 iterations, which
//! also includes one input scan, the scaling of the start and the final exact error (about two
//! iterations' worth of products). `benches/compare` gives the end-to-end comparison with
//! scikit-learn and per-iteration times from the fit's own history.
//!
//! Run: `cargo bench --bench solvers`.

use facenmf::nmf::Products;
use facenmf::{Nmf, Solver};
use ndarray::Array2;

fn main() {
    divan::main();
}

const SHAPES: [(usize, usize); 2] = [(361, 2429), (10304, 400)];
const RANK: usize = 49;

fn hash(i: usize, salt: u64) -> f32 {
    let mut z = (i as u64)
        .wrapping_add(salt)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

/// A nonnegative rank-49-plus-noise matrix and a nonnegative start.
fn problem(m: usize, n: usize) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
    let w0 = Array2::from_shape_fn((m, RANK), |(i, j)| hash(i * RANK + j, 1));
    let h0 = Array2::from_shape_fn((RANK, n), |(i, j)| hash(i * n + j, 2));
    let noise = Array2::from_shape_fn((m, n), |(i, j)| 0.1 * hash(i * n + j, 3));
    let x = w0.dot(&h0) / RANK as f32 + noise;
    let w = Array2::from_shape_fn((m, RANK), |(i, j)| hash(i * RANK + j, 4));
    let h = Array2::from_shape_fn((RANK, n), |(i, j)| hash(i * n + j, 5));
    (x, w, h)
}

/// X^T W and X H^T: 4 m n r flops.
#[divan::bench(args = SHAPES)]
fn products(bencher: divan::Bencher, (m, n): (usize, usize)) {
    let (x, w, h) = problem(m, n);
    let ht = h.t().as_standard_layout().into_owned();
    let mut products = Products::new(m, n, RANK);
    bencher
        .counter(divan::counter::ItemsCount::new(4 * m * n * RANK))
        .bench_local(|| products.compute(&x.view(), &w.view(), &ht.view()));
}

fn ten_iterations(bencher: divan::Bencher, (m, n): (usize, usize), params: Nmf) {
    let (x, w, h) = problem(m, n);
    let params = params.max_iter(10).tol(0.0);
    bencher.bench_local(|| {
        params
            .fit_from(&x.view(), &w.view(), &h.view(), |_| {})
            .expect("valid problem")
    });
}

/// E-A-HALS, the default.
#[divan::bench(args = SHAPES)]
fn hals_extrapolated(bencher: divan::Bencher, shape: (usize, usize)) {
    ten_iterations(bencher, shape, Nmf::params(RANK));
}

/// A-HALS (inner repetitions, no extrapolation).
#[divan::bench(args = SHAPES)]
fn hals_accelerated(bencher: divan::Bencher, shape: (usize, usize)) {
    ten_iterations(bencher, shape, Nmf::params(RANK).extrapolate(false));
}

/// Plain HALS, scikit-learn's cd.
#[divan::bench(args = SHAPES)]
fn cd(bencher: divan::Bencher, shape: (usize, usize)) {
    ten_iterations(bencher, shape, Nmf::params(RANK).solver(Solver::Cd));
}

/// Multiplicative updates.
#[divan::bench(args = SHAPES)]
fn mu(bencher: divan::Bencher, shape: (usize, usize)) {
    ten_iterations(bencher, shape, Nmf::params(RANK).solver(Solver::Mu));
}

/// Fast projected gradient.
#[divan::bench(args = SHAPES)]
fn fpgm(bencher: divan::Bencher, shape: (usize, usize)) {
    ten_iterations(bencher, shape, Nmf::params(RANK).solver(Solver::Fpgm));
}

/// ANLS with block principal pivoting.
#[divan::bench(args = SHAPES)]
fn anls(bencher: divan::Bencher, shape: (usize, usize)) {
    ten_iterations(bencher, shape, Nmf::params(RANK).solver(Solver::Anls));
}
