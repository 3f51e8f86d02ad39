//! Per-iteration time and peak memory on synthetic matrices of growing width.

use anyhow::Result;
use ndarray::Array2;
use serde::Serialize;

use facenmf::Nmf;

use super::{peak_rss_of, per_iteration};

/// Per-iteration time on synthetic 4096 x n (rank 64, f32) for n = 12.5k .. 100k.
pub(crate) fn bench_scale() -> Result<Vec<ScalePoint>> {
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
pub(crate) struct ScalePoint {
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) rank: usize,
    pub(crate) per_iter: f64,
    pub(crate) init_seconds: f64,
    pub(crate) peak_rss_bytes: Option<u64>,
    pub(crate) factor_bytes: u64,
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
