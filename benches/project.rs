//! Projection against fitting: the time to project 200 ORL faces onto a rank-49 basis, beside
//! the time of one iteration of the fit that learned it (the median iteration of its own
//! history), in the same process. The floor is a projection faster than two
//! iterations.
//!
//! Run: `cargo bench --bench project [-- DATASET_DIR]` (default `../shared/data/orl`).

use std::path::PathBuf;
use std::time::Instant;

use facenmf::{Faces, Loader, Nmf};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/orl"));
    if !dir.is_dir() {
        eprintln!(
            "NOT RUN: {} is missing; the projection bench needs the ORL faces (../shared/data)",
            dir.display()
        );
        std::process::exit(2);
    }
    let faces: Faces<f32> = Loader::new(&dir).load().expect("the faces load");
    let (m, n) = faces.x.dim();
    let fit = Nmf::params(49)
        .image_shape(faces.height, faces.width)
        .fit(&faces.x.view())
        .expect("the fit runs");
    let steps: Vec<f64> = fit
        .history
        .windows(2)
        .skip(1)
        .map(|p| p[1].seconds - p[0].seconds)
        .collect();
    let per_iteration = median(steps);
    let count = 200.min(n);
    // The faces as `project` loads them: a matrix of their own.
    let x = faces
        .x
        .slice(ndarray::s![.., ..count])
        .as_standard_layout()
        .into_owned();
    let x = x.view();
    let mut times = Vec::new();
    let mut kkt = 0.0;
    for _ in 0..9 {
        let start = Instant::now();
        let p = facenmf::nmf::project(&fit.w.view(), &x, 0.0, 0.0, facenmf::nmf::PROJECT_TOL)
            .expect("the projection runs");
        times.push(start.elapsed().as_secs_f64());
        kkt = p.kkt;
    }
    let project = median(times);
    println!(
        "{}: X {m} x {n}, rank 49, f32, {} threads",
        dir.display(),
        rayon::current_num_threads()
    );
    println!(
        "fit: {} iterations, median iteration {:.2} ms",
        fit.n_iter,
        per_iteration * 1e3
    );
    println!(
        "project {count} faces: median {:.2} ms = {:.2} iterations (KKT measure {kkt:.1e})",
        project * 1e3,
        project / per_iteration
    );
}
