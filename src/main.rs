//! The facenmf command line: parse, call the library, report. The only place that prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;

#[path = "cli/distributed.rs"]
mod distributed;

use facenmf::render::{Palette, TileScale};
use facenmf::{Faces, Factorization, Float, Init, Interrupt, Loader, Nmf, Solver, render, synth};

/// Learn the parts of faces: nonnegative matrix factorization of a folder of images, drawn as
/// PNG grids.
///
/// With no arguments, runs `learn` on the bundled demo set (assets/faces, rank 12) and writes
/// to output/.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Factorize the images of a folder and write W.npy, H.npy, run.json, report.html (every
    /// picture of the run on one self-contained page) and the report's pictures as PNG files.
    Learn(Box<LearnArgs>),
    /// Build report.html and its pictures again for an output folder of learn, from its
    /// run.json, W.npy and H.npy and the faces it was learned from (with another display, say).
    Report(ReportArgs),
    /// Project new faces onto the parts of a learned model (an output folder of learn): their
    /// coefficients H by nonnegative least squares with W fixed, written as H.npy, run.json,
    /// reconstructions.png and report.html.
    Project(ProjectArgs),
    /// Choose the rank by held-out error: for each rank and replicate, a fit with a random
    /// fraction of every face's pixels hidden (and some faces hidden whole), scored on what it
    /// never saw; writes rank.json, rank.png and report.html.
    Rank(RankArgs),
    /// Do the parts identify people? One subfolder per person: the first K images of each
    /// train NMF, both sets are projected onto its parts, and each test face takes the
    /// identity of its nearest training face; PCA (eigenfaces) and raw pixels beside it. Writes
    /// recognition.json, confusion.png and report.html.
    Recognize(RecognizeArgs),
    /// Generate the synthetic demo set (faces built from known parts, and the parts).
    Synth(SynthArgs),
}

