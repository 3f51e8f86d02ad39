//! The decoded cache: a folder's images decoded once and kept as one `.npy` file, so that the
//! next run maps it instead of decoding every file again.
//!
//! A cache is a folder of two files. `images.npy` holds one decoded image per **row** (n x m,
//! each image's pixels contiguous, row-major within the image), in the narrowest type that
//! holds the decoded values exactly: `u1` when every value is k/255 (8-bit sources, a 64 x 64
//! face in 4 KiB), `u2` when every value is k/65535, else `f4` or `f8`. numpy reads it as
//! `np.load(...)`, X being its transpose scaled to [0, 1]. `manifest.json` records what the
//! images were made from: the folder, every file's size and modification time, the loader's
//! settings, the column of each image and what was skipped. A cache is used only when all of
//! that still holds; otherwise it is rebuilt and the reason is returned, naming the first file
//! that differs.
//!
//! The manifest is written last: a cache whose writing stopped half-way (a full disk, a
//! crash) has none that agrees with its data, and is rebuilt rather than read.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use ndarray::{Array2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::{
    Faces, FileList, Loader, Outcome, Preprocess, Probe, SkipReason, Skipped, list_files,
    slash_string,
};
use crate::files::write_atomic_with;
use crate::nmf::ColumnBlocks;
use crate::{Error, Float, Result};

/// The decoded images' file inside a cache folder.
pub const CACHE_IMAGES: &str = "images.npy";
/// The manifest's file inside a cache folder.
pub const CACHE_MANIFEST: &str = "manifest.json";
/// The version of the cache's layout; a cache of another version is rebuilt.
const CACHE_VERSION: u32 = 1;
/// Bytes before the data in `images.npy`: a fixed header, so that it can be written last.
const HEADER_BYTES: usize = 128;
/// Files decoded at a time while building: bounds the memory of the build, not its speed.
const BUILD_CHUNK: usize = 256;

/// Whether a load found its cache good or built it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheState {
    /// The cache matched the folder and was read instead of decoding.
    Hit,
    /// The cache was built, because of `reason` (none yet, or what no longer matched).
    Built {
        /// Why: no cache yet, or the first difference found.
        reason: String,
    },
}

/// How far a load has got, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// Files decoded (or images read from the cache) so far.
    pub done: usize,
    /// Files in all.
    pub total: usize,
}

/// The type the decoded values are kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Dtype {
    U8,
    U16,
    F32,
    F64,
}

impl Dtype {
    const WIDENING: [Dtype; 4] = [Dtype::U8, Dtype::U16, Dtype::F32, Dtype::F64];

