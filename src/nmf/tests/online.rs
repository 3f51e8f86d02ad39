//! Online fits: the mini-batch algorithm written out naively, one batch of all images as the
//! plain alternating fit, the same iterates streamed, and what online fitting refuses.

use ndarray::{Array2, s};

use super::options::Held;
use super::*;
use crate::nmf::*;

/// One plain HALS sweep (scikit-learn's cd) over the columns of `f` (p x r), given the product
/// `a` (p x r) and the other factor's Gram matrix `g` (r x r):
/// `f[:, k] <- max(0, f[:, k] + (a[:, k] - f g[:, k]) / g[k, k])`, k in order, skipping a
/// component whose `g[k, k]` is zero.
fn hals_sweep(f: &mut Array2<f64>, a: &Array2<f64>, g: &Array2<f64>) {
    for k in 0..f.ncols() {
        if g[[k, k]] <= f64::MIN_POSITIVE {
            continue;
        }
        let fg = f.dot(&g.column(k));
        for i in 0..f.nrows() {
            f[[i, k]] = (f[[i, k]] + (a[[i, k]] - fg[i]) / g[[k, k]]).max(0.0);
        }
    }
}

/// Mairal et al.'s online NMF as the paper writes it, one HALS sweep per half-step: every
/// pass's relative error, from the start `(w0, h0)` scaled to its best multiple as the loop
/// scales it.
fn naive_online(
    x: &Array2<f64>,
    w0: &Array2<f64>,
    h0: &Array2<f64>,
    batch: usize,
    forget: f64,
    passes: usize,
) -> Vec<f64> {
    let n = x.ncols();
    let x_norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
    let rel = |w: &Array2<f64>, ht: &Array2<f64>| {
        let d = x - &w.dot(&ht.t());
        d.iter().map(|v| v * v).sum::<f64>().sqrt() / x_norm
    };
    let wh = w0.dot(h0);
    let alpha = (x * &wh).sum() / (&wh * &wh).sum();
    let mut w = w0 * alpha;
    let mut ht = h0.t().to_owned();
    let r = w.ncols();
    let (mut sum_xh, mut sum_hh) = (Array2::zeros((x.nrows(), r)), Array2::zeros((r, r)));
    let mut errors = vec![rel(&w, &ht)];
    for _ in 0..passes {
        for start in (0..n).step_by(batch) {
            let cols = start..(start + batch).min(n);
            let xb = x.slice(s![.., cols.clone()]);
            let mut hb = ht.slice(s![cols.clone(), ..]).to_owned();
            hals_sweep(&mut hb, &xb.t().dot(&w), &w.t().dot(&w));
            ht.slice_mut(s![cols.clone(), ..]).assign(&hb);
            let rho = forget.powf(cols.len() as f64 / n as f64);
            sum_xh = sum_xh * rho + xb.dot(&hb);
            sum_hh = sum_hh * rho + hb.t().dot(&hb);
            hals_sweep(&mut w, &sum_xh, &sum_hh);
        }
        errors.push(rel(&w, &ht));
    }
    errors
}

fn start_of(m: usize, n: usize, r: usize) -> (Array2<f64>, Array2<f64>) {
    let w0 = Array2::from_shape_fn((m, r), |(i, k)| ((i * 5 + k * 3) % 7) as f64 / 7.0 + 0.1);
    let h0 = Array2::from_shape_fn((r, n), |(k, j)| {
        ((j * 3 + k * 11) % 13) as f64 / 13.0 + 0.05
    });
    (w0, h0)
}

#[test]
fn online_fits_make_the_naive_algorithms_iterates() {
    // 200 images in batches of 64 (the last one 8), and of 32; two forgetting factors.
    let x = noisy(30, 200, 7);
    let (w0, h0) = start_of(30, 200, 5);
    for (batch, forget) in [(64, 0.7), (32, 1.0), (64, 0.3)] {
        let params = Nmf::params(5)
            .solver(Solver::Cd)
            .online(Some(Online::new(batch).forget(forget)))
            .max_iter(12)
            .tol(0.0);
        let fit = params
            .fit_from(&x.view(), &w0.view(), &h0.view(), |_| {})
            .unwrap();
        let naive = naive_online(&x, &w0, &h0, batch, forget, 12);
        assert_eq!(fit.history.len(), naive.len());
        for (it, e) in fit.history.iter().zip(&naive) {
            assert!(
                (it.rel_error - e).abs() <= 1e-9 * e,
                "batch {batch}, forget {forget}, pass {}: {} against {e}",
                it.iter,
                it.rel_error
            );
        }
        assert!((fit.rel_error - naive[12]).abs() <= 1e-9 * naive[12]);
    }
}

