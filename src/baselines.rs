//! Apply: the two methods NMF is set beside, as in Lee & Seung (Nature 401, 1999, Fig. 1).
//!
//! - [`Pca`]: the rank-r truncated SVD of X, uncentred as in that figure (W's columns
//!   orthonormal, H's rows orthogonal). By Eckart and Young it is the least error any rank-r
//!   factorization can reach, so it is the floor NMF's error is read against.
//! - [`KMeans`]: vector quantization, each face replaced by one of r prototypes (H's columns
//!   unary): Lloyd's iterations from a k-means++ start (Arthur & Vassilvitskii 2007), until fewer than
//!   0.5% of the faces change prototype.
//!
//! Both compute in f64 whatever X is, through faer's products; both are deterministic.

use faer::{Accum, Mat, Par};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::nmf::uniform_draw;
use crate::{Error, Float, Result};

/// Lloyd's iterations stop when at most one face in this many changes prototype (0.5%), or
/// after [`KMEANS_MAX_ITER`]. On CBCL at k = 49 the last nine of twenty iterations moved 1-14
/// faces of 2429 and cost 35 ms of the report's 120; the error moved in its fifth digit.
pub const KMEANS_SETTLED: usize = 200;

/// Lloyd's iterations stop after at most this many.
pub const KMEANS_MAX_ITER: usize = 100;

/// Eigenfaces: the leading left singular vectors of X.
#[derive(Debug, Clone)]
pub struct Pca {
    /// The first `rank` left singular vectors, m x rank (unit columns; signs as faer gives them,
    /// flipped so that each column's largest entry in magnitude is positive).
    pub components: Array2<f64>,
    /// All singular values of X, largest first.
    pub singular_values: Vec<f64>,
    /// Coefficients, rank x n: `components^T X`.
    pub coefficients: Array2<f64>,
    /// `||X - U_r U_r^T X|| / ||X||`, from the discarded singular values.
    pub rel_error: f64,
}

impl Pca {
    /// The rank-`rank` truncated SVD of `x` (pixels x faces), from faer's symmetric
    /// eigendecomposition of the smaller of X X^T and X^T X.
    ///
    /// # Errors
    /// A rank of 0 or above min(m, n), or an eigendecomposition that does not converge.
    pub fn fit<T: Float>(x: &ArrayView2<T>, rank: usize) -> Result<Pca> {
        check_pca_rank(x.dim(), rank)?;
        Pca::from_data(&Data::new(x), rank)
    }

    /// As [`Pca::fit`], on data whose Gram matrix is already formed.
    fn from_data(data: &Data, rank: usize) -> Result<Pca> {
        let (xf, gram) = (&data.x, &data.gram);
        let (m, n) = (xf.nrows(), xf.ncols());
        let wide = data.wide();
        let eigen = gram.self_adjoint_eigen(faer::Side::Lower).map_err(|e| {
            Error::param(
                "pca",
                format!("the eigendecomposition of X's Gram matrix failed ({e:?})"),
            )
        })?;
        let (vectors, values) = (eigen.U(), eigen.S().column_vector());
        let size = values.nrows();
        // Ascending from faer: the largest last.
        let singular_values: Vec<f64> = (0..size)
            .map(|k| values[size - 1 - k].max(0.0).sqrt())
            .collect();
        // The leading eigenvectors, largest first; for a tall X, U = X V / s in one product.
        let leading = Mat::<f64>::from_fn(size, rank, |i, k| vectors[(i, size - 1 - k)]);
        let u = if wide {
            leading
        } else {
            let mut u = Mat::<f64>::zeros(m, rank);
            faer::linalg::matmul::matmul(
                u.as_mut(),
                Accum::Replace,
                xf.as_ref(),
                leading.as_ref(),
                1.0,
                Par::rayon(0),
            );
            for (k, &s) in singular_values.iter().take(rank).enumerate() {
                let scale = if s > 0.0 { 1.0 / s } else { 0.0 };
                u.col_as_slice_mut(k).iter_mut().for_each(|v| *v *= scale);
            }
            u
        };
        let mut components = Array2::<f64>::zeros((m, rank));
        for k in 0..rank {
            let column = u.col_as_slice(k);
            let peak = column
                .iter()
                .fold(0.0f64, |a, &v| if v.abs() > a.abs() { v } else { a });
            let sign = if peak < 0.0 { -1.0 } else { 1.0 };
            for (i, v) in column.iter().enumerate() {
                components[[i, k]] = sign * v;
            }
        }
        let mut coefficients = Array2::<f64>::zeros((rank, n));
        faer::linalg::matmul::matmul(
            mat_mut(&mut coefficients),
            Accum::Replace,
            mat_ref(&components).transpose(),
            xf.as_ref(),
            1.0,
            Par::rayon(0),
        );
        let total: f64 = singular_values.iter().map(|s| s * s).sum();
        let kept: f64 = singular_values[..rank].iter().map(|s| s * s).sum();
        let rel_error = if total > 0.0 {
            ((total - kept).max(0.0) / total).sqrt()
        } else {
            0.0
        };
        Ok(Pca {
            components,
            singular_values,
            coefficients,
            rel_error,
        })
    }
}

