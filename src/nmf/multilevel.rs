//! Multilevel start: fit a smaller problem first, then start the full fit from its parts.
//!
//! N. Gillis and F. Glineur, "A multilevel approach for nonnegative matrix factorization",
//! J. Comput. Appl. Math. 236 (2012) 1708-1723. Their nested iteration: restrict X by averaging
//! neighbouring pixels, solve the coarse problem, prolongate W, keep H (the coarse problem has
//! the same images), and iterate on the fine level. A coarse iteration costs a quarter of a fine
//! one, and the coarse parts are the fine parts blurred, so most of the way is made cheaply.
//!
//! Images too small to halve (CBCL's 19 x 19 at rank 49) can still be coarsened the other way,
//! in the images rather than the pixels: where there are many faces per part, the parts of every
//! k-th face are nearly those of all of them (the same nested iteration with columns in place of
//! rows). The sample is fitted, W kept, and H for every image fitted to that W
//! ([`super::init::coefficients_for`]) before the full fit starts.

use ndarray::{Array2, ArrayView2, Zip};

use crate::Float;

/// A level is worth adding only if it keeps at least this many pixels per part: with fewer, the
/// coarse problem is so underdetermined that its parts fit the coarse images far better than any
/// parts can fit the fine ones (CBCL's 10 x 10 at rank 49 reaches 0.050 against 0.085), and the
/// fine fit starts no closer than from its own initialisation.
pub(crate) const MIN_PIXELS_PER_PART: usize = 16;

/// A coarse level stops when its best relative error fell by less than this fraction over the
/// last [`super::TOL_WINDOW`] iterations (0.4% per iteration), the best of the values tried on
/// the face sets (README): tighter, the coarse level keeps polishing detail it cannot hold;
/// looser, the fine level must make up more at four times the cost per iteration.
pub(crate) const COARSE_TOL: f64 = 0.04;

/// A sample of the images is worth fitting first only if it keeps at least this many images per
/// part: with fewer, the sample's parts fit it far better than they fit the other images
/// (CBCL at rank 49 from every 8th face, 6 per part: the full fit started at 0.093, against
/// 0.088 from every 4th).
pub(crate) const MIN_IMAGES_PER_PART: usize = 12;

/// The sample holds every k-th image, k at most this. A sample iteration costs less than 1/k of
/// a full one only in its products: the W half-step's sweeps cost the same at any k.
pub(crate) const MAX_SAMPLE_STEP: usize = 4;

/// The k of the sample of every k-th image to fit first, for `images` images at `rank`, if a
/// sample is worth it ([`MIN_IMAGES_PER_PART`], [`MAX_SAMPLE_STEP`]).
pub(crate) fn sample_step(images: usize, rank: usize) -> Option<usize> {
    let step = (images / (MIN_IMAGES_PER_PART * rank.max(1))).min(MAX_SAMPLE_STEP);
    (step >= 2).then_some(step)
}

/// Every `step`-th column of X, from the first: the sorted folder's images evenly spread.
/// Copied row by row into one new array (X/k more memory, and nothing else while it is made).
pub(crate) fn sample<T: Float>(x: &ArrayView2<T>, step: usize) -> Array2<T> {
    let picked = x.slice(ndarray::s![.., ..;step]);
    let mut out = first_touched(picked.dim());
    Zip::from(&mut out)
        .and(&picked)
        .par_for_each(|v, &s| *v = s);
    out
}

/// A new zeroed array whose pages this thread has touched, in order, before parallel code
/// fills it. New pages first touched by two threads at once cost far more here than touched by
/// one: Olivetti's 32 x 32 images (1.6 MB) took 3.8-5.9 ms to build in a fresh process, 0.8-1.5
/// ms after one thread had zeroed them (a fresh 1.6 MB zeroed by one thread: 0.6 ms). Time
/// to E in fresh processes (medians of seven, alternating): Olivetti 44.0 -> 40.4 ms, ORL
/// 73.1 -> 66.0 ms. The likely cause is the lock on the page table the threads fault into
/// (the kernel's paravirtual spinlock showed in profiles of fresh runs); not shown.
fn first_touched<T: Float>(shape: (usize, usize)) -> Array2<T> {
    let mut a = Array2::<T>::zeros(shape);
    // Opaque, so that the stores are not dropped as writing what the allocation holds.
    a.fill(std::hint::black_box(T::zero()));
    a
}

