//! H^T and its copies kept on disk, for fits whose images do not fit in memory.
//!
//! A streamed fit reads its images from a decoded cache on disk anyway, so what grows with
//! the number of images goes to files beside it: at 200,000 faces and rank 49 in f32, H^T is
//! 39 MB, and extrapolation keeps three copies of it (the last accepted iterate, the one just
//! updated, and the best; `extrapolate.rs`).
//! - The copies ([`RowsFile`]) are read and written by rows, a block at a time, through the
//!   page cache, and never mapped, so that none of their pages counts in the process's memory.
//! - H^T itself ([`MappedRows`]) is mapped, since every step works on it in place; each pass
//!   over the images drops a block's pages from the process once it is done with them
//!   ([`Release`]).
//!
//! The bytes are the values' own: the iterates are bit for bit those of arrays in memory.
//! Each file is created in the cache's folder and removed at once (on Unix the open handle
//! keeps it until the fit drops it), so nothing is left behind by a crash or a kill.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::Float;

/// An n x r matrix of `T` (rows: images) in a file of its own, read and written by rows.
#[derive(Debug)]
pub(crate) struct RowsFile<T> {
    file: File,
    /// The file's path, for messages (already removed on Unix).
    path: PathBuf,
    rows: usize,
    cols: usize,
    _values: std::marker::PhantomData<T>,
}

/// Rows of H^T per piece of a pass over all of it ([`HtStore::pieces_mut`]).
pub(crate) const PIECE_ROWS: usize = 16_384;

/// Visits rows `0..n` a piece of `piece` rows at a time, in order; with `release` (the rows of
/// a mapped H^T), each piece's pages are fetched before (to be written when `write`) and
/// dropped after, so that a pass over all of them holds one piece. Stops at the first error.
pub(crate) fn try_by_pieces<E>(
    n: usize,
    piece: usize,
    release: Option<&Release>,
    write: bool,
    mut visit: impl FnMut(std::ops::Range<usize>) -> Result<(), E>,
) -> Result<(), E> {
    for start in (0..n).step_by(piece.max(1)) {
        let rows = start..(start + piece).min(n);
        if let Some(release) = release {
            release.fetch(rows.clone(), write);
        }
        visit(rows.clone())?;
        if let Some(release) = release {
            release.rows(rows);
        }
    }
    Ok(())
}

/// [`try_by_pieces`] of a visit that cannot fail.
pub(crate) fn by_pieces(
    n: usize,
    piece: usize,
    release: Option<&Release>,
    write: bool,
    mut visit: impl FnMut(std::ops::Range<usize>),
) {
    let done = try_by_pieces(n, piece, release, write, |rows| {
        visit(rows);
        Ok::<(), std::convert::Infallible>(())
    });
    match done {
        Ok(()) => {}
        Err(never) => match never {},
    }
}

/// Bytes per read or write of one thread.
const PIECE: usize = 1 << 20;

/// Files made by this process, for distinct names.
static MADE: AtomicUsize = AtomicUsize::new(0);

