//! Copies of H^T kept on disk, for fits whose images do not fit in memory.
//!
//! Extrapolation keeps three copies of H^T beside the loop's own (the last accepted iterate,
//! the one just updated, and the best; `extrapolate.rs`), each n x r: at 200,000 faces and rank
//! 49 in f32, 118 MB together, growing with the folder. A streamed fit reads its images from a
//! decoded cache on disk anyway, so these copies go to a file beside it: each is read and
//! written by rows, a block at a time, through the page cache, and never mapped, so that none
//! of their pages counts in the process's memory. The bytes are the values' own: the iterates
//! are bit for bit those of copies held in memory.
//!
//! The file is created in the cache's folder and removed at once (on Unix the open handle keeps
//! it until the fit drops it), so nothing is left behind by a crash or a kill.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
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

    /// A file holding `a`.
    pub(crate) fn holding(dir: &Path, a: &Array2<T>) -> io::Result<Self> {
        let mut this = RowsFile::create(dir, a.nrows(), a.ncols())?;
        this.write(0, a.view())?;
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
        let mut file = RowsFile::holding(&dir, &a).unwrap();
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
}
