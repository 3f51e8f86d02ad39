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

use super::linalg::{TallProduct, matmul, view};
use crate::Float;

/// Floor of WH where it divides and of the denominators (scikit-learn's `EPSILON`).
const FLOOR: f64 = f32::EPSILON as f64;

/// Buffers and exponents of the beta multiplicative updates.
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
    pub(crate) fn new(m: usize, n: usize, r: usize, beta: f64) -> Self {
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
        }
    }

    /// `wh = W H` for W (m x r) and H^T (n x r).
    pub(crate) fn product(&mut self, w: &Array2<T>, ht: &Array2<T>) {
        let (w, ht) = (w.view(), ht.view());
        matmul(&mut self.wh, view(&w), view(&ht).transpose());
    }

    /// R and D from the current WH.
    fn prepare(&mut self, x: &ArrayView2<T>) {
        let (beta, floor) = (self.beta, FLOOR);
        Zip::from(&mut self.ratio)
            .and(x)
            .and(&self.wh)
            .par_for_each(|r, &x, &wh| {
                let (x, wh) = (x.to_f64(), wh.to_f64().max(floor));
                *r = T::from_f64(if beta == 1.0 {
                    x / wh
                } else {
                    x * wh.powf(beta - 2.0)
                });
            });
        if beta != 1.0 {
            Zip::from(&mut self.power)
                .and(&self.wh)
                .par_for_each(|d, &wh| {
                    *d = T::from_f64(wh.to_f64().max(floor).powf(beta - 1.0));
                });
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
        self.prepare(x);
        let power = (self.beta != 1.0).then(|| self.power.view());
        let rule = Rule {
            gamma: self.gamma,
            l1,
            beta: self.beta,
        };
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
        let rule = Rule {
            gamma: self.gamma,
            l1,
            beta: self.beta,
        };
        self.half_w
            .update(w, self.ratio.t(), power, ht.view(), rule);
    }

    /// The beta-divergence D(X | WH) at the current WH, as scikit-learn computes it (entries
    /// of X at or below the floor are left out of the terms that divide by them).
    pub(crate) fn divergence(&self, x: &ArrayView2<T>) -> f64 {
        divergence(x, &self.wh.view(), self.beta)
    }

    /// `||X - WH||_F^2` at the current WH.
    pub(crate) fn frobenius_sq(&self, x: &ArrayView2<T>) -> f64 {
        rows_sum(x, &self.wh.view(), |x, p| (x - p) * (x - p))
    }
}

/// `sum f(x, p)` over all entries, rows in parallel in fixed blocks (a reproducible order).
fn rows_sum<T: Float>(
    x: &ArrayView2<T>,
    p: &ArrayView2<T>,
    f: impl Fn(f64, f64) -> f64 + Sync,
) -> f64 {
    use rayon::prelude::*;
    let partial: Vec<f64> = x
        .axis_chunks_iter(Axis(0), 16)
        .into_par_iter()
        .zip(p.axis_chunks_iter(Axis(0), 16))
        .map(|(xb, pb)| {
            xb.iter()
                .zip(pb.iter())
                .map(|(&a, &b)| f(a.to_f64(), b.to_f64()))
                .sum::<f64>()
        })
        .collect();
    partial.iter().sum()
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
    Zip::from(f).and(num).and(den).par_for_each(|f, &n, &d| {
        let ratio = n.to_f64().max(0.0) / (d.to_f64() + l1).max(FLOOR);
        let step = if gamma == 1.0 {
            ratio
        } else {
            ratio.powf(gamma)
        };
        let mut v = f.to_f64() * step;
        if beta < 1.0 && v < f64::EPSILON {
            // scikit-learn: necessary for stability with beta < 1.
            v = 0.0;
        }
        *f = T::from_f64(v);
    });
}

/// The beta-divergence of X from P (elementwise sums in f64, rows in parallel).
pub(crate) fn divergence<T: Float>(x: &ArrayView2<T>, p: &ArrayView2<T>, beta: f64) -> f64 {
    rows_sum(x, p, |x, p| {
        let q = p.max(FLOOR);
        if beta == 2.0 {
            0.5 * (x - p) * (x - p)
        } else if beta == 1.0 {
            let log_term = if x > FLOOR { x * (x / q).ln() } else { 0.0 };
            log_term + p - x
        } else if beta == 0.0 {
            if x > FLOOR {
                x / q - (x / q).ln() - 1.0
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

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