#[derive(Debug, Args)]
struct RankArgs {
    /// Folder of images, searched recursively.
    dir: PathBuf,
    /// Ranks to try, comma-separated (for example 5,10,20,30,49).
    #[arg(long, value_delimiter = ',', required = true)]
    ranks: Vec<usize>,
    /// Fits per rank, each with its own hidden pixels and faces.
    #[arg(long, default_value_t = 3)]
    replicates: usize,
    /// Fraction of every training face's pixels hidden: the test entries.
    #[arg(long, default_value_t = 0.1)]
    holdout: f64,
    /// Fraction of the faces hidden whole, projected afterwards (0: none).
    #[arg(long, default_value_t = 0.2)]
    heldout_faces: f64,
    /// Update rule of the fits (as for learn).
    #[arg(long, default_value = "hals", value_parser = parse_solver)]
    solver: Solver,
    /// Most iterations of each fit.
    #[arg(long, default_value_t = 200)]
    max_iter: usize,
    /// Tolerance of each fit (as for learn).
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Seed of the hidden pixels and faces and of the fits.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Floating-point precision of the computation.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Resample every image to WIDTHxHEIGHT (needed when sizes differ).
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    resize: Option<(u32, u32)>,
    /// Preprocessing of every image after decoding: none, or lee-seung (each image scaled to
    /// pixel mean and standard deviation 0.25, then clipped to [0, 1], as in Lee & Seung 1999).
    #[arg(long, value_name = "none|lee-seung", default_value = "none", value_parser = parse_preprocess)]
    preprocess: facenmf::Preprocess,
    /// Leave out files that cannot be read or decoded (and list them) instead of stopping.
    #[arg(long)]
    skip_unreadable: bool,
    /// Output folder.
    #[arg(short, long, default_value = "rank")]
    out: PathBuf,
    /// Print only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct RecognizeArgs {
    /// Folder with one subfolder of faces per person (as ORL's s1 ... s40).
    dir: PathBuf,
    /// Number of parts.
    #[arg(short, long, default_value_t = DEFAULT_RANK)]
    rank: usize,
    /// The first K images of each person in natural order (2 before 10) train, the rest test.
    #[arg(
        long,
        value_name = "K",
        default_value_t = 5,
        conflicts_with = "train_fraction"
    )]
    train: usize,
    /// Instead of --train: this fraction of each person's images, drawn from --seed, trains.
    #[arg(long, value_name = "F")]
    train_fraction: Option<f64>,
    /// Hide part of every test face (eyes: a band over the eyes; mouth: a block over the
    /// mouth); it is projected with those pixels unknown.
    #[arg(long, value_name = "eyes|mouth", value_parser = parse_occlusion)]
    occlude: Option<facenmf::eval::Occlusion>,
    /// Solver of the NMF fit (see learn --solver).
    #[arg(long, default_value = "hals", value_parser = parse_solver)]
    solver: Solver,
    /// Most iterations of the fit.
    #[arg(long, default_value_t = 200)]
    max_iter: usize,
    /// Tolerance of the fit (see learn --tol).
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Seed of the fit and of --train-fraction.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// f32 or f64.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Resample every face to WIDTHxHEIGHT first.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    resize: Option<(u32, u32)>,
    /// Preprocessing of every image after decoding: none, or lee-seung (each image scaled to
    /// pixel mean and standard deviation 0.25, then clipped to [0, 1], as in Lee & Seung 1999).
    #[arg(long, value_name = "none|lee-seung", default_value = "none", value_parser = parse_preprocess)]
    preprocess: facenmf::Preprocess,
    /// Leave out files that cannot be read or decoded (and list them) instead of stopping.
    #[arg(long)]
    skip_unreadable: bool,
    /// Output folder.
    #[arg(short, long, default_value = "recognition")]
    out: PathBuf,
    /// Print only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The output folder of a learn run.
    out: PathBuf,
    /// The folder of faces the run was learned from, when it is no longer where run.json says.
    #[arg(long, value_name = "DIR")]
    faces: Option<PathBuf>,
    /// Tile scale in place of the recorded one (see learn --tile-scale); recorded in run.json.
    #[arg(long, value_name = "pNN|max", value_parser = parse_tile_scale)]
    tile_scale: Option<TileScale>,
    /// Display in place of the recorded one (see learn --display); recorded in run.json.
    #[arg(long, value_name = "gray|lee-seung", value_parser = parse_palette)]
    display: Option<Palette>,
    /// Print only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct ProjectArgs {
    /// The model: an output folder of learn (W.npy and run.json).
    model: PathBuf,
    /// Folder of faces to project, searched recursively, at the model's image size (they are
    /// preprocessed as the model's training faces were).
    faces: PathBuf,
    /// Output folder.
    #[arg(short, long, default_value = "projection")]
    out: PathBuf,
    /// Stop refining a face when its projected gradient, relative to the gradient at zero, is
    /// at most this (the KKT conditions of the least-squares problem).
    #[arg(long, default_value_t = facenmf::nmf::PROJECT_TOL)]
    tol: f64,
    /// Resample every face to WIDTHxHEIGHT first (the model's size, when the faces differ).
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    resize: Option<(u32, u32)>,
    /// Leave out files that cannot be read or decoded (and list them) instead of stopping.
    #[arg(long)]
    skip_unreadable: bool,
    /// Faces shown in reconstructions.png.
    #[arg(long, default_value_t = 16)]
    samples: usize,
    /// Print only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct LearnArgs {
    /// Folder of images, searched recursively (PGM/PNM, PNG, JPEG, GIF, BMP, TIFF, recognised
    /// by content).
    #[arg(required_unless_present = "resume")]
    dir: Option<PathBuf>,
    /// Number of parts (basis images) to learn.
    /// [default: 49, or the rank of --init-from's factors]
    #[arg(short, long)]
    rank: Option<usize>,
    /// Update rule: hals (accelerated HALS), cd (plain HALS, scikit-learn's cd; with --loss
    /// kl, coordinate descent for KL), mu
    /// (multiplicative updates), fpgm (fast projected gradient) or anls (alternating exact
    /// least squares, block principal pivoting).
    #[arg(long, default_value = "hals", value_parser = parse_solver)]
    solver: Solver,
    /// Extrapolate between iterations with restarts (Ang & Gillis 2019): on by default for
    /// hals (E-A-HALS), off for cd and mu (which then make the updates of scikit-learn's cd and mu).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    extrapolate: Option<bool>,
    /// Fit a smaller problem first and start from its parts (Gillis & Glineur 2012): with at
    /// least 24 images per part, every 2nd to 4th image (12 or more per part), then H for every
    /// image; otherwise the images at half resolution (and that at half again, while at least 16
    /// pixels per part remain), their parts interpolated back up. On by default for hals, off
    /// for the others.
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    multilevel: Option<bool>,
    /// Loss: fro (Frobenius), kl (Kullback-Leibler), is (Itakura-Saito) or beta:<b>; all but
    /// fro need --solver mu, and kl also runs with --solver cd (coordinate descent, several
    /// times faster than mu to the same divergence).
    #[arg(long, default_value = "fro", value_parser = parse_loss)]
    loss: facenmf::Loss,
    /// With a divergence (--loss other than fro): first fit the Frobenius loss for at most N
    /// iterations (E-A-HALS from the same init, stopping earlier at --tol) and start the
    /// divergence fit from there; 0 starts it from the init, as scikit-learn does [default: 30
    /// for --solver cd --loss kl, 0 for mu (scikit-learn's iterates)]
    #[arg(long, value_name = "N")]
    warm_start: Option<usize>,
    /// Scale every basis image to sum 1 after each W update, H left as it is: Lee & Seung's
    /// own KL algorithm (Nature 1999); needs --solver mu --loss kl.
    #[arg(long)]
    unit_sum_w: bool,
    /// Initialisation: nndsvda, nndsvd, nndsvdar, random or spa (successive projection).
    #[arg(long, default_value = "nndsvda", value_parser = parse_init)]
    init: Init,
    /// Start from DIR/W.npy (pixels x rank) and DIR/H.npy (rank x images), for example the
    /// output folder of an earlier run, instead of --init.
    #[arg(long, value_name = "DIR", conflicts_with = "init")]
    init_from: Option<PathBuf>,
    /// Most iterations to run.
    #[arg(long, default_value_t = 200)]
    max_iter: usize,
    /// Stop when the relative error falls by less than this fraction over 10 iterations
    /// (0: never).
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Stop after this many seconds (checked after each iteration).
    #[arg(long, value_name = "SECS")]
    max_time: Option<f64>,
    /// Seed of every random choice; same seed and threads give the same result.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Elastic-net weight on W (scikit-learn's alpha_H, same scaling: times the image count).
    #[arg(long, default_value_t = 0.0)]
    alpha_w: f64,
    /// Elastic-net weight on H (scikit-learn's alpha_W, same scaling: times the pixel count).
    #[arg(long, default_value_t = 0.0)]
    alpha_h: f64,
    /// Share of L1 in the elastic net: 0 = ridge (L2), 1 = lasso (L1).
    #[arg(long, default_value_t = 0.0)]
    l1_ratio: f64,
    /// Constrain each basis image to this Hoyer sparseness, 0..1 (Hoyer 2004; localised parts).
    #[arg(long, value_name = "S")]
    sparsity_w: Option<f64>,
    /// Constrain each component's coefficients (rows of H) to this Hoyer sparseness, 0..1.
    #[arg(long, value_name = "S")]
    sparsity_h: Option<f64>,
    /// Hide this fraction of the pixels (chosen from --seed) and fit the rest only; run.json
    /// then gives the error on the known and on the hidden pixels, for validation.
    #[arg(long, value_name = "P", conflicts_with = "mask")]
    hide_fraction: Option<f64>,
    /// Folder of masks, one per face at the same relative path: pixels that are zero in a mask
    /// are unknown in its face and left out of the fit (occlusions, missing data).
    #[arg(long, value_name = "DIR")]
    mask: Option<PathBuf>,
    /// Fit this many times from distinct seeds and keep the best (all errors go to run.json).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Worker threads (0: one per core; under mpirun, the cores divided among the processes on
    /// each machine).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Floating-point precision of the computation.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Resample every image to WIDTHxHEIGHT (needed when sizes differ).
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    resize: Option<(u32, u32)>,
    /// Preprocessing of every image after decoding: none, or lee-seung (each image scaled to
    /// pixel mean and standard deviation 0.25, then clipped to [0, 1], as in Lee & Seung 1999).
    #[arg(long, value_name = "none|lee-seung", default_value = "none", value_parser = parse_preprocess)]
    preprocess: facenmf::Preprocess,
    /// Leave out files that cannot be read or decoded, or are above --max-image-pixels (and
    /// list them) instead of stopping.
    #[arg(long)]
    skip_unreadable: bool,
    /// Refuse images with more pixels than this, read from their headers before decoding.
    #[arg(long, value_name = "N", default_value_t = facenmf::loader::DEFAULT_MAX_PIXELS)]
    max_image_pixels: u64,
    /// Keep the decoded images in this folder (images.npy and manifest.json) and read them
    /// from there on the next run instead of decoding every file; rebuilt, and said, when the
    /// image folder or the loading settings changed.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Fit without holding the images in memory: read them block by block from --cache every
    /// iteration (memory: W, H and one block). Same iterates as in memory, without the
    /// multilevel start; not with missing data, divergences, --sparsity-h, --runs or spa.
    #[arg(long, requires = "cache", conflicts_with_all = ["mask", "hide_fraction", "init_from"])]
    stream: bool,
    /// Images per block of a streamed fit [default: about 8 MB of pixels per block].
    #[arg(long, value_name = "N", requires = "stream", conflicts_with = "online")]
    block_images: Option<usize>,
    /// Learn online (Mairal et al. 2010; scikit-learn's MiniBatchNMF): update the parts after
    /// every batch of --batch-images faces, not once per pass over all of them, from sums over
    /// the batches seen (older ones weighted down by --forget). For the largest folders, where a
    /// few passes are all there is time for; --max-iter then counts passes, and the error is
    /// measured exactly after each. No extrapolation, multilevel start or checkpoints; not
    /// with missing data, penalties or sparseness constraints. With --stream a block is a
    /// batch.
    #[arg(long, conflicts_with_all = ["mask", "hide_fraction", "checkpoint_every", "resume"])]
    online: bool,
    /// Faces per batch of --online (rounded up to a multiple of 32).
    #[arg(long, value_name = "N", requires = "online", default_value_t = facenmf::nmf::DEFAULT_BATCH_IMAGES)]
    batch_images: usize,
    /// Share of a batch's weight in --online's sums left after one more pass, in (0, 1]
    /// (1: nothing forgotten).
    #[arg(long, value_name = "F", requires = "online", default_value_t = facenmf::nmf::DEFAULT_FORGET)]
    forget: f64,
    /// Output folder.
    #[arg(short, long, default_value = "output")]
    out: PathBuf,
    /// Faces shown in reconstructions.png.
    #[arg(long, default_value_t = 16)]
    samples: usize,
    /// How each basis image is scaled in the pictures: pNN maps the NNth percentile of its
    /// values to full brightness (a few bright pixels cannot darken the rest), max its largest.
    #[arg(long, value_name = "pNN|max", default_value = "p99", value_parser = parse_tile_scale)]
    tile_scale: TileScale,
    /// Colours of basis images: gray (white on black) or lee-seung (black on white, negative
    /// values of eigenfaces in red, as in Lee & Seung 1999).
    #[arg(long, value_name = "gray|lee-seung", default_value = "gray", value_parser = parse_palette)]
    display: Palette,
    /// Print only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
    /// Save the fit's state to OUT/checkpoint.facenmf every SECS seconds (atomically), for
    /// --resume after a crash. An interrupted run (SIGINT, SIGTERM, SIGHUP) leaves one anyway.
    #[arg(long, value_name = "SECS")]
    checkpoint_every: Option<f64>,
    /// Go on with the run whose output folder is OUT, from its checkpoint.facenmf, with the
    /// arguments it was started with; ends with the same result as the run that never
    /// stopped (at the same thread count).
    #[arg(long, value_name = "OUT", conflicts_with_all = ["dir", "rank", "init_from", "mask", "hide_fraction"])]
    resume: Option<PathBuf>,
}

