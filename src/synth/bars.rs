//! Bars: P. Foldiak, "Forming sparse representations by local anti-Hebbian learning",
//! Biological Cybernetics 64, 1990; used for NMF by P. O. Hoyer, "Non-negative matrix
//! factorization with sparseness constraints", JMLR 5, 2004.
//!
//! `size` x `size` images, each of the `size` horizontal and `size` vertical one-pixel bars
//! present independently with probability `2 / size` (two bars per image on average). Bars add
//! (Foldiak's were OR-ed, which is not a product WH): each bar has intensity 0.4 and a crossing
//! 0.8, both exact in 8-bit images. Images with no bar are drawn again, so that every image
//! holds some ink.

use ndarray::Array2;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::PartsSet;

/// Intensity of one bar: 102/255, so that one bar and a crossing (204/255) are exact in 8 bits.
const INTENSITY: f64 = 0.4;

/// `count` images of `size` x `size` bars from `seed`: parts 0..size the horizontal bars (top
/// to bottom), then the vertical ones (left to right).
///
/// # Panics
/// `size` below 2.
pub fn bars(size: usize, count: usize, seed: u64) -> PartsSet {
    assert!(size >= 2, "bars need at least 2 x 2 pixels");
    let p = 2 * size;
    let mut parts = Array2::<f64>::zeros((size * size, p));
    for i in 0..size {
        for t in 0..size {
            parts[[i * size + t, i]] = 1.0;
            parts[[t * size + i, size + i]] = 1.0;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let presence = 2.0 / size as f64;
    let mut coefficients = Array2::<f64>::zeros((p, count));
    for mut column in coefficients.columns_mut() {
        while column.iter().all(|&c| c == 0.0) {
            column.mapv_inplace(|_| if uniform() < presence { INTENSITY } else { 0.0 });
        }
    }
    let part_names = (0..size)
        .map(|i| format!("row-{i}"))
        .chain((0..size).map(|i| format!("column-{i}")))
        .collect();
    PartsSet {
        name: "bars",
        height: size,
        width: size,
        part_names,
        parts,
        coefficients,
        identifiable: vec![true; p],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bar_appears_and_no_image_is_blank() {
        let set = bars(12, 400, 3);
        assert_eq!(set.x().dim(), (144, 400));
        for (k, row) in set.coefficients.rows().into_iter().enumerate() {
            let count = row.iter().filter(|&&c| c > 0.0).count();
            assert!(count > 20 && count < 120, "bar {k} in {count} images");
        }
        assert!(set.x().columns().into_iter().all(|c| c.sum() > 0.0));
    }

    #[test]
    fn images_are_exact_in_eight_bits() {
        let set = bars(8, 50, 1);
        for (img, col) in set.images().iter().zip(set.x().columns()) {
            for (&byte, &v) in img.as_raw().iter().zip(col) {
                assert!((f64::from(byte) / 255.0 - v).abs() < 1e-12);
            }
        }
    }
}
