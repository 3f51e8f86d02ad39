//! Optimised code against naive references: one iteration of each solver, NNDSVD, SPA, scikit-learn's objective.

use ndarray::{Array2, array};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::*;
use crate::nmf::*;

#[test]
fn nndsvd_of_a_diagonal_matrix_is_exact() {
    // X = diag(2, 1): singular pairs (2, e1, e1), (1, e2, e2), so by hand
    // W = [sqrt(2) e1, e2], H = [sqrt(2) e1, e2]^T and WH = X.
    let x = array![[2.0, 0.0], [0.0, 1.0]];
    let (w, ht) = init::initialize(Init::Nndsvd, &x.view(), 2, 0, x.mean().unwrap()).unwrap();
    let s = 2f64.sqrt();
    let expect = array![[s, 0.0], [0.0, 1.0]];
    assert!((&w - &expect).iter().all(|d| d.abs() < 1e-12), "W = {w}");
    assert!(
        (&ht - &expect).iter().all(|d| d.abs() < 1e-12),
        "H^T = {ht}"
    );
}

#[test]
fn nndsvd_of_a_rank_one_matrix_is_its_scaled_singular_pair() {
    // X = u v^T with u = (1, 2, 2) (norm 3), v = (3, 4) (norm 5): sigma = 15, and by hand
    // W = sqrt(15) u / 3, H = sqrt(15) v / 5; the second component has nothing left (zero).
    let x = array![[3.0, 4.0], [6.0, 8.0], [6.0, 8.0]];
    let (w, ht) = init::initialize(Init::Nndsvd, &x.view(), 1, 0, x.mean().unwrap()).unwrap();
    let s = 15f64.sqrt();
    for (got, want) in w.iter().zip([1.0, 2.0, 2.0]) {
        assert!((got - s * want / 3.0).abs() < 1e-12);
    }
    for (got, want) in ht.iter().zip([3.0, 4.0]) {
        assert!((got - s * want / 5.0).abs() < 1e-12);
    }
}

#[test]
fn nndsvda_fills_zeros_with_the_mean_and_nndsvdar_with_small_values() {
    let x = array![[2.0, 0.0], [0.0, 1.0]];
    let (w, _) = init::initialize(Init::Nndsvda, &x.view(), 2, 0, x.mean().unwrap()).unwrap();
    assert_eq!(w[[0, 1]], 0.75);
    let (w, _) = init::initialize(Init::Nndsvdar, &x.view(), 2, 0, x.mean().unwrap()).unwrap();
    assert!(w[[0, 1]] > 0.0 && w[[0, 1]] < 0.75 / 10.0);
}

#[test]
fn nndsvd_components_beyond_the_numerical_rank_start_at_zero() {
    // Rank 2 (two disjoint patterns), asked for 4: the last two singular values are rounding.
    let x = array![
        [1.0f32, 2.0, 0.0, 0.0, 1.0],
        [1.0, 2.0, 0.0, 0.0, 1.0],
        [0.0, 0.0, 3.0, 1.0, 1.0],
        [0.0, 0.0, 3.0, 1.0, 1.0],
        [0.0, 0.0, 3.0, 1.0, 1.0]
    ];
    let mean = x.mean().unwrap() as f64;
    for init in [Init::Nndsvd, Init::Nndsvda] {
        let (w, ht) = init::initialize(init, &x.view(), 4, 0, mean).unwrap();
        for k in 0..4 {
            let zero = w.column(k).iter().chain(ht.column(k)).all(|&v| v == 0.0);
            assert_eq!(zero, k >= 2, "{init}: component {k}: {w:?}");
        }
    }
    // NNDSVDar's random fill then makes them small and distinct, as for its other zeros.
    let (w, _) = init::initialize(Init::Nndsvdar, &x.view(), 4, 0, mean).unwrap();
    assert!(
        w.slice(ndarray::s![.., 2..])
            .iter()
            .all(|&v| v > 0.0 && f64::from(v) < mean / 10.0)
    );
    assert_ne!(w.column(2), w.column(3));
}

/// Textbook formulas for one iteration of each solver, entry by entry, on a small problem:
/// H^T (n x r) first, then W, as the loop does.
mod naive {
    use ndarray::Array2;

    /// An update of factor F from A and G.
    pub(super) type Update = fn(&mut Array2<f64>, &Array2<f64>, &Array2<f64>);

    /// F^T F for F with rows as samples.
    pub(super) fn gram(f: &Array2<f64>) -> Array2<f64> {
        f.t().dot(f)
    }

