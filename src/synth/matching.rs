//! How well a learned basis found known parts: each true part is paired with its own basis
//! image by the assignment that maximises the summed cosine (Kuhn's Hungarian method, in the
//! shortest-augmenting-path form of Jonker & Volgenant 1987), and the cosine of each pair is
//! reported. The least of them over the identifiable parts is the usual benchmark figure.

use ndarray::ArrayView2;

use crate::Float;

/// The pairing of true parts with basis images.
#[derive(Debug, Clone, PartialEq)]
pub struct PartsMatch {
    /// `basis[k]`: the basis image (column of W) paired with part k.
    pub basis: Vec<usize>,
    /// `cosine[k]`: the cosine between part k and its basis image, in [0, 1].
    pub cosine: Vec<f64>,
}

impl PartsMatch {
    /// The least cosine over the parts where `required` is true.
    pub fn min_cosine(&self, required: &[bool]) -> f64 {
        self.cosine
            .iter()
            .zip(required)
            .filter(|(_, r)| **r)
            .map(|(c, _)| *c)
            .fold(f64::INFINITY, f64::min)
    }

    /// The parts (named by `names`) where `required` is true whose cosine is below `threshold`, by name.
    pub fn below<'s>(
        &self,
        names: &'s [String],
        required: &[bool],
        threshold: f64,
    ) -> Vec<(&'s str, f64)> {
        self.cosine
            .iter()
            .zip(required)
            .zip(names)
            .filter(|((c, r), _)| **r && **c < threshold)
            .map(|((c, _), name)| (name.as_str(), *c))
            .collect()
    }
}

/// Pairs each column of `parts` (pixels x p) with a distinct column of `basis` (pixels x r),
/// maximising the summed cosine. Where r < p, the parts left over get cosine 0 and basis
/// index `usize::MAX`.
///
/// # Panics
/// The two have different numbers of pixels.
pub fn match_parts<T: Float>(parts: &ArrayView2<f64>, basis: &ArrayView2<T>) -> PartsMatch {
    assert_eq!(
        parts.nrows(),
        basis.nrows(),
        "parts and basis differ in pixels"
    );
    let unit = |col: Vec<f64>| {
        let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        col.into_iter()
            .map(|v| if norm > 0.0 { v / norm } else { 0.0 })
            .collect::<Vec<f64>>()
    };
    let truth: Vec<Vec<f64>> = parts
        .columns()
        .into_iter()
        .map(|c| unit(c.to_vec()))
        .collect();
    let learned: Vec<Vec<f64>> = basis
        .columns()
        .into_iter()
        .map(|c| unit(c.iter().map(|v| v.to_f64()).collect()))
        .collect();
    let cosine: Vec<Vec<f64>> = truth
        .iter()
        .map(|t| {
            learned
                .iter()
                .map(|l| t.iter().zip(l).map(|(a, b)| a * b).sum::<f64>().max(0.0))
                .collect()
        })
        .collect();
    // The assignment needs at least as many columns as rows: transpose if r < p.
    let (p, r) = (truth.len(), learned.len());
    let mut basis_of = vec![usize::MAX; p];
    if p <= r {
        let cost: Vec<Vec<f64>> = cosine
            .iter()
            .map(|row| row.iter().map(|c| 1.0 - c).collect())
            .collect();
        for (k, b) in assign(&cost).into_iter().enumerate() {
            basis_of[k] = b;
        }
    } else {
        let cost: Vec<Vec<f64>> = (0..r)
            .map(|b| (0..p).map(|k| 1.0 - cosine[k][b]).collect())
            .collect();
        for (b, k) in assign(&cost).into_iter().enumerate() {
            basis_of[k] = b;
        }
    }
    let cos = basis_of
        .iter()
        .enumerate()
        .map(|(k, &b)| if b == usize::MAX { 0.0 } else { cosine[k][b] })
        .collect();
    PartsMatch {
        basis: basis_of,
        cosine: cos,
    }
}