/// Vector quantization: r prototypes and each face's nearest one.
#[derive(Debug, Clone)]
pub struct KMeans {
    /// The prototypes, m x k (cluster means).
    pub centroids: Array2<f64>,
    /// For each face, the index of its prototype.
    pub assignment: Vec<usize>,
    /// `sqrt(sum_j ||x_j - c_a(j)||^2) / ||X||`.
    pub rel_error: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
}

impl KMeans {
    /// `k` prototypes for the columns of `x`, from a k-means++ start drawn from `seed`.
    ///
    /// # Errors
    /// A `k` of 0 or above the number of faces.
    pub fn fit<T: Float>(x: &ArrayView2<T>, k: usize, seed: u64) -> Result<KMeans> {
        check_prototypes(x.ncols(), k)?;
        Ok(KMeans::from_data(&Data::new(x), k, seed))
    }

    /// As [`KMeans::fit`], on data whose Gram matrix is already formed.
    fn from_data(data: &Data, k: usize, seed: u64) -> KMeans {
        let space = if data.wide() {
            Space::Pixels
        } else {
            Space::Gram
        };
        KMeans::in_space(data, k, seed, space)
    }

    fn in_space(data: &Data, k: usize, seed: u64, space: Space) -> KMeans {
        let (m, n) = (data.x.nrows(), data.x.ncols());
        let norms: Vec<f64> = (0..n)
            .map(|j| data.x.col_as_slice(j).iter().map(|v| v * v).sum())
            .collect();
        let total: f64 = norms.iter().sum();

        // k-means++: each next centre a face drawn with probability proportional to its
        // squared distance to the nearest centre so far.
        let first = ((uniform_draw(seed, 0) * n as f64) as usize).min(n - 1);
        let mut centres: Vec<Vec<usize>> = vec![vec![first]];
        let mut nearest: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|j| data.face_distance(space, &norms, j, first))
            .collect();
        for c in 1..k {
            let sum: f64 = nearest.iter().sum();
            let chosen = if sum > 0.0 {
                let target = uniform_draw(seed, c as u64) * sum;
                let mut acc = 0.0;
                nearest
                    .iter()
                    .position(|d| {
                        acc += d;
                        acc > target
                    })
                    .unwrap_or(n - 1)
            } else {
                c % n
            };
            centres.push(vec![chosen]);
            nearest.par_iter_mut().enumerate().for_each(|(j, d)| {
                *d = d.min(data.face_distance(space, &norms, j, chosen));
            });
        }

