//! Apply: choosing the rank by held-out error (here), and recognising people from their
//! coefficients (`recognition`).
//!
//! For each rank and replicate, one fit on the known entries only (the missing-data machinery):
//! a random fraction of the pixels of every training face is hidden (speckled
//! cross-validation), and a random share of whole faces is hidden too. The speckled test error
//! is the error on the hidden pixels of the training faces; the held-out faces are projected
//! onto the fitted W afterwards ([`crate::nmf::project`]) and their error is the held-out-face
//! error. No factor is ever fitted on a test entry: W and the training faces' H see only known
//! pixels, and a wholly hidden face contributes nothing to the objective (its imputation is W h,
//! whose residual is zero). One fit per rank and replicate, so the study costs what the fits
//! with missing data cost, plus the projections.

mod recognition;

pub use recognition::{
    MethodScore, Occlusion, Recognition, RecognitionReport, Split, confusion, natural_cmp,
};

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::nmf::{self, Nmf, random_mask};
use crate::{Error, Float, Result};

/// The settings of a rank study.
#[derive(Debug, Clone)]
pub struct RankStudy {
    /// The ranks to try.
    pub ranks: Vec<usize>,
    /// Fits per rank, each with its own hidden pixels and faces.
    pub replicates: usize,
    /// Fraction of each training face's pixels hidden.
    pub holdout: f64,
    /// Fraction of the faces hidden whole (at least one face when above 0).
    pub heldout_faces: f64,
    /// Seed of the hidden pixels and faces (and of each fit).
    pub seed: u64,
}

/// One fit of a rank study.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RankFit {
    /// The rank.
    pub rank: usize,
    /// The replicate, from 0.
    pub replicate: usize,
    /// Relative error on the known pixels of the training faces.
    pub train_error: f64,
    /// Relative error on the hidden pixels of the training faces.
    pub test_error: f64,
    /// Relative error of the held-out faces projected onto W (`None` without held-out faces).
    pub heldout_face_error: Option<f64>,
    /// Mean Hoyer sparseness of W's columns.
    pub sparseness_w: f64,
    /// Iterations of the fit.
    pub iterations: usize,
    /// Seconds of the fit and projection.
    pub seconds: f64,
}

/// The mean and standard error of a rank's test errors.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RankSummary {
    /// The rank.
    pub rank: usize,
    /// Mean test error over the replicates.
    pub mean_test_error: f64,
    /// Its standard error (0 with one replicate).
    pub se_test_error: f64,
    /// Mean held-out-face error, where there were held-out faces.
    pub mean_heldout_face_error: Option<f64>,
    /// Mean training error.
    pub mean_train_error: f64,
}

/// The outcome of a rank study.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RankReport {
    /// Every fit, rank by rank.
    pub fits: Vec<RankFit>,
    /// Per rank, in the order asked.
    pub summary: Vec<RankSummary>,
    /// The rank with the least mean test error.
    pub chosen_rank: usize,
    /// The smallest rank whose mean test error is within one standard error of the chosen
    /// rank's.
    pub one_se_rank: usize,
}