    /// One HALS sweep over every row of f (p x r) for `min 1/2 <F G, F> - <A, F>`.
    pub(super) fn hals_sweep(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>) {
        let r = f.ncols();
        for i in 0..f.nrows() {
            for k in 0..r {
                let fg: f64 = (0..r).map(|l| f[[i, l]] * g[[l, k]]).sum();
                f[[i, k]] = (f[[i, k]] + (a[[i, k]] - fg) / g[[k, k]]).max(0.0);
            }
        }
    }

    /// Lee and Seung's Frobenius update with scikit-learn's floor.
    pub(super) fn mu(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>) {
        let fg = f.dot(g);
        for ((v, &num), &den) in f.iter_mut().zip(a).zip(&fg) {
            *v *= num / den.max(f32::EPSILON as f64);
        }
    }

    /// The exact NNLS solution of each row by trying every passive set (r <= 4).
    /// The subproblem with ANLS's proximal term `mu/2 ||f - f_prev||^2`, written out:
    /// G + mu I and A + mu F, solved exactly.
    pub(super) fn proximal_nnls(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>) {
        let r = g.nrows();
        let mu = crate::nmf::anls::PROXIMAL * (0..r).map(|k| g[[k, k]]).sum::<f64>() / r as f64;
        let g = g + &(Array2::<f64>::eye(r) * mu);
        let a = a + &(&*f * mu);
        nnls(f, &a, &g);
    }

    pub(super) fn nnls(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>) {
        let r = f.ncols();
        let objective = |x: &[f64], i: usize| {
            let mut v = 0.0;
            for k in 0..r {
                v -= a[[i, k]] * x[k];
                for l in 0..r {
                    v += 0.5 * x[k] * g[[k, l]] * x[l];
                }
            }
            v
        };
        for i in 0..f.nrows() {
            let mut best = (vec![0.0; r], 0.0);
            for set in 1..1u32 << r {
                let idx: Vec<usize> = (0..r).filter(|k| set & (1 << k) != 0).collect();
                // Solve G_PP x = a_P by Gaussian elimination.
                let p = idx.len();
                let mut m: Vec<Vec<f64>> = idx
                    .iter()
                    .map(|&k| {
                        let mut row: Vec<f64> = idx.iter().map(|&l| g[[k, l]]).collect();
                        row.push(a[[i, k]]);
                        row
                    })
                    .collect();
                for c in 0..p {
                    let pivot = m[c].clone();
                    for row in m.iter_mut().skip(c + 1) {
                        let factor = row[c] / pivot[c];
                        for (v, &pv) in row.iter_mut().zip(&pivot).skip(c) {
                            *v -= factor * pv;
                        }
                    }
                }
                let mut sol = vec![0.0; p];
                for c in (0..p).rev() {
                    let rest: f64 = (c + 1..p).map(|cc| m[c][cc] * sol[cc]).sum();
                    sol[c] = (m[c][p] - rest) / m[c][c];
                }
                if sol.iter().any(|&v| v < 0.0) {
                    continue;
                }
                let mut x = vec![0.0; r];
                for (&k, &v) in idx.iter().zip(&sol) {
                    x[k] = v;
                }
                let value = objective(&x, i);
                if value < best.1 {
                    best = (x, value);
                }
            }
            for k in 0..r {
                f[[i, k]] = best.0[k];
            }
        }
    }

    /// `steps` projected gradient steps with Nesterov's momentum from alpha = 0.05, step 1/L
    /// with L the largest eigenvalue of G (power iteration to convergence).
    pub(super) fn fpgm(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>, steps: usize) {
        let mut v = ndarray::Array1::<f64>::ones(g.nrows());
        let mut l = 0.0;
        for _ in 0..10_000 {
            let gv = g.dot(&v);
            l = gv.dot(&gv).sqrt();
            v = gv / l;
        }
        let mut y = f.clone();
        let mut alpha: f64 = 0.05;
        for _ in 0..steps {
            let previous = f.clone();
            *f = (&y - &((y.dot(g) - a) / l)).mapv(|v| v.max(0.0));
            let next = 0.5 * ((alpha.powi(4) + 4.0 * alpha * alpha).sqrt() - alpha * alpha);
            let beta = alpha * (1.0 - alpha) / (alpha * alpha + next);
            alpha = next;
            y = &*f + &((&*f - &previous) * beta);
        }
    }