        // Lloyd: each face to its nearest centre, each centre the mean of its faces.
        let mut assignment = vec![usize::MAX; n];
        let mut iterations = 0;
        loop {
            let best = data.nearest_centres(space, &norms, &centres);
            let changed = best
                .iter()
                .zip(&assignment)
                .filter(|((c, _), a)| c != *a)
                .count();
            for (a, (c, _)) in assignment.iter_mut().zip(&best) {
                *a = *c;
            }
            if changed * KMEANS_SETTLED <= n || iterations == KMEANS_MAX_ITER {
                break;
            }
            iterations += 1;
            let distances: Vec<f64> = best.iter().map(|b| b.1).collect();
            centres = members(&assignment, &distances, k);
        }

        let centroids = means(&data.x, &members(&assignment, &vec![0.0; n], k));
        // Summed in face order, so that the error does not depend on how threads split it.
        let per_face: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|j| {
                squared_distance(
                    data.x.col_as_slice(j),
                    centroids.col_as_slice(assignment[j]),
                )
            })
            .collect();
        let residual: f64 = per_face.iter().sum();
        let rel_error = if total > 0.0 {
            (residual / total).sqrt()
        } else {
            0.0
        };
        KMeans {
            centroids: Array2::from_shape_fn((m, k), |(i, c)| centroids[(i, c)]),
            assignment,
            rel_error,
            iterations,
        }
    }
}

/// PCA and VQ at once, sharing X in f64 and its Gram matrix.
///
/// # Errors
/// As [`Pca::fit`] and [`KMeans::fit`].
pub fn pca_and_kmeans<T: Float>(
    x: &ArrayView2<T>,
    rank: usize,
    k: usize,
    seed: u64,
) -> Result<(Pca, KMeans)> {
    check_pca_rank(x.dim(), rank)?;
    check_prototypes(x.ncols(), k)?;
    let data = Data::new(x);
    let (pca, vq) = rayon::join(
        || Pca::from_data(&data, rank),
        || KMeans::from_data(&data, k, seed),
    );
    Ok((pca?, vq))
}

/// A PCA rank must be from 1 to min(pixels, images).
fn check_pca_rank((m, n): (usize, usize), rank: usize) -> Result<()> {
    if rank == 0 || rank > m.min(n) {
        return Err(Error::param(
            "rank",
            format!(
                "PCA needs a rank from 1 to min(pixels, images) = {}",
                m.min(n)
            ),
        ));
    }
    Ok(())
}

/// k-means needs from 1 to n prototypes.
fn check_prototypes(n: usize, k: usize) -> Result<()> {
    if k == 0 || k > n {
        return Err(Error::param(
            "rank",
            format!("k-means needs from 1 to {n} prototypes (the number of faces)"),
        ));
    }
    Ok(())
}

/// X in f64 (column-major: a face per column) and the smaller of its Gram matrices, whose
/// eigenvectors give PCA: X X^T gives U, X^T X gives V and then U = X V / s. On CBCL
/// (361 x 2429) that took 25 ms where faer's thin SVD of X took 110; the leading singular
/// values lose nothing in f64.
struct Data {
    x: Mat<f64>,
    /// X X^T (m x m) when X is wide (m <= n), else X^T X (n x n).
    gram: Mat<f64>,
}

/// Where k-means measures distances: in pixels (m x k products per iteration), or through the
/// faces' Gram matrix X^T X (kernel k-means, n x n work per iteration), which is far cheaper
/// for tall X: on ORL (10304 x 400) an iteration is 160 k operations instead of 200 M.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Space {
    Pixels,
    Gram,
}

impl Data {
    fn new<T: Float>(x: &ArrayView2<T>) -> Data {
        let (m, n) = x.dim();
        let xf = Mat::<f64>::from_fn(m, n, |i, j| x[[i, j]].to_f64());
        let size = m.min(n);
        let mut gram = Mat::<f64>::zeros(size, size);
        let (lhs, rhs) = if m <= n {
            (xf.as_ref(), xf.transpose())
        } else {
            (xf.transpose(), xf.as_ref())
        };
        faer::linalg::matmul::matmul(gram.as_mut(), Accum::Replace, lhs, rhs, 1.0, Par::rayon(0));
        Data { x: xf, gram }
    }