    fn bytes(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::U16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    fn descr(self) -> &'static str {
        match self {
            Dtype::U8 => "|u1",
            Dtype::U16 => "<u2",
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }

    /// Appends `v` if this type holds it exactly; false (nothing appended) if not.
    fn encode(self, v: f64, out: &mut Vec<u8>) -> bool {
        match self {
            Dtype::U8 => {
                let k = (v * 255.0).round();
                let fits = (0.0..=255.0).contains(&k) && k / 255.0 == v;
                if fits {
                    out.push(k as u8);
                }
                fits
            }
            Dtype::U16 => {
                let k = (v * 65535.0).round();
                let fits = (0.0..=65535.0).contains(&k) && k / 65535.0 == v;
                if fits {
                    out.extend_from_slice(&(k as u16).to_le_bytes());
                }
                fits
            }
            Dtype::F32 => {
                let fits = f64::from(v as f32) == v;
                if fits {
                    out.extend_from_slice(&(v as f32).to_le_bytes());
                }
                fits
            }
            Dtype::F64 => {
                out.extend_from_slice(&v.to_le_bytes());
                true
            }
        }
    }

    /// The value of one stored entry, exactly as the loader computes it from the source.
    #[inline]
    fn decode(self, bytes: &[u8]) -> f64 {
        match self {
            Dtype::U8 => f64::from(bytes[0]) / 255.0,
            Dtype::U16 => f64::from(u16::from_le_bytes([bytes[0], bytes[1]])) / 65535.0,
            Dtype::F32 => f64::from(f32::from_le_bytes(bytes.try_into().expect("4 bytes"))),
            Dtype::F64 => f64::from_le_bytes(bytes.try_into().expect("8 bytes")),
        }
    }
}

/// 8-bit values to [0, 1]: `b / 255` by one division in T, correctly rounded, which is the
/// value the loader makes (its f64 division rounded to T; the same bits for all 256 values, in
/// the tests). A streamed fit converts every image every iteration: a table of the 256 values
/// cost a load per value where the division runs in the widest vectors this CPU has (chosen at
/// run time, so the binary stays portable).
fn convert_u8<T: Float>(bytes: &[u8], values: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { convert_u8_avx512(bytes, values) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { convert_u8_avx2(bytes, values) };
        }
    }
    divide_u8(bytes, values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn convert_u8_avx512<T: Float>(bytes: &[u8], values: &mut [T]) {
    divide_u8(bytes, values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn convert_u8_avx2<T: Float>(bytes: &[u8], values: &mut [T]) {
    divide_u8(bytes, values);
}

#[inline(always)]
fn divide_u8<T: Float>(bytes: &[u8], values: &mut [T]) {
    let scale = T::from_u8(255);
    for (v, &b) in values.iter_mut().zip(bytes) {
        *v = T::from_u8(b) / scale;
    }
}

/// Reads `out.len()` bytes of `file` from `offset`.
#[cfg(unix)]
fn read_at(file: &std::fs::File, out: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, out, offset)
}

/// No positioned reads here: the caller reads through the map.
#[cfg(not(unix))]
fn read_at(_: &std::fs::File, _: &mut [u8], _: u64) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// A file of the folder as the cache saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    path: String,
    bytes: u64,
    modified_ns: u64,
}

/// A file left out, as the manifest keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct SkippedEntry {
    path: String,
    /// `None`: not an image; otherwise why it could not be read.
    unreadable: Option<String>,
}

/// What a cache was made from, and what it holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Manifest {
    facenmf_cache: u32,
    folder: PathBuf,
    resize: Option<(u32, u32)>,
    max_pixels: u64,
    skip_unreadable: bool,
    height: usize,
    width: usize,
    dtype: Dtype,
    /// Length of `images.npy` in bytes, header included.
    file_bytes: u64,
    /// Every file the walk found, images or not, in walk order.
    files: Vec<Stamp>,
    /// The file of each row of `images.npy` (each column of X).
    columns: Vec<String>,
    skipped: Vec<SkippedEntry>,
}

/// What a staleness check reads of a manifest: serde passes over the rest (the file of each
/// column) without allocating it, which at 200,000 faces is 10 MB of strings.
#[derive(Debug, serde::Deserialize)]
struct ManifestOrigin {
    facenmf_cache: u32,
    folder: PathBuf,
    resize: Option<(u32, u32)>,
    max_pixels: u64,
    skip_unreadable: bool,
    file_bytes: u64,
    files: Vec<Stamp>,
}

/// What mapping the images reads of a manifest (not the folder's files, as above).
#[derive(Debug, serde::Deserialize)]
struct ManifestContents {
    height: usize,
    width: usize,
    dtype: Dtype,
    file_bytes: u64,
    columns: FileList,
    skipped: Vec<SkippedEntry>,
}

/// The images of a cache, mapped from disk: read by blocks of images without holding them all.
#[derive(Debug)]
pub struct CachedImages {
    map: memmap2::Mmap,
    /// The same file, read by blocks (see [`CachedImages::read_raw`]).
    file: std::fs::File,
    dtype: Dtype,
    /// The cache's folder.
    cache: PathBuf,
    /// The folder the images came from.
    pub root: PathBuf,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Path of the image in each column, relative to the folder.
    pub paths: FileList,
    /// Files that were left out, with the reason.
    pub skipped: Vec<Skipped>,
    /// Applied to each image as it is read ([`CachedImages::rows`] leaves it out).
    pub preprocess: Preprocess,
}

