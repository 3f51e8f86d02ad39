//! `learn` under `mpirun`: one fit split by columns over the processes the launcher started.
//!
//! Every process lists the folder (headers only), takes its contiguous share of the images
//! (whole groups of 32, [`Share::even_range`]), decodes only those (or reads them from the
//! decoded cache), and runs the split fit; process 0 gathers H and every face's error and
//! writes every output. Anything that goes wrong in one process before the fit ends every
//! process with that error ([`agree`]); the fit's own errors are the same in every process.
//!
//! Without the `mpi` feature [`Group`] has no value, so this is never reached; [`join`] then
//! only warns when an MPI launcher started this process.

use std::process::ExitCode;

use anyhow::Result;
#[cfg(feature = "mpi")]
use anyhow::bail;

use facenmf::Loader;
#[cfg(feature = "mpi")]
use facenmf::{Factorization, Float, Interrupt, nmf::Collective, render};

use crate::{LearnArgs, Signal};

/// The processes a fit is split over.
#[cfg(feature = "mpi")]
pub(crate) type Group = facenmf::mpi::Mpi;
/// The processes a fit is split over: none in a build without the `mpi` feature.
#[cfg(not(feature = "mpi"))]
pub(crate) enum Group {}

/// The group of the processes an MPI launcher started, if it started more than this one.
#[cfg(feature = "mpi")]
pub(crate) fn join() -> Result<Option<Group>> {
    if facenmf::mpi::launcher_size().is_none() {
        return Ok(None);
    }
    Ok(Some(facenmf::mpi::Mpi::init()?))
}

/// Without the feature there is no group; a launcher's trace is worth a warning, as each of
/// its processes is about to run the whole fit alone.
#[cfg(not(feature = "mpi"))]
pub(crate) fn join() -> Result<Option<Group>> {
    if let Some(size) = facenmf::mpi::launcher_size().filter(|&p| p > 1) {
        eprintln!(
            "warning: started by an MPI launcher with {size} processes, but this facenmf was \
             built without the mpi feature: each process runs the whole fit on its own and \
             they write the same output folder. Build with `cargo build --release --features \
             mpi` to split one fit over them."
        );
    }
    Ok(None)
}

/// `learn` split over `group`.
#[cfg(not(feature = "mpi"))]
#[allow(
    clippy::extra_unused_type_parameters,
    reason = "the mpi build's signature"
)]
pub(crate) fn learn<T>(
    _: &LearnArgs,
    group: &Group,
    _: &Loader,
    _: facenmf::Interrupt,
    _: &Signal,
) -> Result<ExitCode> {
    match *group {}
}

/// An error another process reports: this one exits with failure and says nothing, so that
/// each error is printed once, by process 0.
#[derive(Debug)]
pub(crate) struct ReportedByProcess0;

impl std::fmt::Display for ReportedByProcess0 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped; process 0 says why")
    }
}

impl std::error::Error for ReportedByProcess0 {}

/// `learn` split over `group`: see the module's documentation. Only process 0 reports an
/// error (every error is known to it: those before the fit are agreed, and the fit's are the
/// same everywhere).
#[cfg(feature = "mpi")]
pub(crate) fn learn<T: Float>(
    args: &LearnArgs,
    group: &Group,
    loader: &Loader,
    interrupt: Interrupt,
    signal: &Signal,
) -> Result<ExitCode> {
    let result = learn_split::<T>(args, group, loader, interrupt, signal);
    if group.rank() != 0 {
        return result.map_err(|_| ReportedByProcess0.into());
    }
    result
}

