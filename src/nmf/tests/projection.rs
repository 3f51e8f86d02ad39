//! Projection of images onto a learned basis: a converged fit's own images give back its H;
//! the tolerance is met or the call says it was not; bad input is refused.

use super::*;
use crate::nmf::project;

fn relative_difference(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let diff = (a - b).mapv(|v| v * v).sum().sqrt();
    diff / b.mapv(|v| v * v).sum().sqrt()
}

#[test]
fn projecting_the_training_images_gives_back_the_fits_h() {
    let x = noisy(60, 40, 11);
    for (solver, alpha_h) in [
        (Solver::Anls, 0.0),
        (Solver::Hals, 0.0),
        (Solver::Hals, 0.002),
        (Solver::Anls, 0.002),
    ] {
        let fit = Nmf::params(6)
            .solver(solver)
            // Penalising H alone, W would grow and H shrink for ever (the scale is free).
            .alpha_w(alpha_h)
            .alpha_h(alpha_h)
            .l1_ratio(0.5)
            .tol(1e-7)
            .max_iter(20000)
            .fit(&x.view())
            .unwrap();
        assert!(
            fit.converged(),
            "{solver} {alpha_h}: the fit did not converge ({:?})",
            fit.stop
        );
        let p = project(&fit.w.view(), &x.view(), alpha_h, 0.5, 1e-9).unwrap();
        let d = relative_difference(&p.h, &fit.h.to_owned());
        assert!(
            d <= 1e-3,
            "{solver}: projected H {d:e} from the fit's ({:?})",
            fit.stop
        );
        assert!((p.rel_error - fit.rel_error).abs() <= 1e-4 * fit.rel_error.max(1e-12) + 1e-9);
    }
}

#[test]
fn projection_errors_are_per_image_and_whole() {
    let x = noisy(30, 10, 3);
    let fit = Nmf::params(4).fit(&x.view()).unwrap();
    let p = project(&fit.w.view(), &x.view(), 0.0, 0.0, 1e-6).unwrap();
    for j in 0..x.ncols() {
        let r = &x.column(j) - &fit.w.dot(&p.h.column(j));
        let e = r.mapv(|v| v * v).sum().sqrt() / x.column(j).mapv(|v| v * v).sum().sqrt();
        assert!((e - p.rel_errors[j]).abs() < 1e-12, "image {j}");
    }
    let whole =
        (&x - &fit.w.dot(&p.h)).mapv(|v| v * v).sum().sqrt() / x.mapv(|v| v * v).sum().sqrt();
    assert!((whole - p.rel_error).abs() < 1e-12);
    // In f32 the tolerance that f32 can reach is met too.
    let x32 = x.mapv(|v| v as f32);
    let w32 = fit.w.mapv(|v| v as f32);
    let p32 = project(&w32.view(), &x32.view(), 0.0, 0.0, 1e-4).unwrap();
    assert!(p32.kkt <= 1e-4 && p32.h.iter().all(|&v| v >= 0.0));
}

#[test]
fn projection_refuses_bad_input() {
    let x = noisy(30, 10, 4);
    let w = low_rank(30, 3, 3, 5) + 0.1;
    let mut zero_column = w.clone();
    zero_column.column_mut(1).fill(0.0);
    let err = project(&zero_column.view(), &x.view(), 0.0, 0.0, 1e-6).unwrap_err();
    assert!(
        err.to_string().contains("basis image 1 is all zero"),
        "{err}"
    );
    let short = x.slice(ndarray::s![..20, ..]).to_owned();
    let err = project(&w.view(), &short.view(), 0.0, 0.0, 1e-6).unwrap_err();
    assert!(err.to_string().contains("20 pixels"), "{err}");
    let mut negative = x.clone();
    negative[[0, 0]] = -1.0;
    assert!(project(&w.view(), &negative.view(), 0.0, 0.0, 1e-6).is_err());
    assert!(project(&w.view(), &x.view(), 0.0, 0.0, f64::NAN).is_err());
    assert!(project(&w.view(), &x.view(), -1.0, 0.0, 1e-6).is_err());
    // A blank image projects to zero coefficients and error 0.
    let mut blank = x.clone();
    blank.column_mut(2).fill(0.0);
    let p = project(&w.view(), &blank.view(), 0.0, 0.0, 1e-6).unwrap();
    assert!(p.h.column(2).iter().all(|&v| v == 0.0) && p.rel_errors[2] == 0.0);
}

#[test]
fn coefficients_fitted_to_a_fixed_w_are_near_the_exact_projection() {
    // What a sample start gives every image (`init::coefficients_for`: the least-squares fit
    // clipped at zero, then HALS sweeps) against the exact nonnegative least-squares fit of
    // block principal pivoting: on noisy images whose fit has zeros, the same error to 1e-3,
    // and never negative.
    let x = noisy(40, 150, 21);
    let fit = Nmf::params(6).max_iter(50).fit(&x.view()).unwrap();
    let (ht, xtw) = crate::nmf::init::coefficients_for(&x.view(), &fit.w, 50);
    // The X^T W it returns is the product itself.
    assert!(relative_difference(&xtw, &x.t().dot(&fit.w)) < 1e-12);
    assert!(ht.iter().all(|&v| v >= 0.0));
    let zeros = ht.iter().filter(|&&v| v == 0.0).count();
    assert!(
        zeros > 0,
        "no coefficient at zero: the clipping is not tested"
    );
    let exact = project::project(&fit.w.view(), &x.view(), 0.0, 0.0, 1e-9).unwrap();
    let rebuilt = fit.w.dot(&ht.t());
    let error = (&x - &rebuilt).mapv(|v| v * v).sum().sqrt() / x.mapv(|v| v * v).sum().sqrt();
    assert!(
        error <= exact.rel_error * (1.0 + 1e-3),
        "{error} against the exact {}",
        exact.rel_error
    );
    assert!(relative_difference(&ht.t().to_owned(), &exact.h) < 1e-2);
    // Data the basis fits exactly, with nonnegative coefficients: found to rounding.
    let h0 = exact.h.mapv(|v| v + 0.1);
    let x = fit.w.dot(&h0);
    let (ht, _) = crate::nmf::init::coefficients_for(&x.view(), &fit.w, 50);
    assert!(relative_difference(&ht.t().to_owned(), &h0) < 1e-9);
}
