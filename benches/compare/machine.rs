//! The machine a comparison ran on: cores, clock, SIMD width, and the measured f32 peak that
//! the products are measured against.

use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) model: String,
    pub(crate) mhz: f64,
    pub(crate) simd: &'static str,
    pub(crate) flops_per_cycle: f64,
    /// cores x nominal clock x f32 flops per cycle.
    pub(crate) nominal_peak_gflops: f64,
    /// Measured: independent FMAs on every thread, f32.
    pub(crate) peak_gflops: f64,
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
    pub(crate) fn read() -> Self {
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

    pub(crate) fn describe(&self) -> String {
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