    /// Kullback-Leibler multiplicative update of H^T given W (X is m x n).
    pub(super) fn kl_h(x: &Array2<f64>, w: &Array2<f64>, ht: &mut Array2<f64>) {
        let wh = w.dot(&ht.t());
        let ratio = Array2::from_shape_fn(x.dim(), |(i, j)| {
            x[[i, j]] / wh[[i, j]].max(f32::EPSILON as f64)
        });
        let num = ratio.t().dot(w); // n x r
        let den = w.sum_axis(ndarray::Axis(0)); // r
        for ((j, k), v) in ht.indexed_iter_mut() {
            *v *= num[[j, k]] / den[k].max(f32::EPSILON as f64);
        }
    }

    /// Hsieh & Dhillon's coordinate descent for KL, one sweep over H^T given W (X is m x n):
    /// each h_kj in turn takes one projected Newton step on the divergence of image j, with
    /// W h_j formed afresh for every coefficient. With `scaled`, H is first scaled so that
    /// W H sums as X does.
    pub(super) fn kl_cd_h(x: &Array2<f64>, w: &Array2<f64>, ht: &mut Array2<f64>, scaled: bool) {
        let floor = f32::EPSILON as f64;
        if scaled {
            let c = x.sum() / w.dot(&ht.t()).sum();
            ht.mapv_inplace(|v| v * c);
        }
        let (m, n, r) = (x.nrows(), x.ncols(), w.ncols());
        for j in 0..n {
            for k in 0..r {
                let (mut g, mut s) = (0.0, 0.0);
                for i in 0..m {
                    let p: f64 = (0..r).map(|l| w[[i, l]] * ht[[j, l]]).sum();
                    let p = p.max(floor);
                    g += w[[i, k]] * (1.0 - x[[i, j]] / p);
                    s += w[[i, k]] * w[[i, k]] * x[[i, j]] / (p * p);
                }
                if s > 0.0 {
                    ht[[j, k]] = (ht[[j, k]] - g / s).max(0.0);
                } else if g > 0.0 {
                    ht[[j, k]] = 0.0;
                }
            }
        }
    }
}

#[test]
fn one_iteration_of_each_solver_matches_its_textbook_formula() {
    let x = noisy(7, 6, 21);
    let r = 3;
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let w0 = Array2::from_shape_simple_fn((7, r), || 0.1 + uniform(&mut rng));
    let h0 = Array2::from_shape_simple_fn((r, 6), || 0.1 + uniform(&mut rng));
    // The loop first scales W to the best multiple of W0 H0.
    let wh0 = w0.dot(&h0);
    let alpha = (&x * &wh0).sum() / (&wh0 * &wh0).sum();
    let one = |solver: Solver, loss: Loss| {
        Nmf::params(r)
            .solver(solver)
            .loss(loss)
            .extrapolate(false)
            .max_iter(1)
            .tol(0.0)
            .fit_from(&x.view(), &w0.view(), &h0.view(), |_| {})
            .unwrap()
    };
    let frobenius_step = |update: naive::Update| {
        let mut w = &w0 * alpha;
        let mut ht = h0.t().to_owned();
        update(&mut ht, &x.t().dot(&w), &naive::gram(&w));
        update(&mut w, &x.dot(&ht), &naive::gram(&ht));
        w.dot(&ht.t())
    };
    let close_to = |label: &str, fit: &Factorization<f64>, expect: &Array2<f64>, tol: f64| {
        let got = fit.w.dot(&fit.h.view());
        let diff = (&got - expect)
            .mapv(f64::abs)
            .fold(0.0f64, |a, &b| a.max(b));
        assert!(diff < tol, "{label}: WH differs by {diff}");
    };
    let close = |label: &str, fit: &Factorization<f64>, expect: &Array2<f64>| {
        close_to(label, fit, expect, 1e-10)
    };
    // FPGM makes as many Nesterov steps per factor as the A-HALS rule allows; its step 1/L
    // comes from a power iteration stopped at 1e-6, so the agreement is to about that.
    let mut w = &w0 * alpha;
    let mut ht = h0.t().to_owned();
    let (steps_h, steps_w) = (hals::max_sweeps(6, 7, r), hals::max_sweeps(7, 6, r));
    naive::fpgm(&mut ht, &x.t().dot(&w), &naive::gram(&w), steps_h);
    naive::fpgm(&mut w, &x.dot(&ht), &naive::gram(&ht), steps_w);
    let fpgm = one(Solver::Fpgm, Loss::Frobenius);
    close_to("fpgm", &fpgm, &w.dot(&ht.t()), 1e-5);
    close(
        "cd",
        &one(Solver::Cd, Loss::Frobenius),
        &frobenius_step(naive::hals_sweep),
    );
    close(
        "mu",
        &one(Solver::Mu, Loss::Frobenius),
        &frobenius_step(naive::mu),
    );
    close(
        "anls",
        &one(Solver::Anls, Loss::Frobenius),
        &frobenius_step(naive::proximal_nnls),
    );
    // A divergence starts from the given factors unscaled.
    let mut w = w0.clone();
    let mut ht = h0.t().to_owned();
    naive::kl_h(&x, &w, &mut ht);
    // The W update is the H update of the transposed problem X^T ~ H^T W^T.
    naive::kl_h(&x.t().to_owned(), &ht, &mut w);
    close(
        "mu/kl",
        &one(Solver::Mu, Loss::KullbackLeibler),
        &w.dot(&ht.t()),
    );
    let mut w = w0.clone();
    let mut ht = h0.t().to_owned();
    naive::kl_cd_h(&x, &w, &mut ht, true);
    naive::kl_cd_h(&x.t().to_owned(), &ht, &mut w, false);
    close(
        "cd/kl",
        &one(Solver::Cd, Loss::KullbackLeibler),
        &w.dot(&ht.t()),
    );
}