#[cfg(feature = "mpi")]
fn learn_split<T: Float>(
    args: &LearnArgs,
    group: &Group,
    loader: &Loader,
    interrupt: Interrupt,
    signal: &Signal,
) -> Result<ExitCode> {
    use anyhow::Context;
    use facenmf::nmf::{SHARE_GROUP, Share};

    let (me, size) = (group.rank(), group.size());
    let root = me == 0;
    let quiet = args.quiet || !root;
    let refused = [
        (args.runs > 1, "--runs"),
        (args.checkpoint_every.is_some(), "--checkpoint-every"),
        (args.resume.is_some(), "--resume"),
        (args.init_from.is_some(), "--init-from"),
        (args.mask.is_some(), "--mask"),
        (args.hide_fraction.is_some(), "--hide-fraction"),
    ];
    if let Some((_, flag)) = refused.iter().find(|(given, _)| *given) {
        bail!(
            "{flag} is not available in a fit split over MPI processes; run it in one process \
             (without mpirun)"
        );
    }
    if args.stream && args.cache.is_none() {
        bail!("--stream reads the images from --cache DIR; give one");
    }
    agree(
        group,
        if root {
            facenmf::render::prepare_output_dir(&args.out).map_err(Into::into)
        } else {
            Ok(())
        },
    )?;

    // The folder, as every process must see it: through the cache (process 0 builds or
    // refreshes it while the others wait), or listed from the image headers.
    let folder = match &args.cache {
        Some(cache) => {
            let built = root.then(|| crate::open_cache(loader, cache, quiet));
            let built = agree(group, built.transpose())?;
            let opened = match built {
                Some(images) => Ok(images),
                None => crate::open_cache(loader, cache, true),
            };
            Folder::Cached(agree(group, opened)?)
        }
        None => Folder::Listed(agree(
            group,
            loader
                .list()
                .with_context(|| format!("process {me} cannot list {}", args.dir().display())),
        )?),
    };
    let n = folder.paths().len();
    let counts = group.gather(&[n as f64]);
    if let Some((p, &other)) = counts.iter().enumerate().find(|(_, c)| **c as usize != n) {
        bail!(
            "process {p} finds {other} images in {} where process {me} finds {n}: every process \
             must see the same folder (on a cluster, a shared file system)",
            args.dir().display()
        );
    }
    if size > Share::most_processes(n) {
        bail!(
            "{size} processes for {n} images: a process needs at least {} images (whole groups, \
             so that the fit is the single process's); run with at most {} processes",
            SHARE_GROUP,
            Share::most_processes(n)
        );
    }
    let mine = Share::even_range(me, size, n);
    // Streamed, the images stay in the cache; else this process's columns of X.
    let x = if args.stream {
        None
    } else {
        let columns: Vec<usize> = mine.clone().collect();
        let local = folder.faces::<T>(loader, &columns, quiet).map(|f| f.x);
        Some(agree(group, local)?)
    };
    // A signal to any process while loading stops all of them.
    let mut raised = [f64::from(u8::from(interrupt.is_raised()))];
    group.sum(&mut raised);
    if raised[0] > 0.0 {
        if root {
            eprintln!("interrupted while loading; nothing was written");
        }
        return Ok(signal.exit_code());
    }
    let (height, width) = folder.shape();
    let m = height * width;
    if root && !quiet {
        eprintln!(
            "loaded {n} images of {width}x{height} from {} over {size} processes ({} to {} \
             each; X is {m} x {n})",
            args.dir().display(),
            (0..size)
                .map(|p| Share::even_range(p, size, n).len())
                .min()
                .unwrap_or(0),
            (0..size)
                .map(|p| Share::even_range(p, size, n).len())
                .max()
                .unwrap_or(0)
        );
    }
    let rank = args.rank.unwrap_or(crate::DEFAULT_RANK);
    let params = crate::learn_params(args, rank, (height, width), &interrupt)?;
    let bar = crate::iteration_bar(args, rank);
    if !root {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let share = Share {
        group,
        first: mine.start,
        total: n,
    };
    let progress = |it: &facenmf::Iteration| {
        bar.set_position(it.iter as u64);
        bar.set_message(format!("error {:.6}", it.rel_error));
    };
    let fit = match (&folder, &x) {
        (_, Some(x)) => params.fit_share(&x.view(), share, progress)?,
        (Folder::Cached(images), None) => {
            let window = Window {
                images,
                first: mine.start,
                count: mine.len(),
            };
            let width = args
                .block_images
                .unwrap_or(crate::STREAM_BLOCK_VALUES / m.max(1))
                .max(1);
            params.fit_blocks_share::<T>(&window, width, share, progress)?
        }
        (Folder::Listed(_), None) => unreachable!("--stream is refused without --cache"),
    };
    bar.finish_and_clear();

    // Process 0 gathers every face's error and H, a row at a time, and writes.
    let errors = match (&folder, &x) {
        (_, Some(x)) => facenmf::nmf::column_errors(&x.view(), &fit.w.view(), &fit.h.view()).0,
        (Folder::Cached(images), None) => {
            render::errors_by_blocks::<T>(images, mine.clone(), &fit.w.view(), &fit.h)
        }
        (Folder::Listed(_), None) => unreachable!("--stream is refused without --cache"),
    };
    let errors = group.gather_to_root(&errors);
    let rows: Vec<Option<Vec<f64>>> = fit
        .h
        .view()
        .rows()
        .into_iter()
        .map(|row| group.gather_to_root(&row.iter().map(|v| v.to_f64()).collect::<Vec<_>>()))
        .collect();
    // Every process stopped at the same iterate for the same reason.
    let interrupted = fit.stop == facenmf::Stop::Interrupted;
    if !root {
        return Ok(if interrupted {
            signal.exit_code()
        } else {
            ExitCode::SUCCESS
        });
    }
    let h = ndarray::Array2::from_shape_vec(
        (rank, n),
        rows.into_iter()
            .flat_map(|row| row.expect("process 0 gathers"))
            .map(T::from_f64)
            .collect(),
    )
    .expect("a row of H per component");
    let fit = Factorization { h: h.into(), ..fit };
    let shown = render::shown_columns(n, m);
    let faces = folder.faces::<T>(loader, &shown, quiet)?;
    let errors = errors.expect("process 0 gathers");
    let options = crate::output_options(args, rayon::current_num_threads(), size);
    let outputs = render::write_sampled_outputs(
        &args.out,
        &faces,
        shown,
        folder.paths(),
        errors,
        &fit,
        &options,
    )?;
    if let Some(e) = &outputs.report_error {
        eprintln!(
            "warning: the report could not be built ({e}); W.npy, H.npy and run.json are written"
        );
    }
    crate::summarise(args, (m, n), &fit, &outputs.paths);
    if interrupted {
        crate::say_interrupted(args, signal, &fit);
        return Ok(signal.exit_code());
    }
    Ok(ExitCode::SUCCESS)
}

/// `result` in every process: an error in any process ends every process, the failed one
/// with its own error and the others naming it.
#[cfg(feature = "mpi")]
fn agree<R>(group: &Group, result: Result<R>) -> Result<R> {
    let message = match &result {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    };
    let bytes: Vec<f64> = message.bytes().map(f64::from).collect();
    let lengths = group.gather(&[bytes.len() as f64]);
    let all = group.gather(&bytes);
    let result = result?;
    let mut at = 0;
    for (p, &len) in lengths.iter().enumerate() {
        let len = len as usize;
        if len > 0 {
            let text: Vec<u8> = all[at..at + len].iter().map(|&b| b as u8).collect();
            bail!(
                "process {p} of {}: {}",
                group.size(),
                String::from_utf8_lossy(&text)
            );
        }
        at += len;
    }
    Ok(result)
}

/// The images every process sees.
#[cfg(feature = "mpi")]
enum Folder {
    /// Listed from the headers; each process decodes its own.
    Listed(facenmf::Listing),
    /// The decoded cache, which each process maps.
    Cached(facenmf::loader::CachedImages),
}

#[cfg(feature = "mpi")]
impl Folder {
    /// Every image's path, in column order.
    fn paths(&self) -> &dyn facenmf::loader::ImagePaths {
        match self {
            Folder::Listed(l) => &l.paths,
            Folder::Cached(c) => &c.paths,
        }
    }

    /// (height, width) of every image.
    fn shape(&self) -> (usize, usize) {
        match self {
            Folder::Listed(l) => (l.height, l.width),
            Folder::Cached(c) => (c.height, c.width),
        }
    }

    /// Columns `columns` of X as faces, decoded or read from the cache; an image that cannot
    /// be decoded after all is an error, as the split is of the images listed.
    fn faces<T: Float>(
        &self,
        loader: &Loader,
        columns: &[usize],
        quiet: bool,
    ) -> Result<facenmf::Faces<T>> {
        match self {
            Folder::Listed(listing) => {
                let bar = crate::decoding_bar(quiet);
                let faces = loader.load_listed::<T>(listing, columns, crate::show_files(&bar))?;
                bar.finish_and_clear();
                if let Some(skipped) = faces.skipped.first() {
                    bail!(
                        "{} cannot be decoded ({}) though its header could: a split fit needs \
                         every listed image; fix or remove it",
                        listing.root.join(&skipped.path).display(),
                        skipped.reason
                    );
                }
                Ok(facenmf::Faces {
                    skipped: listing.skipped.clone(),
                    ..faces
                })
            }
            Folder::Cached(images) => Ok(images.select(columns)),
        }
    }
}

/// This process's columns of the decoded cache, as the engine reads them block by block.
#[cfg(feature = "mpi")]
#[derive(Debug)]
struct Window<'a> {
    images: &'a facenmf::loader::CachedImages,
    first: usize,
    count: usize,
}

#[cfg(feature = "mpi")]
impl<T: Float> facenmf::nmf::ColumnBlocks<T> for Window<'_> {
    fn pixels(&self) -> usize {
        self.images.pixels()
    }

    fn count(&self) -> usize {
        self.count
    }

    fn read(&self, first: usize, out: ndarray::ArrayViewMut2<'_, T>) {
        facenmf::nmf::ColumnBlocks::<T>::read(self.images, self.first + first, out);
    }
}