/// A fit reads the images preprocessed, block by block.
impl CachedImages {
    /// The images of `columns` (ascending or not) as faces: runs of consecutive columns are
    /// read as one block. For the faces a run shows when it does not hold X.
    pub fn select<T: Float>(&self, columns: &[usize]) -> Faces<T> {
        let mut x = Array2::<T>::zeros((self.pixels(), columns.len()));
        let mut k = 0;
        while k < columns.len() {
            let mut end = k + 1;
            while end < columns.len() && columns[end] == columns[end - 1] + 1 {
                end += 1;
            }
            let rows: Array2<T> = ColumnBlocks::rows(self, columns[k]..columns[end - 1] + 1);
            x.slice_mut(ndarray::s![.., k..end]).assign(&rows.t());
            k = end;
        }
        // Reads go through `pread`, but one that falls back to the map maps more than its own
        // pages: when every read went through the map and dropped its own range, 1024 single
        // faces spread over 200,000 left 238 MB of the file mapped (likely a fault mapping a
        // whole large folio of the page cache). Sparse reads end with the whole map dropped.
        self.drop_pages(0, self.map.len());
        Faces {
            x,
            root: self.root.clone(),
            height: self.height,
            width: self.width,
            paths: columns
                .iter()
                .map(|&j| self.paths.get(j).to_path_buf())
                .collect(),
            skipped: self.skipped.clone(),
            preprocess: self.preprocess,
        }
    }
}

impl<T: Float> ColumnBlocks<T> for CachedImages {
    fn pixels(&self) -> usize {
        CachedImages::pixels(self)
    }

    fn count(&self) -> usize {
        CachedImages::count(self)
    }

    /// The cache's own folder: it holds X already, so it has room for copies of H^T (n x r,
    /// a fraction of X's n x m).
    fn scratch(&self) -> Option<&Path> {
        Some(&self.cache)
    }

    fn read(&self, first: usize, mut out: ArrayViewMut2<'_, T>) {
        self.read_raw(first, out.view_mut());
        self.preprocess.apply_rows(out);
    }
}

impl CachedImages {
    /// Number of images, n.
    pub fn count(&self) -> usize {
        self.paths.len()
    }

    /// Pixels per image, m.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// The stored bytes of images `range`, one image after another.
    fn bytes(&self, range: Range<usize>) -> &[u8] {
        let row = self.pixels() * self.dtype.bytes();
        &self.map[HEADER_BYTES + range.start * row..HEADER_BYTES + range.end * row]
    }

    /// Images `range` as rows (images x pixels), as decoded (before preprocessing): the
    /// transpose of X's columns `range`.
    ///
    /// # Panics
    /// If `range` goes beyond the images.
    pub fn rows<T: Float>(&self, range: Range<usize>) -> Array2<T> {
        let mut out = Array2::<T>::zeros((range.len(), self.pixels()));
        self.read_raw(range.start, out.view_mut());
        out
    }

    /// Images from `first` into the rows of `out` (standard layout), as decoded.
    ///
    /// Read from the file a piece at a time into a buffer each thread keeps, then converted:
    /// the map's pages would have to be mapped in on every pass and dropped after (a streamed
    /// fit reads the whole file every iteration, and its resident memory must not grow with
    /// it), and that mapping and unmapping cost more than the copy (a streamed iteration over
    /// 50,000 faces: 55 ms of reading through the map against 46 ms here). Where the file
    /// cannot be read (or on a system without positioned reads) a piece is read through the
    /// map.
    fn read_raw<T: Float>(&self, first: usize, mut out: ArrayViewMut2<'_, T>) {
        const CHUNK: usize = 1 << 16;
        let (size, dtype) = (self.dtype.bytes(), self.dtype);
        let count = out.nrows();
        let row = self.pixels() * size;
        let start = HEADER_BYTES + first * row;
        let values = out.as_slice_mut().expect("rows of a standard-layout array");
        let mapped = AtomicBool::new(false);
        values.par_chunks_mut(CHUNK).enumerate().for_each_init(
            || vec![0u8; CHUNK * size],
            |buffer, (c, values)| {
                let offset = start + c * CHUNK * size;
                let buffer = &mut buffer[..values.len() * size];
                let bytes = if read_at(&self.file, buffer, offset as u64).is_ok() {
                    &buffer[..]
                } else {
                    mapped.store(true, Ordering::Relaxed);
                    &self.map[offset..offset + buffer.len()]
                };
                match dtype {
                    Dtype::U8 => convert_u8(bytes, values),
                    dtype => {
                        for (v, b) in values.iter_mut().zip(bytes.chunks_exact(size)) {
                            *v = T::from_f64(dtype.decode(b));
                        }
                    }
                }
            },
        );
        if mapped.into_inner() {
            // The pages read through the map leave this process's resident memory (the page
            // cache keeps them). The kernel maps up to 64 KiB around each fault
            // ("fault-around"), so that margin goes too.
            const AROUND: usize = 64 << 10;
            let end = (start + count * row + AROUND).min(self.map.len());
            self.drop_pages(start.saturating_sub(AROUND), end);
        }
    }

