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

use std::cell::RefCell;

use ndarray::{Array1, Array2, ArrayBase, ArrayView2, ArrayViewMut2, Data, DataMut, Ix2, s};

use super::hals;
use super::linalg::{add_squares, column_norms_sq, residual_sq};
use super::spill::{Release, by_pieces};
use super::split::Share;
use crate::Float;

/// A source of the images (the columns of X) block by block, for an X that is not held in
/// memory as a whole: a decoded cache on disk, say
/// ([`CachedImages`](crate::loader::CachedImages)). A trait rather than a closed set: the
/// engine needs only these three answers, and whoever holds the images gives them.
pub trait ColumnBlocks<T>: Sync + std::fmt::Debug {
    /// Pixels per image, m.
    fn pixels(&self) -> usize;
    /// Number of images, n.
    fn count(&self) -> usize;
    /// Images `first..first + out.nrows()` into the rows of `out` (images x m, standard
    /// layout): the transpose of those columns of X. A fit reads every block every iteration
    /// into one buffer.
    fn read(&self, first: usize, out: ArrayViewMut2<'_, T>);

    /// A folder on the disk the images are read from, where a fit may keep what grows with
    /// the number of images (the extrapolation's copies of H^T); `None`: in memory.
    fn scratch(&self) -> Option<&std::path::Path> {
        None
    }

    /// Images `range` as rows, in a new array.
    fn rows(&self, range: Range<usize>) -> Array2<T>
    where
        T: Float,
    {
        let mut out = Array2::zeros((range.len(), self.pixels()));
        self.read(range.start, out.view_mut());
        out
    }
}

/// The images (columns of X) as a sequence of column blocks: this process's images, when they
/// are split over processes ([`Share`]).
#[derive(Debug, Clone)]
pub(crate) struct Images<'a, T> {
    columns: Columns<'a, T>,
    /// This process's share of the images, when they are split over processes.
    share: Option<Share<'a>>,
}

/// Where the columns are.
#[derive(Debug, Clone)]
enum Columns<'a, T> {
    /// All of X in memory, `width` images per block (the last block may be narrower).
    InMemory {
        /// X, m x n.
        x: ArrayView2<'a, T>,
        /// Images per block; `n` for one block.
        width: usize,
    },
    /// X read block by block from a source, `width` images at a time.
    Streamed {
        /// Where the blocks come from.
        source: &'a dyn ColumnBlocks<T>,
        /// Images per block.
        width: usize,
        /// Where each block is read to (width x m), allocated once per fit.
        buffer: &'a RefCell<Array2<T>>,
        /// Drops a block's rows of a mapped H^T from the process once the block is visited.
        release: Option<Release>,
    },
}

/// Images per block rounded up to whole groups of the HALS kernel's rows: the kernel decides
/// per group how many inner sweeps to make, so blocks of whole groups group the rows, and give
/// the iterates, of one block.
fn whole_groups(width: Option<usize>, n: usize) -> usize {
    let group = hals::ROW_GROUP;
    width
        .map_or(n, |w| w.max(1).div_ceil(group) * group)
        .clamp(1, n.max(1))
}

impl<'a, T: Float> Images<'a, T> {
    /// X in memory, in blocks of `width` images (one block when `None`), rounded up to whole
    /// groups of the HALS kernel's rows.
    pub(crate) fn in_memory(x: ArrayView2<'a, T>, width: Option<usize>) -> Self {
        let width = whole_groups(width, x.ncols());
        Images {
            columns: Columns::InMemory { x, width },
            share: None,
        }
    }

    /// X from `source`, `width` images at a time (rounded as [`Images::in_memory`] does), read
    /// into `buffer` (resized on first use).
    pub(crate) fn streamed(
        source: &'a dyn ColumnBlocks<T>,
        width: usize,
        buffer: &'a RefCell<Array2<T>>,
    ) -> Self {
        let width = whole_groups(Some(width), source.count());
        Images {
            columns: Columns::Streamed {
                source,
                width,
                buffer,
                release: None,
            },
            share: None,
        }
    }

