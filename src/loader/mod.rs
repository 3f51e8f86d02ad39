//! Stage 1: a folder of face images in, the data matrix X out.
//!
//! Files are found recursively and ordered by their path relative to the folder, compared as
//! plain strings with `/` separators (the order the comparison script `benches/compare/sklearn_nmf.py` uses), so that
//! column j of X is the same image in facenmf and in a scikit-learn script. Formats are
//! recognised by content, so files without an extension load too. Hidden files and folders
//! (names starting with `.`) are ignored; files whose content is not an image are skipped and
//! listed.
//!
//! Each image becomes one **column** of X (m pixels x n images), pixels in row-major order
//! (index = y * width + x), converted to grayscale as Pillow's `convert('L')` does
//! (ITU-R 601-2 luma) and scaled to [0, 1] (8-bit: /255, 16-bit: /65535).

use std::path::{Path, PathBuf};

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Limits, Luma, imageops::FilterType};
use ndarray::Array2;
use rayon::prelude::*;
use walkdir::WalkDir;

use crate::{Error, Float, Result};

mod cache;

pub use cache::{CACHE_IMAGES, CACHE_MANIFEST, CacheState, CachedImages, LoadProgress};

/// Loads a folder of images into a data matrix; see the [module docs](self).
///
/// ```no_run
/// let faces = facenmf::Loader::new("faces/").resize(32, 32).load::<f32>()?;
/// println!("{} images of {}x{}", faces.x.ncols(), faces.width, faces.height);
/// # Ok::<(), facenmf::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Loader {
    dir: PathBuf,
    resize: Option<(u32, u32)>,
    skip_unreadable: bool,
    max_pixels: u64,
    exclude: Vec<PathBuf>,
    preprocess: Preprocess,
}

/// The default limit on the pixels of one image: 64 megapixels (8192 x 8192), far above any
/// face set and far below what would exhaust memory.
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 26;

/// The images of a folder as a data matrix.
#[derive(Debug, Clone)]
pub struct Faces<T> {
    /// X, m x n: one image per column, pixels row-major, values in [0, 1].
    pub x: Array2<T>,
    /// The folder the images were loaded from.
    pub root: PathBuf,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Path of the image in each column, relative to the folder.
    pub paths: Vec<PathBuf>,
    /// Files that were left out, with the reason.
    pub skipped: Vec<Skipped>,
    /// What was done to each image after decoding.
    pub preprocess: Preprocess,
}

/// What is done to each image (column of X) after decoding, before any fit; recorded in
/// run.json as `none` or `lee-seung`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Preprocess {
    /// Nothing: grayscale values in [0, 1] as decoded.
    #[default]
    None,
    /// Lee & Seung's (Nature 401, 1999, Methods): each image's pixels linearly scaled to mean
    /// 0.25 and standard deviation 0.25 (over its pixels, population standard deviation), then
    /// clipped to [0, 1]. A constant image has no spread to scale: all its pixels become 0.25.
    LeeSeung,
}

/// Lee & Seung's target mean and standard deviation of every image.
const LEE_SEUNG_MOMENT: f64 = 0.25;

impl Preprocess {
    /// Applies this preprocessing to every column of `x` in place.
    pub fn apply<T: Float>(self, x: &mut Array2<T>) {
        self.apply_along(&mut x.view_mut(), ndarray::Axis(1));
    }

    /// Applies this preprocessing to every row of `images` (one image per row) in place.
    pub fn apply_rows<T: Float>(self, mut images: ndarray::ArrayViewMut2<'_, T>) {
        self.apply_along(&mut images, ndarray::Axis(0));
    }

    /// Each image is a lane along `axis`.
    fn apply_along<T: Float>(self, x: &mut ndarray::ArrayViewMut2<'_, T>, axis: ndarray::Axis) {
        match self {
            Preprocess::None => {}
            Preprocess::LeeSeung => x
                .axis_iter_mut(axis)
                .into_par_iter()
                .for_each(|image| lee_seung(image)),
        }
    }
}