impl<T: Float> RowsFile<T> {
    /// A new zeroed `rows x cols` matrix in a file in `dir`.
    pub(crate) fn create(dir: &Path, rows: usize, cols: usize) -> io::Result<Self> {
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(
            ".facenmf-coefficients-{}-{made}.tmp",
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Unix keeps an open file whose name is gone: nothing is left if the process dies.
        #[cfg(unix)]
        std::fs::remove_file(&path)?;
        let this = RowsFile {
            file,
            path,
            rows,
            cols,
            _values: std::marker::PhantomData,
        };
        // Sparse until written: a full disk shows on the writes.
        this.file.set_len((rows * cols * size_of::<T>()) as u64)?;
        Ok(this)
    }

    /// A file holding `a`, written a piece of rows at a time; with `release` (`a` is a mapped
    /// H^T), each piece's pages leave the process after it is written.
    pub(crate) fn holding(
        dir: &Path,
        a: &ArrayView2<'_, T>,
        release: Option<&Release>,
    ) -> io::Result<Self> {
        let mut this = RowsFile::create(dir, a.nrows(), a.ncols())?;
        try_by_pieces(a.nrows(), PIECE_ROWS, release, false, |rows| {
            let piece = a.slice(ndarray::s![rows.clone(), ..]);
            this.write(rows.start, piece.as_standard_layout().view())
        })?;
        Ok(this)
    }

    /// Rows `first..first + out.nrows()` into `out` (standard layout).
    pub(crate) fn read(&self, first: usize, mut out: ArrayViewMut2<'_, T>) -> io::Result<()> {
        debug_assert!(out.ncols() == self.cols && first + out.nrows() <= self.rows);
        let values = out
            .as_slice_mut()
            .expect("rows are read into a standard layout");
        let start = self.offset(first);
        // In pieces on every thread: copying through the page cache is the cost here. From one
        // thread, a streamed iteration over 50,000 faces took 2-12% longer than with the
        // copies in memory; in pieces, 2-3% (three alternating rounds each).
        bytes_mut(values)
            .par_chunks_mut(PIECE)
            .enumerate()
            .try_for_each(|(i, piece)| read_at(&self.file, piece, start + (i * PIECE) as u64))
    }

    /// `rows` (standard layout) into rows `first..first + rows.nrows()`.
    pub(crate) fn write(&mut self, first: usize, rows: ArrayView2<'_, T>) -> io::Result<()> {
        debug_assert!(rows.ncols() == self.cols && first + rows.nrows() <= self.rows);
        let values = rows
            .as_slice()
            .expect("rows are written from a standard layout");
        let start = self.offset(first);
        bytes(values)
            .par_chunks(PIECE)
            .enumerate()
            .try_for_each(|(i, piece)| write_at(&self.file, piece, start + (i * PIECE) as u64))
    }

    /// The whole matrix, in memory.
    pub(crate) fn to_array(&self) -> io::Result<Array2<T>> {
        let mut out = Array2::zeros((self.rows, self.cols));
        self.read(0, out.view_mut())?;
        Ok(out)
    }

    /// Where the file was made, for a message.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn offset(&self, row: usize) -> u64 {
        (row * self.cols * size_of::<T>()) as u64
    }
}

impl<T: Float> RowsFile<T> {
    /// The file mapped into memory, to be used in place (see [`MappedRows`]).
    pub(crate) fn into_mapped(self) -> io::Result<MappedRows<T>> {
        reserve(&self.file, (self.rows * self.cols * size_of::<T>()) as u64)?;
        MappedRows::map(self)
    }
}

/// Rows kept beside H^T (n x r: a copy of it, or the start's X^T W): in a [`RowsFile`] where
/// a folder could take them, else in memory; read and written by rows, the same bits either
/// way.
#[derive(Debug)]
pub(crate) enum Rows<T> {
    /// In memory.
    Memory(Array2<T>),
    /// In a file of their own.
    File(RowsFile<T>),
}

impl<T: Float> Rows<T> {
    /// `rows x cols` zeros, in a file in `dir` when given and it can take one.
    pub(crate) fn zeros(dir: Option<&Path>, rows: usize, cols: usize) -> Self {
        dir.and_then(|dir| RowsFile::create(dir, rows, cols).ok())
            .map_or_else(|| Rows::Memory(Array2::zeros((rows, cols))), Rows::File)
    }

    /// Into `out`, the rows from `first` on.
    pub(crate) fn read(&self, first: usize, mut out: ArrayViewMut2<'_, T>) -> io::Result<()> {
        match self {
            Rows::Memory(a) => {
                let len = out.nrows();
                out.assign(&a.slice(ndarray::s![first..first + len, ..]));
                Ok(())
            }
            Rows::File(f) => f.read(first, out),
        }
    }

    /// `rows` in, from row `first` on.
    pub(crate) fn write(&mut self, first: usize, rows: ArrayView2<'_, T>) -> io::Result<()> {
        match self {
            Rows::Memory(a) => {
                a.slice_mut(ndarray::s![first..first + rows.nrows(), ..])
                    .assign(&rows);
                Ok(())
            }
            Rows::File(f) => f.write(first, rows),
        }
    }
}

/// H^T itself (n x r) in a file of its own, mapped into memory: the loop of a streamed fit
/// works on it in place as on an array, and after each block of rows it is done with, the
/// block's pages are dropped from the process ([`Release`]); they stay in the page cache (the
/// map is shared, so nothing written is lost) and come back on the next access. The file's
/// blocks are reserved when it is made, so that a full disk is an error then, not a fault in
/// the middle of the fit.
#[derive(Debug)]
pub(crate) struct MappedRows<T> {
    /// Shared with the [`Release`] handles, so that the map outlives every one of them.
    map: Arc<memmap2::MmapMut>,
    /// The map's first value: all access goes through it, never through `map`.
    values: *mut T,
    file: RowsFile<T>,
}

