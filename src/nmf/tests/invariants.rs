//! Invariants on seeded data: signs, monotone losses, recovery, reproducibility, canonical form.

use super::*;
use crate::nmf::*;

#[test]
fn factors_stay_nonnegative_for_every_solver_and_init() {
    let x = noisy(40, 30, 1);
    for solver in ALL_SOLVERS {
        for init in ALL_INITS {
            let fit = Nmf::params(5)
                .solver(solver)
                .init(init)
                .max_iter(30)
                .fit(&x.view())
                .unwrap();
            assert!(
                fit.w.iter().chain(fit.h.iter()).all(|&v| v >= 0.0),
                "{solver}/{init}"
            );
            assert!(
                fit.rel_error.is_finite() && fit.rel_error < 1.0,
                "{solver}/{init}"
            );
        }
    }
}

#[test]
fn no_solver_increases_the_loss_without_extrapolation() {
    let x = noisy(50, 40, 2);
    for solver in ALL_SOLVERS {
        let fit = Nmf::params(6)
            .solver(solver)
            .extrapolate(false)
            .init(Init::Nndsvda)
            .max_iter(100)
            .tol(0.0)
            .fit(&x.view())
            .unwrap();
        for pair in fit.history.windows(2) {
            assert!(
                pair[1].rel_error <= pair[0].rel_error * (1.0 + 1e-9),
                "{solver}: error rose from {} to {} at iteration {}",
                pair[0].rel_error,
                pair[1].rel_error,
                pair[1].iter
            );
        }
        assert!(fit.history.last().unwrap().rel_error < fit.history[0].rel_error);
    }
}

#[test]
fn extrapolation_returns_the_best_iterate_and_beats_plain_hals() {
    let x = noisy(60, 50, 11);
    for solver in ALL_SOLVERS {
        let plain = Nmf::params(6)
            .solver(solver)
            .extrapolate(false)
            .max_iter(40)
            .tol(0.0);
        let extra = plain.clone().extrapolate(true);
        let plain = plain.fit(&x.view()).unwrap();
        let extra = extra.fit(&x.view()).unwrap();
        let best = extra
            .history
            .iter()
            .map(|h| h.rel_error)
            .fold(f64::MAX, f64::min);
        assert!(
            (extra.rel_error - best).abs() < 1e-9,
            "{solver}: returned {} best {best}",
            extra.rel_error
        );
        assert!(
            extra.rel_error <= plain.rel_error * (1.0 + 1e-9),
            "{solver}: {} vs {}",
            extra.rel_error,
            plain.rel_error
        );
        assert!(
            extra.w.iter().chain(extra.h.iter()).all(|&v| v >= 0.0),
            "{solver}"
        );
    }
}

#[test]
fn exact_low_rank_matrix_is_recovered() {
    let x = low_rank(60, 50, 4, 3);
    for solver in ALL_SOLVERS {
        // Multiplicative updates converge sublinearly: more iterations and a looser bar.
        let (iterations, bar) = if solver == Solver::Mu {
            (30_000, 1e-3)
        } else {
            (3000, 1e-4)
        };
        let fit = Nmf::params(4)
            .solver(solver)
            .max_iter(iterations)
            .tol(0.0)
            .fit(&x.view())
            .unwrap();
        assert!(
            fit.rel_error < bar,
            "{solver}: relative error {}",
            fit.rel_error
        );
    }
}

#[test]
fn gram_error_matches_the_direct_error() {
    let x = noisy(30, 20, 4);
    let fit = Nmf::params(3).max_iter(20).tol(0.0).fit(&x.view()).unwrap();
    let direct = (&x - &fit.w.dot(&fit.h.view()))
        .mapv(|v| v * v)
        .sum()
        .sqrt()
        / x.mapv(|v| v * v).sum().sqrt();
    assert!((fit.rel_error - direct).abs() < 1e-12);
    assert!((fit.history.last().unwrap().rel_error - direct).abs() < 1e-9);
}

#[test]
fn same_seed_gives_the_same_bits_and_another_seed_differs() {
    let x = noisy(40, 30, 5);
    for init in ALL_INITS {
        let a = Nmf::params(4)
            .init(init)
            .seed(7)
            .max_iter(20)
            .fit(&x.view())
            .unwrap();
        let b = Nmf::params(4)
            .init(init)
            .seed(7)
            .max_iter(20)
            .fit(&x.view())
            .unwrap();
        assert_eq!(a.w, b.w, "{init}");
        assert_eq!(a.h, b.h, "{init}");
    }
    let a = Nmf::params(4)
        .init(Init::Random)
        .seed(1)
        .max_iter(5)
        .fit(&x.view())
        .unwrap();
    let b = Nmf::params(4)
        .init(Init::Random)
        .seed(2)
        .max_iter(5)
        .fit(&x.view())
        .unwrap();
    assert_ne!(a.w, b.w);
}