#[test]
fn spa_finds_the_basis_of_a_separable_matrix() {
    // X = W0 [I, H1] with the columns shuffled: every basis column is also an image, the
    // others are convex combinations of them (weights summing to 0.9).
    let (m, r, extra) = (30, 4, 40);
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let w0 = Array2::from_shape_simple_fn((m, r), || uniform(&mut rng));
    let mut h = Array2::<f64>::zeros((r, r + extra));
    for k in 0..r {
        h[[k, k]] = 1.0;
    }
    for j in r..r + extra {
        let weights: Vec<f64> = (0..r).map(|_| uniform(&mut rng) + 0.05).collect();
        let total: f64 = weights.iter().sum();
        for k in 0..r {
            h[[k, j]] = 0.9 * weights[k] / total;
        }
    }
    let order: Vec<usize> = (0..r + extra).map(|j| (j * 17) % (r + extra)).collect();
    let x = w0.dot(&h).select(ndarray::Axis(1), &order);
    let (w, ht) = init::initialize(Init::Spa, &x.view(), r, 0, x.mean().unwrap()).unwrap();
    for k in 0..r {
        let found = (0..r).any(|c| {
            (&w.column(c) - &w0.column(k))
                .iter()
                .all(|d| d.abs() < 1e-12)
        });
        assert!(found, "basis column {k} not picked");
    }
    let rebuilt = w.dot(&ht.t());
    let rel = (&x - &rebuilt).mapv(|v| v * v).sum().sqrt() / x.mapv(|v| v * v).sum().sqrt();
    assert!(rel < 1e-6, "H fitted to the picked columns leaves {rel}");
}

#[test]
fn elastic_net_objective_equals_scikit_learns() {
    // scikit-learn 1.9.1 on the transposed problem (X.T, W_sk = H.T, H_sk = W.T) with
    // alpha_W = 0.07 (our alpha_h), alpha_H = 0.03 (our alpha_w), l1_ratio = 0.4:
    // _beta_divergence(..., 2) + its scaled penalty terms = 6.111275 (data term 3.665).
    let (x, w, h) = small_problem();
    let params = Nmf::params(2).alpha_w(0.03).alpha_h(0.07).l1_ratio(0.4);
    let objective = params.objective(&x.view(), &w.view(), &h.view());
    assert!((objective - 6.111275).abs() < 1e-9, "{objective}");
    let plain = Nmf::params(2).objective(&x.view(), &w.view(), &h.view());
    assert!((plain - 3.665).abs() < 1e-9, "{plain}");
}