// SAFETY: `values` points into the map this struct owns (with its Release handles, which only
// advise the kernel); access follows `&self` / `&mut self` as for an owned array.
unsafe impl<T: Send> Send for MappedRows<T> {}
unsafe impl<T: Sync> Sync for MappedRows<T> {}

impl<T: Float> MappedRows<T> {
    /// A new zeroed `rows x cols` matrix in a file in `dir`, mapped.
    pub(crate) fn create(dir: &Path, rows: usize, cols: usize) -> io::Result<Self> {
        let file = RowsFile::create(dir, rows, cols)?;
        reserve(&file.file, (rows * cols * size_of::<T>()) as u64)?;
        MappedRows::map(file)
    }

    /// A file holding `a`, mapped.
    pub(crate) fn holding(dir: &Path, a: &ArrayView2<'_, T>) -> io::Result<Self> {
        // Through the file, not the map: its pages then never count in the process.
        RowsFile::holding(dir, a, None)?.into_mapped()
    }

    fn map(file: RowsFile<T>) -> io::Result<Self> {
        // SAFETY: the file is this process's own (made and unlinked here), so nothing else
        // changes it under the map.
        let mut map = unsafe { memmap2::MmapMut::map_mut(&file.file)? };
        let values = map.as_mut_ptr().cast::<T>();
        Ok(MappedRows {
            map: Arc::new(map),
            values,
            file,
        })
    }

    /// A handle that drops the pages of rows from the process (see [`Release`]).
    pub(crate) fn release(&self) -> Release {
        Release {
            map: Arc::clone(&self.map),
            row_bytes: self.file.cols * size_of::<T>(),
        }
    }
}

impl<T> MappedRows<T> {
    fn len(&self) -> usize {
        self.file.rows * self.file.cols
    }

    /// The matrix, rows x cols in standard layout.
    pub(crate) fn view(&self) -> ArrayView2<'_, T> {
        let shape = (self.file.rows, self.file.cols);
        if self.len() == 0 {
            return ArrayView2::from_shape(shape, &[]).expect("an empty view");
        }
        // SAFETY: the map is page-aligned and holds exactly `len` values of T (f32 or f64,
        // every bit pattern valid); they are borrowed through `&self`.
        let values = unsafe { std::slice::from_raw_parts(self.values, self.len()) };
        ArrayView2::from_shape(shape, values).expect("the map holds rows x cols values")
    }

    /// The matrix, to change in place.
    pub(crate) fn view_mut(&mut self) -> ArrayViewMut2<'_, T> {
        let shape = (self.file.rows, self.file.cols);
        if self.len() == 0 {
            return ArrayViewMut2::from_shape(shape, &mut []).expect("an empty view");
        }
        // SAFETY: as `view`, borrowed mutably through `&mut self`.
        let values = unsafe { std::slice::from_raw_parts_mut(self.values, self.len()) };
        ArrayViewMut2::from_shape(shape, values).expect("the map holds rows x cols values")
    }
}

/// A handle on the pages of a [`MappedRows`]: brings a block of rows in before a pass uses it,
/// and drops them from the process after (they stay in the page cache, written or not, and the
/// next access maps them back). Holds the map, so a handle outliving its matrix only advises a
/// map nothing reads.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    map: Arc<memmap2::MmapMut>,
    row_bytes: usize,
}

impl Release {
    /// Drops the pages that hold any of `rows` (a page shared with a neighbouring row comes
    /// back on its next access).
    pub(crate) fn rows(&self, rows: std::ops::Range<usize>) {
        let len = self.map.len();
        let from = (rows.start * self.row_bytes).min(len);
        let to = (rows.end * self.row_bytes).min(len);
        self.bytes(from, to);
    }

    /// Maps in the pages that hold any of `rows` with one call, before a pass uses them
    /// (`write` for a pass that writes them), rather than a fault per page: a streamed
    /// iteration over 50,000 faces took 2-3% less (three alternating rounds).
    pub(crate) fn fetch(&self, rows: std::ops::Range<usize>, write: bool) {
        let len = self.map.len();
        let from = (rows.start * self.row_bytes).min(len);
        let to = (rows.end * self.row_bytes).min(len);
        if from >= to {
            return;
        }
        // Where the kernel has no such advice (before Linux 5.14), the pages fault in one by
        // one as they would without it.
        #[cfg(target_os = "linux")]
        let _ = self.map.advise_range(
            if write {
                memmap2::Advice::PopulateWrite
            } else {
                memmap2::Advice::PopulateRead
            },
            from,
            to - from,
        );
        #[cfg(not(target_os = "linux"))]
        let _ = write;
    }