impl LearnArgs {
    /// The image folder (given unless resuming, and set from the checkpoint then).
    fn dir(&self) -> &Path {
        self.dir
            .as_deref()
            .expect("an image folder unless resuming")
    }
}

/// `learn --resume` goes on with the command line the run was started with, whole (the
/// checkpoint is refused under other parameters): an option given beside it is an error that
/// says so, not a value quietly ignored. `--quiet` alone is taken.
fn resume_overrides(given: &clap::ArgMatches) -> Result<()> {
    let command = Cli::command();
    let learn = command
        .find_subcommand("learn")
        .expect("learn is a subcommand");
    let overrides: Vec<String> = learn
        .get_arguments()
        .filter(|arg| !matches!(arg.get_id().as_str(), "resume" | "quiet"))
        .filter(|arg| given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .map(|arg| match arg.get_long() {
            Some(long) => format!("--{long}"),
            None => arg.get_id().to_string().to_uppercase(),
        })
        .collect();
    if overrides.is_empty() {
        return Ok(());
    }
    bail!(
        "--resume goes on with the arguments the run was started with, so {} cannot be given \
         with it; to go on with other settings, start a new run from the last iterate: \
         facenmf learn DIR --init-from OUT",
        overrides.join(", ")
    )
}

/// What a checkpoint keeps of the command line, to rebuild the same run.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunContext {
    cwd: PathBuf,
    argv: Vec<String>,
}

/// The arguments of the run a checkpoint in `out` belongs to, and the checkpoint's bytes. The
/// working folder becomes the run's, so that its relative paths mean what they meant.
fn resumed_args(out: &Path) -> Result<(LearnArgs, Vec<u8>, String)> {
    let path = out.join(render::CHECKPOINT_FILE);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "cannot resume from {}: no checkpoint there (an interrupted run leaves one, and a \
             run with --checkpoint-every while it runs; a finished run has none)",
            out.display()
        )
    })?;
    let context = facenmf::nmf::checkpoint_context(&bytes)
        .with_context(|| format!("cannot resume from {}", path.display()))?;
    let run: RunContext = serde_json::from_str(&context)
        .with_context(|| format!("{}: not a checkpoint of the command line", path.display()))?;
    let out =
        std::fs::canonicalize(out).with_context(|| format!("cannot find {}", out.display()))?;
    std::env::set_current_dir(&run.cwd).with_context(|| {
        format!(
            "cannot resume: the run was started in {}, which is gone",
            run.cwd.display()
        )
    })?;
    let mut args = match Cli::try_parse_from(&run.argv)
        .with_context(|| format!("{}: its command line does not parse", path.display()))?
        .command
    {
        Some(Command::Learn(args)) => *args,
        None => demo_args(),
        Some(_) => bail!("{}: not a checkpoint of facenmf learn", path.display()),
    };
    args.out = out;
    args.resume = None;
    Ok((args, bytes, context))
}

#[derive(Debug, Args)]
struct SynthArgs {
    /// Which set: demo (the bundled faces, 12 parts), outlined (the demo faces with the head's
    /// outline in every face, 13 parts), swimmer (Donoho & Stodden: 256 images, a torso and 16
    /// limb positions; learn at rank 17) or bars (Foldiak: 12 x 12, 24 bars).
    #[arg(long, value_enum, default_value = "demo")]
    set: SynthSet,
    /// Output folder (faces/ and parts/ are made inside).
    #[arg(short, long, default_value = "assets")]
    out: PathBuf,
    /// Number of images (demo, outlined and bars; the swimmer always has 256).
    #[arg(long, default_value_t = 300)]
    count: usize,
    /// Seed of the random choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SynthSet {
    Demo,
    Outlined,
    Swimmer,
    Bars,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Precision {
    F32,
    F64,
}

fn parse_solver(s: &str) -> Result<Solver, String> {
    s.parse().map_err(|e: facenmf::Error| e.to_string())
}

fn parse_loss(s: &str) -> Result<facenmf::Loss, String> {
    s.parse().map_err(|e: facenmf::Error| e.to_string())
}

fn parse_preprocess(s: &str) -> Result<facenmf::Preprocess, String> {
    s.parse().map_err(|e: facenmf::Error| e.to_string())
}

fn parse_init(s: &str) -> Result<Init, String> {
    s.parse().map_err(|e: facenmf::Error| e.to_string())
}

fn parse_tile_scale(s: &str) -> Result<TileScale, String> {
    s.parse()
}

fn parse_palette(s: &str) -> Result<Palette, String> {
    s.parse()
}

fn parse_occlusion(s: &str) -> Result<facenmf::eval::Occlusion, String> {
    s.parse()
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("'{s}' is not on or off")),
    }
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT (for example 64x64)"))?;
    let parse = |v: &str| v.trim().parse::<u32>().ok().filter(|&v| v > 0);
    match (parse(w), parse(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("'{s}' is not WIDTHxHEIGHT with positive integers")),
    }
}