impl RankStudy {
    /// Runs the study on X (m x n) with `params` (its rank is replaced by each of
    /// [`RankStudy::ranks`]; extrapolation is off, as with every fit on missing data).
    /// `progress` is called after each fit.
    ///
    /// # Errors
    /// No ranks, a rank of 0 or above the images' size, no replicates, fractions outside
    /// [0, 1) or that leave no training face; and any fit's error.
    pub fn run<T: Float>(
        &self,
        x: &ArrayView2<T>,
        params: &Nmf,
        mut progress: impl FnMut(&RankFit) + Send,
    ) -> Result<RankReport> {
        let (m, n) = x.dim();
        if self.ranks.is_empty() || self.ranks.contains(&0) {
            return Err(Error::param(
                "ranks",
                "give at least one rank, each at least 1",
            ));
        }
        if self.replicates == 0 {
            return Err(Error::param("replicates", "must be at least 1"));
        }
        for (name, f) in [
            ("holdout", self.holdout),
            ("heldout_faces", self.heldout_faces),
        ] {
            if !(0.0..1.0).contains(&f) {
                return Err(Error::param(name, format!("{f} must be in [0, 1)")));
            }
        }
        if self.holdout == 0.0 {
            return Err(Error::param(
                "holdout",
                "must be above 0: the test error needs hidden pixels",
            ));
        }
        let test_faces = if self.heldout_faces > 0.0 {
            ((self.heldout_faces * n as f64).round() as usize).max(1)
        } else {
            0
        };
        if test_faces + 2 > n {
            return Err(Error::param(
                "heldout_faces",
                format!("{test_faces} of {n} faces held out leaves too few to fit"),
            ));
        }
        // Fits run two at a time (rayon over the jobs, each fit's own products nested inside):
        // a masked HALS fit is latency-bound on small images, so two side by side use the
        // cores better than one after the other. Each fit's result does not depend on its
        // neighbour, and the records come back in job order.
        let jobs: Vec<(usize, usize)> = self
            .ranks
            .iter()
            .flat_map(|&rank| (0..self.replicates).map(move |replicate| (rank, replicate)))
            .collect();
        let progress = std::sync::Mutex::new(&mut progress);
        let fits: Vec<RankFit> = jobs
            .par_iter()
            .with_max_len(1)
            .map(|&(rank, replicate)| -> Result<RankFit> {
                let seed = nmf::mix_seed(self.seed, (rank as u64) << 32 | replicate as u64);
                let started = std::time::Instant::now();
                // Held-out faces: a seeded choice of columns, hidden whole.
                let heldout = choose_columns(n, test_faces, seed);
                let mut known = random_mask((m, n), self.holdout, seed);
                for &j in &heldout {
                    known.column_mut(j).fill(false);
                }
                let fit = Nmf {
                    rank,
                    seed,
                    runs: 1,
                    ..params.clone()
                }
                .fit_masked(x, &known.view(), |_| {})?;
                let (train_error, test_error) =
                    split_errors(x, &fit.w, &fit.h.view(), &known, &heldout);
                let heldout_face_error = if heldout.is_empty() {
                    None
                } else {
                    let xt = x.select(Axis(1), &heldout);
                    let p = nmf::project(
                        &fit.w.view(),
                        &xt.view(),
                        params.alpha_h,
                        params.l1_ratio,
                        nmf::PROJECT_TOL.max(if T::NAME == "f32" { 1e-4 } else { 0.0 }),
                    )?;
                    Some(p.rel_error)
                };
                let record = RankFit {
                    rank,
                    replicate,
                    train_error,
                    test_error,
                    heldout_face_error,
                    sparseness_w: fit.sparseness_w(),
                    iterations: fit.n_iter,
                    seconds: started.elapsed().as_secs_f64(),
                };
                if let Ok(mut report) = progress.lock() {
                    report(&record);
                }
                Ok(record)
            })
            .collect::<Result<_>>()?;
        Ok(summarise(&self.ranks, fits))
    }
}

/// `count` distinct columns of n, chosen from `seed`, in increasing order.
fn choose_columns(n: usize, count: usize, seed: u64) -> Vec<usize> {
    let mut keyed: Vec<(u64, usize)> = (0..n)
        .map(|j| (nmf::mix_seed(seed ^ 0xFACE, j as u64), j))
        .collect();
    keyed.sort_unstable();
    let mut chosen: Vec<usize> = keyed.into_iter().take(count).map(|(_, j)| j).collect();
    chosen.sort_unstable();
    chosen
}