    fn wide(&self) -> bool {
        self.x.nrows() <= self.x.ncols()
    }

    /// Squared distance between faces `j` and `i`.
    fn face_distance(&self, space: Space, norms: &[f64], j: usize, i: usize) -> f64 {
        match space {
            Space::Pixels => squared_distance(self.x.col_as_slice(j), self.x.col_as_slice(i)),
            Space::Gram => (norms[j] + norms[i] - 2.0 * self.gram[(j, i)]).max(0.0),
        }
    }

    /// For each face, its nearest centre (each centre the mean of its member faces) and the
    /// squared distance to it.
    fn nearest_centres(
        &self,
        space: Space,
        norms: &[f64],
        centres: &[Vec<usize>],
    ) -> Vec<(usize, f64)> {
        let n = self.x.ncols();
        let k = centres.len();
        // dots[c][j] = c . x_j, and the centres' squared norms.
        let (dots, centre_norms): (Vec<Vec<f64>>, Vec<f64>) = match space {
            Space::Pixels => {
                let centroids = means(&self.x, centres);
                let mut products = Mat::<f64>::zeros(k, n);
                faer::linalg::matmul::matmul(
                    products.as_mut(),
                    Accum::Replace,
                    centroids.transpose(),
                    self.x.as_ref(),
                    1.0,
                    Par::rayon(0),
                );
                let dots = (0..k)
                    .map(|c| (0..n).map(|j| products[(c, j)]).collect())
                    .collect();
                let norms = (0..k)
                    .map(|c| centroids.col_as_slice(c).iter().map(|v| v * v).sum())
                    .collect();
                (dots, norms)
            }
            Space::Gram => centres
                .par_iter()
                .map(|members| {
                    let scale = 1.0 / members.len() as f64;
                    let mut dot = vec![0.0; n];
                    for &i in members {
                        for (d, &g) in dot.iter_mut().zip(self.gram.col_as_slice(i)) {
                            *d += g;
                        }
                    }
                    dot.iter_mut().for_each(|d| *d *= scale);
                    let norm = members.iter().map(|&i| dot[i]).sum::<f64>() * scale;
                    (dot, norm)
                })
                .unzip(),
        };
        (0..n)
            .into_par_iter()
            .map(|j| {
                let mut best = (0, f64::INFINITY);
                for c in 0..k {
                    let d = norms[j] - 2.0 * dots[c][j] + centre_norms[c];
                    if d < best.1 {
                        best = (c, d);
                    }
                }
                (best.0, best.1.max(0.0))
            })
            .collect()
    }
}

/// The faces of each of `k` centres; an empty centre takes the face farthest from its own
/// centre (by `distances`), so that k prototypes stay k.
fn members(assignment: &[usize], distances: &[f64], k: usize) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); k];
    for (j, &c) in assignment.iter().enumerate() {
        groups[c].push(j);
    }
    let mut taken = vec![false; assignment.len()];
    for group in groups.iter_mut().filter(|g| g.is_empty()) {
        let far = (0..assignment.len())
            .filter(|&j| !taken[j])
            .max_by(|&a, &b| distances[a].total_cmp(&distances[b]))
            .unwrap_or(0);
        taken[far] = true;
        group.push(far);
    }
    groups
}

/// The mean face of each group, m x k.
fn means(x: &Mat<f64>, groups: &[Vec<usize>]) -> Mat<f64> {
    let m = x.nrows();
    let mut out = Mat::<f64>::zeros(m, groups.len());
    for (c, group) in groups.iter().enumerate() {
        let column = out.col_as_slice_mut(c);
        for &j in group {
            for (o, v) in column.iter_mut().zip(x.col_as_slice(j)) {
                *o += v;
            }
        }
        let scale = 1.0 / group.len().max(1) as f64;
        column.iter_mut().for_each(|o| *o *= scale);
    }
    out
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    // Four partial sums, so that the loop vectorises.
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += (x[i] - y[i]) * (x[i] - y[i]);
        }
    }
    acc.iter().sum::<f64>() + tail
}