#[test]
fn f32_and_f64_agree() {
    let x = noisy(40, 30, 6);
    let a = Nmf::params(4).max_iter(50).fit(&x.view()).unwrap();
    let b = Nmf::params(4)
        .max_iter(50)
        .fit(&x.mapv(|v| v as f32).view())
        .unwrap();
    assert!((a.rel_error - b.rel_error).abs() < 1e-3 * a.rel_error);
}

#[test]
fn results_are_in_canonical_form() {
    let x = noisy(40, 30, 13);
    for solver in ALL_SOLVERS {
        let fit = Nmf::params(5)
            .solver(solver)
            .max_iter(30)
            .fit(&x.view())
            .unwrap();
        for col in fit.w.columns() {
            let max = col.fold(0.0f64, |a, &v| a.max(v));
            assert!((max - 1.0).abs() < 1e-12, "{solver}: column max {max}");
        }
        let norm = |v: ndarray::ArrayView1<f64>| v.dot(&v).sqrt();
        let shares: Vec<f64> = (0..5)
            .map(|k| norm(fit.w.column(k)) * norm(fit.h.row(k)))
            .collect();
        assert!(
            shares.windows(2).all(|p| p[0] >= p[1]),
            "{solver}: {shares:?}"
        );
        let (sw, sh) = (fit.sparseness_w(), fit.sparseness_h());
        assert!((0.0..=1.0).contains(&sw) && (0.0..=1.0).contains(&sh));
    }
}

#[test]
fn transposed_input_views_are_accepted() {
    let x = noisy(20, 30, 10);
    let xt = x.t().to_owned();
    let a = Nmf::params(3).max_iter(10).fit(&x.view()).unwrap();
    let b = Nmf::params(3).max_iter(10).fit(&xt.t()).unwrap();
    assert_eq!(a.w, b.w);
}

#[test]
fn beta_divergence_updates_never_increase_their_divergence() {
    let x = noisy(40, 30, 20);
    for loss in [
        Loss::KullbackLeibler,
        Loss::ItakuraSaito,
        Loss::Beta(1.5),
        Loss::Beta(3.0),
    ] {
        let fit = Nmf::params(4)
            .solver(Solver::Mu)
            .loss(loss)
            .max_iter(60)
            .tol(0.0)
            .fit(&x.view())
            .unwrap();
        let trace: Vec<f64> = fit.history.iter().map(|h| h.divergence.unwrap()).collect();
        for p in trace.windows(2) {
            assert!(p[1] <= p[0] * (1.0 + 1e-9), "{loss}: {} -> {}", p[0], p[1]);
        }
        assert!(trace[60] < trace[0], "{loss}");
        assert_eq!(fit.divergence.unwrap(), fit.objective);
        assert!(
            fit.w.iter().chain(fit.h.iter()).all(|&v| v >= 0.0),
            "{loss}"
        );
        let direct = beta::divergence(&x.view(), &fit.w.dot(&fit.h.view()).view(), loss.beta());
        assert!(
            (direct - fit.divergence.unwrap()).abs() <= 1e-9 * direct,
            "{loss}"
        );
    }
}

/// Hsieh & Dhillon's coordinate descent for KL: the divergence falls at every sweep here
/// (a Newton step may overshoot in principle), ends below the multiplicative rule's after as
/// many iterations from the same start, and is measured as the direct formula gives it.
#[test]
fn kl_coordinate_descent_lowers_the_divergence_faster_than_multiplicative_updates() {
    for seed in [20, 21, 22] {
        let x = noisy(40, 30, seed);
        let fit = |solver: Solver| {
            Nmf::params(4)
                .solver(solver)
                .loss(Loss::KullbackLeibler)
                .warm_start(0)
                .max_iter(30)
                .tol(0.0)
                .fit(&x.view())
                .unwrap()
        };
        let (cd, mu) = (fit(Solver::Cd), fit(Solver::Mu));
        let trace: Vec<f64> = cd.history.iter().map(|h| h.divergence.unwrap()).collect();
        for p in trace.windows(2) {
            assert!(
                p[1] <= p[0] * (1.0 + 1e-9),
                "seed {seed}: {} -> {}",
                p[0],
                p[1]
            );
        }
        let (ours, theirs) = (cd.divergence.unwrap(), mu.divergence.unwrap());
        assert!(ours < theirs, "seed {seed}: cd {ours} against mu {theirs}");
        assert!(cd.w.iter().chain(cd.h.iter()).all(|&v| v >= 0.0));
        let direct = beta::divergence(&x.view(), &cd.w.dot(&cd.h.view()).view(), 1.0);
        assert!((direct - ours).abs() <= 1e-9 * direct, "seed {seed}");
    }
}

