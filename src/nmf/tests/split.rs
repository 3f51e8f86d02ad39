//! Images split by columns over a group of processes (threads of one process here, as MPI's
//! ranks would be): the single process's iterates, and the same error on every process.

use ndarray::{Array2, Axis, concatenate, s};

use super::*;
use crate::nmf::*;

/// Fits `x` split evenly over `size` members of a [`Threads`] group, each in a pool of its own
/// (a member waiting for the others must not hold a worker another member needs), the images
/// in memory or, with `width`, read in blocks of that many. Every member's result, in rank order.
fn split_fit<T: crate::Float>(
    params: &Nmf,
    x: &Array2<T>,
    size: usize,
    width: Option<usize>,
) -> Vec<crate::Result<Factorization<T>>> {
    let group = Threads::new(size);
    let n = x.ncols();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let member = group.member(rank);
                let cols = Share::even_range(rank, size, n);
                let local = x.slice(s![.., cols.clone()]).to_owned();
                scope.spawn(move || {
                    let share = Share {
                        group: &member,
                        first: cols.start,
                        total: n,
                    };
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .unwrap();
                    pool.install(|| match width {
                        None => params.fit_share(&local.view(), share, |_| {}),
                        Some(w) => {
                            params.fit_blocks_share(&super::options::Held(local), w, share, |_| {})
                        }
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// H whole, from every member's columns in rank order.
fn gathered<T: crate::Float>(fits: &[Factorization<T>]) -> Array2<T> {
    let parts: Vec<_> = fits.iter().map(|f| f.h.view()).collect();
    concatenate(Axis(1), &parts).unwrap()
}

#[test]
fn split_fits_make_the_single_process_iterates() {
    // 203 images of 40 pixels (the images the long side of the start's SVD) and 100 of 150
    // (the short side): every solver, the inits, restarts (data of rank 2 at rank 4), in
    // memory and in blocks of 32, over 1 to 4 processes (uneven shares: 203 = 64 + 32 + 64 +
    // 43 over 4).
    let mut x = noisy(40, 203, 5);
    x.row_mut(3).fill(0.0);
    let tall = noisy(150, 100, 6);
    let two = low_rank(40, 203, 2, 9);
    let mut cases: Vec<(Nmf, &Array2<f64>)> = ALL_SOLVERS
        .iter()
        .map(|&s| (Nmf::params(5).solver(s), &x))
        .collect();
    cases.push((Nmf::params(5).sparsity_w(Some(0.4)), &x));
    cases.push((Nmf::params(7).init(Init::Nndsvdar), &x));
    cases.push((Nmf::params(7).init(Init::Nndsvd), &x));
    cases.push((Nmf::params(4).init(Init::Random), &tall));
    cases.push((Nmf::params(4).init(Init::Nndsvdar), &tall));
    cases.push((Nmf::params(4), &tall));
    // (At rank 2 the error falls to 3e-4 of ||X||, where the error's sum formula cancels
    // ~1e-7 of it: the order of sums then shows at 2e-9, as in a streamed fit.)
    cases.push((Nmf::params(4).solver(Solver::Cd), &two));
    let mut restarts = 0;
    for (params, x) in cases {
        // A split fit has no multilevel start (the sample start would apply to one process).
        let params = params.max_iter(40).tol(0.0).multilevel(false);
        let single = params.fit(&x.view()).unwrap();
        restarts += single.restarts;
        for (size, width) in [(1, None), (2, None), (3, None), (4, None), (3, Some(32))] {
            let label = format!(
                "{} {} over {size} processes, blocks {width:?}",
                params.solver, params.init
            );
            let fits: Vec<_> = split_fit(&params, x, size, width)
                .into_iter()
                .map(|f| f.unwrap())
                .collect();
            for fit in &fits {
                assert_same_iterates(&single, fit, &label);
                // W is replicated: the same bits in every process.
                assert_eq!(fit.w, fits[0].w, "{label}");
            }
            let dw = (&single.w - &fits[0].w)
                .iter()
                .fold(0.0f64, |m, d| m.max(d.abs()));
            assert!(dw < 1e-7, "{label}: W differs by {dw}");
            let dh = (&single.h.view() - &gathered(&fits))
                .iter()
                .fold(0.0f64, |m, d| m.max(d.abs()));
            assert!(dh < 1e-6, "{label}: H differs by {dh}");
        }
    }
    assert!(
        restarts > 0,
        "no case restarted a component: the test misses revive.rs"
    );
}

#[test]
fn a_split_fit_is_reproducible_and_f32_agrees_to_rounding() {
    let x = noisy(40, 203, 11).mapv(|v| v as f32);
    let params = Nmf::params(5).max_iter(30).tol(0.0).multilevel(false);
    let single = params.fit(&x.view()).unwrap();
    let first: Vec<_> = split_fit(&params, &x, 3, None)
        .into_iter()
        .map(|f| f.unwrap())
        .collect();
    let again: Vec<_> = split_fit(&params, &x, 3, None)
        .into_iter()
        .map(|f| f.unwrap())
        .collect();
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.w, b.w);
        assert_eq!(a.h, b.h);
        let errors =
            |f: &Factorization<f32>| f.history.iter().map(|i| i.rel_error).collect::<Vec<_>>();
        assert_eq!(errors(a), errors(b));
    }
    assert!((single.rel_error - first[0].rel_error).abs() <= 1e-4 * single.rel_error);
}

#[test]
fn a_bad_entry_in_one_process_ends_every_process_with_its_place_in_x() {
    let mut x = noisy(20, 100, 8);
    x[[4, 77]] = -1.0;
    for (size, width) in [(3, None), (2, Some(8))] {
        for fit in split_fit(&Nmf::params(3), &x, size, width) {
            let err = fit.unwrap_err().to_string();
            assert!(err.contains("entry (4, 77) is -1"), "{err}");
        }
    }
}

#[test]
fn split_fits_refuse_what_they_cannot_do_on_every_process() {
    let x = noisy(20, 100, 7);
    for (params, name) in [
        (Nmf::params(3).alpha_h(0.1), "alpha_h"),
        (Nmf::params(3).init(Init::Spa), "init"),
        (
            Nmf::params(3)
                .solver(Solver::Mu)
                .loss(Loss::KullbackLeibler),
            "loss",
        ),
        (Nmf::params(3).runs(2), "runs"),
    ] {
        for fit in split_fit(&params, &x, 2, None) {
            let err = fit.unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name}:")), "{err}");
            assert!(err.contains("split over processes"), "{err}");
        }
    }
}

#[test]
fn shares_that_are_not_one_split_are_an_error_on_every_process() {
    // Process 1 claims the columns process 0 holds; 20 images are too few for 2 processes.
    let x = noisy(20, 30, 7);
    let group = Threads::new(2);
    let results: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|rank| {
                let member = group.member(rank);
                let local = x.slice(s![.., 0..15]).to_owned();
                scope.spawn(move || {
                    let share = Share {
                        group: &member,
                        first: 0,
                        total: 30,
                    };
                    Nmf::params(3)
                        .fit_share(&local.view(), share, |_| {})
                        .unwrap_err()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for err in results {
        assert!(
            err.contains("process 1 of 2 holds images from column 0, not 15"),
            "{err}"
        );
    }
    for fit in split_fit(&Nmf::params(3), &x.slice(s![.., ..20]).to_owned(), 2, None) {
        let err = fit.unwrap_err().to_string();
        assert!(
            err.contains("holds no images (20 images are at most 1 shares"),
            "{err}"
        );
    }
}