/// Projection against the textbook NNLS (every passive set tried), with and without the
/// elastic net on H, on small random problems: the same coefficients, never a negative one.
#[test]
fn projection_is_the_exact_nonnegative_least_squares_solution() {
    for seed in 0..6u64 {
        let x = super::noisy(12, 9, seed);
        let w = super::low_rank(12, 4, 4, seed + 50) + 0.01;
        for (alpha_h, l1_ratio) in [(0.0, 0.0), (0.02, 0.5), (0.05, 1.0)] {
            let p = crate::nmf::project(&w.view(), &x.view(), alpha_h, l1_ratio, 1e-10).unwrap();
            // The same problem for the reference: A = X^T W - l1, G = W^T W + l2 I.
            let (m, r) = w.dim();
            let (l1, l2) = (
                m as f64 * alpha_h * l1_ratio,
                m as f64 * alpha_h * (1.0 - l1_ratio),
            );
            let a = x.t().dot(&w) - l1;
            let g = w.t().dot(&w) + Array2::<f64>::eye(r) * l2;
            let mut reference = Array2::<f64>::zeros((x.ncols(), r));
            naive::nnls(&mut reference, &a, &g);
            let got = p.h.t();
            let diff = (&got - &reference)
                .mapv(f64::abs)
                .fold(0.0, |m: f64, &v| m.max(v));
            let scale = reference
                .iter()
                .fold(0.0f64, |m, &v| m.max(v.abs()))
                .max(1e-300);
            assert!(
                diff <= 1e-8 * scale,
                "seed {seed} alpha {alpha_h}: {diff:e} off"
            );
            assert!(p.h.iter().all(|&v| v >= 0.0));
            assert!(p.kkt <= 1e-10);
        }
    }
}

#[test]
fn lee_seung_kl_rules_are_those_of_their_paper() {
    // Nature 401 (1999), Methods, written out entry by entry: W_ia <- W_ia sum_mu
    // V_imu / (WH)_imu H_amu; W_ia <- W_ia / sum_j W_ja; H_amu <- H_amu sum_i W_ia V_imu /
    // (WH)_imu. The loop updates H first, so W is normalised from the second iteration on.
    let x = noisy(9, 7, 31);
    let r = 3;
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let w0 = Array2::from_shape_simple_fn((9, r), || 0.1 + uniform(&mut rng));
    let h0 = Array2::from_shape_simple_fn((r, 7), || 0.1 + uniform(&mut rng));
    let (mut w, mut h) = (w0.clone(), h0.clone());
    let iterations = 6;
    for first in (0..iterations).map(|i| i == 0) {
        let wh = w.dot(&h);
        let mut next_h = h.clone();
        for ((a, mu), v) in next_h.indexed_iter_mut() {
            let sum: f64 = (0..9).map(|i| w[[i, a]] * x[[i, mu]] / wh[[i, mu]]).sum();
            // Before the first W update the columns do not sum to 1 yet: divide by the sum,
            // as the rule does for columns that do.
            let column_sum = if first { w.column(a).sum() } else { 1.0 };
            *v *= sum / column_sum;
        }
        h = next_h;
        let wh = w.dot(&h);
        let mut next_w = w.clone();
        for ((i, a), v) in next_w.indexed_iter_mut() {
            *v *= (0..7)
                .map(|mu| x[[i, mu]] / wh[[i, mu]] * h[[a, mu]])
                .sum::<f64>();
        }
        for mut column in next_w.columns_mut() {
            let sum = column.sum();
            column.mapv_inplace(|v| v / sum);
        }
        w = next_w;
    }
    let fit = Nmf::params(r)
        .solver(Solver::Mu)
        .loss(Loss::KullbackLeibler)
        .unit_sum_w(true)
        .max_iter(iterations)
        .tol(0.0)
        .fit_from(&x.view(), &w0.view(), &h0.view(), |_| {})
        .unwrap();
    let diff = (&fit.w.dot(&fit.h.view()) - &w.dot(&h))
        .mapv(f64::abs)
        .fold(0.0f64, |a, &b| a.max(b));
    assert!(diff < 1e-12, "W H differs from the paper's by {diff}");
    for (k, column) in fit.w.columns().into_iter().enumerate() {
        assert!(
            (column.sum() - 1.0).abs() < 1e-12,
            "column {k} sums to {}",
            column.sum()
        );
    }
    // Without the normalisation the same start gives another W H: the option acts.
    let plain = Nmf::params(r)
        .solver(Solver::Mu)
        .loss(Loss::KullbackLeibler)
        .max_iter(iterations)
        .tol(0.0)
        .fit_from(&x.view(), &w0.view(), &h0.view(), |_| {})
        .unwrap();
    let apart = (&plain.w.dot(&plain.h.view()) - &w.dot(&h))
        .mapv(f64::abs)
        .fold(0.0f64, |a, &b| a.max(b));
    assert!(
        apart > 1e-6,
        "plain KL agrees with the normalised rules ({apart})"
    );
}
