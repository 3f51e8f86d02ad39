//! Hierarchical alternating least squares (HALS), also known as coordinate descent.
//!
//! A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale nonnegative matrix and
//! tensor factorizations", IEICE Trans. Fundamentals E92-A(3), 2009; the accelerated form with
//! inner repetitions is N. Gillis and F. Glineur, "Accelerated multiplicative updates and
//! hierarchical ALS algorithms for nonnegative matrix factorization", Neural Computation 24(4),
//! 2012 (and N. Gillis, *Nonnegative Matrix Factorization*, SIAM 2020, section 8.3).
//!
//! One factor F (p x r) is updated with the other fixed, from A (p x r, the product of X with
//! the other factor) and G (r x r, the other factor's Gram matrix). Each entry in turn is set to
//! the exact minimiser of the objective in that entry, projected on the nonnegative orthant:
//! `F[i,k] <- max(0, F[i,k] + (A[i,k] - F[i,:] G[:,k]) / G[k,k])`, k = 0..r (Gauss-Seidel).
//!
//! The rows of F are independent least-squares problems, so the sweep runs on blocks of
//! [`LANES`] rows at once, transposed so that the lanes of a SIMD register hold the same entry
//! of different rows (no dependency between lanes, no horizontal sums); entries are taken two
//! at a time so that each row of the block read from cache serves two dot products (the
//! second corrected for the first's change, so the iterates are Gauss-Seidel's). A and G cost
//! far more than one sweep, so the accelerated form repeats the sweep while it still pays: at most
//! `1 + alpha * rho` times (rho = the cost of A and G in sweeps), and, per block, only while a
//! sweep changes the block by more than `delta` times what its first sweep did. The block stays
//! in L1 cache across its repetitions.

use rayon::prelude::*;

use crate::Float;

/// Gillis and Glineur's alpha: the share of the products' cost spent on extra sweeps.
const ALPHA: f64 = 0.5;
/// Gillis and Glineur's delta: stop repeating when a sweep changes F by less than this fraction
/// of what the first sweep changed (compared as squared norms: delta^2).
const DELTA: f64 = 0.1;
/// Rows updated together, one per SIMD lane: two AVX-512 registers of f32, so that two
/// independent dependency chains interleave.
const LANES: usize = 32;
/// Independent accumulators in the dot products of a sweep.
const CHAINS: usize = 4;
/// Rows per parallel task: one block, so that a short factor still splits evenly over the
/// threads, its blocks stopping after different numbers of sweeps (with several blocks per
/// task, a factor of a dozen blocks left one thread with most of the work).
const CHUNK: usize = LANES;
/// Rows whose inner sweeps stop together: a column block of images must hold whole groups to
/// give the iterates of one block.
pub(crate) const ROW_GROUP: usize = CHUNK;
// `update` hands each chunk to the kernel as one block.
const _: () = assert!(CHUNK == LANES);

/// The most sweeps worth doing for a factor with `rows` rows, when the other factor has
/// `other_rows` rows: 1 + floor(alpha * rho), rho = 1 + (p q + q r) / (p r + p).
pub(crate) fn max_sweeps(rows: usize, other_rows: usize, rank: usize) -> usize {
    let (p, q, r) = (rows as f64, other_rows as f64, rank as f64);
    let rho = 1.0 + (p * q + q * r) / (p * r + p);
    1 + (ALPHA * rho).floor() as usize
}

/// Scratch space for [`update`]: two transposed blocks per parallel task.
pub(crate) fn scratch_len(rows: usize, rank: usize) -> usize {
    rows.div_ceil(CHUNK) * per_task(rank)
}

/// Scratch of one parallel task: F and A of a block, transposed.
fn per_task(rank: usize) -> usize {
    2 * rank * LANES
}