/// One image to mean and standard deviation 0.25, clipped to [0, 1].
fn lee_seung<T: Float>(mut image: ndarray::ArrayViewMut1<'_, T>) {
    let len = image.len() as f64;
    let mean = image.iter().map(|v| v.to_f64()).sum::<f64>() / len;
    let var = image
        .iter()
        .map(|v| (v.to_f64() - mean).powi(2))
        .sum::<f64>()
        / len;
    // Asked exactly: the rounded mean of a constant image need not equal its pixels, and its
    // tiny "spread" would scale rounding to [0, 1].
    let first = image[0];
    let constant = image.iter().all(|&v| v == first);
    let scale = if constant {
        0.0
    } else {
        LEE_SEUNG_MOMENT / var.sqrt()
    };
    image.mapv_inplace(|v| {
        let y = (v.to_f64() - mean) * scale + LEE_SEUNG_MOMENT;
        T::from_f64(y.clamp(0.0, 1.0))
    });
}

impl std::fmt::Display for Preprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preprocess::None => "none",
            Preprocess::LeeSeung => "lee-seung",
        })
    }
}

impl std::str::FromStr for Preprocess {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Preprocess::None),
            "lee-seung" | "lee_seung" => Ok(Preprocess::LeeSeung),
            _ => Err(Error::param(
                "preprocess",
                format!("unknown preprocessing '{s}' (expected none or lee-seung)"),
            )),
        }
    }
}

impl<T: Float> Faces<T> {
    /// The name of the image in column `j`: its path relative to [`Faces::root`] with `/`
    /// separators, the key of the column order.
    ///
    /// # Panics
    /// If `j` is not a column of X.
    pub fn name(&self, j: usize) -> String {
        slash_string(&self.paths[j])
    }

    /// The known entries of X from a folder of masks at the same relative paths as the faces:
    /// a mask pixel above 0 marks the face's pixel known, 0 unknown (an occlusion, missing
    /// data). Masks load as faces do, so any image format works.
    ///
    /// # Errors
    /// The mask folder cannot be loaded, its images are not the faces' size, or a face has no
    /// mask.
    pub fn known_from_masks(&self, dir: &Path) -> Result<Array2<bool>> {
        let masks: Faces<f32> = Loader::new(dir).load()?;
        if (masks.height, masks.width) != (self.height, self.width) {
            return Err(Error::Mask {
                path: dir.to_path_buf(),
                reason: format!(
                    "masks are {}x{} but the faces are {}x{}",
                    masks.width, masks.height, self.width, self.height
                ),
            });
        }
        let column: std::collections::HashMap<&Path, usize> = masks
            .paths
            .iter()
            .enumerate()
            .map(|(j, p)| (p.as_path(), j))
            .collect();
        let mut known = Array2::from_elem(self.x.dim(), true);
        for (j, face) in self.paths.iter().enumerate() {
            let Some(&k) = column.get(face.as_path()) else {
                return Err(Error::Mask {
                    path: dir.join(face),
                    reason: format!("no mask for face {}", face.display()),
                });
            };
            known
                .column_mut(j)
                .zip_mut_with(&masks.x.column(k), |known, &m| *known = m > 0.0);
        }
        Ok(known)
    }
}

impl Skipped {
    /// The file's path relative to the folder, with `/` separators.
    pub fn name(&self) -> String {
        slash_string(&self.path)
    }
}

/// A file the loader left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to the folder.
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// Why a file was left out of X.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Its content is not an image format facenmf recognises.
    NotAnImage,
    /// It could not be read, or looked like an image but could not be decoded or is above the
    /// pixel limit (only with `skip_unreadable`).
    Unreadable(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::NotAnImage => f.write_str("not an image"),
            SkipReason::Unreadable(why) => write!(f, "unreadable: {why}"),
        }
    }
}

/// One decoded image, grayscale, row-major.
struct Gray<T> {
    width: u32,
    height: u32,
    pixels: Vec<T>,
}