// Freed large buffers are kept for the next of their size: see `facenmf::alloc`.
#[global_allocator]
static ALLOCATOR: facenmf::alloc::Recycling = facenmf::alloc::Recycling;

fn main() -> ExitCode {
    facenmf::alloc::keep_freed_heap();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Some(Command::Learn(args)) => match matches.subcommand_matches("learn") {
            Some(given) if args.resume.is_some() => {
                resume_overrides(given).and_then(|()| learn(*args))
            }
            _ => learn(*args),
        },
        Some(Command::Synth(args)) => run_synth(&args).map(|()| ExitCode::SUCCESS),
        Some(Command::Report(args)) => run_report(&args).map(|()| ExitCode::SUCCESS),
        Some(Command::Recognize(args)) => run_recognize(&args).map(|()| ExitCode::SUCCESS),
        Some(Command::Project(args)) => run_project(&args).map(|()| ExitCode::SUCCESS),
        Some(Command::Rank(args)) => run_rank(&args).map(|()| ExitCode::SUCCESS),
        None => learn(demo_args()),
    };
    match result {
        Ok(code) => code,
        Err(err) if err.is::<distributed::ReportedByProcess0>() => ExitCode::FAILURE,
        Err(err) => {
            let mut lines = err.chain().map(in_cli_terms);
            eprintln!("error: {}", lines.next().unwrap_or_default());
            for cause in lines {
                eprintln!("caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A library error as a command-line user reads it: parameters by their flags, and the flag
/// that would get past the problem where there is one.
fn in_cli_terms(err: &(dyn std::error::Error + 'static)) -> String {
    let Some(err) = err.downcast_ref::<facenmf::Error>() else {
        return err.to_string();
    };
    match err {
        facenmf::Error::InvalidParameter { name, reason } => {
            format!("{}: {reason}", flag(name))
        }
        facenmf::Error::Undecodable { .. } => {
            format!("{err} (pass --skip-unreadable to leave such files out)")
        }
        facenmf::Error::MixedSizes { .. } => {
            format!("{err} (pass --resize WxH to resample them)")
        }
        facenmf::Error::NonFinite { .. } => format!("{err} (try --precision f64)"),
        facenmf::Error::TooLarge { .. } => {
            format!("{err} (raise --max-image-pixels, or --skip-unreadable to leave it out)")
        }
        _ => err.to_string(),
    }
}

/// The flag of a library parameter (the builder method's name).
fn flag(parameter: &str) -> String {
    match parameter {
        "rank" => "--rank".into(),
        "image_shape" => "image size".into(),
        "online" => "--online".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// `learn` on the bundled demo set at its true rank.
fn demo_args() -> LearnArgs {
    let local = Path::new("assets/faces");
    let dir = if local.is_dir() {
        local.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/faces")
    };
    let argv = ["facenmf".into(), "learn".into(), dir.into_os_string()];
    match Cli::parse_from(argv).command {
        Some(Command::Learn(mut args)) => {
            args.rank = Some(synth::parts().len());
            *args
        }
        _ => unreachable!("the demo command line is a learn command"),
    }
}

fn learn(mut args: LearnArgs) -> Result<ExitCode> {
    let mut resume = None;
    if let Some(out) = args.resume.clone() {
        let (original, bytes, context) = resumed_args(&out)?;
        let quiet = args.quiet || original.quiet;
        args = original;
        args.quiet = quiet;
        resume = Some((bytes, context));
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    if args.threads > cores {
        eprintln!(
            "warning: --threads {} is more than the {cores} cores here; the fit will run slower, \
             not faster (0 uses one thread per core)",
            args.threads
        );
    }
    // Under mpirun (and built with the mpi feature), one fit split over the processes; those
    // on one machine share its cores unless --threads says otherwise.
    let group = distributed::join()?;
    let group = group.as_ref();
    let threads = match (args.threads, group, facenmf::mpi::launcher_local_size()) {
        (0, Some(_), Some(local)) if local > 1 => (cores / local).max(1),
        (threads, _, _) => threads,
    };
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot start the worker threads")?;
    }
    // The products' one-time set-up and the first touch of the memory the fit's buffers will
    // take, large (`facenmf::alloc::reserve`) and small (`facenmf::alloc::touch_heaps`), run
    // beside the loading, not inside the first fit (see `facenmf::warm_up`); after the pool is
    // built, which they would otherwise build. A streamed fit keeps no freed memory, so nothing
    // is touched for it.
    let (reserve, heaps) = if args.stream {
        (0, 0)
    } else {
        (facenmf::alloc::KEPT_BYTES, facenmf::alloc::HEAP_BYTES)
    };
    std::thread::spawn(move || {
        facenmf::warm_up();
        facenmf::alloc::reserve(reserve);
        facenmf::alloc::touch_heaps(heaps);
    });
    match args.precision {
        Precision::F32 => learn_as::<f32>(&args, resume, group),
        Precision::F64 => learn_as::<f64>(&args, resume, group),
    }
}

fn learn_as<T: Float>(
    args: &LearnArgs,
    resume: Option<(Vec<u8>, String)>,
    group: Option<&distributed::Group>,
) -> Result<ExitCode> {
    let say = |line: String| {
        if !args.quiet {
            eprintln!("{line}");
        }
    };
    let interrupt = Interrupt::new();
    let signal = watch_signals(&interrupt)?;
    if let Some(group) = group {
        // Before anything one process alone could stop at: every early stop is agreed there.
        return distributed::learn::<T>(args, group, &learn_loader(args), interrupt, &signal);
    }
    // Before any work: an output folder that cannot take the outputs is found now, not after
    // the fit; and when it lies inside the image folder its pictures are not faces.
    render::prepare_output_dir(&args.out)?;
    if args.runs > 1 && (args.checkpoint_every.is_some() || resume.is_some()) {
        bail!("--checkpoint-every and --resume cover one run; they cannot be combined with --runs");
    }
    if let Some(secs) = args.checkpoint_every
        && !(secs.is_finite() && secs >= 0.0)
    {
        bail!("--checkpoint-every: {secs} is not a number of seconds");
    }
    let resume = match resume {
        Some((bytes, context)) => {
            let saved = facenmf::Checkpoint::<T>::from_bytes(&bytes)
                .with_context(|| format!("cannot resume from {}", args.out.display()))?;
            say(format!(
                "resuming after iteration {} (relative error {:.6}) in {}",
                saved.iteration(),
                saved.rel_error(),
                args.out.display()
            ));
            Some((saved, context))
        }
        None => None,
    };
    let loader = learn_loader(args);
    if args.stream {
        return learn_streamed::<T>(args, &loader, resume, interrupt, &signal);
    }
    let faces: Faces<T> = match &args.cache {
        Some(cache) => open_cache(&loader, cache, args.quiet)?.into_faces(),
        None => {
            let bar = decoding_bar(args.quiet);
            let faces = loader.load_with(show_files(&bar))?;
            bar.finish_and_clear();
            faces
        }
    };
    if interrupt.is_raised() {
        eprintln!("interrupted while loading; nothing was written");
        return Ok(signal.exit_code());
    }
    let (m, n) = faces.x.dim();
    say(format!(
        "loaded {n} images of {}x{} from {} (X is {m} x {n})",
        faces.width,
        faces.height,
        args.dir().display()
    ));
    report_skipped(&faces, args.quiet);

    let start = match &args.init_from {
        Some(dir) => {
            let w: Array2<T> = render::npy::read(&dir.join("W.npy"))?;
            let h: Array2<T> = render::npy::read(&dir.join("H.npy"))?;
            Some((w, h))
        }
        None => None,
    };
    let rank = match (args.rank, &start) {
        (Some(r), _) => r,
        (None, Some((w, _))) => w.ncols(),
        (None, None) => DEFAULT_RANK,
    };
    let params = learn_params(args, rank, (faces.height, faces.width), &interrupt)?;
    let bar = iteration_bar(args, rank);
    let mut run = 0;
    let report = |it: &facenmf::Iteration| {
        if it.iter == 0 {
            run += 1;
            if args.runs > 1 {
                bar.set_prefix(format!(
                    "{} rank {rank}, run {run}/{}",
                    args.solver, args.runs
                ));
            }
        }
        bar.set_position(it.iter as u64);
        bar.set_message(format!("error {:.6}", it.rel_error));
    };
    let known = match (args.hide_fraction, &args.mask) {
        (Some(p), _) if (0.0..1.0).contains(&p) => {
            Some(facenmf::nmf::random_mask(faces.x.dim(), p, args.seed))
        }
        (Some(p), _) => bail!("--hide-fraction: {p} must be in [0, 1)"),
        (None, Some(dir)) => Some(
            faces
                .known_from_masks(dir)
                .with_context(|| format!("cannot use the masks in {}", dir.display()))?,
        ),
        (None, None) => None,
    };
    if known.is_some() && (start.is_some() || args.runs > 1) {
        bail!("--hide-fraction and --mask cannot be combined with --init-from or --runs");
    }
    let fit_and_state = if args.runs > 1 {
        let fit = match &start {
            Some((w, h)) => params
                .fit_from(&faces.x.view(), &w.view(), &h.view(), report)
                .with_context(|| {
                    let dir = args.init_from.as_deref().unwrap_or(Path::new("."));
                    format!("cannot start from the factors in {}", dir.display())
                })?,
            None => params.fit_with(&faces.x.view(), report)?,
        };
        (fit, None)
    } else {
        // One run: checkpoints while it runs when asked, and its last state when interrupted.
        let start_views = start.as_ref().map(|(w, h)| (w.view(), h.view()));
        let known_view = known.as_ref().map(|k| k.view());
        let fitted = with_checkpointing(args, &bar, resume, |checkpointing| {
            params.fit_checkpointed(
                &faces.x.view(),
                start_views.as_ref().map(|(w, h)| (w, h)),
                known_view.as_ref(),
                report,
                checkpointing,
            )
        })?;
        match (&args.init_from, fitted) {
            (Some(dir), Err(e)) => Err(anyhow::Error::from(e).context(format!(
                "cannot start from the factors in {}",
                dir.display()
            )))?,
            (_, fitted) => fitted?,
        }
    };
    let (fit, last_state) = fit_and_state;
    bar.finish_and_clear();

    let threads = rayon::current_num_threads();
    let last_state = last_state.map(|s| s.to_bytes());
    let options = output_options(args, threads, 1);
    let outputs = render::write_outputs(&args.out, &faces, &fit, &options, last_state.as_deref())?;
    if let Some(e) = &outputs.report_error {
        eprintln!(
            "warning: the report could not be built ({e}); W.npy, H.npy and run.json are \
             written, and `facenmf report {}` tries again",
            args.out.display()
        );
    }
    summarise(args, faces.x.dim(), &fit, &outputs.paths);
    if interrupt.is_raised() {
        say_interrupted(args, &signal, &fit);
        if last_state.is_some() {
            eprintln!("go on with: facenmf learn --resume {}", args.out.display());
        }
        return Ok(signal.exit_code());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `fit` with `learn`'s checkpointing: saved into OUT every --checkpoint-every seconds
/// ([`CheckpointFile`]), going on from `resume` (a checkpoint and its run's context) if given,
/// else recording this run's working folder and command line, from which `--resume`
/// rebuilds it.
fn with_checkpointing<T: Float, R>(
    args: &LearnArgs,
    bar: &ProgressBar,
    resume: Option<(facenmf::Checkpoint<T>, String)>,
    fit: impl FnOnce(facenmf::Checkpointing<'_, T>) -> R,
) -> Result<R> {
    let (resume, context) = match resume {
        Some((saved, context)) => (Some(saved), context),
        None => {
            let run = RunContext {
                cwd: std::env::current_dir().context("cannot read the working folder")?,
                argv: std::env::args().collect(),
            };
            (
                None,
                serde_json::to_string(&run).expect("context serialises"),
            )
        }
    };
    let mut file = CheckpointFile::new(&args.out, bar);
    let mut save = |saved: &facenmf::Checkpoint<T>| file.save(saved);
    Ok(fit(facenmf::Checkpointing {
        every: args.checkpoint_every,
        save: &mut save,
        resume,
        context,
    }))
}

/// Where `learn` saves its checkpoints while it runs: OUT/checkpoint.facenmf, written
/// atomically. A checkpoint that cannot be written is said once, and the fit goes on.
struct CheckpointFile<'a> {
    out: &'a Path,
    bar: &'a ProgressBar,
    warned: bool,
}

impl<'a> CheckpointFile<'a> {
    fn new(out: &'a Path, bar: &'a ProgressBar) -> Self {
        CheckpointFile {
            out,
            bar,
            warned: false,
        }
    }

    fn save<T: Float>(&mut self, saved: &facenmf::Checkpoint<T>) {
        let written = std::fs::create_dir_all(self.out)
            .map_err(|e| facenmf::Error::Io {
                path: self.out.to_path_buf(),
                source: e,
            })
            .and_then(|()| {
                render::write_atomic(&self.out.join(render::CHECKPOINT_FILE), &saved.to_bytes())
            });
        if let Err(e) = written
            && !std::mem::replace(&mut self.warned, true)
        {
            self.bar.println(format!(
                "warning: cannot write the checkpoint ({e}); the fit goes on"
            ));
        }
    }
}

/// The loader `learn`'s arguments ask for.
fn learn_loader(args: &LearnArgs) -> Loader {
    let mut loader = Loader::new(args.dir())
        .skip_unreadable(args.skip_unreadable)
        .max_pixels(args.max_image_pixels)
        .preprocess(args.preprocess)
        .exclude(&args.out);
    if let Some((w, h)) = args.resize {
        loader = loader.resize(w, h);
    }
    loader
}

/// The fit's parameters from learn's arguments, for images of `height` x `width`.
fn learn_params(
    args: &LearnArgs,
    rank: usize,
    (height, width): (usize, usize),
    interrupt: &Interrupt,
) -> Result<Nmf> {
    let mut params = Nmf::params(rank)
        .solver(args.solver)
        .loss(args.loss)
        .init(args.init)
        .max_iter(args.max_iter)
        .tol(args.tol)
        .max_time(match args.max_time {
            Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => bail!("--max-time: {s} is not a number of seconds"),
            None => None,
        })
        .seed(args.seed)
        .runs(args.runs as usize)
        .alpha_w(args.alpha_w)
        .alpha_h(args.alpha_h)
        .l1_ratio(args.l1_ratio)
        .sparsity_w(args.sparsity_w)
        .sparsity_h(args.sparsity_h)
        .unit_sum_w(args.unit_sum_w)
        .online(
            args.online
                .then(|| facenmf::Online::new(args.batch_images).forget(args.forget)),
        )
        .image_shape(height, width)
        .interrupt(interrupt.clone());
    if let Some(on) = args.extrapolate {
        params = params.extrapolate(on);
    }
    if let Some(on) = args.multilevel {
        params = params.multilevel(on);
    }
    if let Some(iterations) = args.warm_start {
        params = params.warm_start(iterations);
    }
    Ok(params)
}

/// A progress bar in the house style, hidden when `quiet`.
fn progress_bar(quiet: bool, len: u64, template: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The bar of a fit's iterations.
fn iteration_bar(args: &LearnArgs, rank: usize) -> ProgressBar {
    // Online, an iteration is a pass over the images.
    let template = if args.online {
        "{prefix} [{bar:30}] {pos}/{len} passes, {msg} ({elapsed}, eta {eta})"
    } else {
        "{prefix} [{bar:30}] {pos}/{len} iterations, {msg} ({elapsed}, eta {eta})"
    };
    let bar = progress_bar(args.quiet, args.max_iter as u64, template);
    let online = if args.online { " online" } else { "" };
    bar.set_prefix(format!("{}{online} rank {rank}", args.solver));
    bar
}

/// Pixels per block of a streamed fit when --block-images is not given: about 8 MB of f32, so
/// that a block converted from the cache is still in the last-level cache when its two
/// products read it (README, "Folders larger than memory").
const STREAM_BLOCK_VALUES: usize = 2 << 20;

/// `learn --stream`: the images stay in the cache and are read block by block every
/// iteration; the outputs show a sample of them.
fn learn_streamed<T: Float>(
    args: &LearnArgs,
    loader: &Loader,
    resume: Option<(facenmf::Checkpoint<T>, String)>,
    interrupt: Interrupt,
    signal: &Signal,
) -> Result<ExitCode> {
    // A streamed fit's memory is the point: freed blocks go back to the system at once (the
    // pages a fresh buffer costs are a small share of a pass over the cache).
    facenmf::alloc::keep_at_most(0);
    let cache = args.cache.as_deref().expect("--stream requires --cache");
    let images = open_cache(loader, cache, args.quiet)?;
    if interrupt.is_raised() {
        eprintln!("interrupted while loading; nothing was written");
        return Ok(signal.exit_code());
    }
    let (m, n) = (images.pixels(), images.count());
    let rank = args.rank.unwrap_or(DEFAULT_RANK);
    // Online, a block is a batch.
    let width = if args.online {
        args.batch_images
    } else {
        args.block_images.unwrap_or(STREAM_BLOCK_VALUES / m.max(1))
    }
    .max(1);
    if !args.quiet {
        eprintln!(
            "streaming {n} images of {}x{} from {} in {} of {} (X is {m} x {n}, not held)",
            images.width,
            images.height,
            cache.display(),
            if args.online { "batches" } else { "blocks" },
            width.min(n)
        );
    }
    let params = learn_params(args, rank, (images.height, images.width), &interrupt)?;
    let bar = iteration_bar(args, rank);
    let progress = |it: &facenmf::Iteration| {
        bar.set_position(it.iter as u64);
        bar.set_message(format!("error {:.6}", it.rel_error));
    };
    let (fit, last_state) = with_checkpointing(args, &bar, resume, |checkpointing| {
        params.fit_blocks_checkpointed::<T>(&images, width, progress, checkpointing)
    })??;
    bar.finish_and_clear();
    let last_state = last_state.map(|s| s.to_bytes());
    let options = output_options(args, rayon::current_num_threads(), 1);
    let outputs =
        render::write_streamed_outputs(&args.out, &images, &fit, &options, last_state.as_deref())?;
    if let Some(e) = &outputs.report_error {
        eprintln!(
            "warning: the report could not be built ({e}); W.npy, H.npy and run.json are written"
        );
    }
    summarise(args, (m, n), &fit, &outputs.paths);
    if interrupt.is_raised() {
        say_interrupted(args, signal, &fit);
        if last_state.is_some() {
            eprintln!("go on with: facenmf learn --resume {}", args.out.display());
        }
        return Ok(signal.exit_code());
    }
    Ok(ExitCode::SUCCESS)
}

/// How `learn` writes its outputs, from its arguments.
fn output_options(args: &LearnArgs, threads: usize, processes: usize) -> render::OutputOptions {
    render::OutputOptions {
        samples: args.samples,
        threads,
        processes,
        look: render::Look {
            tile_scale: args.tile_scale,
            palette: args.display,
        },
        resize: args.resize,
    }
}

/// What an interrupted `learn` wrote.
fn say_interrupted<T: Float>(args: &LearnArgs, signal: &Signal, fit: &Factorization<T>) {
    eprintln!(
        "interrupted ({}): wrote the best iterate so far ({} iterations, relative error {:.6}) \
         to {}",
        signal.name(),
        fit.n_iter,
        fit.rel_error,
        args.out.display()
    );
}

/// Which signal stopped the run, if one did.
#[derive(Debug, Clone, Default)]
struct Signal(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Signal {
    /// The shell's convention, 128 + the signal number.
    fn exit_code(&self) -> ExitCode {
        let number = self.0.load(std::sync::atomic::Ordering::SeqCst);
        ExitCode::from(128u8.saturating_add(number as u8))
    }

    fn name(&self) -> &'static str {
        match self.0.load(std::sync::atomic::Ordering::SeqCst) {
            1 => "SIGHUP",
            2 => "SIGINT",
            15 => "SIGTERM",
            _ => "signal",
        }
    }
}

/// The first SIGINT, SIGTERM or SIGHUP raises `interrupt`: the fit finishes its iteration and
/// the best iterate is written. A second ends the process at once (128 + its number); the
/// outputs are swapped in as one set, so the folder then holds the previous run's files or
/// this one's, whole.
#[cfg(unix)]
fn watch_signals(interrupt: &Interrupt) -> Result<Signal> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let signal = Signal::default();
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // The shutdown check first: it sees the flag only from the second signal on.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, interrupt.flag())
            .and_then(|_| signal_hook::flag::register_usize(sig, signal.0.clone(), sig as usize))
            .and_then(|_| signal_hook::flag::register(sig, interrupt.flag()))
            .context("cannot watch for signals")?;
    }
    Ok(signal)
}

#[cfg(not(unix))]
fn watch_signals(_: &Interrupt) -> Result<Signal> {
    Ok(Signal::default())
}

/// Rank when neither --rank nor --init-from gives one.
const DEFAULT_RANK: usize = 49;

fn report_skipped<T>(faces: &Faces<T>, quiet: bool) {
    if faces.skipped.is_empty() {
        return;
    }
    eprintln!("skipped {} files:", faces.skipped.len());
    let shown = if quiet { 0 } else { 20 };
    for s in faces.skipped.iter().take(shown) {
        eprintln!("  {}: {}", s.path.display(), s.reason);
    }
    if faces.skipped.len() > shown && shown > 0 {
        eprintln!(
            "  ... and {} more (all listed in run.json)",
            faces.skipped.len() - shown
        );
    }
}

fn summarise<T: Float>(
    args: &LearnArgs,
    (m, n): (usize, usize),
    fit: &Factorization<T>,
    written: &[PathBuf],
) {
    for warning in &fit.warnings {
        eprintln!("warning: {warning}");
    }
    if args.tol > 0.0 && !fit.converged() && fit.stop != facenmf::Stop::Interrupted {
        eprintln!(
            "warning: stopped before the tolerance was met ({}); raise --max-iter or --max-time \
             for a tighter fit",
            fit.stop
        );
    }
    if args.quiet {
        return;
    }
    eprintln!(
        "{} images, X {m} x {n}, rank {}, {} / {} / {}",
        n,
        fit.w.ncols(),
        args.solver,
        fit.start,
        T::NAME
    );
    let unit = if args.online {
        "passes (online)"
    } else {
        "iterations"
    };
    eprintln!(
        "{} {unit} in {:.2} s ({}), relative error {:.6}",
        fit.n_iter, fit.seconds, fit.stop, fit.rel_error
    );
    if let Some(divergence) = fit.divergence {
        eprintln!("{} divergence {divergence:.6}", args.loss);
    }
    if let Some(hidden) = fit.hidden_error {
        eprintln!(
            "error on the hidden pixels {hidden:.6} (on the known ones {:.6})",
            fit.rel_error
        );
    }
    if fit.run_errors.len() > 1 {
        let all: Vec<String> = fit.run_errors.iter().map(|e| format!("{e:.6}")).collect();
        eprintln!(
            "best of {} runs (run {}): {}",
            all.len(),
            fit.best_run + 1,
            all.join(", ")
        );
    }
    say_written(written, &args.out);
}

/// The faces of `dir` for a command writing to `out` (checked first, and left out of the
/// faces), resampled to `resize` if given and preprocessed; skipped files are listed.
fn load_for<T: Float>(
    dir: &Path,
    out: &Path,
    resize: Option<(u32, u32)>,
    preprocess: facenmf::Preprocess,
    skip_unreadable: bool,
    quiet: bool,
) -> Result<Faces<T>> {
    render::prepare_output_dir(out)?;
    let mut loader = Loader::new(dir)
        .skip_unreadable(skip_unreadable)
        .preprocess(preprocess)
        .exclude(out);
    if let Some((w, h)) = resize {
        loader = loader.resize(w, h);
    }
    let faces = loader.load()?;
    report_skipped(&faces, quiet);
    Ok(faces)
}

/// The images of the decoded cache in `cache` (built first if missing or stale), with a bar
/// while files are decoded, saying whether the cache was read or (and why) built.
fn open_cache(loader: &Loader, cache: &Path, quiet: bool) -> Result<facenmf::loader::CachedImages> {
    let bar = decoding_bar(quiet);
    let started = std::time::Instant::now();
    let (images, state) = loader
        .open_cache(cache, show_files(&bar))
        .with_context(|| format!("cannot load through the cache in {}", cache.display()))?;
    bar.finish_and_clear();
    say_cache_state(&state, images.count(), cache, started, quiet);
    return_freed_memory();
    Ok(images)
}

/// Gives back to the system the memory malloc keeps after a phase that made and freed many
/// small allocations: opening a cache of 200,000 files (the folder's walk, the manifest's
/// names) left 15 MB free in glibc's arenas, held for the rest of the run (heaptrack and
/// `mallinfo2`; 2.8 MB at 50,000 files). Peak RSS of a streamed 200,000-face fit fell from
/// 156 to 143 MB.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A loader's progress on `bar`.
fn show_files(bar: &ProgressBar) -> impl Fn(facenmf::loader::LoadProgress) + Sync + '_ {
    |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    }
}

/// The bar of files decoded.
fn decoding_bar(quiet: bool) -> ProgressBar {
    progress_bar(
        quiet,
        0,
        "decoding [{bar:30}] {pos}/{len} files ({per_sec}, eta {eta})",
    )
}

/// Whether the cache was read or (and why) built.
fn say_cache_state(
    state: &facenmf::loader::CacheState,
    images: usize,
    cache: &Path,
    started: std::time::Instant,
    quiet: bool,
) {
    if quiet {
        return;
    }
    let seconds = started.elapsed().as_secs_f64();
    match state {
        facenmf::loader::CacheState::Hit => eprintln!(
            "read {images} decoded images from the cache in {} ({seconds:.2} s)",
            cache.display()
        ),
        facenmf::loader::CacheState::Built { reason } => eprintln!(
            "decoded {images} images into the cache in {} ({reason}; {seconds:.2} s)",
            cache.display()
        ),
        _ => {}
    }
}

/// "wrote a, b, c to OUT" for the files a command wrote.
fn say_written(written: &[PathBuf], out: &Path) {
    let names: Vec<_> = written
        .iter()
        .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .collect();
    eprintln!("wrote {} to {}", names.join(", "), out.display());
}

fn run_recognize(args: &RecognizeArgs) -> Result<()> {
    match args.precision {
        Precision::F32 => recognize_as::<f32>(args),
        Precision::F64 => recognize_as::<f64>(args),
    }
}

fn recognize_as<T: Float>(args: &RecognizeArgs) -> Result<()> {
    let faces: Faces<T> = load_for(
        &args.dir,
        &args.out,
        args.resize,
        args.preprocess,
        args.skip_unreadable,
        args.quiet,
    )?;
    let split = match args.train_fraction {
        Some(f) if f > 0.0 && f < 1.0 => facenmf::eval::Split::Fraction(f),
        Some(f) => bail!("--train-fraction: {f} must be between 0 and 1"),
        None if args.train == 0 => bail!("--train: 0 leaves nothing to train on"),
        None => facenmf::eval::Split::First(args.train),
    };
    let params = Nmf::params(args.rank)
        .solver(args.solver)
        .max_iter(args.max_iter)
        .tol(args.tol)
        .seed(args.seed)
        .image_shape(faces.height, faces.width);
    let study = facenmf::eval::Recognition {
        split,
        occlusion: args.occlude,
        seed: args.seed,
    };
    let bar = progress_bar(
        args.quiet,
        args.max_iter as u64,
        "fitting the training faces [{bar:30}] {pos}/{len} iterations, {msg}",
    );
    let started = std::time::Instant::now();
    let report = study.run(&faces, &params, |it| {
        bar.set_position(it.iter as u64);
        bar.set_message(format!("error {:.6}", it.rel_error));
    })?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let written = render::write_recognition(&args.out, &faces, &study, &report, &params, seconds)?;
    if !args.quiet {
        eprintln!(
            "{} people, {} faces trained and {} tested{} at rank {} ({:.2} s):",
            report.people.len(),
            report.train.len(),
            report.test.len(),
            match args.occlude {
                Some(o) => format!(", {o} hidden"),
                None => String::new(),
            },
            report.rank,
            seconds
        );
        for score in &report.scores {
            eprintln!(
                "  {:<7} {:<10} {:5.1}% ({}/{})",
                score.method,
                score.distance,
                100.0 * score.accuracy,
                score.correct,
                report.test.len()
            );
        }
        say_written(&written, &args.out);
    }
    Ok(())
}

fn run_report(args: &ReportArgs) -> Result<()> {
    let run = render::read_run(&args.out)?;
    match run.precision.as_str() {
        "f64" => report_as::<f64>(args, run),
        _ => report_as::<f32>(args, run),
    }
}

fn report_as<T: Float>(args: &ReportArgs, run: render::RunSummary) -> Result<()> {
    let folder = args
        .faces
        .clone()
        .unwrap_or_else(|| PathBuf::from(&run.folder));
    if !folder.is_dir() {
        bail!(
            "{}: the faces of the run in {} are not there (run.json records the folder as learn \
             was given it); run report from the folder learn ran in, or give --faces DIR",
            folder.display(),
            args.out.display()
        );
    }
    let mut loader = Loader::new(&folder)
        .skip_unreadable(!run.skipped.is_empty())
        .preprocess(run.preprocess)
        .exclude(&args.out);
    if let Some([w, h]) = run.resize {
        loader = loader.resize(w, h);
    }
    let faces: Faces<T> = loader
        .load()
        .with_context(|| format!("cannot load the faces of the run in {}", args.out.display()))?;
    let look = (args.tile_scale.is_some() || args.display.is_some()).then(|| render::Look {
        tile_scale: args.tile_scale.unwrap_or(run.display.tile_scale),
        palette: args.display.unwrap_or(run.display.palette),
    });
    let started = std::time::Instant::now();
    let written = render::rebuild_report(&args.out, &faces, look)?;
    if !args.quiet {
        eprintln!(
            "rebuilt the report of {} faces at rank {} in {:.2} s",
            run.images,
            run.rank,
            started.elapsed().as_secs_f64()
        );
        say_written(&written, &args.out);
    }
    Ok(())
}

fn run_project(args: &ProjectArgs) -> Result<()> {
    let precision = facenmf::model::model_precision(&args.model)
        .with_context(|| format!("cannot use {} as a model", args.model.display()))?;
    match precision.as_str() {
        "f64" => project_as::<f64>(args),
        _ => project_as::<f32>(args),
    }
}

fn project_as<T: Float>(args: &ProjectArgs) -> Result<()> {
    let model = facenmf::Model::<T>::load(&args.model)
        .with_context(|| format!("cannot use {} as a model", args.model.display()))?;
    let faces: Faces<T> = load_for(
        &args.faces,
        &args.out,
        args.resize,
        model.preprocess,
        args.skip_unreadable,
        args.quiet,
    )?;
    let started = std::time::Instant::now();
    let projection = model.project(&faces, args.tol)?;
    let seconds = started.elapsed().as_secs_f64();
    let written = render::write_projection(
        &args.out,
        &faces,
        &model,
        &projection,
        args.samples,
        seconds,
    )?;
    if !args.quiet {
        eprintln!(
            "projected {} faces of {}x{} onto the {} parts of {} in {:.3} s: relative error {:.6}, \
             KKT measure {:.1e} (tolerance {:.1e}; {} faces refined)",
            faces.x.ncols(),
            faces.width,
            faces.height,
            model.rank(),
            args.model.display(),
            seconds,
            projection.rel_error,
            projection.kkt,
            projection.tol,
            projection.refined
        );
        say_written(&written, &args.out);
    }
    Ok(())
}

fn run_rank(args: &RankArgs) -> Result<()> {
    match args.precision {
        Precision::F32 => rank_as::<f32>(args),
        Precision::F64 => rank_as::<f64>(args),
    }
}

fn rank_as<T: Float>(args: &RankArgs) -> Result<()> {
    let faces: Faces<T> = load_for(
        &args.dir,
        &args.out,
        args.resize,
        args.preprocess,
        args.skip_unreadable,
        args.quiet,
    )?;
    let study = facenmf::eval::RankStudy {
        ranks: args.ranks.clone(),
        replicates: args.replicates,
        holdout: args.holdout,
        heldout_faces: args.heldout_faces,
        seed: args.seed,
    };
    let params = Nmf::params(1)
        .solver(args.solver)
        .max_iter(args.max_iter)
        .tol(args.tol)
        .image_shape(faces.height, faces.width);
    let total = (args.ranks.len() * args.replicates) as u64;
    let bar = progress_bar(
        args.quiet,
        total,
        "rank study [{bar:30}] {pos}/{len} fits, {msg} ({elapsed}, eta {eta})",
    );
    let report = study.run(&faces.x.view(), &params, |fit| {
        bar.inc(1);
        bar.set_message(format!(
            "rank {} test error {:.4}",
            fit.rank, fit.test_error
        ));
    })?;
    bar.finish_and_clear();
    let written = render::write_rank_study(&args.out, &faces, &study, &report, &params)?;
    if !args.quiet {
        for s in &report.summary {
            let faces_error = s
                .mean_heldout_face_error
                .map_or(String::new(), |e| format!(", held-out faces {e:.4}"));
            eprintln!(
                "rank {:>4}: test error {:.4} +- {:.4}, training {:.4}{faces_error}",
                s.rank, s.mean_test_error, s.se_test_error, s.mean_train_error
            );
        }
        eprintln!(
            "chosen rank {} (least mean test error); one-standard-error rank {}",
            report.chosen_rank, report.one_se_rank
        );
        say_written(&written, &args.out);
    }
    Ok(())
}

fn run_synth(args: &SynthArgs) -> Result<()> {
    if args.count < 2 {
        bail!(
            "--count: {} faces are too few; NMF needs at least two",
            args.count
        );
    }
    let written = match args.set {
        SynthSet::Demo => synth::write(&args.out, args.count, args.seed)
            .map(|files| (files, args.count, synth::parts().len())),
        set => {
            let set = match set {
                SynthSet::Outlined => synth::with_outline(args.count, args.seed),
                SynthSet::Swimmer => synth::swimmer(),
                _ => synth::bars(12, args.count, args.seed),
            };
            let (n, p) = (set.coefficients.ncols(), set.parts.ncols());
            set.write(&args.out).map(|files| (files, n, p))
        }
    };
    let (files, images, parts) =
        written.with_context(|| format!("cannot write the set to {}", args.out.display()))?;
    eprintln!(
        "wrote {files} files: {images} images in {}, {parts} parts in {}",
        args.out.join("faces").display(),
        args.out.join("parts").display()
    );
    Ok(())
}