/// Updates `f` (p x r, row-major) in place with up to `sweeps` HALS sweeps per block of rows
/// (1 = plain HALS, scikit-learn's cd). `a` is p x r, `g` r x r, both row-major slices;
/// `scratch` holds at least [`scratch_len`] elements.
///
/// Returns `<A, F>` of the updated F, in f64: with A = X H^T it is the cross term of the error,
/// taken here while each block is in cache instead of in another pass over two p x r arrays.
/// Summed block by block in order (`partials`, reused): the same
/// bits for any thread count.
pub(crate) fn update<T: Float>(
    f: &mut [T],
    a: &[T],
    g: &[T],
    rank: usize,
    sweeps: usize,
    scratch: &mut [T],
    partials: &mut Vec<f64>,
) -> f64 {
    let per_task = per_task(rank);
    let kernel = kernel::<T>();
    f.par_chunks_mut(CHUNK * rank)
        .zip(a.par_chunks(CHUNK * rank))
        .zip(scratch.par_chunks_mut(per_task))
        .map(|((f_block, a_block), buf)| kernel(f_block, a_block, g, rank, sweeps, buf))
        .collect_into_vec(partials);
    partials.iter().sum()
}

type Kernel<T> = fn(&mut [T], &[T], &[T], usize, usize, &mut [T]) -> f64;