#[test]
fn online_with_one_batch_of_every_image_is_the_plain_alternating_fit() {
    let x = noisy(40, 150, 3);
    for solver in ALL_SOLVERS {
        let plain = Nmf::params(4)
            .solver(solver)
            .extrapolate(false)
            .multilevel(false)
            .max_iter(30);
        let online = plain.clone().online(Some(Online::new(1000)));
        let a = plain.fit(&x.view()).unwrap();
        let b = online.fit(&x.view()).unwrap();
        assert_eq!(a.restarts, 0, "{solver}");
        assert_same_iterates(&a, &b, &format!("{solver}"));
    }
}

#[test]
fn online_fits_streamed_make_the_in_memory_iterates() {
    let x = noisy(40, 203, 5);
    for solver in ALL_SOLVERS {
        let params = Nmf::params(4)
            .solver(solver)
            .online(Some(Online::new(64)))
            .max_iter(15);
        let in_memory = params.fit(&x.view()).unwrap();
        // The stream's own block width gives way to the batch.
        let streamed = params.fit_blocks(&Held(x.clone()), 500, |_| {}).unwrap();
        assert_same_iterates(&in_memory, &streamed, &format!("{solver}"));
    }
}

#[test]
fn online_fits_reach_an_exact_factorization() {
    // Exact rank 6, 600 images in batches of 64: the error falls from the start's to below 1%
    // in f64 and in f32, every pass measured exactly.
    let x = low_rank(50, 600, 6, 11);
    let params = Nmf::params(6)
        .online(Some(Online::new(64)))
        .max_iter(300)
        .tol(0.0);
    let fit = params.fit(&x.view()).unwrap();
    assert!(fit.rel_error < 1e-2, "f64: {}", fit.rel_error);
    assert!(fit.history[300].rel_error < 0.1 * fit.history[0].rel_error);
    let x32 = x.mapv(|v| v as f32);
    let fit32 = params.fit(&x32.view()).unwrap();
    assert!(fit32.rel_error < 1e-2, "f32: {}", fit32.rel_error);
    assert_eq!(fit.params.online, Some(Online::new(64)));
}

#[test]
fn online_fitting_refuses_what_it_cannot_do_by_name() {
    let x = noisy(20, 100, 1);
    let online = Nmf::params(3).online(Some(Online::new(32)));
    let refused = |params: Nmf, what: &str| {
        let err = params.fit(&x.view()).unwrap_err().to_string();
        assert!(
            err.contains("online") && err.contains(what),
            "{what}: {err}"
        );
    };
    refused(
        online.clone().online(Some(Online::new(0))),
        "at least one image",
    );
    for forget in [0.0, 1.5, f64::NAN] {
        refused(
            online.clone().online(Some(Online::new(32).forget(forget))),
            "(0, 1]",
        );
    }
    refused(online.clone().alpha_w(0.1), "penalties");
    refused(online.clone().sparsity_w(Some(0.5)), "sparseness");
    refused(
        online
            .clone()
            .solver(Solver::Mu)
            .loss(Loss::KullbackLeibler),
        "loss",
    );
    let known = random_mask(x.dim(), 0.1, 0);
    let err = online
        .fit_masked(&x.view(), &known.view(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing data"), "{err}");
    let mut save = |_: &Checkpoint<f64>| {};
    let checkpointing = Checkpointing {
        every: Some(1.0),
        save: &mut save,
        resume: None,
        context: String::new(),
    };
    let err = online
        .fit_checkpointed(&x.view(), None, None, |_| {}, checkpointing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkpoints"), "{err}");
    let group = Threads::new(1);
    let member = group.member(0);
    let share = Share {
        group: &member,
        first: 0,
        total: x.ncols(),
    };
    let err = online
        .fit_share(&x.view(), share, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("split over processes"), "{err}");
}

#[test]
fn an_interrupted_online_fit_leaves_no_state_to_resume() {
    let x = noisy(20, 100, 2);
    let interrupt = Interrupt::new();
    let params = Nmf::params(3)
        .online(Some(Online::new(32)))
        .interrupt(interrupt.clone())
        .max_iter(50)
        .tol(0.0);
    let mut save = |_: &Checkpoint<f64>| {};
    let checkpointing = Checkpointing {
        every: None,
        save: &mut save,
        resume: None,
        context: String::new(),
    };
    let (fit, state) = params
        .fit_checkpointed(
            &x.view(),
            None,
            None,
            |it| {
                if it.iter == 3 {
                    interrupt.raise();
                }
            },
            checkpointing,
        )
        .unwrap();
    assert_eq!(fit.stop, Stop::Interrupted);
    assert_eq!(fit.n_iter, 3);
    assert!(state.is_none());
}