/// The column assigned to each row in a least-cost assignment of every row of `cost`
/// (rows <= columns) to a distinct column.
fn assign(cost: &[Vec<f64>]) -> Vec<usize> {
    let rows = cost.len();
    let cols = cost.first().map_or(0, Vec::len);
    // Potentials u (rows) and v (columns), 1-based with a virtual column 0; owner[c] is the row
    // that holds column c.
    let mut u = vec![0.0; rows + 1];
    let mut v = vec![0.0; cols + 1];
    let mut owner = vec![0usize; cols + 1];
    let mut way = vec![0usize; cols + 1];
    for row in 1..=rows {
        owner[0] = row;
        let mut col0 = 0;
        let mut least = vec![f64::INFINITY; cols + 1];
        let mut used = vec![false; cols + 1];
        loop {
            used[col0] = true;
            let r0 = owner[col0];
            let (mut delta, mut col1) = (f64::INFINITY, 0);
            for c in 1..=cols {
                if used[c] {
                    continue;
                }
                let reduced = cost[r0 - 1][c - 1] - u[r0] - v[c];
                if reduced < least[c] {
                    least[c] = reduced;
                    way[c] = col0;
                }
                if least[c] < delta {
                    delta = least[c];
                    col1 = c;
                }
            }
            for c in 0..=cols {
                if used[c] {
                    u[owner[c]] += delta;
                    v[c] -= delta;
                } else {
                    least[c] -= delta;
                }
            }
            col0 = col1;
            if owner[col0] == 0 {
                break;
            }
        }
        // Walk the augmenting path back, handing each column to the row before it.
        loop {
            let prev = way[col0];
            owner[col0] = owner[prev];
            col0 = prev;
            if col0 == 0 {
                break;
            }
        }
    }
    let mut of_row = vec![0; rows];
    for c in 1..=cols {
        if owner[c] > 0 {
            of_row[owner[c] - 1] = c - 1;
        }
    }
    of_row
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    /// Every assignment of a small problem, by brute force.
    fn brute_force(cost: &[Vec<f64>]) -> f64 {
        fn go(cost: &[Vec<f64>], row: usize, used: &mut Vec<bool>) -> f64 {
            if row == cost.len() {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for c in 0..used.len() {
                if !used[c] {
                    used[c] = true;
                    best = best.min(cost[row][c] + go(cost, row + 1, used));
                    used[c] = false;
                }
            }
            best
        }
        go(cost, 0, &mut vec![false; cost[0].len()])
    }

    #[test]
    fn assignment_is_optimal_on_random_problems() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for (rows, cols) in [(1, 1), (3, 3), (4, 6), (6, 6), (5, 7)] {
            for _ in 0..20 {
                let cost: Vec<Vec<f64>> = (0..rows)
                    .map(|_| (0..cols).map(|_| next()).collect())
                    .collect();
                let picked = assign(&cost);
                let mut seen = picked.clone();
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen.len(), rows, "a column assigned twice: {picked:?}");
                let total: f64 = picked.iter().enumerate().map(|(r, &c)| cost[r][c]).sum();
                assert!((total - brute_force(&cost)).abs() < 1e-12, "{rows}x{cols}");
            }
        }
    }

    #[test]
    fn a_permuted_scaled_basis_matches_exactly() {
        let parts = array![
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [1.0, 1.0, 0.0]
        ];
        // Columns 2, 0, spare, 1 of the basis are parts 0, 1, 2 scaled.
        let mut basis = Array2::<f32>::zeros((4, 4));
        for (b, k, s) in [(2, 0, 3.0), (0, 1, 0.5), (3, 2, 2.0)] {
            basis
                .column_mut(b)
                .assign(&parts.column(k).mapv(|v| (v * s) as f32));
        }
        basis.column_mut(1).fill(1.0);
        let m = match_parts(&parts.view(), &basis.view());
        assert_eq!(m.basis, vec![2, 0, 3]);
        assert!(
            m.cosine.iter().all(|c| (c - 1.0).abs() < 1e-6),
            "{:?}",
            m.cosine
        );
        assert!(m.min_cosine(&[true; 3]) > 0.999_999);
    }

    #[test]
    fn too_few_basis_images_leave_parts_unmatched() {
        let parts = Array2::<f64>::eye(3);
        let basis = Array2::<f64>::eye(3).slice_move(ndarray::s![.., ..2]);
        let m = match_parts(&parts.view(), &basis.view());
        assert_eq!(m.basis, vec![0, 1, usize::MAX]);
        assert_eq!(m.min_cosine(&[true, true, true]), 0.0);
        assert_eq!(m.min_cosine(&[true, true, false]), 1.0);
    }
}