    /// Drops the map's pages in bytes `start..end` from this process's resident memory.
    fn drop_pages(&self, start: usize, end: usize) {
        #[cfg(unix)]
        {
            // SAFETY: the map is read-only and nothing of ours borrows it here; MADV_DONTNEED
            // only drops its pages, which the next access reads back from the file unchanged.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end.saturating_sub(start),
                )
            };
        }
        #[cfg(not(unix))]
        let _ = (start, end);
    }

    /// All images read into memory as [`Faces`], preprocessed: what [`Loader::load`] gives.
    pub fn into_faces<T: Float>(self) -> Faces<T> {
        let mut x = self.to_matrix::<T>();
        self.preprocess.apply(&mut x);
        Faces {
            x,
            root: self.root,
            height: self.height,
            width: self.width,
            paths: self.paths.to_vec(),
            skipped: self.skipped,
            preprocess: self.preprocess,
        }
    }

    /// All images as X (m x n), as [`Loader::load`] would give them (before preprocessing).
    pub fn to_matrix<T: Float>(&self) -> Array2<T> {
        let (m, n, size, dtype) = (self.pixels(), self.count(), self.dtype.bytes(), self.dtype);
        let data = self.bytes(0..n);
        let mut x = Array2::<T>::zeros((m, n));
        // X is row-major and the cache image-major: each task fills a band of X's rows,
        // reading that band of every image, so that both sides move through memory in runs.
        const BAND: usize = 64;
        x.axis_chunks_iter_mut(Axis(0), BAND)
            .into_par_iter()
            .enumerate()
            .for_each(|(b, mut band)| {
                let first = b * BAND;
                let rows = band.nrows();
                for j in 0..n {
                    let at = (j * m + first) * size;
                    let stored = &data[at..at + rows * size];
                    for (i, bytes) in stored.chunks_exact(size).enumerate() {
                        band[[i, j]] = T::from_f64(dtype.decode(bytes));
                    }
                }
            });
        x
    }
}

impl Loader {
    /// Loads the folder through the decoded cache in `cache` (see the docs of this module,
    /// `loader::cache`): read from it when it matches the folder and these settings, otherwise
    /// decoded, written there and then read. The preprocessing is applied after, so one cache
    /// serves every [`Preprocess`]. X is the same, bit for bit, as
    /// [`Loader::load`] gives.
    ///
    /// # Errors
    /// As [`Loader::load`], and the cache folder cannot be created or written (a full disk:
    /// nothing half-written is left as if it were good).
    pub fn load_cached<T: Float>(
        &self,
        cache: &Path,
        progress: impl FnMut(LoadProgress),
    ) -> Result<(Faces<T>, CacheState)> {
        let (images, state) = self.open_cache(cache, progress)?;
        Ok((images.into_faces(), state))
    }

    /// The cache in `cache` for this folder and these settings, built first if it is missing
    /// or stale; its images stay on disk, mapped, to be read by blocks.
    ///
    /// # Errors
    /// As [`Loader::load_cached`].
    pub fn open_cache(
        &self,
        cache: &Path,
        mut progress: impl FnMut(LoadProgress),
    ) -> Result<(CachedImages, CacheState)> {
        self.check_settings()?;
        std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
        // The cache's own files are not images of the folder, wherever the cache lies.
        let this = self.clone().exclude(cache);
        let (files, walk_skipped) = list_files(&this.dir, this.skip_unreadable, &this.exclude)?;
        let stamps = files
            .par_iter()
            .map(|rel| stamp(&this.dir, rel))
            .collect::<Result<Vec<_>>>()?;
        let folder = this
            .dir
            .canonicalize()
            .map_err(|e| Error::io(&this.dir, e))?;
        let state = match this.stale(cache, &folder, &stamps) {
            None => {
                // The listing is only for a rebuild; at 200,000 files it is 25 MB.
                drop((files, stamps, walk_skipped));
                CacheState::Hit
            }
            Some(reason) => {
                this.build(cache, &folder, &files, stamps, walk_skipped, &mut progress)?;
                CacheState::Built { reason }
            }
        };
        let images = this.map(cache)?;
        progress(LoadProgress {
            done: images.count(),
            total: images.count(),
        });
        Ok((images, state))
    }

