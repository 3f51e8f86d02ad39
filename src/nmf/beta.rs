//! Multiplicative updates for the beta-divergence family: Frobenius (beta = 2),
//! Kullback-Leibler (1), Itakura-Saito (0) and any other beta.
//!
//! C. Fevotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
//! beta-divergence", Neural Computation 23(9), 2011: with `R = WH^(beta-2) * X` and
//! `D = WH^(beta-1)` (elementwise),
//! `H <- H * (W^T R / W^T D)^gamma` and `W <- W * (R H^T / D H^T)^gamma`, where
//! gamma = 1/(2 - beta) for beta < 1, 1 for 1 <= beta <= 2 and 1/(beta - 1) for beta > 2, which
//! makes the divergence non-increasing. Small values are floored at the f32 epsilon where they
//! divide or take negative powers, as scikit-learn does. Unlike the Frobenius solvers, every
//! half-step needs WH itself (one m x n x r product) and two more products.

use ndarray::{Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use super::kl_cd::KlCd;
use super::linalg::{TallProduct, matmul, view};
use crate::Float;

/// Floor of WH where it divides and of the denominators (scikit-learn's `EPSILON`).
const FLOOR: f64 = f32::EPSILON as f64;

/// Buffers and exponents of the beta multiplicative updates (or, for KL with the cd solver,
/// of the coordinate descent of [`KlCd`], which shares the measuring pass).
#[derive(Debug)]
pub(crate) struct BetaMu<T> {
    beta: f64,
    gamma: f64,
    /// W H (m x n) at the current iterate.
    wh: Array2<T>,
    /// `WH^(beta-2) * X`, then reused.
    ratio: Array2<T>,
    /// `WH^(beta-1)` (not used for KL, where it is all ones).
    power: Array2<T>,
    half_h: Half<T>,
    half_w: Half<T>,
    /// `ratio` and `power` already hold the values for the current WH ([`BetaMu::measure`]
    /// fills them in the same pass as the errors).
    prepared: bool,
    /// Every column of W is scaled to sum 1 after its update (Lee & Seung 1999's KL rule).
    unit_sum_w: bool,
    /// KL by coordinate descent ([`KlCd`], the cd solver) in place of the multiplicative rule.
    coordinate: Option<KlCd<T>>,
}

/// Products and buffers of the update of one factor (rows x r).
#[derive(Debug)]
struct Half<T> {
    num: TallProduct<T>,
    den: TallProduct<T>,
    num_out: Array2<T>,
    den_out: Array2<T>,
}

/// Exponent and penalty of an update.
#[derive(Debug, Clone, Copy)]
struct Rule {
    gamma: f64,
    l1: f64,
    beta: f64,
}

impl<T: Float> Half<T> {
    fn new(rows: usize, r: usize) -> Self {
        Half {
            num: TallProduct::new(rows, r),
            den: TallProduct::new(rows, r),
            num_out: Array2::zeros((rows, r)),
            den_out: Array2::zeros((rows, r)),
        }
    }

    /// `f *= (R^T other / D^T other)^gamma`, with R and D oriented so that the reduction runs
    /// over the other factor's rows; `power` is None for KL, where D is all ones.
    fn update(
        &mut self,
        f: &mut Array2<T>,
        ratio: ArrayView2<T>,
        power: Option<ArrayView2<T>>,
        other: ArrayView2<T>,
        rule: Rule,
    ) {
        self.num.compute(&mut self.num_out, &ratio, &other);
        match power {
            Some(power) => self.den.compute(&mut self.den_out, &power, &other),
            None => {
                // D is all ones: every row of D^T other is the column sums of `other`.
                let sums = other.sum_axis(Axis(0));
                self.den_out
                    .rows_mut()
                    .into_iter()
                    .for_each(|mut row| row.assign(&sums));
            }
        }
        multiply(
            f,
            &self.num_out,
            &self.den_out,
            rule.gamma,
            rule.l1,
            rule.beta,
        );
    }
}

impl<T: Float> BetaMu<T> {
    pub(crate) fn new(m: usize, n: usize, r: usize, beta: f64, unit_sum_w: bool) -> Self {
        let gamma = if beta < 1.0 {
            1.0 / (2.0 - beta)
        } else if beta > 2.0 {
            1.0 / (beta - 1.0)
        } else {
            1.0
        };
        BetaMu {
            beta,
            gamma,
            wh: Array2::zeros((m, n)),
            ratio: Array2::zeros((m, n)),
            power: Array2::zeros(if beta == 1.0 { (0, 0) } else { (m, n) }),
            half_h: Half::new(n, r),
            half_w: Half::new(m, r),
            prepared: false,
            unit_sum_w,
            coordinate: None,
        }
    }

    /// Iterates by coordinate descent on X (KL only) instead of the multiplicative rule.
    pub(crate) fn by_coordinate_descent(mut self, x: &ArrayView2<T>, r: usize) -> Self {
        debug_assert_eq!(self.beta, 1.0, "coordinate descent is for KL");
        self.coordinate = Some(KlCd::new(x, r));
        self
    }

    /// One iteration, H then W, each after a fresh W H; returns the squared Frobenius error and
    /// the divergence of the result.
    pub(crate) fn iterate(
        &mut self,
        x: &ArrayView2<T>,
        w: &mut Array2<T>,
        ht: &mut Array2<T>,
    ) -> (f64, f64) {
        if let Some(cd) = &mut self.coordinate {
            cd.update_h(w, ht);
            cd.update_w(x, w, ht, &mut self.wh);
            self.prepared = false;
            return self.measure(x);
        }
        self.update_h(x, w, ht, 0.0);
        self.product(w, ht);
        self.update_w(x, w, ht, 0.0);
        self.product(w, ht);
        self.measure(x)
    }

    /// `wh = W H` for W (m x r) and H^T (n x r).
    pub(crate) fn product<S: ndarray::Data<Elem = T>>(
        &mut self,
        w: &Array2<T>,
        ht: &ndarray::ArrayBase<S, ndarray::Ix2>,
    ) {
        let (w, ht) = (w.view(), ht.view());
        matmul(&mut self.wh, view(&w), view(&ht).transpose());
        self.prepared = false;
    }

    /// R and D from the current WH.
    fn prepare(&mut self, x: &ArrayView2<T>) {
        let x = x.as_slice().expect("standard layout");
        let wh = self.wh.as_slice().expect("standard layout");
        let ratio = self.ratio.as_slice_mut().expect("standard layout");
        let len = BLOCK * self.wh.ncols().max(1);
        let blocks = x.par_chunks(len).zip(wh.par_chunks(len));
        // One loop per case, not a branch inside one: the compiler would compute the powers
        // for every entry and select afterwards.
        if self.beta == 1.0 {
            let kernel = kl_ratio_kernel::<T>();
            blocks
                .zip(ratio.par_chunks_mut(len))
                .for_each(|((x, p), r)| kernel(x, p, r));
        } else {
            let power = self.power.as_slice_mut().expect("standard layout");
            let beta = self.beta;
            blocks
                .zip(ratio.par_chunks_mut(len))
                .zip(power.par_chunks_mut(len))
                .for_each(|(((x, p), r), d)| {
                    for (((&x, &p), r), d) in x.iter().zip(p).zip(r).zip(d) {
                        (*r, *d) = ratio_and_power(x.to_f64(), p.to_f64(), beta);
                    }
                });
        }
    }

    /// The exponent and penalty of an update.
    fn rule(&self, l1: f64) -> Rule {
        Rule {
            gamma: self.gamma,
            l1,
            beta: self.beta,
        }
    }

    /// One update of H^T (n x r) with W fixed; `wh` must hold the current W H.
    pub(crate) fn update_h(
        &mut self,
        x: &ArrayView2<T>,
        w: &Array2<T>,
        ht: &mut Array2<T>,
        l1: f64,
    ) {
        if !self.prepared {
            self.prepare(x);
        }
        let power = (self.beta != 1.0).then(|| self.power.view());
        let rule = self.rule(l1);
        self.half_h
            .update(ht, self.ratio.view(), power, w.view(), rule);
    }

    /// One update of W (m x r) with H fixed; `wh` must hold the current W H.
    pub(crate) fn update_w(
        &mut self,
        x: &ArrayView2<T>,
        w: &mut Array2<T>,
        ht: &Array2<T>,
        l1: f64,
    ) {
        self.prepare(x);
        let power = (self.beta != 1.0).then(|| self.power.t());
        let rule = self.rule(l1);
        self.half_w
            .update(w, self.ratio.t(), power, ht.view(), rule);
        if self.unit_sum_w {
            unit_sum_columns(w);
        }
    }

    /// `(||X - WH||_F^2, D(X | WH))` at the current WH, in one pass over X and WH that also
    /// prepares R and D for the next update. The divergence is scikit-learn's: entries of X at
    /// or below the floor are left out of the terms that divide by them.
    pub(crate) fn measure(&mut self, x: &ArrayView2<T>) -> (f64, f64) {
        let x = x.as_slice().expect("standard layout");
        let wh = self.wh.as_slice().expect("standard layout");
        let ratio = self.ratio.as_slice_mut().expect("standard layout");
        let len = BLOCK * self.wh.ncols().max(1);
        let partial: Vec<(f64, f64)> = if self.beta == 1.0 {
            let kernel = kl_kernel::<T>();
            x.par_chunks(len)
                .zip(wh.par_chunks(len))
                .zip(ratio.par_chunks_mut(len))
                .map(|((x, p), r)| kernel(x, p, r))
                .collect()
        } else {
            let power = self.power.as_slice_mut().expect("standard layout");
            let beta = self.beta;
            x.par_chunks(len)
                .zip(wh.par_chunks(len))
                .zip(ratio.par_chunks_mut(len))
                .zip(power.par_chunks_mut(len))
                .map(|(((x, p), r), d)| general_block(x, p, r, d, beta))
                .collect()
        };
        self.prepared = true;
        partial
            .iter()
            .fold((0.0, 0.0), |(f, d), &(pf, pd)| (f + pf, d + pd))
    }
}

/// Lee & Seung (Nature 401, 1999, Methods): `W_ia <- W_ia / sum_j W_ja` after the W update,
/// with H left as it is; with columns summing to 1 the KL update of H, `H * W^T R / W^T 1`, is
/// their `H_a,mu <- H_a,mu sum_i W_ia V_i,mu / (WH)_i,mu`, and since the W update's denominator
/// is constant down each column the normalised W is theirs too. A zero column stays zero.
fn unit_sum_columns<T: Float>(w: &mut Array2<T>) {
    let sums = w.sum_axis(Axis(0));
    let inverse = sums.mapv(|s| {
        if s > T::zero() {
            T::one() / s
        } else {
            T::one()
        }
    });
    Zip::from(w.rows_mut()).par_for_each(|mut row| row.zip_mut_with(&inverse, |v, &d| *v *= d));
}

/// Rows per parallel block of the elementwise passes (fixed, so sums are reproducible).
const BLOCK: usize = 16;

type KlKernel<T> = fn(&[T], &[T], &mut [T]) -> (f64, f64);

/// The KL pass compiled for the widest vectors this CPU has: its logarithms are most of an
/// iteration's time unless they vectorise.
fn kl_kernel<T: Float>() -> KlKernel<T> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            return |x, p, r| {
                // SAFETY: the CPU supports AVX-512F and DQ, checked just above.
                unsafe { kl_block_avx512(x, p, r) }
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return |x, p, r| {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                unsafe { kl_block_avx2(x, p, r) }
            };
        }
    }
    kl_block
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
fn kl_block_avx512<T: Float>(x: &[T], p: &[T], ratio: &mut [T]) -> (f64, f64) {
    kl_block(x, p, ratio)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn kl_block_avx2<T: Float>(x: &[T], p: &[T], ratio: &mut [T]) -> (f64, f64) {
    kl_block(x, p, ratio)
}

type KlRatioKernel<T> = fn(&[T], &[T], &mut [T]);

/// `ratio = X / WH` for KL, compiled for the widest vectors this CPU has.
fn kl_ratio_kernel<T: Float>() -> KlRatioKernel<T> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return |x, p, r| {
                // SAFETY: the CPU supports AVX-512F, checked just above.
                unsafe { kl_ratio_avx512(x, p, r) }
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return |x, p, r| {
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { kl_ratio_avx2(x, p, r) }
            };
        }
    }
    kl_ratio
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn kl_ratio_avx512<T: Float>(x: &[T], p: &[T], ratio: &mut [T]) {
    kl_ratio(x, p, ratio);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn kl_ratio_avx2<T: Float>(x: &[T], p: &[T], ratio: &mut [T]) {
    kl_ratio(x, p, ratio);
}

/// `ratio = x / max(p, floor)` in T: one correctly rounded division, as in f64 then rounded.
#[inline(always)]
fn kl_ratio<T: Float>(x: &[T], p: &[T], ratio: &mut [T]) {
    let floor = T::from_f64(FLOOR);
    for ((&x, &p), r) in x.iter().zip(p).zip(ratio) {
        *r = x / p.max_of(floor);
    }
}

/// One block of the KL pass: `ratio = X / WH` and the sums of `(x - p)^2` and of the KL terms
/// `x ln(x / p) - x + p`, in eight independent lanes so that the loop vectorises.
#[inline(always)]
fn kl_block<T: Float>(x: &[T], p: &[T], ratio: &mut [T]) -> (f64, f64) {
    const W: usize = 8;
    let (mut fro, mut div) = ([0.0f64; W], [0.0f64; W]);
    let mut lane = |k: usize, x: T, p: T, r: &mut T| {
        let (x, p) = (x.to_f64(), p.to_f64());
        let q = x / p.max(FLOOR);
        *r = T::from_f64(q);
        let log_term = x * ln(q.max(f64::MIN_POSITIVE));
        div[k] += if x > FLOOR { log_term } else { 0.0 } + p - x;
        fro[k] += (x - p) * (x - p);
    };
    let (xs, x_tail) = x.as_chunks::<W>();
    let (ps, p_tail) = p.as_chunks::<W>();
    let (rs, r_tail) = ratio.as_chunks_mut::<W>();
    for ((x, p), r) in xs.iter().zip(ps).zip(rs) {
        for k in 0..W {
            lane(k, x[k], p[k], &mut r[k]);
        }
    }
    for (k, ((&x, &p), r)) in x_tail.iter().zip(p_tail).zip(r_tail).enumerate() {
        lane(k, x, p, r);
    }
    (fro.iter().sum(), div.iter().sum())
}

/// The entries of R = X WH^(beta-2) and D = WH^(beta-1), with WH floored.
#[inline(always)]
fn ratio_and_power<T: Float>(x: f64, p: f64, beta: f64) -> (T, T) {
    let q = p.max(FLOOR);
    (
        T::from_f64(x * q.powf(beta - 2.0)),
        T::from_f64(q.powf(beta - 1.0)),
    )
}

/// One block of the pass for any beta other than 1: R, D and the two sums.
fn general_block<T: Float>(
    x: &[T],
    p: &[T],
    ratio: &mut [T],
    power: &mut [T],
    beta: f64,
) -> (f64, f64) {
    let (mut fro, mut div) = (0.0, 0.0);
    for (((&x, &p), r), d) in x.iter().zip(p).zip(ratio).zip(power) {
        let (x, p) = (x.to_f64(), p.to_f64());
        (*r, *d) = ratio_and_power(x, p, beta);
        fro += (x - p) * (x - p);
        div += divergence_term(x, p, beta);
    }
    (fro, div)
}

/// The natural logarithm of a positive normal number, branch-free so that it vectorises:
/// x = 2^e m with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <=
/// 0.172, by its series to s^17 (truncation below 4e-16 relative).
#[inline(always)]
fn ln(x: f64) -> f64 {
    const MANTISSA: u64 = (1 << 52) - 1;
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) as i64 - 1023) as f64;
    let mut m = f64::from_bits((bits & MANTISSA) | 1.0f64.to_bits());
    let high = m > std::f64::consts::SQRT_2;
    m = if high { 0.5 * m } else { m };
    exponent += if high { 1.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut series = 1.0 / 17.0;
    for k in (0..8).rev() {
        series = series * s2 + 1.0 / (2 * k + 1) as f64;
    }
    exponent * std::f64::consts::LN_2 + 2.0 * s * series
}