    /// After each block is visited, its rows of the mapped H^T `release` belongs to leave the
    /// process's memory (`spill.rs`): whatever a visit does with them, a pass over the images
    /// holds one block's rows at a time.
    pub(crate) fn releasing(mut self, release: Option<Release>) -> Self {
        if let Columns::Streamed { release: r, .. } = &mut self.columns {
            *r = release;
        }
        self
    }

    /// X itself when it is in memory.
    pub(crate) fn in_memory_x(&self) -> Option<ArrayView2<'a, T>> {
        match &self.columns {
            Columns::InMemory { x, .. } => Some(*x),
            Columns::Streamed { .. } => None,
        }
    }

    /// Images per block (the last block may hold fewer).
    pub(crate) fn width(&self) -> usize {
        match &self.columns {
            Columns::InMemory { width, .. } | Columns::Streamed { width, .. } => *width,
        }
    }

    /// Number of images, n.
    pub(crate) fn count(&self) -> usize {
        match &self.columns {
            Columns::InMemory { x, .. } => x.ncols(),
            Columns::Streamed { source, .. } => source.count(),
        }
    }

    /// Pixels per image, m.
    pub(crate) fn pixels(&self) -> usize {
        match &self.columns {
            Columns::InMemory { x, .. } => x.nrows(),
            Columns::Streamed { source, .. } => source.pixels(),
        }
    }

    /// Image `j`, X's column j.
    pub(crate) fn column(&self, j: usize) -> Array1<T> {
        match &self.columns {
            Columns::InMemory { x, .. } => x.column(j).to_owned(),
            Columns::Streamed { source, .. } => source.rows(j..j + 1).row(0).to_owned(),
        }
    }

    /// `||X - W H||_F^2` for W (m x r) and H^T (n x r), block by block (over all processes).
    pub(crate) fn residual_sq<S: Data<Elem = T>>(
        &self,
        w: &Array2<T>,
        ht: &ArrayBase<S, Ix2>,
    ) -> f64 {
        let mut total = 0.0;
        if let Some(x) = self.in_memory_x() {
            total = residual_sq(&x, w, ht);
        } else {
            self.for_each(|cols, xb| {
                let ht_b = ht.slice(s![cols, ..]).to_owned();
                total += residual_sq(&xb, w, &ht_b);
            });
        }
        self.sum_scalar(total)
    }

    /// The folder the images' source gives for what grows with their number
    /// ([`ColumnBlocks::scratch`]), when streamed.
    pub(crate) fn scratch(&self) -> Option<&std::path::Path> {
        match &self.columns {
            Columns::Streamed { source, .. } => source.scratch(),
            Columns::InMemory { .. } => None,
        }
    }

    /// The handle that drops rows of a mapped H^T ([`Images::releasing`]).
    pub(crate) fn release(&self) -> Option<&Release> {
        match &self.columns {
            Columns::Streamed { release, .. } => release.as_ref(),
            Columns::InMemory { .. } => None,
        }
    }

    /// Visits H^T (this process's rows) in pieces of rows, in order: whole when it is not
    /// mapped; a block's width at a time when it is, each piece brought in before and dropped
    /// after, so that a pass over all of it holds one piece.
    pub(crate) fn h_pieces_mut<S: DataMut<Elem = T>>(
        &self,
        ht: &mut ArrayBase<S, Ix2>,
        mut visit: impl FnMut(Range<usize>, ArrayViewMut2<'_, T>),
    ) {
        let n = ht.nrows();
        let Some(release) = self.release() else {
            visit(0..n, ht.view_mut());
            return;
        };
        by_pieces(n, self.width(), Some(release), true, |rows| {
            visit(rows.clone(), ht.slice_mut(s![rows, ..]));
        });
    }

    /// The squared norms of the columns of H^T (n x r, this process's rows) as
    /// [`column_norms_sq`] finds them, a block of rows at a time: rows of a mapped H^T leave
    /// memory as they are summed ([`Images::releasing`]).
    pub(crate) fn h_column_norms_sq(&self, ht: &ArrayView2<'_, T>) -> Vec<f64> {
        let release = match &self.columns {
            Columns::Streamed {
                release: Some(release),
                ..
            } => release,
            _ => return column_norms_sq(ht),
        };
        let mut sums = vec![0.0f64; ht.ncols()];
        by_pieces(ht.nrows(), self.width(), Some(release), false, |rows| {
            add_squares(&mut sums, &ht.slice(s![rows, ..]));
        });
        sums
    }

    /// These images split over processes, this process holding `share`'s part.
    pub(crate) fn with_share(self, share: Option<Share<'a>>) -> Self {
        Images { share, ..self }
    }

    /// The process group, when the images are split over several.
    pub(crate) fn share(&self) -> Option<&Share<'a>> {
        self.share.as_ref()
    }

    /// Number of images over all processes (n of the whole X).
    pub(crate) fn total(&self) -> usize {
        self.share.map_or_else(|| self.count(), |s| s.total)
    }

    /// The column of the whole X that this process's first image is.
    pub(crate) fn first(&self) -> usize {
        self.share.map_or(0, |s| s.first)
    }

    /// X whole, when it is in memory in this process.
    pub(crate) fn whole_x(&self) -> Option<ArrayView2<'a, T>> {
        self.in_memory_x().filter(|_| self.share.is_none())
    }

    /// Replaces `values` with their sum over the processes (nothing to do in one).
    pub(crate) fn sum(&self, values: &mut [f64]) {
        if let Some(share) = &self.share {
            share.group.sum(values);
        }
    }

    /// `value` summed over the processes.
    pub(crate) fn sum_scalar(&self, value: f64) -> f64 {
        let mut v = [value];
        self.sum(&mut v);
        v[0]
    }

    /// Replaces each array's entries with their sum over the processes, in one exchange.
    pub(crate) fn sum_arrays(&self, arrays: &mut [&mut Array2<T>]) {
        if self.share.is_none() {
            return;
        }
        let mut values: Vec<f64> = arrays
            .iter()
            .flat_map(|a| a.iter().map(|v| v.to_f64()))
            .collect();
        self.sum(&mut values);
        let mut values = values.into_iter();
        for a in arrays.iter_mut() {
            a.iter_mut()
                .zip(&mut values)
                .for_each(|(v, s)| *v = T::from_f64(s));
        }
    }

    /// Whether the images come as one block (then the half-steps work on H^T in place).
    pub(crate) fn is_one_block(&self) -> bool {
        self.width() >= self.count()
    }

    /// Calls `visit` with each block's column range and pixels (m x block), in column order.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(Range<usize>, ArrayView2<'_, T>)) {
        match &self.columns {
            Columns::InMemory { x, width } => {
                let n = x.ncols();
                for start in (0..n).step_by(*width) {
                    let range = start..(start + width).min(n);
                    visit(range.clone(), x.slice(s![.., range]));
                }
            }
            Columns::Streamed {
                source,
                width,
                buffer,
                release,
            } => {
                let n = source.count();
                let mut buffer = buffer.borrow_mut();
                if buffer.dim() != (*width, source.pixels()) {
                    *buffer = Array2::zeros((*width, source.pixels()));
                }
                for start in (0..n).step_by(*width) {
                    let range = start..(start + width).min(n);
                    let mut rows = buffer.slice_mut(s![..range.len(), ..]);
                    source.read(start, rows.view_mut());
                    if let Some(release) = release {
                        release.fetch(range.clone(), true);
                    }
                    visit(range.clone(), rows.view().reversed_axes());
                    if let Some(release) = release {
                        release.rows(range);
                    }
                }
            }
        }
    }
}