/// Height and width of the images, whose pixels are the rows of X (index = y * width + x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    /// Rows of pixels.
    pub height: usize,
    /// Pixels per row.
    pub width: usize,
}

impl ImageShape {
    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// The half-resolution shape (odd sizes round up: the last coarse pixel averages one row
    /// or column).
    pub fn halved(&self) -> ImageShape {
        ImageShape {
            height: self.height.div_ceil(2),
            width: self.width.div_ceil(2),
        }
    }

    /// The coarse level to start from at `rank`, if one is worth it.
    pub(crate) fn coarse_level(&self, rank: usize) -> Option<ImageShape> {
        let coarse = self.halved();
        (self.height >= 4 && self.width >= 4 && coarse.pixels() >= MIN_PIXELS_PER_PART * rank)
            .then_some(coarse)
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// X at half resolution: each coarse pixel row is the mean of the (up to four) fine pixel rows it
/// covers, so intensities keep their scale and H fits both levels.
pub(crate) fn restrict<T: Float>(x: &ArrayView2<T>, fine: ImageShape) -> Array2<T> {
    let coarse = fine.halved();
    let n = x.ncols();
    let mut xc = first_touched((coarse.pixels(), n));
    Zip::indexed(xc.rows_mut()).par_for_each(|p, mut row| {
        let (cy, cx) = (p / coarse.width, p % coarse.width);
        let ys = 2 * cy..(2 * cy + 2).min(fine.height);
        let xs = 2 * cx..(2 * cx + 2).min(fine.width);
        let count = (ys.len() * xs.len()) as f64;
        for y in ys {
            for xx in xs.clone() {
                row.zip_mut_with(&x.row(y * fine.width + xx), |a, &b| *a += b);
            }
        }
        let scale = T::from_f64(1.0 / count);
        row.mapv_inplace(|v| v * scale);
    });
    xc
}

/// Bilinear interpolation of each column of `wc` (a coarse image) to the fine shape, pixel
/// centres aligned (fine pixel i sits at coarse coordinate (i + 0.5) / 2 - 0.5, clamped at the
/// borders). Nonnegative in, nonnegative out.
pub(crate) fn prolong<T: Float>(wc: &Array2<T>, coarse: ImageShape, fine: ImageShape) -> Array2<T> {
    let r = wc.ncols();
    let mut w = first_touched((fine.pixels(), r));
    let taps = |i: usize, coarse_len: usize| {
        let c = ((i as f64 + 0.5) / 2.0 - 0.5).clamp(0.0, (coarse_len - 1) as f64);
        let lo = c.floor() as usize;
        let hi = (lo + 1).min(coarse_len - 1);
        (lo, hi, c - lo as f64)
    };
    Zip::indexed(w.rows_mut()).par_for_each(|p, mut row| {
        let (y, x) = (p / fine.width, p % fine.width);
        let (y0, y1, ty) = taps(y, coarse.height);
        let (x0, x1, tx) = taps(x, coarse.width);
        for (cy, wy) in [(y0, 1.0 - ty), (y1, ty)] {
            for (cx, wx) in [(x0, 1.0 - tx), (x1, tx)] {
                let weight = wy * wx;
                if weight > 0.0 {
                    let weight = T::from_f64(weight);
                    row.scaled_add(weight, &wc.row(cy * coarse.width + cx));
                }
            }
        }
    });
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn shape(height: usize, width: usize) -> ImageShape {
        ImageShape { height, width }
    }

    #[test]
    fn restriction_averages_the_pixels_each_coarse_pixel_covers() {
        // One 3 x 5 image (odd both ways), and twice it as a second column.
        let fine = shape(3, 5);
        let image: Vec<f64> = (0..15).map(|v| v as f64).collect();
        let x = Array2::from_shape_fn((15, 2), |(p, j)| image[p] * (j + 1) as f64);
        let xc = restrict(&x.view(), fine);
        assert_eq!(fine.halved(), shape(2, 3));
        // Rows 0-1 then row 2 alone; columns 0-1, 2-3, then 4 alone.
        let expected = [
            (0.0 + 1.0 + 5.0 + 6.0) / 4.0,
            (2.0 + 3.0 + 7.0 + 8.0) / 4.0,
            (4.0 + 9.0) / 2.0,
            (10.0 + 11.0) / 2.0,
            (12.0 + 13.0) / 2.0,
            14.0,
        ];
        for (p, e) in expected.iter().enumerate() {
            assert!((xc[[p, 0]] - e).abs() < 1e-12, "pixel {p}: {}", xc[[p, 0]]);
            assert!((xc[[p, 1]] - 2.0 * e).abs() < 1e-12);
        }
    }

    #[test]
    fn prolongation_keeps_constants_and_interpolates_ramps_between_centres() {
        let (coarse, fine) = (shape(3, 4), shape(6, 8));
        let constant = Array2::from_elem((12, 1), 0.7_f64);
        assert!(
            prolong(&constant, coarse, fine)
                .iter()
                .all(|&v| (v - 0.7).abs() < 1e-12)
        );

        // A ramp along x, 10 * cx: fine pixel x sits at coarse coordinate (x + 0.5) / 2 - 0.5,
        // clamped to [0, 3] at the borders.
        let ramp = Array2::from_shape_fn((12, 1), |(p, _)| 10.0 * (p % 4) as f64);
        let w = prolong(&ramp, coarse, fine);
        for y in 0..6 {
            for x in 0..8 {
                let c = ((x as f64 + 0.5) / 2.0 - 0.5).clamp(0.0, 3.0);
                assert!((w[[y * 8 + x, 0]] - 10.0 * c).abs() < 1e-12, "({y}, {x})");
            }
        }
    }

    #[test]
    fn prolongation_of_nonnegative_parts_is_nonnegative_and_odd_sizes_fit() {
        let (fine, coarse) = (shape(19, 19), shape(10, 10));
        assert_eq!(fine.halved(), coarse);
        let wc = Array2::from_shape_fn((100, 3), |(p, k)| ((p * 7 + k * 13) % 5) as f64);
        let w = prolong(&wc, coarse, fine);
        assert_eq!(w.dim(), (361, 3));
        assert!(w.iter().all(|&v| v >= 0.0));
        // A one-hot coarse part spreads to the fine pixels around its centre, nowhere else.
        let mut hot = Array2::zeros((100, 1));
        hot[[5 * 10 + 5, 0]] = 1.0;
        let w = prolong(&hot, coarse, fine);
        let lit: Vec<usize> = (0..361).filter(|&p| w[[p, 0]] > 0.0).collect();
        assert!(
            lit.iter()
                .all(|p| (9..=12).contains(&(p / 19)) && (9..=12).contains(&(p % 19)))
        );
        assert_eq!(lit.len(), 16);
    }

    #[test]
    fn a_sample_keeps_twelve_images_per_part_and_every_kth_image() {
        // CBCL at rank 49: 2429 / 588 = 4.1, so every 4th face (608 of them).
        assert_eq!(sample_step(2429, 49), Some(4));
        // ORL and Olivetti (400 faces): too few.
        assert_eq!(sample_step(400, 49), None);
        assert_eq!(sample_step(1175, 49), None);
        assert_eq!(sample_step(1176, 49), Some(2));
        // Never more than every 4th, however many images.
        assert_eq!(sample_step(200_000, 49), Some(4));
        assert_eq!(sample_step(10, 0), None);
        let x = Array2::from_shape_fn((3, 10), |(p, j)| (10 * p + j) as f64);
        let s = sample(&x.view(), 4);
        assert_eq!(s.dim(), (3, 3));
        for (c, j) in [0, 4, 8].into_iter().enumerate() {
            assert_eq!(s.column(c), x.column(j));
        }
    }

    #[test]
    fn a_coarse_level_needs_sixteen_pixels_per_part() {
        // ORL at rank 49: 56 x 46 = 2576 pixels >= 784, then 28 x 23 = 644 < 784.
        assert_eq!(shape(112, 92).coarse_level(49), Some(shape(56, 46)));
        assert_eq!(shape(56, 46).coarse_level(49), None);
        assert_eq!(shape(56, 46).coarse_level(40), Some(shape(28, 23)));
        // CBCL: 10 x 10 at rank 49 is far too few; Olivetti 32 x 32 is enough.
        assert_eq!(shape(19, 19).coarse_level(49), None);
        assert_eq!(shape(64, 64).coarse_level(49), Some(shape(32, 32)));
        // Too thin to halve.
        assert_eq!(shape(3, 1000).coarse_level(1), None);
    }
}