/// `f *= (num / (den + l1))^gamma`, denominators floored; tiny entries zeroed for beta < 1.
fn multiply<T: Float>(
    f: &mut Array2<T>,
    num: &Array2<T>,
    den: &Array2<T>,
    gamma: f64,
    l1: f64,
    beta: f64,
) {
    let update = |f: &mut T, n: T, d: T, step: fn(f64, f64) -> f64| {
        let ratio = n.to_f64().max(0.0) / (d.to_f64() + l1).max(FLOOR);
        let mut v = f.to_f64() * step(ratio, gamma);
        if beta < 1.0 && v < f64::EPSILON {
            // scikit-learn: necessary for stability with beta < 1.
            v = 0.0;
        }
        let v = T::from_f64(v);
        // Subnormal entries carry nothing a fit can see, but every product they enter costs
        // tens of times a normal one: Lee & Seung's KL fit of CBCL slowed from 6 to 72 ms per
        // iteration once its factors decayed into them (clipped pixels, always 0).
        *f = if v < T::MIN_POSITIVE { T::zero() } else { v };
    };
    // Two loops, not a branch inside one: the compiler would compute the power for every
    // entry and select afterwards.
    let zip = Zip::from(f).and(num).and(den);
    if gamma == 1.0 {
        zip.par_for_each(|f, &n, &d| update(f, n, d, |ratio, _| ratio));
    } else {
        zip.par_for_each(|f, &n, &d| update(f, n, d, f64::powf));
    }
}