/// A divergence fit's warm start is what it says: the Frobenius fit (E-A-HALS, the same init
/// and tolerance) of at most that many iterations, then the divergence fit from its factors.
/// By default coordinate descent for KL has one and the multiplicative rule has none.
#[test]
fn a_warm_start_is_a_frobenius_fit_then_the_divergence_fit_from_its_factors() {
    let x = noisy(40, 30, 23);
    for solver in [Solver::Cd, Solver::Mu] {
        let kl = Nmf::params(4)
            .solver(solver)
            .loss(Loss::KullbackLeibler)
            .max_iter(6)
            .tol(0.0);
        let warm = kl.clone().warm_start(7).fit(&x.view()).unwrap();
        let frobenius = Nmf::params(4).max_iter(7).tol(0.0).fit(&x.view()).unwrap();
        let from_it = kl
            .clone()
            .fit_from(&x.view(), &frobenius.w.view(), &frobenius.h.view(), |_| {})
            .unwrap();
        assert_eq!(warm.w, from_it.w, "{solver}");
        assert_eq!(warm.h, from_it.h, "{solver}");
        let divergences = |f: &Factorization<f64>| -> Vec<u64> {
            f.history
                .iter()
                .map(|h| h.divergence.unwrap().to_bits())
                .collect()
        };
        assert_eq!(divergences(&warm), divergences(&from_it), "{solver}");
        assert!(
            warm.start.contains("then 7 Frobenius iterations"),
            "{}",
            warm.start
        );
        // The default.
        let default = kl.fit(&x.view()).unwrap();
        let warmed = default.start.contains("Frobenius");
        assert_eq!(warmed, solver == Solver::Cd, "{solver}: {}", default.start);
    }
}

#[test]
fn factors_stay_nonnegative_on_degenerate_data_with_extrapolation() {
    // Black images with one bright pixel each: components die (a zero row of H), and an entry
    // HALS cannot determine used to keep its extrapolated, negative value.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for case in 0..40 {
        let (m, n) = (240, 10);
        let mut x = Array2::<f32>::zeros((m, n));
        for j in 0..n {
            x[[(rng.next_u64() % m as u64) as usize, j]] = 1.0;
        }
        for solver in ALL_SOLVERS {
            for init in [Init::Nndsvda, Init::Random] {
                let fit = Nmf::params(3)
                    .solver(solver)
                    .init(init)
                    .extrapolate(true)
                    .seed(case)
                    .fit(&x.view())
                    .unwrap();
                let negative = fit
                    .w
                    .iter()
                    .chain(fit.h.iter())
                    .filter(|&&v| v < 0.0)
                    .count();
                assert_eq!(
                    negative, 0,
                    "case {case}, {solver}, {init}: {negative} negative entries"
                );
            }
        }
    }
}

#[test]
fn divergence_updates_leave_no_subnormal_factor_entries() {
    // Clipped data, as Lee & Seung's preprocessing makes: many entries exactly 0, so some
    // factor entries decay geometrically; below the smallest normal number they are flushed.
    let x = noisy(60, 50, 41).mapv(|v| (v as f32 - 1.6).max(0.0));
    for unit_sum_w in [false, true] {
        let fit = Nmf::params(8)
            .solver(Solver::Mu)
            .loss(Loss::KullbackLeibler)
            .unit_sum_w(unit_sum_w)
            .init(Init::Random)
            .max_iter(1500)
            .tol(0.0)
            .fit(&x.view())
            .unwrap();
        let subnormal = fit
            .w
            .iter()
            .chain(fit.h.iter())
            .filter(|v| v.is_subnormal())
            .count();
        let zero = fit
            .w
            .iter()
            .chain(fit.h.iter())
            .filter(|&&v| v == 0.0)
            .count();
        assert_eq!(subnormal, 0, "unit_sum_w {unit_sum_w}: {zero} zeros");
        assert!(
            zero > 0,
            "unit_sum_w {unit_sum_w}: nothing decayed, the test tests nothing"
        );
    }
}
