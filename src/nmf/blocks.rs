//! The column-block seam between the loop and wherever the images live.
//!
//! The H half-step is independent per image given `W^T W` (each column of H solves its own
//! problem), and the W half-step needs only two sums over images, `X H^T` and `H H^T`. So the
//! loop never needs all of X at once: it visits the images in blocks of columns, updates each
//! block's coefficients and adds the block's share to both sums. The same pass serves X held in
//! memory (one block: nothing is copied and nothing changes), X streamed block by block from a
//! decoded cache, and X split by columns over processes, whose sums are then added across
//! processes before the W half-step.

use std::ops::Range;

use ndarray::{ArrayView2, s};

use super::hals;

/// The images (columns of X) as a sequence of column blocks.
#[derive(Debug, Clone)]
pub(crate) enum Images<'a, T> {
    /// All of X in memory, `width` images per block (the last block may be narrower).
    InMemory {
        /// X, m x n.
        x: ArrayView2<'a, T>,
        /// Images per block; `n` for one block.
        width: usize,
    },
}

impl<'a, T> Images<'a, T> {
    /// X in memory, in blocks of `width` images (one block when `None`), rounded up to whole
    /// groups of the HALS kernel's rows: the kernel decides per group how many inner sweeps to
    /// make, so blocks of whole groups group the rows, and give the iterates, of one block.
    pub(crate) fn in_memory(x: ArrayView2<'a, T>, width: Option<usize>) -> Self {
        let n = x.ncols();
        let group = hals::ROW_GROUP;
        let width = width
            .map_or(n, |w| w.max(1).div_ceil(group) * group)
            .clamp(1, n.max(1));
        Images::InMemory { x, width }
    }

    /// Images per block (the last block may hold fewer).
    pub(crate) fn width(&self) -> usize {
        match self {
            Images::InMemory { width, .. } => *width,
        }
    }

    /// Number of images, n.
    pub(crate) fn count(&self) -> usize {
        match self {
            Images::InMemory { x, .. } => x.ncols(),
        }
    }

    /// Whether the images come as one block (then the half-steps work on H^T in place).
    pub(crate) fn is_one_block(&self) -> bool {
        self.width() >= self.count()
    }

    /// Calls `visit` with each block's column range and pixels (m x block), in column order.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(Range<usize>, ArrayView2<'_, T>)) {
        match self {
            Images::InMemory { x, width } => {
                let n = x.ncols();
                for start in (0..n).step_by(*width) {
                    let range = start..(start + width).min(n);
                    visit(range.clone(), x.slice(s![.., range]));
                }
            }
        }
    }
}