/// The beta-divergence of X from P, entry by entry (the reference for the fused pass).
#[cfg(test)]
pub(crate) fn divergence<T: Float>(x: &ArrayView2<T>, p: &ArrayView2<T>, beta: f64) -> f64 {
    x.iter()
        .zip(p)
        .map(|(&x, &p)| divergence_term(x.to_f64(), p.to_f64(), beta))
        .sum()
}

/// One entry's term of the beta-divergence, as scikit-learn computes it.
#[inline(always)]
fn divergence_term(x: f64, p: f64, beta: f64) -> f64 {
    let q = p.max(FLOOR);
    if beta == 2.0 {
        0.5 * (x - p) * (x - p)
    } else if beta == 1.0 {
        let log_term = if x > FLOOR { x * ln(x / q) } else { 0.0 };
        log_term + p - x
    } else if beta == 0.0 {
        if x > FLOOR {
            x / q - ln(x / q) - 1.0
        } else {
            x / q - 1.0
        }
    } else {
        let cross = if x > FLOOR {
            x * q.powf(beta - 1.0)
        } else {
            0.0
        };
        (x.powf(beta) + p.powf(beta) * (beta - 1.0) - beta * cross) / (beta * (beta - 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn ln_matches_the_standard_library() {
        let mut x = 1e-300;
        while x < 1e300 {
            for v in [x, x * 1.37, x * std::f64::consts::SQRT_2, x * 1.999_999] {
                let (ours, std) = (ln(v), v.ln());
                assert!(
                    (ours - std).abs() <= 4e-16 * std.abs().max(1.0),
                    "ln({v}) = {ours}, std {std}"
                );
            }
            x *= 7.3;
        }
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn the_fused_pass_gives_both_errors_and_the_ratio() {
        let x = array![[1.0f64, 0.0, 2.0], [0.5, 4.0, 3.0]];
        let p = array![[2.0f64, 1.0, 1.0], [0.5, 3.0, 0.25]];
        for beta in [1.0, 0.0, 1.5] {
            let mut b = BetaMu::<f64>::new(2, 3, 1, beta, false);
            b.wh.assign(&p);
            let (fro, div) = b.measure(&x.view());
            let expect_fro: f64 = x.iter().zip(&p).map(|(&x, &p)| (x - p) * (x - p)).sum();
            assert!((fro - expect_fro).abs() < 1e-12, "{beta}");
            let expect = divergence(&x.view(), &p.view(), beta);
            assert!((div - expect).abs() < 1e-12, "{beta}: {div} vs {expect}");
            let r = b.ratio[[1, 2]];
            assert!((r - 3.0 * 0.25f64.powf(beta - 2.0)).abs() < 1e-12, "{beta}");
        }
    }

    #[test]
    fn divergences_match_their_definitions() {
        let x = array![[1.0f64, 2.0], [0.5, 4.0]];
        let p = array![[2.0f64, 1.0], [0.5, 3.0]];
        let kl: f64 = x
            .iter()
            .zip(&p)
            .map(|(&x, &p)| x * (x / p).ln() - x + p)
            .sum();
        assert!((divergence(&x.view(), &p.view(), 1.0) - kl).abs() < 1e-12);
        let is: f64 = x
            .iter()
            .zip(&p)
            .map(|(&x, &p)| x / p - (x / p).ln() - 1.0)
            .sum();
        assert!((divergence(&x.view(), &p.view(), 0.0) - is).abs() < 1e-12);
        let b = 1.5;
        let general: f64 = x
            .iter()
            .zip(&p)
            .map(|(&x, &p)| {
                (x.powf(b) + (b - 1.0) * p.powf(b) - b * x * p.powf(b - 1.0)) / (b * (b - 1.0))
            })
            .sum();
        assert!((divergence(&x.view(), &p.view(), b) - general).abs() < 1e-12);
        let fro: f64 = x
            .iter()
            .zip(&p)
            .map(|(&x, &p)| 0.5 * (x - p) * (x - p))
            .sum();
        assert!((divergence(&x.view(), &p.view(), 2.0) - fro).abs() < 1e-12);
    }
}
