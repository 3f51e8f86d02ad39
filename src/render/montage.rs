//! Tiled grayscale montages: basis images, and faces beside their reconstructions.

use image::{GrayImage, Luma};
use ndarray::{ArrayView1, ArrayView2};

use crate::Float;

/// Tiles are upscaled (nearest neighbour) until their longer side reaches this many pixels, so
/// that a 19 x 19 CBCL tile is legible.
const MIN_TILE_SIDE: usize = 64;
/// Separator colour: light gray, distinct from the black background of most parts.
const SEPARATOR: u8 = 200;

/// Geometry of a grid of equal tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Tiles per row.
    pub cols: usize,
    /// Rows of tiles.
    pub rows: usize,
    /// Integer upscaling factor of each image.
    pub scale: usize,
    /// Separator width in pixels.
    pub gap: usize,
}

impl Grid {
    /// A near-square grid for `count` tiles of `height` x `width` pixels.
    pub fn near_square(count: usize, height: usize, width: usize) -> Self {
        let cols = (count as f64).sqrt().ceil().max(1.0) as usize;
        let rows = count.div_ceil(cols).max(1);
        let side = height.max(width).max(1);
        Grid {
            cols,
            rows,
            scale: MIN_TILE_SIDE.div_ceil(side).max(1),
            gap: 2,
        }
    }
}

/// The columns of `w` (m x r, m = height * width) as tiles in a near-square grid, each tile
/// scaled to its own maximum (white = the component's largest weight).
pub fn basis_grid<T: Float>(w: &ArrayView2<T>, height: usize, width: usize) -> GrayImage {
    let grid = Grid::near_square(w.ncols(), height, width);
    let mut canvas = blank_canvas(&grid, height, width, 1);
    for (k, col) in w.columns().into_iter().enumerate() {
        let max = col.iter().fold(0.0f64, |acc, v| acc.max(v.to_f64()));
        let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
        let (x0, y0) = tile_origin(&grid, k, height, width, 1);
        draw_tile(&mut canvas, &col, height, width, grid.scale, x0, y0, scale);
    }
    canvas
}

/// `indices.len()` faces of X (columns) beside their reconstructions W h_j, pairs in a
/// near-square grid, both on X's own scale ([0, 1], clipped). Returns the image and the relative
/// error `||x_j - W h_j|| / ||x_j||` of each pair.
pub fn reconstruction_grid<T: Float>(
    x: &ArrayView2<T>,
    w: &ArrayView2<T>,
    h: &ArrayView2<T>,
    height: usize,
    width: usize,
    indices: &[usize],
) -> (GrayImage, Vec<f64>) {
    let grid = Grid::near_square(indices.len(), height, width);
    let mut canvas = blank_canvas(&grid, height, width, 2);
    let tile_w = width * grid.scale;
    let mut errors = Vec::with_capacity(indices.len());
    for (slot, &j) in indices.iter().enumerate() {
        let original = x.column(j);
        let rebuilt = w.dot(&h.column(j));
        let (mut diff, mut norm) = (0.0, 0.0);
        for (a, b) in original.iter().zip(&rebuilt) {
            let (a, b) = (a.to_f64(), b.to_f64());
            diff += (a - b) * (a - b);
            norm += a * a;
        }
        errors.push(if norm > 0.0 {
            (diff / norm).sqrt()
        } else {
            diff.sqrt()
        });
        let (x0, y0) = tile_origin(&grid, slot, height, width, 2);
        draw_tile(
            &mut canvas,
            &original,
            height,
            width,
            grid.scale,
            x0,
            y0,
            1.0,
        );
        let x1 = x0 + tile_w + 1;
        draw_tile(
            &mut canvas,
            &rebuilt.view(),
            height,
            width,
            grid.scale,
            x1,
            y0,
            1.0,
        );
    }
    (canvas, errors)
}

/// `count` indices spread evenly over `0..n` (all of them when `count >= n`).
pub fn sample_indices(n: usize, count: usize) -> Vec<usize> {
    match count.min(n) {
        0 => Vec::new(),
        1 => vec![0],
        k => (0..k)
            .map(|i| (i * (n - 1) + (k - 1) / 2) / (k - 1))
            .collect(),
    }
}

/// A canvas for `grid`, each cell `per_cell` images wide (1 px between the images of a cell).
fn blank_canvas(grid: &Grid, height: usize, width: usize, per_cell: usize) -> GrayImage {
    let cell_w = per_cell * width * grid.scale + (per_cell - 1);
    let cell_h = height * grid.scale;
    let total_w = grid.cols * cell_w + (grid.cols + 1) * grid.gap;
    let total_h = grid.rows * cell_h + (grid.rows + 1) * grid.gap;
    GrayImage::from_pixel(total_w as u32, total_h as u32, Luma([SEPARATOR]))
}

fn tile_origin(
    grid: &Grid,
    slot: usize,
    height: usize,
    width: usize,
    per_cell: usize,
) -> (usize, usize) {
    let cell_w = per_cell * width * grid.scale + (per_cell - 1);
    let cell_h = height * grid.scale;
    let (row, col) = (slot / grid.cols, slot % grid.cols);
    (
        grid.gap + col * (cell_w + grid.gap),
        grid.gap + row * (cell_h + grid.gap),
    )
}

/// Draws one image (row-major pixels) at (x0, y0), multiplied by `gain` and clipped to [0, 1].
#[allow(clippy::too_many_arguments)]
fn draw_tile<T: Float>(
    canvas: &mut GrayImage,
    pixels: &ArrayView1<T>,
    height: usize,
    width: usize,
    scale: usize,
    x0: usize,
    y0: usize,
    gain: f64,
) {
    for y in 0..height {
        for x in 0..width {
            let v = (pixels[y * width + x].to_f64() * gain).clamp(0.0, 1.0);
            let level = Luma([(v * 255.0).round() as u8]);
            for dy in 0..scale {
                for dx in 0..scale {
                    let (px, py) = (x0 + x * scale + dx, y0 + y * scale + dy);
                    canvas.put_pixel(px as u32, py as u32, level);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn samples_are_spread_from_first_to_last() {
        assert_eq!(sample_indices(100, 4), vec![0, 33, 66, 99]);
        assert_eq!(sample_indices(3, 16), vec![0, 1, 2]);
        assert_eq!(sample_indices(10, 1), vec![0]);
        assert!(sample_indices(0, 5).is_empty());
    }

    #[test]
    fn basis_grid_is_near_square_upscaled_and_tile_normalised() {
        // 5 components of 19 x 19: 3 x 2 grid, scale 4 (76 px tiles), 2 px gaps.
        let mut w = Array2::<f32>::zeros((19 * 19, 5));
        w[[0, 0]] = 0.25; // the only, hence brightest, pixel of tile 0
        let img = basis_grid(&w.view(), 19, 19);
        assert_eq!(img.dimensions(), (3 * 76 + 4 * 2, 2 * 76 + 3 * 2));
        assert_eq!(img.get_pixel(2, 2)[0], 255, "scaled to its own max");
        assert_eq!(img.get_pixel(2 + 4, 2)[0], 0, "background of tile 0");
        assert_eq!(img.get_pixel(0, 0)[0], SEPARATOR);
    }
}