/// Relative errors on the known entries and on the hidden entries of the training faces (the
/// faces held out whole excluded), from W H formed a block of rows at a time.
fn split_errors<T: Float>(
    x: &ArrayView2<T>,
    w: &Array2<T>,
    h: &ArrayView2<T>,
    known: &Array2<bool>,
    heldout: &[usize],
) -> (f64, f64) {
    let n = x.ncols();
    let mut training = vec![true; n];
    for &j in heldout {
        training[j] = false;
    }
    let sums = (0..x.nrows())
        .into_par_iter()
        .map(|i| {
            let wh = w.row(i).dot(h);
            let mut s = [0.0f64; 4];
            for j in (0..n).filter(|&j| training[j]) {
                let (v, f) = (x[[i, j]].to_f64(), wh[j].to_f64());
                let k = if known[[i, j]] { 0 } else { 2 };
                s[k] += (v - f) * (v - f);
                s[k + 1] += v * v;
            }
            s
        })
        .reduce(
            || [0.0; 4],
            |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]],
        );
    let rel = |e: f64, s: f64| if s > 0.0 { (e / s).sqrt() } else { 0.0 };
    (rel(sums[0], sums[1]), rel(sums[2], sums[3]))
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Per-rank means and standard errors, the chosen rank and the one-standard-error rank.
fn summarise(ranks: &[usize], fits: Vec<RankFit>) -> RankReport {
    let summary: Vec<RankSummary> = ranks
        .iter()
        .map(|&rank| {
            let of: Vec<&RankFit> = fits.iter().filter(|f| f.rank == rank).collect();
            let test: Vec<f64> = of.iter().map(|f| f.test_error).collect();
            let mean_test = mean(&test);
            let se = if test.len() > 1 {
                let var = test.iter().map(|t| (t - mean_test).powi(2)).sum::<f64>()
                    / (test.len() - 1) as f64;
                (var / test.len() as f64).sqrt()
            } else {
                0.0
            };
            let faces: Vec<f64> = of.iter().filter_map(|f| f.heldout_face_error).collect();
            RankSummary {
                rank,
                mean_test_error: mean_test,
                se_test_error: se,
                mean_heldout_face_error: (!faces.is_empty()).then(|| mean(&faces)),
                mean_train_error: mean(&of.iter().map(|f| f.train_error).collect::<Vec<_>>()),
            }
        })
        .collect();
    let best = summary
        .iter()
        .min_by(|a, b| {
            a.mean_test_error
                .total_cmp(&b.mean_test_error)
                .then(a.rank.cmp(&b.rank))
        })
        .expect("at least one rank");
    let threshold = best.mean_test_error + best.se_test_error;
    let one_se_rank = summary
        .iter()
        .filter(|s| s.mean_test_error <= threshold)
        .map(|s| s.rank)
        .min()
        .unwrap_or(best.rank);
    RankReport {
        chosen_rank: best.rank,
        one_se_rank,
        fits,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nonnegative data of rank `r` (m x n) plus a little uniform noise, from a seed.
    fn of_rank(m: usize, n: usize, r: usize, noise: f64, seed: u64) -> Array2<f64> {
        let u = |k: u64| crate::nmf::mix_seed(seed, k) as f64 / u64::MAX as f64;
        let w = Array2::from_shape_fn((m, r), |(i, k)| {
            let v = u((i * r + k) as u64);
            if v < 0.4 { 0.0 } else { v }
        });
        let h = Array2::from_shape_fn((r, n), |(k, j)| u(1 << 40 | (k * n + j) as u64));
        w.dot(&h) + Array2::from_shape_fn((m, n), |(i, j)| noise * u(1 << 50 | (i * n + j) as u64))
    }

    fn study() -> RankStudy {
        RankStudy {
            ranks: (2..=9).collect(),
            replicates: 3,
            holdout: 0.1,
            heldout_faces: 0.2,
            seed: 1,
        }
    }

    #[test]
    fn the_held_out_error_finds_the_rank_of_the_data() {
        for (r, seed) in [(4, 3), (6, 4)] {
            let x = of_rank(80, 120, r, 0.05, seed);
            let params = Nmf::params(1).max_iter(500).tol(1e-6);
            let report = study().run(&x.view(), &params, |_| {}).unwrap();
            let line: Vec<String> = report
                .summary
                .iter()
                .map(|s| format!("{}: {:.4}", s.rank, s.mean_test_error))
                .collect();
            assert_eq!(report.chosen_rank, r, "test errors {}", line.join(", "));
            assert!(report.one_se_rank <= r);
            // The training error keeps falling with the rank; the test error does not.
            let train: Vec<f64> = report.summary.iter().map(|s| s.mean_train_error).collect();
            assert!(train.windows(2).all(|p| p[1] <= p[0] + 1e-9), "{train:?}");
            assert_eq!(report.fits.len(), 8 * 3);
            assert!(report.fits.iter().all(|f| f.heldout_face_error.is_some()));
        }
    }

    #[test]
    fn a_study_is_reproducible_and_refuses_what_it_cannot_do() {
        let x = of_rank(30, 40, 3, 0.05, 9);
        let params = Nmf::params(1).max_iter(50);
        let small = RankStudy {
            ranks: vec![2, 3],
            replicates: 2,
            ..study()
        };
        let a = small.run(&x.view(), &params, |_| {}).unwrap();
        let b = small.run(&x.view(), &params, |_| {}).unwrap();
        let errors = |r: &RankReport| {
            r.fits
                .iter()
                .map(|f| f.test_error.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(errors(&a), errors(&b));
        for bad in [
            RankStudy {
                ranks: vec![],
                ..small.clone()
            },
            RankStudy {
                ranks: vec![0],
                ..small.clone()
            },
            RankStudy {
                replicates: 0,
                ..small.clone()
            },
            RankStudy {
                holdout: 0.0,
                ..small.clone()
            },
            RankStudy {
                holdout: 1.0,
                ..small.clone()
            },
            RankStudy {
                heldout_faces: 0.99,
                ..small.clone()
            },
        ] {
            assert!(bad.run(&x.view(), &params, |_| {}).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_one_standard_error_rule_takes_the_smallest_rank_within_reach() {
        let fit = |rank, test_error| RankFit {
            rank,
            replicate: 0,
            train_error: 0.0,
            test_error,
            heldout_face_error: None,
            sparseness_w: 0.0,
            iterations: 1,
            seconds: 0.0,
        };
        let fits = vec![
            fit(2, 0.30),
            fit(2, 0.32),
            fit(3, 0.20),
            fit(3, 0.21),
            fit(4, 0.19),
            fit(4, 0.21),
        ];
        let report = summarise(&[2, 3, 4], fits);
        assert_eq!(report.chosen_rank, 4);
        assert_eq!(report.one_se_rank, 3);
    }
}