    /// Drops every page of the map.
    pub(crate) fn all(&self) {
        self.bytes(0, self.map.len());
    }

    fn bytes(&self, from: usize, to: usize) {
        if from >= to {
            return;
        }
        // Elsewhere the pages stay mapped: the same values, more memory.
        #[cfg(unix)]
        {
            // SAFETY: MADV_DONTNEED on a shared file map only unmaps the pages: their
            // contents, written or not, stay in the page cache and the file, and the next
            // access maps them back.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from)
            };
        }
    }
}

/// Reserves the file's `len` bytes on disk, so that writing through the map cannot fail for
/// want of space later (that would be a SIGBUS, not an error).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reserve(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::other("file too large"))?;
    // SAFETY: a valid open descriptor and a nonnegative range.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn reserve(file: &File, len: u64) -> io::Result<()> {
    // Written once through the file, so that its blocks exist before the map writes them.
    let zeros = vec![0u8; PIECE];
    let mut at = 0;
    while at < len {
        let piece = (len - at).min(PIECE as u64) as usize;
        write_at(file, &zeros[..piece], at)?;
        at += piece as u64;
    }
    Ok(())
}

/// H^T as a fit's loop holds it: in memory, or (streamed) mapped from a file beside the
/// images, so that the memory of a fit does not grow with the number of images.
#[derive(Debug)]
pub(crate) enum HtStore<T> {
    Held(Array2<T>),
    Mapped(MappedRows<T>),
}

impl<T: Float> HtStore<T> {
    /// `ht` mapped from a file in `dir` when given and it can take it; otherwise held, with
    /// the reason it is not in `dir`.
    pub(crate) fn place(ht: Array2<T>, dir: Option<&Path>) -> (Self, Option<String>) {
        let Some(dir) = dir else {
            return (HtStore::Held(ht), None);
        };
        match MappedRows::holding(dir, &ht.view()) {
            Ok(mapped) => (HtStore::Mapped(mapped), None),
            Err(e) => {
                let warning = held_warning(&ht, dir, &e);
                (HtStore::Held(ht), Some(warning))
            }
        }
    }

    /// A zeroed `rows x cols` H^T, placed as [`HtStore::place`] places one.
    pub(crate) fn zeros(rows: usize, cols: usize, dir: Option<&Path>) -> (Self, Option<String>) {
        let Some(dir) = dir else {
            return (HtStore::Held(Array2::zeros((rows, cols))), None);
        };
        match MappedRows::create(dir, rows, cols) {
            Ok(mapped) => (HtStore::Mapped(mapped), None),
            Err(e) => {
                let ht = Array2::zeros((rows, cols));
                let warning = held_warning(&ht, dir, &e);
                (HtStore::Held(ht), Some(warning))
            }
        }
    }

    /// Visits H^T a piece of rows at a time, in row order, each piece's pages dropped from
    /// the process after it when mapped: a pass over all of it holds one piece.
    pub(crate) fn pieces_mut(&mut self, mut visit: impl FnMut(ArrayViewMut2<'_, T>)) {
        let release = self.release();
        let mut view = self.view_mut();
        by_pieces(view.nrows(), PIECE_ROWS, release.as_ref(), true, |rows| {
            visit(view.slice_mut(ndarray::s![rows, ..]));
        });
    }

    /// [`HtStore::pieces_mut`], reading.
    pub(crate) fn pieces(&self, mut visit: impl FnMut(ArrayView2<'_, T>)) {
        let release = self.release();
        let view = self.view();
        by_pieces(view.nrows(), PIECE_ROWS, release.as_ref(), false, |rows| {
            visit(view.slice(ndarray::s![rows, ..]));
        });
    }

    /// The handle that drops the pages of its rows, when mapped.
    pub(crate) fn release(&self) -> Option<Release> {
        match self {
            HtStore::Held(_) => None,
            HtStore::Mapped(m) => Some(m.release()),
        }
    }

    /// Drops every page of a mapped H^T from the process, after a pass over all of it.
    pub(crate) fn release_all(&self) {
        if let HtStore::Mapped(m) = self {
            m.release().all();
        }
    }

    /// The array held, for what only runs in memory (missing data, the divergences).
    ///
    /// # Panics
    /// If H^T is mapped: only streamed fits map it, and they refuse what needs this.
    pub(crate) fn held_mut(&mut self) -> &mut Array2<T> {
        match self {
            HtStore::Held(a) => a,
            HtStore::Mapped(_) => {
                unreachable!("a streamed fit holds nothing that needs H^T in memory")
            }
        }
    }
}

impl<T> HtStore<T> {
    pub(crate) fn view(&self) -> ArrayView2<'_, T> {
        match self {
            HtStore::Held(a) => a.view(),
            HtStore::Mapped(m) => m.view(),
        }
    }

    pub(crate) fn view_mut(&mut self) -> ArrayViewMut2<'_, T> {
        match self {
            HtStore::Held(a) => a.view_mut(),
            HtStore::Mapped(m) => m.view_mut(),
        }
    }
}