/// The block kernel compiled for the best instruction set this CPU has (chosen at run time, so
/// the binary stays portable).
fn kernel<T: Float>() -> Kernel<T> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return |f, a, g, r, s, buf| {
                // SAFETY: the CPU supports AVX-512F, checked just above.
                unsafe { block_avx512(f, a, g, r, s, buf) }
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return |f, a, g, r, s, buf| {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                unsafe { block_avx2(f, a, g, r, s, buf) }
            };
        }
    }
    block::<T, false>
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn block_avx512<T: Float>(f: &mut [T], a: &[T], g: &[T], r: usize, s: usize, buf: &mut [T]) -> f64 {
    block::<T, true>(f, a, g, r, s, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn block_avx2<T: Float>(f: &mut [T], a: &[T], g: &[T], r: usize, s: usize, buf: &mut [T]) -> f64 {
    block::<T, true>(f, a, g, r, s, buf)
}

/// Up to `sweeps` sweeps over one block of at most [`LANES`] rows; returns the block's
/// `<A, F>` after them. `FMA`: the caller enabled fused multiply-add, so `a * b + c` is one
/// instruction.
#[inline(always)]
fn block<T: Float, const FMA: bool>(
    f: &mut [T],
    a: &[T],
    g: &[T],
    rank: usize,
    sweeps: usize,
    buf: &mut [T],
) -> f64 {
    let rows = f.len() / rank;
    let (ft, rest) = buf.split_at_mut(rank * LANES);
    let at = &mut rest[..rank * LANES];
    let (ft, _) = ft.as_chunks_mut::<LANES>();
    let (at, _) = at.as_chunks_mut::<LANES>();
    // Transpose in: ft[l][j] = f[j][l], reading rows contiguously; padding lanes are zero and
    // stay zero (A is zero there).
    if rows < LANES {
        ft.iter_mut().for_each(|lane| *lane = [T::zero(); LANES]);
        at.iter_mut().for_each(|lane| *lane = [T::zero(); LANES]);
    }
    for (j, (f_row, a_row)) in f.chunks_exact(rank).zip(a.chunks_exact(rank)).enumerate() {
        for (l, (&fv, &av)) in f_row.iter().zip(a_row).enumerate() {
            ft[l][j] = fv;
            at[l][j] = av;
        }
    }

    let limit = T::from_f64(DELTA * DELTA);
    let mut first = T::zero();
    for sweep in 0..sweeps {
        let mut change = [T::zero(); LANES];
        let mut k = 0;
        while k < rank {
            let live = |k: usize| g[k * rank + k] > T::MIN_POSITIVE;
            if k + 1 < rank && live(k) && live(k + 1) {
                pair_step::<T, FMA>(ft, at, g, k, &mut change);
                k += 2;
            } else {
                single_step::<T, FMA>(ft, at, g, k, &mut change);
                k += 1;
            }
        }
        let total = change.iter().fold(T::zero(), |s, &c| s + c);
        if sweep == 0 {
            first = total;
        } else if total <= limit * first {
            break;
        }
    }

    for (j, f_row) in f.chunks_exact_mut(rank).enumerate() {
        for (l, v) in f_row.iter_mut().enumerate() {
            *v = ft[l][j];
        }
    }
    // Padding lanes hold zeros in both.
    let mut inner = [0.0f64; LANES];
    for (f_lane, a_lane) in ft.iter().zip(at.iter()) {
        for j in 0..LANES {
            inner[j] += f_lane[j].to_f64() * a_lane[j].to_f64();
        }
    }
    inner.iter().sum()
}

/// `a * b + c`, fused where the caller enabled FMA.
#[inline(always)]
fn fma<T: Float, const FMA: bool>(a: T, b: T, c: T) -> T {
    if FMA {
        a.fused_mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Updates entry k of every row of the transposed block `ft` (rank x LANES).
#[inline(always)]
fn single_step<T: Float, const FMA: bool>(
    ft: &mut [[T; LANES]],
    at: &[[T; LANES]],
    g: &[T],
    k: usize,
    change: &mut [T; LANES],
) {
    let rank = ft.len();
    let g_row = &g[k * rank..(k + 1) * rank];
    let gkk = g_row[k];
    // A dead component of the other factor leaves this entry undetermined: keep it, projected,
    // since an extrapolated start may have left it negative.
    if gkk <= T::MIN_POSITIVE {
        for v in ft[k].iter_mut() {
            *v = v.max_of(T::zero());
        }
        return;
    }
    let inv = T::one() / gkk;
    // acc = F[block, :] G[:, k], in CHAINS independent accumulators so that enough FMAs are in
    // flight to cover their latency on two FMA pipes.
    let mut acc = [[T::zero(); LANES]; CHAINS];
    // Rows of F and entries of G in matching groups, so that no index is checked.
    let (g_groups, g_tail) = g_row.as_chunks::<CHAINS>();
    let (f_groups, f_tail) = ft.as_chunks::<CHAINS>();
    for (gq, fq) in g_groups.iter().zip(f_groups) {
        for c in 0..CHAINS {
            for j in 0..LANES {
                acc[c][j] = fma::<T, FMA>(gq[c], fq[c][j], acc[c][j]);
            }
        }
    }
    for (t, (&gl, row)) in g_tail.iter().zip(f_tail).enumerate() {
        for j in 0..LANES {
            acc[t][j] = fma::<T, FMA>(gl, row[j], acc[t][j]);
        }
    }
    let (fk, ak) = (&mut ft[k], &at[k]);
    for j in 0..LANES {
        let dot = (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]);
        let old = fk[j];
        let new = (old - (dot - ak[j]) * inv).max_of(T::zero());
        let d = new - old;
        change[j] += d * d;
        fk[j] = new;
    }
}

/// Independent accumulators per entry in [`pair_step`] (two entries: twice as many in all).
const PAIR_CHAINS: usize = 2;

/// Updates entries k and k + 1 of every row of the block, exactly as two [`single_step`]s:
/// both dot products share each row of F they read (half the loads per multiply-add, which
/// bound the sweep), and entry k + 1's, taken with the old entry k, is corrected by
/// `G[k+1, k] * (new - old)` once entry k is updated.
#[inline(always)]
fn pair_step<T: Float, const FMA: bool>(
    ft: &mut [[T; LANES]],
    at: &[[T; LANES]],
    g: &[T],
    k: usize,
    change: &mut [T; LANES],
) {
    let rank = ft.len();
    let g0 = &g[k * rank..(k + 1) * rank];
    let g1 = &g[(k + 1) * rank..(k + 2) * rank];
    let (inv0, inv1) = (T::one() / g0[k], T::one() / g1[k + 1]);
    let mut acc0 = [[T::zero(); LANES]; PAIR_CHAINS];
    let mut acc1 = [[T::zero(); LANES]; PAIR_CHAINS];
    let (g0_groups, g0_tail) = g0.as_chunks::<PAIR_CHAINS>();
    let (g1_groups, g1_tail) = g1.as_chunks::<PAIR_CHAINS>();
    let (f_groups, f_tail) = ft.as_chunks::<PAIR_CHAINS>();
    for ((a, b), fq) in g0_groups.iter().zip(g1_groups).zip(f_groups) {
        for c in 0..PAIR_CHAINS {
            for j in 0..LANES {
                acc0[c][j] = fma::<T, FMA>(a[c], fq[c][j], acc0[c][j]);
                acc1[c][j] = fma::<T, FMA>(b[c], fq[c][j], acc1[c][j]);
            }
        }
    }
    for (t, ((&a, &b), row)) in g0_tail.iter().zip(g1_tail).zip(f_tail).enumerate() {
        for j in 0..LANES {
            acc0[t][j] = fma::<T, FMA>(a, row[j], acc0[t][j]);
            acc1[t][j] = fma::<T, FMA>(b, row[j], acc1[t][j]);
        }
    }
    let coupling = g1[k];
    for j in 0..LANES {
        let old0 = ft[k][j];
        let dot0 = acc0[0][j] + acc0[1][j];
        let new0 = (old0 - (dot0 - at[k][j]) * inv0).max_of(T::zero());
        let d0 = new0 - old0;
        ft[k][j] = new0;
        let old1 = ft[k + 1][j];
        let dot1 = fma::<T, FMA>(coupling, d0, acc1[0][j] + acc1[1][j]);
        let new1 = (old1 - (dot1 - at[k + 1][j]) * inv1).max_of(T::zero());
        let d1 = new1 - old1;
        ft[k + 1][j] = new1;
        change[j] += d0 * d0 + d1 * d1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive HALS sweep on one row, entry by entry.
    fn naive_sweep(f: &mut [f64], a: &[f64], g: &[f64], r: usize) {
        for k in 0..r {
            let gkk = g[k * r + k];
            if gkk <= 0.0 {
                f[k] = f[k].max(0.0);
                continue;
            }
            let dot: f64 = (0..r).map(|l| f[l] * g[k * r + l]).sum();
            f[k] = (f[k] - (dot - a[k]) / gkk).max(0.0);
        }
    }

    #[test]
    fn an_undetermined_entry_is_kept_but_never_left_negative() {
        // Component 1 is dead in the other factor (G[1][1] = 0), and an extrapolated start
        // left F's entries for it negative: they stay as they are, projected.
        let (p, r) = (40, 3);
        let mut f: Vec<f32> = (0..p * r)
            .map(|i| if i % r == 1 { -0.76 } else { 0.5 })
            .collect();
        let a = vec![0.3f32; p * r];
        let g = [1.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.2, 0.0, 1.0];
        let mut scratch = vec![0.0; scratch_len(p, r)];
        update(&mut f, &a, &g, r, 3, &mut scratch, &mut Vec::new());
        assert!(f.iter().all(|&v| v >= 0.0), "{f:?}");
        assert!(f.iter().skip(1).step_by(r).all(|&v| v == 0.0));
    }

    #[test]
    fn blocked_sweep_equals_the_naive_sweep() {
        // 37 rows (two full blocks and a partial one), rank 7 (pairs and a single entry);
        // then with component 2 dead (a zero column in the other factor), which breaks the
        // pairs around it.
        let (p, r) = (37, 7);
        let val = |i: usize, s: usize| ((i * 7919 + s * 104729) % 1000) as f64 / 1000.0;
        for dead in [None, Some(2)] {
            let mut f: Vec<f64> = (0..p * r).map(|i| val(i, 1)).collect();
            let a: Vec<f64> = (0..p * r).map(|i| val(i, 2) * 3.0).collect();
            let mut b: Vec<f64> = (0..r * r).map(|i| val(i, 3)).collect();
            if let Some(d) = dead {
                (0..r).for_each(|k| b[k * r + d] = 0.0);
            }
            // G = B^T B + I (identity only on live components) is symmetric.
            let mut g = vec![0.0; r * r];
            for i in 0..r {
                for j in 0..r {
                    let identity = i == j && dead != Some(i);
                    g[i * r + j] = (0..r).map(|k| b[k * r + i] * b[k * r + j]).sum::<f64>()
                        + if identity { 1.0 } else { 0.0 };
                }
            }
            let mut expect = f.clone();
            for row in 0..p {
                naive_sweep(
                    &mut expect[row * r..(row + 1) * r],
                    &a[row * r..(row + 1) * r],
                    &g,
                    r,
                );
            }
            let mut scratch = vec![0.0; scratch_len(p, r)];
            let inner = update(&mut f, &a, &g, r, 1, &mut scratch, &mut Vec::new());
            for (x, y) in f.iter().zip(&expect) {
                assert!((x - y).abs() < 1e-12, "{dead:?}: {x} vs {y}");
            }
            // The returned <A, F> is that of the updated F.
            let direct: f64 = a.iter().zip(&f).map(|(p, q)| p * q).sum();
            assert!(
                (inner - direct).abs() < 1e-9 * direct.abs(),
                "{inner} vs {direct}"
            );
        }
    }
}