/// A file whose header was read: its bytes, format and size.
/// A folder's images in column order, from [`Loader::list`].
#[derive(Debug, Clone)]
pub struct Listing {
    /// The folder listed.
    pub root: PathBuf,
    /// Each image's path relative to the folder: column j of X is `paths[j]`.
    pub paths: Vec<PathBuf>,
    /// Files left out, with the reason, sorted by path.
    pub skipped: Vec<Skipped>,
    /// Image width in pixels (after resizing, if asked).
    pub width: usize,
    /// Image height in pixels (after resizing, if asked).
    pub height: usize,
}

struct Header {
    bytes: Vec<u8>,
    format: ImageFormat,
    width: u32,
    height: u32,
}

enum Probe {
    Image(Header),
    Skip(SkipReason),
}

enum Outcome<T> {
    Image(PathBuf, Gray<T>),
    Skip(PathBuf, SkipReason),
}

impl Loader {
    /// A loader for `dir`. By default images must all have one size and an undecodable image is
    /// an error.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Loader {
            dir: dir.into(),
            resize: None,
            skip_unreadable: false,
            max_pixels: DEFAULT_MAX_PIXELS,
            exclude: Vec::new(),
            preprocess: Preprocess::None,
        }
    }

    /// What to do to each image after decoding (see [`Preprocess`]). Default: nothing.
    pub fn preprocess(mut self, preprocess: Preprocess) -> Self {
        self.preprocess = preprocess;
        self
    }

    /// Resample every image to `width` x `height` (bilinear on grayscale values). Default: off,
    /// and images of different sizes are an error.
    pub fn resize(mut self, width: u32, height: u32) -> Self {
        self.resize = Some((width, height));
        self
    }

    /// Leave out images that cannot be decoded and list them in [`Faces::skipped`] instead of
    /// failing. Default: `false`.
    pub fn skip_unreadable(mut self, skip: bool) -> Self {
        self.skip_unreadable = skip;
        self
    }

    /// The most pixels one image may have. Sizes are read from each file's header before
    /// anything is decoded, so a file that claims more (a faked header, or a huge image) is
    /// refused without allocating for it. Default: [`DEFAULT_MAX_PIXELS`].
    pub fn max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// Leave the folder `dir` out of the walk, when it lies inside the image folder: an output
    /// folder, whose pictures are not faces. Default: nothing left out.
    pub fn exclude(mut self, dir: impl AsRef<Path>) -> Self {
        if let Ok(dir) = dir.as_ref().canonicalize() {
            self.exclude.push(dir);
        }
        self
    }

    /// Finds, decodes and stacks the images.
    ///
    /// Every file is first probed (its header only): sizes above [`Loader::max_pixels`] and,
    /// unless resizing, sizes that disagree are reported before anything large is decoded.
    /// Decoding is bounded by the same limit, and a decoder that fails in any way, a panic
    /// included, makes the file undecodable rather than ending the process.
    ///
    /// # Errors
    /// A missing folder, an unreadable, undecodable or oversized file (unless skipped), images of
    /// mixed sizes (unless resized), and a folder with fewer than two images.
    pub fn load<T: Float>(&self) -> Result<Faces<T>> {
        self.load_with(|_| {})
    }

    /// [`Loader::load`], calling `progress` as files are decoded (from the decoding threads,
    /// so it must be `Sync`: a progress bar, a counter).
    ///
    /// # Errors
    /// As [`Loader::load`].
    pub fn load_with<T: Float>(&self, progress: impl Fn(LoadProgress) + Sync) -> Result<Faces<T>> {
        self.check_settings()?;
        let (files, mut skipped) = list_files(&self.dir, self.skip_unreadable, &self.exclude)?;
        let probes: Vec<Result<Probe>> = files.par_iter().map(|rel| self.probe(rel)).collect();
        let mut found = Vec::with_capacity(files.len());
        for (rel, probe) in files.into_iter().zip(probes) {
            match probe? {
                Probe::Image(header) => found.push((rel, header)),
                Probe::Skip(reason) => skipped.push(Skipped { path: rel, reason }),
            }
        }
        if self.resize.is_none()
            && let Some((first_path, first)) = found.first()
            && let Some((path, odd)) = found
                .iter()
                .find(|(_, h)| (h.width, h.height) != (first.width, first.height))
        {
            return Err(Error::MixedSizes {
                first: self.dir.join(first_path),
                first_w: first.width,
                first_h: first.height,
                path: self.dir.join(path),
                found_w: odd.width,
                found_h: odd.height,
            });
        }
        let faces = self.decode_found(found, skipped, progress)?;
        self.enough_images(faces.x.ncols(), faces.skipped.len())?;
        Ok(faces)
    }

    /// A fit needs two images at least: none or one found is an error naming the folder.
    fn enough_images(&self, found: usize, skipped: usize) -> Result<()> {
        match found {
            0 => Err(Error::NoImages {
                path: self.dir.clone(),
                skipped,
            }),
            1 => Err(Error::OneImage {
                path: self.dir.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The images of the folder in column order, sized from their headers (nothing is
    /// decoded, and no more of a file is read than its header), and the files left out: what
    /// each process of a split fit lists before it loads its own images
    /// ([`Loader::load_listed`]).
    ///
    /// # Errors
    /// As [`Loader::load`], for what a header shows.
    pub fn list(&self) -> Result<Listing> {
        self.check_settings()?;
        let (files, mut skipped) = list_files(&self.dir, self.skip_unreadable, &self.exclude)?;
        let sizes: Vec<_> = files.par_iter().map(|rel| self.probe_size(rel)).collect();
        let mut paths = Vec::with_capacity(files.len());
        let mut first: Option<(usize, (u32, u32))> = None;
        for (rel, size) in files.into_iter().zip(sizes) {
            match size? {
                Ok(size) => {
                    match first {
                        None => first = Some((paths.len(), size)),
                        Some((at, first_size)) if self.resize.is_none() && size != first_size => {
                            return Err(Error::MixedSizes {
                                first: self.dir.join(&paths[at]),
                                first_w: first_size.0,
                                first_h: first_size.1,
                                path: self.dir.join(&rel),
                                found_w: size.0,
                                found_h: size.1,
                            });
                        }
                        Some(_) => {}
                    }
                    paths.push(rel);
                }
                Err(reason) => skipped.push(Skipped { path: rel, reason }),
            }
        }
        skipped.sort_by_cached_key(|s| slash_string(&s.path));
        self.enough_images(paths.len(), skipped.len())?;
        let (width, height) = self
            .resize
            .or(first.map(|(_, size)| size))
            .expect("two images were found");
        Ok(Listing {
            root: self.dir.clone(),
            paths,
            skipped,
            width: width as usize,
            height: height as usize,
        })
    }

    /// The images `columns` of `listing` (of this loader's folder), decoded in that order as
    /// the columns of X; [`Faces::skipped`] holds those of them that could not be decoded after
    /// all (with skipping on). Calls `progress` as [`Loader::load_with`] does.
    ///
    /// # Errors
    /// As [`Loader::load`] (but one image is enough); a column beyond the listing.
    pub fn load_listed<T: Float>(
        &self,
        listing: &Listing,
        columns: &[usize],
        progress: impl Fn(LoadProgress) + Sync,
    ) -> Result<Faces<T>> {
        self.check_settings()?;
        if let Some(&j) = columns.iter().find(|&&j| j >= listing.paths.len()) {
            return Err(Error::InvalidInput {
                reason: format!(
                    "image {j} was asked for, but {} lists {} images",
                    listing.root.display(),
                    listing.paths.len()
                ),
            });
        }
        let probes: Vec<Result<Probe>> = columns
            .par_iter()
            .map(|&j| self.probe(&listing.paths[j]))
            .collect();
        let mut found = Vec::with_capacity(columns.len());
        let mut skipped = Vec::new();
        for (&j, probe) in columns.iter().zip(probes) {
            let rel = listing.paths[j].clone();
            match probe? {
                Probe::Image(header) => found.push((rel, header)),
                Probe::Skip(reason) => skipped.push(Skipped { path: rel, reason }),
            }
        }
        self.decode_found(found, skipped, progress)
    }

    /// Decodes the files `found` (their headers read) into the columns of X, in order.
    fn decode_found<T: Float>(
        &self,
        found: Vec<(PathBuf, Header)>,
        mut skipped: Vec<Skipped>,
        progress: impl Fn(LoadProgress) + Sync,
    ) -> Result<Faces<T>> {
        let done = std::sync::atomic::AtomicUsize::new(0);
        let total = found.len();
        let outcomes: Vec<Result<Outcome<T>>> = found
            .par_iter()
            .map(|(rel, header)| {
                let outcome = self.decode_one(rel, header);
                let done = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(LoadProgress { done, total });
                outcome
            })
            .collect();
        drop(found);

        let mut images: Vec<(PathBuf, Gray<T>)> = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome? {
                Outcome::Image(rel, gray) => images.push((rel, gray)),
                Outcome::Skip(rel, reason) => skipped.push(Skipped { path: rel, reason }),
            }
        }
        skipped.sort_by_cached_key(|s| slash_string(&s.path));
        // Some of a folder's images (a process's share of a split fit) may be a single one.
        if images.is_empty() {
            return Err(Error::NoImages {
                path: self.dir.clone(),
                skipped: skipped.len(),
            });
        }

        let (first_path, first) = &images[0];
        let (width, height) = (first.width, first.height);
        // A file whose pixels disagree with its header.
        if let Some((path, odd)) = images
            .iter()
            .find(|(_, g)| g.width != width || g.height != height)
        {
            return Err(Error::MixedSizes {
                first: self.dir.join(first_path),
                first_w: width,
                first_h: height,
                path: self.dir.join(path),
                found_w: odd.width,
                found_h: odd.height,
            });
        }

        let m = width as usize * height as usize;
        let n = images.len();
        let mut x = Array2::<T>::zeros((m, n));
        // X is row-major, so an image is a strided column: fill X by blocks of rows in parallel
        // so that each thread writes contiguous memory.
        const BLOCK: usize = 64;
        x.axis_chunks_iter_mut(ndarray::Axis(0), BLOCK)
            .into_par_iter()
            .enumerate()
            .for_each(|(b, mut block)| {
                for (r, mut row) in block.rows_mut().into_iter().enumerate() {
                    let pixel = b * BLOCK + r;
                    for (v, (_, gray)) in row.iter_mut().zip(&images) {
                        *v = gray.pixels[pixel];
                    }
                }
            });
        self.preprocess.apply(&mut x);
        let paths = images.into_iter().map(|(p, _)| p).collect();
        Ok(Faces {
            x,
            root: self.dir.clone(),
            height: height as usize,
            width: width as usize,
            paths,
            skipped,
            preprocess: self.preprocess,
        })
    }

    /// Rejects settings no image could be loaded with, before any file is read.
    fn check_settings(&self) -> Result<()> {
        if let Some((w, h)) = self.resize {
            if w == 0 || h == 0 {
                return Err(Error::param(
                    "resize",
                    "width and height must be at least 1",
                ));
            }
            if u64::from(w) * u64::from(h) > self.max_pixels {
                return Err(Error::param(
                    "resize",
                    format!(
                        "{w}x{h} is {} pixels, above the limit of {} per image",
                        u64::from(w) * u64::from(h),
                        self.max_pixels
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads a file and its image header: its format and size, nothing decoded.
    fn probe(&self, rel: &Path) -> Result<Probe> {
        let path = self.dir.join(rel);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if self.skip_unreadable => {
                return Ok(Probe::Skip(SkipReason::Unreadable(e.to_string())));
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let Ok(format) = image::guess_format(&bytes) else {
            return Ok(Probe::Skip(SkipReason::NotAnImage));
        };
        let size = self.header(&path, || {
            image::ImageReader::with_format(Cursor::new(&bytes[..]), format)
        })?;
        Ok(match size {
            Ok((width, height)) => Probe::Image(Header {
                bytes,
                format,
                width,
                height,
            }),
            Err(reason) => Probe::Skip(reason),
        })
    }

    /// [`Loader::probe`] reading no more of the file than its header: the image's size, or why
    /// it is skipped.
    fn probe_size(&self, rel: &Path) -> Result<std::result::Result<(u32, u32), SkipReason>> {
        let path = self.dir.join(rel);
        let unreadable = |e: std::io::Error| {
            if self.skip_unreadable {
                Ok(Err(SkipReason::Unreadable(e.to_string())))
            } else {
                Err(Error::io(&path, e))
            }
        };
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) => return unreadable(e),
        };
        let reader =
            match image::ImageReader::new(std::io::BufReader::new(file)).with_guessed_format() {
                Ok(reader) => reader,
                Err(e) => return unreadable(e),
            };
        if reader.format().is_none() {
            return Ok(Err(SkipReason::NotAnImage));
        }
        self.header(&path, move || reader)
    }

    /// The size of the image `reader` gives (nothing decoded), within the loader's limits, or
    /// why it is skipped.
    fn header<R: std::io::BufRead + std::io::Seek>(
        &self,
        path: &Path,
        reader: impl FnOnce() -> image::ImageReader<R>,
    ) -> Result<std::result::Result<(u32, u32), SkipReason>> {
        let failed = |reason: String| {
            if self.skip_unreadable {
                Ok(Err(SkipReason::Unreadable(reason)))
            } else {
                Err(Error::Undecodable {
                    path: path.to_path_buf(),
                    reason,
                })
            }
        };
        let (width, height) = match contained(|| {
            let mut reader = reader();
            reader.limits(self.limits());
            reader.into_dimensions().map_err(|e| e.to_string())
        }) {
            Ok(size) => size,
            Err(reason) => return failed(reason),
        };
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels {
            if self.skip_unreadable {
                let reason = format!(
                    "image is {width}x{height}, above the limit of {} pixels",
                    self.max_pixels
                );
                return Ok(Err(SkipReason::Unreadable(reason)));
            }
            return Err(Error::TooLarge {
                path: path.to_path_buf(),
                width,
                height,
                max_pixels: self.max_pixels,
            });
        }
        Ok(Ok((width, height)))
    }

    fn decode_one<T: Float>(&self, rel: &Path, header: &Header) -> Result<Outcome<T>> {
        let decoded = contained(|| {
            let mut reader =
                image::ImageReader::with_format(Cursor::new(&header.bytes[..]), header.format);
            reader.limits(self.limits());
            reader.decode().map_err(|e| e.to_string())
        });
        let decoded = match decoded {
            Ok(img) => img,
            Err(reason) if self.skip_unreadable => {
                return Ok(Outcome::Skip(
                    rel.to_path_buf(),
                    SkipReason::Unreadable(reason),
                ));
            }
            Err(reason) => {
                return Err(Error::Undecodable {
                    path: self.dir.join(rel),
                    reason,
                });
            }
        };
        let mut gray = to_gray::<T>(&decoded);
        drop(decoded);
        if let Some((w, h)) = self.resize
            && (gray.width, gray.height) != (w, h)
        {
            gray = resample(&gray, w, h);
        }
        Ok(Outcome::Image(rel.to_path_buf(), gray))
    }

    /// The decoders' limits: no side above the pixel limit, and no more memory than the
    /// largest pixel format (four 32-bit channels) needs for an image at the limit.
    fn limits(&self) -> Limits {
        let side = u32::try_from(self.max_pixels).unwrap_or(u32::MAX);
        let mut limits = Limits::default();
        limits.max_image_width = Some(side);
        limits.max_image_height = Some(side);
        limits.max_alloc = Some(self.max_pixels.saturating_mul(16).max(1 << 20));
        limits
    }
}

/// Runs a decoder, turning a panic inside it into an error: no input file may end the process.
fn contained<R>(
    f: impl FnOnce() -> std::result::Result<R, String>,
) -> std::result::Result<R, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            Err(format!("the decoder failed ({what})"))
        }
    }
}

/// All regular, non-hidden files under `dir` outside the `exclude`d folders, relative to it,
/// in plain-string path order, and
/// (when `skip_unreadable`) the entries that could not be visited: permission denied, a
/// dangling link, a link loop, a name too long.
fn list_files(
    dir: &Path,
    skip_unreadable: bool,
    exclude: &[PathBuf],
) -> Result<(Vec<PathBuf>, Vec<Skipped>)> {
    if !dir.is_dir() {
        return Err(Error::NoSuchFolder {
            path: dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let walker = WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| {
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            let excluded = e.file_type().is_dir()
                && !exclude.is_empty()
                && e.path().canonicalize().is_ok_and(|p| exclude.contains(&p));
            e.depth() == 0 || !(hidden || excluded)
        });
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                if skip_unreadable && e.depth() > 0 {
                    let reason = e
                        .io_error()
                        .map_or_else(|| e.to_string(), |io| io.to_string());
                    skipped.push(Skipped {
                        path: rel,
                        reason: SkipReason::Unreadable(reason),
                    });
                    continue;
                }
                return Err(Error::io(path, e.into()));
            }
        };
        if entry.file_type().is_file() {
            let rel = entry
                .path()
                .strip_prefix(dir)
                .expect("walkdir yields paths under its root")
                .to_path_buf();
            files.push(rel);
        }
    }
    files.sort_by_cached_key(|p| slash_string(p));
    Ok((files, skipped))
}

/// The images' paths, relative to their folder, one per column of X, as whoever holds them
/// keeps them: a list of paths ([`Faces::paths`]) or one buffer ([`FileList`]).
pub trait ImagePaths: Sync + std::fmt::Debug {
    /// Number of images.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The path of image `j`.
    ///
    /// # Panics
    /// If `j` is not an image.
    fn path(&self, j: usize) -> &Path;
}

impl ImagePaths for [PathBuf] {
    fn len(&self) -> usize {
        <[PathBuf]>::len(self)
    }

    fn path(&self, j: usize) -> &Path {
        &self[j]
    }
}

impl ImagePaths for Vec<PathBuf> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn path(&self, j: usize) -> &Path {
        &self[j]
    }
}

/// Paths relative to a folder, one per image in column order, in one buffer: a streamed run
/// holds its folder's list for the whole run, and 200,000 names of 15 bytes are 4.6 MB here
/// against 11 MB as a `PathBuf` each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileList {
    text: String,
    /// Where each path ends in `text`.
    ends: Vec<usize>,
}

impl FileList {
    /// Number of paths.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Path `j`.
    ///
    /// # Panics
    /// If there is no path `j`.
    pub fn get(&self, j: usize) -> &Path {
        let start = if j == 0 { 0 } else { self.ends[j - 1] };
        Path::new(&self.text[start..self.ends[j]])
    }

    /// Every path, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Path> + '_ {
        (0..self.len()).map(|j| self.get(j))
    }

    /// Every path as its own `PathBuf`.
    pub fn to_vec(&self) -> Vec<PathBuf> {
        self.iter().map(Path::to_path_buf).collect()
    }
}

impl<S: AsRef<str>> FromIterator<S> for FileList {
    fn from_iter<I: IntoIterator<Item = S>>(paths: I) -> Self {
        let mut list = FileList::default();
        for path in paths {
            list.text.push_str(path.as_ref());
            list.ends.push(list.text.len());
        }
        list.text.shrink_to_fit();
        list.ends.shrink_to_fit();
        list
    }
}

/// Read from a list of strings one at a time: 200,000 of them are never held as `String`s.
impl<'de> serde::Deserialize<'de> for FileList {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Paths;
        impl<'de> serde::de::Visitor<'de> for Paths {
            type Value = FileList;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of paths")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<FileList, A::Error> {
                let mut list = FileList::default();
                while let Some(path) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    list.text.push_str(&path);
                    list.ends.push(list.text.len());
                }
                list.text.shrink_to_fit();
                list.ends.shrink_to_fit();
                Ok(list)
            }
        }
        deserializer.deserialize_seq(Paths)
    }
}