    /// The settings that decide what a cache holds, as the manifest records them.
    fn manifest_for(&self, folder: &Path) -> Manifest {
        Manifest {
            facenmf_cache: CACHE_VERSION,
            folder: folder.to_path_buf(),
            resize: self.resize,
            max_pixels: self.max_pixels,
            skip_unreadable: self.skip_unreadable,
            height: 0,
            width: 0,
            dtype: Dtype::U8,
            file_bytes: 0,
            files: Vec::new(),
            columns: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Why the cache in `cache` cannot be used for these files, or `None` if it can.
    fn stale(&self, cache: &Path, folder: &Path, stamps: &[Stamp]) -> Option<String> {
        let path = cache.join(CACHE_MANIFEST);
        let Ok(bytes) = std::fs::read(&path) else {
            return Some(format!("no cache in {} yet", cache.display()));
        };
        let Ok(manifest) = serde_json::from_slice::<ManifestOrigin>(&bytes) else {
            return Some(format!(
                "{} is not a facenmf cache manifest",
                path.display()
            ));
        };
        let wanted = self.manifest_for(folder);
        if manifest.facenmf_cache != CACHE_VERSION {
            return Some(format!(
                "the cache is of layout {}, this facenmf writes {CACHE_VERSION}",
                manifest.facenmf_cache
            ));
        }
        if manifest.folder != wanted.folder {
            return Some(format!(
                "the cache was made from {}, not {}",
                manifest.folder.display(),
                folder.display()
            ));
        }
        if (
            manifest.resize,
            manifest.max_pixels,
            manifest.skip_unreadable,
        ) != (wanted.resize, wanted.max_pixels, wanted.skip_unreadable)
        {
            return Some(
                "the cache was made with other loading settings (--resize, \
                         --max-image-pixels or --skip-unreadable)"
                    .into(),
            );
        }
        if let Some(why) = first_difference(&manifest.files, stamps) {
            return Some(why);
        }
        let on_disk = std::fs::metadata(cache.join(CACHE_IMAGES)).map(|m| m.len());
        if on_disk.ok() != Some(manifest.file_bytes) {
            return Some(format!(
                "{} is not the size its manifest records",
                cache.join(CACHE_IMAGES).display()
            ));
        }
        None
    }

    /// Decodes every file in chunks and writes `images.npy` (in the narrowest exact type,
    /// widened and rewritten if a later image needs it), then the manifest.
    fn build(
        &self,
        cache: &Path,
        folder: &Path,
        files: &[PathBuf],
        stamps: Vec<Stamp>,
        walk_skipped: Vec<Skipped>,
        progress: &mut impl FnMut(LoadProgress),
    ) -> Result<()> {
        let manifest_path = cache.join(CACHE_MANIFEST);
        // From here the old data is being replaced: its manifest goes first.
        match std::fs::remove_file(&manifest_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&manifest_path, e));
            }
            _ => {}
        }
        let images_path = cache.join(CACHE_IMAGES);
        for dtype in Dtype::WIDENING {
            let mut manifest = self.manifest_for(folder);
            manifest.dtype = dtype;
            manifest.files = stamps.clone();
            let mut skipped = walk_skipped.clone();
            // The build's own error (not the file's) is kept here: the writer sees only io.
            let mut failure: Option<Error> = None;
            let mut wider = false;
            let written = write_atomic_with(&images_path, |file| {
                let mut out = BufWriter::with_capacity(1 << 20, &mut *file);
                out.write_all(&[0; HEADER_BYTES])?;
                let mut encoded = Vec::new();
                for (c, chunk) in files.chunks(BUILD_CHUNK).enumerate() {
                    let decoded: Vec<Result<Outcome<f64>>> = chunk
                        .par_iter()
                        .map(|rel| match self.probe(rel)? {
                            Probe::Image(header) => self.decode_one(rel, &header),
                            Probe::Skip(reason) => Ok(Outcome::Skip(rel.clone(), reason)),
                        })
                        .collect();
                    for outcome in decoded {
                        match outcome {
                            Err(e) => {
                                failure = Some(e);
                                return Err(std::io::Error::other("decoding failed"));
                            }
                            Ok(Outcome::Skip(path, reason)) => {
                                skipped.push(Skipped { path, reason });
                            }
                            Ok(Outcome::Image(path, gray)) => {
                                let (w, h) = (gray.width as usize, gray.height as usize);
                                if manifest.columns.is_empty() {
                                    (manifest.width, manifest.height) = (w, h);
                                } else if (w, h) != (manifest.width, manifest.height) {
                                    failure = Some(Error::MixedSizes {
                                        first: self.dir.join(&manifest.columns[0]),
                                        first_w: manifest.width as u32,
                                        first_h: manifest.height as u32,
                                        path: self.dir.join(&path),
                                        found_w: w as u32,
                                        found_h: h as u32,
                                    });
                                    return Err(std::io::Error::other("mixed sizes"));
                                }
                                encoded.clear();
                                if !gray.pixels.iter().all(|&v| dtype.encode(v, &mut encoded)) {
                                    wider = true;
                                    return Err(std::io::Error::other("needs a wider type"));
                                }
                                out.write_all(&encoded)?;
                                manifest.columns.push(slash_string(&path));
                            }
                        }
                    }
                    progress(LoadProgress {
                        done: ((c + 1) * BUILD_CHUNK).min(files.len()),
                        total: files.len(),
                    });
                }
                match manifest.columns.len() {
                    0 => {
                        failure = Some(Error::NoImages {
                            path: self.dir.clone(),
                            skipped: skipped.len(),
                        });
                        return Err(std::io::Error::other("no images"));
                    }
                    1 => {
                        failure = Some(Error::OneImage {
                            path: self.dir.clone(),
                        });
                        return Err(std::io::Error::other("one image"));
                    }
                    _ => {}
                }
                out.flush()?;
                drop(out);
                let n = manifest.columns.len();
                let m = manifest.height * manifest.width;
                file.seek(SeekFrom::Start(0))?;
                file.write_all(&header(dtype, n, m))?;
                manifest.file_bytes = (HEADER_BYTES + n * m * dtype.bytes()) as u64;
                Ok(())
            });
            if wider {
                continue;
            }
            if let Some(e) = failure {
                return Err(e);
            }
            written?;
            skipped.sort_by_cached_key(|s| slash_string(&s.path));
            manifest.skipped = skipped
                .into_iter()
                .map(|s| SkippedEntry {
                    path: slash_string(&s.path),
                    unreadable: match s.reason {
                        SkipReason::NotAnImage => None,
                        SkipReason::Unreadable(why) => Some(why),
                    },
                })
                .collect();
            let json = serde_json::to_vec(&manifest).expect("the manifest serialises");
            return write_atomic_with(&manifest_path, |file| file.write_all(&json));
        }
        unreachable!("f64 holds every decoded value")
    }

    /// Maps the cache's images, checked against its manifest.
    fn map(&self, cache: &Path) -> Result<CachedImages> {
        let manifest_path = cache.join(CACHE_MANIFEST);
        let bytes = std::fs::read(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let manifest: ManifestContents =
            serde_json::from_slice(&bytes).map_err(|e| Error::Cache {
                path: manifest_path.clone(),
                reason: e.to_string(),
            })?;
        drop(bytes);
        let images_path = cache.join(CACHE_IMAGES);
        let file = std::fs::File::open(&images_path).map_err(|e| Error::io(&images_path, e))?;
        // SAFETY: the map is read-only and the cache is ours; a file truncated under it by
        // another process could fault, as for any mapped file, so the length is checked first
        // and the header after.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&images_path, e))?;
        let (n, m) = (manifest.columns.len(), manifest.height * manifest.width);
        if map.len() as u64 != manifest.file_bytes
            || map[..HEADER_BYTES] != header(manifest.dtype, n, m)
        {
            return Err(Error::Cache {
                path: images_path,
                reason: "its size or header is not what its manifest records; delete the \
                         cache folder to rebuild it"
                    .into(),
            });
        }
        Ok(CachedImages {
            file,
            map,
            dtype: manifest.dtype,
            cache: cache.to_path_buf(),
            root: self.dir.clone(),
            height: manifest.height,
            width: manifest.width,
            paths: manifest.columns,
            preprocess: self.preprocess,
            skipped: manifest
                .skipped
                .into_iter()
                .map(|s| Skipped {
                    path: PathBuf::from(s.path),
                    reason: match s.unreadable {
                        None => SkipReason::NotAnImage,
                        Some(why) => SkipReason::Unreadable(why),
                    },
                })
                .collect(),
        })
    }
}