/// Why H^T is held in memory although a folder was given for it.
fn held_warning<T: Float>(ht: &Array2<T>, dir: &Path, e: &io::Error) -> String {
    let mb = ht.len() * size_of::<T>() / 1_000_000;
    format!(
        "H is held in memory ({mb} MB), as it could not be kept in {}: {e}",
        dir.display()
    )
}

#[cfg(not(unix))]
impl<T> Drop for RowsFile<T> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The bytes of `values`.
fn bytes<T: Float>(values: &[T]) -> &[u8] {
    // SAFETY: f32 and f64 (the only Float types) have no padding and every byte is initialised;
    // the slice covers exactly the values' memory.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

/// The bytes of `values`, to be overwritten.
fn bytes_mut<T: Float>(values: &mut [T]) -> &mut [u8] {
    // SAFETY: as `bytes`; every bit pattern is a valid f32 or f64.
    unsafe {
        std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), std::mem::size_of_val(values))
    }
}

#[cfg(unix)]
fn read_at(file: &File, out: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, out, offset)
}

#[cfg(unix)]
fn write_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

#[cfg(not(unix))]
fn read_at(file: &File, out: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(out)
}

#[cfg(not(unix))]
fn write_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_written_are_read_back_bit_for_bit_and_the_file_leaves_no_name() {
        let dir = std::env::temp_dir().join(format!("facenmf-spill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Array2::from_shape_fn((37, 5), |(i, j)| (i * 5 + j) as f32 / 7.0 - 1.5);
        let mut file = RowsFile::holding(&dir, &a.view(), None).unwrap();
        assert_eq!(file.to_array().unwrap(), a);
        let mut block = Array2::<f32>::zeros((4, 5));
        file.read(10, block.view_mut()).unwrap();
        assert_eq!(block, a.slice(ndarray::s![10..14, ..]));
        block.fill(f32::NAN);
        file.write(33, block.view()).unwrap();
        let back = file.to_array().unwrap();
        assert!(back.slice(ndarray::s![33.., ..]).iter().all(|v| v.is_nan()));
        assert_eq!(
            back.slice(ndarray::s![..33, ..]),
            a.slice(ndarray::s![..33, ..])
        );
        #[cfg(unix)]
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What is written through the map survives its pages being dropped from the process,
    /// whole or by rows, and reads back the same through the map and through the file.
    #[test]
    fn a_mapped_matrix_keeps_what_is_written_when_its_pages_are_released() {
        let dir = std::env::temp_dir().join(format!("facenmf-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Rows of 49 f32 over several pages, so that released ranges cut rows in two.
        let a = Array2::from_shape_fn((3000, 49), |(i, j)| (i * 49 + j) as f32 * 0.25 - 7.0);
        let mut mapped = MappedRows::<f32>::create(&dir, 3000, 49).unwrap();
        assert!(mapped.view().iter().all(|&v| v == 0.0));
        let release = mapped.release();
        for start in (0..3000).step_by(700) {
            let rows = start..(start + 700).min(3000);
            mapped
                .view_mut()
                .slice_mut(ndarray::s![rows.clone(), ..])
                .assign(&a.slice(ndarray::s![rows.clone(), ..]));
            release.rows(rows);
        }
        assert_eq!(mapped.view(), a.view());
        release.all();
        assert_eq!(mapped.file.to_array().unwrap(), a);
        let held = MappedRows::holding(&dir, &a.view()).unwrap();
        assert_eq!(held.view(), a.view());
        #[cfg(unix)]
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop((mapped, held));
        // A handle outliving its matrix advises a map nothing reads.
        release.all();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