impl ImagePaths for FileList {
    fn len(&self) -> usize {
        FileList::len(self)
    }

    fn path(&self, j: usize) -> &Path {
        self.get(j)
    }
}

/// A relative path as a string with `/` separators, the sort key of the column order.
pub(crate) fn slash_string(path: &Path) -> String {
    let parts: Vec<_> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

/// Pillow's `convert('L')` luma for 8-bit RGB: (19595 R + 38470 G + 7471 B + 2^15) >> 16.
fn luma8(r: u8, g: u8, b: u8) -> u8 {
    ((19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 0x8000) >> 16) as u8
}

fn luma_f(r: f64, g: f64, b: f64) -> f64 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Grayscale in [0, 1]: 8-bit sources /255 (after Pillow's integer luma), 16-bit /65535.
fn to_gray<T: Float>(img: &DynamicImage) -> Gray<T> {
    let (width, height) = (img.width(), img.height());
    let s8 = |v: u8| T::from_f64(v as f64 / 255.0);
    let s16 = |v: f64| T::from_f64(v / 65535.0);
    let pixels: Vec<T> = match img {
        DynamicImage::ImageLuma8(b) => b.pixels().map(|p| s8(p.0[0])).collect(),
        DynamicImage::ImageLumaA8(b) => b.pixels().map(|p| s8(p.0[0])).collect(),
        DynamicImage::ImageRgb8(b) => b.pixels().map(|p| s8(luma8(p[0], p[1], p[2]))).collect(),
        DynamicImage::ImageRgba8(b) => b.pixels().map(|p| s8(luma8(p[0], p[1], p[2]))).collect(),
        DynamicImage::ImageLuma16(b) => b.pixels().map(|p| s16(p.0[0] as f64)).collect(),
        DynamicImage::ImageLumaA16(b) => b.pixels().map(|p| s16(p.0[0] as f64)).collect(),
        DynamicImage::ImageRgb16(b) => b
            .pixels()
            .map(|p| s16(luma_f(p[0] as f64, p[1] as f64, p[2] as f64)))
            .collect(),
        DynamicImage::ImageRgba16(b) => b
            .pixels()
            .map(|p| s16(luma_f(p[0] as f64, p[1] as f64, p[2] as f64)))
            .collect(),
        other => other
            .to_rgb32f()
            .pixels()
            .map(|p| T::from_f64(luma_f(p[0] as f64, p[1] as f64, p[2] as f64).clamp(0.0, 1.0)))
            .collect(),
    };
    Gray {
        width,
        height,
        pixels,
    }
}

/// Bilinear resampling of grayscale values (a triangle filter widened when shrinking, as
/// Pillow's `BILINEAR` does).
fn resample<T: Float>(gray: &Gray<T>, width: u32, height: u32) -> Gray<T> {
    let src: Vec<f32> = gray.pixels.iter().map(|v| v.to_f64() as f32).collect();
    let buf = ImageBuffer::<Luma<f32>, _>::from_raw(gray.width, gray.height, src)
        .expect("buffer length matches the image size");
    let out = image::imageops::resize(&buf, width, height, FilterType::Triangle);
    Gray {
        width,
        height,
        pixels: out
            .into_raw()
            .into_iter()
            .map(|v| T::from_f64(f64::from(v).clamp(0.0, 1.0)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list read from JSON one name at a time holds the names it was given, in order, as
    /// the paths a list of `PathBuf`s would hold (empty names and non-ASCII ones too).
    #[test]
    fn a_file_list_gives_back_each_path_it_was_made_of() {
        let names = ["s1/1.pgm", "", "é/ü.png", "face00001.pgm"];
        let json = serde_json::to_string(&names).unwrap();
        let read: FileList = serde_json::from_str(&json).unwrap();
        let collected: FileList = names.iter().collect();
        assert_eq!(read, collected);
        assert_eq!(read.len(), 4);
        let paths: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
        assert_eq!(read.to_vec(), paths);
        for (j, path) in paths.iter().enumerate() {
            assert_eq!(read.get(j), path.as_path());
            assert_eq!(ImagePaths::path(&read, j), ImagePaths::path(&paths, j));
        }
        assert!(FileList::default().is_empty());
    }
}
