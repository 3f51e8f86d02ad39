//! Missing entries: the objective sums over the known entries of X only.
//!
//! Solved by imputation (expectation-maximisation): before each iteration the hidden entries of
//! X are replaced by those of the current WH. The squared error of the filled matrix bounds
//! the known-entries error from above and touches it at the current iterate, so any update that
//! lowers the former lowers the latter (a majorisation-minimisation scheme; N.-D. Ho's
//! thesis and the weighted NMF literature use the same step). Every solver works unchanged;
//! the cost is one more m x n x r product per iteration.

use ndarray::{Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use super::linalg::{matmul, view};
use super::seed;
use crate::{Error, Float, Result};

/// A mask of `shape` with each entry hidden (false) with probability `fraction`, reproducible
/// from `seed` (a counter-based hash per entry, so the same for any thread count).
pub fn random_mask(shape: (usize, usize), fraction: f64, seed: u64) -> Array2<bool> {
    let cols = shape.1 as u64;
    let stream = seed ^ 0x005E_ED0F_4D15_C0DE;
    Array2::from_shape_fn((shape.0, shape.1), |(i, j)| {
        seed::nth_uniform(stream, i as u64 * cols + j as u64 + 1) >= fraction
    })
}

/// The filled data matrix and what is needed to refresh it.
#[derive(Debug)]
pub(crate) struct Missing<'a, T> {
    known: ArrayView2<'a, bool>,
    /// X with its hidden entries replaced by the current WH.
    pub(crate) filled: Array2<T>,
    product: Array2<T>,
    /// Sum of squares of the known entries of X.
    pub(crate) known_norm_sq: f64,
}

impl<'a, T: Float> Missing<'a, T> {
    /// Starts with the hidden entries at the mean of the known ones.
    pub(crate) fn new(x: &ArrayView2<T>, known: ArrayView2<'a, bool>) -> Result<Self> {
        if known.dim() != x.dim() {
            return Err(Error::param(
                "mask",
                format!("mask is {:?}, X is {:?}", known.dim(), x.dim()),
            ));
        }
        let (mut sum, mut sq, mut count) = (0.0, 0.0, 0usize);
        Zip::from(x).and(&known).for_each(|&v, &k| {
            if k {
                let v = v.to_f64();
                sum += v;
                sq += v * v;
                count += 1;
            }
        });
        if count == 0 || sq == 0.0 {
            return Err(Error::param(
                "mask",
                "no known nonzero entry is left to fit",
            ));
        }
        let fill = T::from_f64(sum / count as f64);
        let mut filled = x.to_owned();
        Zip::from(&mut filled).and(&known).for_each(|v, &k| {
            if !k {
                *v = fill;
            }
        });
        Ok(Missing {
            known,
            filled,
            product: Array2::zeros(x.dim()),
            known_norm_sq: sq,
        })
    }

    /// Sets the hidden entries of `filled` to those of W H (W m x r, H^T n x r) and returns
    /// the squared error on the known entries.
    pub(crate) fn refresh(&mut self, x: &ArrayView2<T>, w: &Array2<T>, ht: &Array2<T>) -> f64 {
        let (w, ht) = (w.view(), ht.view());
        matmul(&mut self.product, view(&w), view(&ht).transpose());
        let partial: Vec<f64> = self
            .filled
            .axis_chunks_iter_mut(Axis(0), 64)
            .into_par_iter()
            .zip(self.product.axis_chunks_iter(Axis(0), 64))
            .zip(x.axis_chunks_iter(Axis(0), 64))
            .zip(self.known.axis_chunks_iter(Axis(0), 64))
            .map(|(((mut filled, p), x), known)| {
                let mut err = 0.0;
                Zip::from(&mut filled)
                    .and(&p)
                    .and(&x)
                    .and(&known)
                    .for_each(|f, &p, &x, &k| {
                        if k {
                            let d = x.to_f64() - p.to_f64();
                            err += d * d;
                        } else {
                            *f = p;
                        }
                    });
                err
            })
            .collect();
        partial.iter().sum()
    }

    /// Relative errors of W H on the known and on the hidden entries (0 when none is hidden).
    pub(crate) fn errors(
        &mut self,
        x: &ArrayView2<T>,
        w: &Array2<T>,
        ht: &Array2<T>,
    ) -> (f64, f64) {
        let (w, ht) = (w.view(), ht.view());
        matmul(&mut self.product, view(&w), view(&ht).transpose());
        let (mut known_err, mut hidden_err, mut hidden_norm) = (0.0, 0.0, 0.0);
        Zip::from(&self.product)
            .and(x)
            .and(&self.known)
            .for_each(|&p, &x, &k| {
                let (p, x) = (p.to_f64(), x.to_f64());
                if k {
                    known_err += (x - p) * (x - p);
                } else {
                    hidden_err += (x - p) * (x - p);
                    hidden_norm += x * x;
                }
            });
        let hidden = if hidden_norm > 0.0 {
            (hidden_err / hidden_norm).sqrt()
        } else {
            0.0
        };
        ((known_err / self.known_norm_sq).sqrt(), hidden)
    }
}