fn mat_ref(a: &Array2<f64>) -> faer::MatRef<'_, f64> {
    let (rows, cols) = a.dim();
    faer::MatRef::from_row_major_slice(a.as_slice().expect("standard layout"), rows, cols)
}

fn mat_mut(a: &mut Array2<f64>) -> faer::MatMut<'_, f64> {
    let (rows, cols) = a.dim();
    faer::MatMut::from_row_major_slice_mut(a.as_slice_mut().expect("standard layout"), rows, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated clusters of four points each in 3 dimensions (as columns).
    fn clusters() -> Array2<f64> {
        let centres = [[1.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 9.0]];
        Array2::from_shape_fn((3, 12), |(i, j)| {
            centres[j / 4][i] + 0.01 * ((j * 7 + i * 3) % 5) as f64
        })
    }

    #[test]
    fn kmeans_finds_separated_clusters_and_its_error_is_the_residual() {
        let x = clusters();
        let fit = KMeans::fit(&x.view(), 3, 7).unwrap();
        for group in fit.assignment.chunks(4) {
            assert!(group.iter().all(|&c| c == group[0]), "{:?}", fit.assignment);
        }
        let mut distinct = fit.assignment.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
        let residual: f64 = (0..12)
            .map(|j| {
                let c = fit.centroids.column(fit.assignment[j]);
                (0..3).map(|i| (x[[i, j]] - c[i]).powi(2)).sum::<f64>()
            })
            .sum();
        let total: f64 = x.iter().map(|v| v * v).sum();
        assert!((fit.rel_error - (residual / total).sqrt()).abs() < 1e-12);
        assert!(fit.rel_error < 0.01);
    }

    #[test]
    fn kernel_kmeans_on_the_gram_matrix_makes_the_same_choices_as_in_pixels() {
        // Tall (60 pixels, 30 faces), so the Gram space is the one used by default.
        let x = Array2::from_shape_fn((60, 30), |(i, j)| {
            (((i * 7 + j * 13) % 11) as f64 + ((j % 3) * i) as f64 * 0.1).sqrt()
        });
        let data = Data::new(&x.view());
        assert!(!data.wide());
        for seed in 0..5 {
            let gram = KMeans::in_space(&data, 4, seed, Space::Gram);
            let pixels = KMeans::in_space(&data, 4, seed, Space::Pixels);
            assert_eq!(gram.assignment, pixels.assignment, "seed {seed}");
            assert_eq!(gram.iterations, pixels.iterations);
            assert!((gram.rel_error - pixels.rel_error).abs() < 1e-12);
        }
    }

    #[test]
    fn pca_error_is_the_residual_of_its_projection_and_exact_at_full_rank() {
        let x = Array2::from_shape_fn((6, 9), |(i, j)| ((i * 5 + j * 3) % 7) as f64 + 0.5);
        let pca = Pca::fit(&x.view(), 2).unwrap();
        let u = &pca.components;
        assert!(
            (u.t().dot(u) - Array2::<f64>::eye(2))
                .iter()
                .all(|v| v.abs() < 1e-10)
        );
        let rebuilt = u.dot(&pca.coefficients);
        let residual: f64 = (&x - &rebuilt).iter().map(|v| v * v).sum();
        let total: f64 = x.iter().map(|v| v * v).sum();
        assert!((pca.rel_error - (residual / total).sqrt()).abs() < 1e-10);
        assert!(Pca::fit(&x.view(), 6).unwrap().rel_error < 1e-7);
        assert!(Pca::fit(&x.view(), 7).is_err());
    }
}
