//! The swimmer: D. Donoho and V. Stodden, "When does non-negative matrix factorization give a
//! correct decomposition into parts?", NIPS 2003.
//!
//! 32 x 32 binary images of a stick figure: a torso in every image, and four limbs (two arms,
//! two legs), each in one of four positions; all 4^4 = 256 combinations. The 16 limb positions
//! are disjoint pixel sets, so X has an exact nonnegative factorization at rank 17 whose basis
//! is the parts, and it is the one NMF should find; its linear rank is only 13 (the four
//! positions of each limb sum to the same image count), which is what makes it hard for
//! methods that start from the SVD. The torso, with coefficient 1 in every image, can be merged
//! into the four positions of any one limb at no cost, so only the limbs are required.
//!
//! Drawn here from our own geometry: limbs are one-pixel lines at four angles from the
//! shoulders and hips, a pixel belonging to a limb when its centre lies within half a pixel of
//! exactly one limb segment.

use ndarray::Array2;

use super::PartsSet;

/// Side of the images.
pub const SIZE: usize = 32;

/// Joints (x, y, outward direction: -1 left, +1 right) and the angles of the four positions,
/// in degrees from straight down, turning outward.
const LIMBS: [(&str, f64, f64, f64, [f64; 4]); 4] = [
    ("left-arm", 14.5, 10.5, -1.0, [45.0, 80.0, 115.0, 150.0]),
    ("right-arm", 17.5, 10.5, 1.0, [45.0, 80.0, 115.0, 150.0]),
    ("left-leg", 14.5, 22.5, -1.0, [15.0, 40.0, 65.0, 90.0]),
    ("right-leg", 17.5, 22.5, 1.0, [15.0, 40.0, 65.0, 90.0]),
];
/// Where a limb starts and ends, in pixels from its joint.
const LIMB_SPAN: (f64, f64) = (2.0, 9.5);
/// The torso: columns and rows (inclusive) of a filled rectangle.
const TORSO: ((usize, usize), (usize, usize)) = ((15, 16), (8, 22));

/// The 256 swimmer images: part 0 the torso, then arms and legs, four positions each.
pub fn swimmer() -> PartsSet {
    let m = SIZE * SIZE;
    let mut part_names = vec!["torso".to_string()];
    let mut segments = Vec::new();
    for (name, jx, jy, side, angles) in LIMBS {
        for (p, deg) in angles.iter().enumerate() {
            let (s, c) = deg.to_radians().sin_cos();
            let (dx, dy) = (side * s, c);
            let at = |t: f64| (jx + t * dx, jy + t * dy);
            segments.push((at(LIMB_SPAN.0), at(LIMB_SPAN.1)));
            part_names.push(format!("{name}-{}", p + 1));
        }
    }
    let mut parts = Array2::<f64>::zeros((m, 1 + segments.len()));
    let ((x0, x1), (y0, y1)) = TORSO;
    for y in y0..=y1 {
        for x in x0..=x1 {
            parts[[y * SIZE + x, 0]] = 1.0;
        }
    }
    for pixel in 0..m {
        if parts[[pixel, 0]] > 0.0 {
            continue;
        }
        let (x, y) = ((pixel % SIZE) as f64 + 0.5, (pixel / SIZE) as f64 + 0.5);
        let near: Vec<usize> = segments
            .iter()
            .enumerate()
            .filter(|(_, (a, b))| super::demo::segment_distance(x, y, *a, *b) <= 0.5)
            .map(|(k, _)| k)
            .collect();
        if let [k] = near[..] {
            parts[[pixel, 1 + k]] = 1.0;
        }
    }
    let n = 4usize.pow(4);
    let mut coefficients = Array2::<f64>::zeros((parts.ncols(), n));
    for j in 0..n {
        coefficients[[0, j]] = 1.0;
        for limb in 0..4 {
            let position = (j >> (2 * limb)) & 3;
            coefficients[[1 + 4 * limb + position, j]] = 1.0;
        }
    }
    let identifiable = (0..parts.ncols()).map(|k| k > 0).collect();
    PartsSet {
        name: "swimmer",
        height: SIZE,
        width: SIZE,
        part_names,
        parts,
        coefficients,
        identifiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_disjoint_binary_and_visible() {
        let set = swimmer();
        assert_eq!(set.parts.dim(), (1024, 17));
        for (k, part) in set.parts.columns().into_iter().enumerate() {
            let ink = part.iter().filter(|&&v| v == 1.0).count();
            assert!(ink >= 6, "{} has {ink} pixels", set.part_names[k]);
            assert!(part.iter().all(|&v| v == 0.0 || v == 1.0));
        }
        for row in set.parts.rows() {
            assert!(row.sum() <= 1.0, "a pixel in two parts");
        }
    }

    #[test]
    fn every_combination_once_and_x_is_binary() {
        let set = swimmer();
        let mut seen: Vec<Vec<u8>> = set
            .coefficients
            .columns()
            .into_iter()
            .map(|c| c.iter().map(|&v| v as u8).collect())
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert!(set.x().iter().all(|&v| v == 0.0 || v == 1.0));
    }
}