/// A file's size and modification time.
fn stamp(dir: &Path, rel: &Path) -> Result<Stamp> {
    let path = dir.join(rel);
    let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Ok(Stamp {
        path: slash_string(rel),
        bytes: meta.len(),
        modified_ns,
    })
}

/// The first file that is new, gone or changed between the cache's files and the folder's.
fn first_difference(cached: &[Stamp], now: &[Stamp]) -> Option<String> {
    let mut old = cached.iter().peekable();
    let mut new = now.iter().peekable();
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => return None,
            (Some(a), Some(b)) if a.path == b.path => {
                if a != b {
                    return Some(format!("{} changed since the cache was made", b.path));
                }
                old.next();
                new.next();
            }
            (Some(a), Some(b)) if a.path < b.path => {
                return Some(format!("{} is gone since the cache was made", a.path));
            }
            (Some(a), None) => {
                return Some(format!("{} is gone since the cache was made", a.path));
            }
            (_, Some(b)) => return Some(format!("{} is new since the cache was made", b.path)),
        }
    }
}

/// The `.npy` header of an n x m array of `dtype`, padded to [`HEADER_BYTES`].
fn header(dtype: Dtype, n: usize, m: usize) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({n}, {m}), }}",
        dtype.descr()
    );
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    let len = HEADER_BYTES - 10;
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(format!("{dict:<width$}\n", width = len - 1).as_bytes());
    debug_assert_eq!(out.len(), HEADER_BYTES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conversion a streamed fit runs on every block makes the loader's values to the bit,
    /// in both precisions, on the vector path this CPU takes and on the plain one.
    #[test]
    fn eight_bit_values_convert_to_the_bits_the_loader_makes() {
        fn check<T: Float>() {
            // Every value, at every position within a vector and in a ragged tail.
            let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
            let expected: Vec<T> = bytes
                .iter()
                .map(|&b| T::from_f64(Dtype::U8.decode(&[b])))
                .collect();
            let mut fast = vec![T::zero(); bytes.len()];
            convert_u8(&bytes, &mut fast);
            let mut plain = vec![T::zero(); bytes.len()];
            divide_u8(&bytes, &mut plain);
            for (i, ((e, f), p)) in expected.iter().zip(&fast).zip(&plain).enumerate() {
                assert!(
                    e == f && e == p,
                    "{} byte {}: {e} {f} {p}",
                    T::NAME,
                    bytes[i]
                );
            }
        }
        check::<f32>();
        check::<f64>();
    }

    /// Blocks are read with `pread`; where the file cannot be read, through the map: the same
    /// values either way, for 8-bit and 16-bit caches, whole and in pieces of several reads.
    #[test]
    fn a_block_read_through_the_map_when_the_file_cannot_be_read_is_the_same() {
        let tmp = tempfile::tempdir().unwrap();
        for (k, depth) in [8u32, 16].into_iter().enumerate() {
            let folder = tmp.path().join(format!("faces{k}"));
            std::fs::create_dir_all(&folder).unwrap();
            // 300 x 250 images: more than one 64 Ki-value piece each.
            for i in 0..3u32 {
                let value = |x: u32, y: u32| (x * 37 + y * 11 + i * 53) % 256;
                let path = folder.join(format!("f{i}.png"));
                if depth == 8 {
                    let img = image::GrayImage::from_fn(300, 250, |x, y| {
                        image::Luma([value(x, y) as u8])
                    });
                    img.save(path).unwrap();
                } else {
                    let img = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(
                        300,
                        250,
                        |x, y| image::Luma([(value(x, y) * 257 + 3) as u16]),
                    );
                    img.save(path).unwrap();
                }
            }
            let loader = Loader::new(&folder);
            let cache = tmp.path().join(format!("cache{k}"));
            let (mut images, _) = loader.open_cache(&cache, |_| {}).unwrap();
            let expected = loader.load::<f32>().unwrap().x;
            let read = |images: &CachedImages| {
                let mut out = Array2::<f32>::zeros((2, images.pixels()));
                ColumnBlocks::read(images, 1, out.view_mut());
                out
            };
            let by_pread = read(&images);
            assert_eq!(by_pread.t(), expected.slice(ndarray::s![.., 1..3]));
            // A handle opened for writing only: every `pread` fails.
            images.file = std::fs::OpenOptions::new()
                .write(true)
                .open(cache.join(CACHE_IMAGES))
                .unwrap();
            assert!(read_at(&images.file, &mut [0u8; 4], 0).is_err());
            assert_eq!(read(&images), by_pread, "{depth}-bit");
        }
    }
}
