//! Checkpoints: everything the one loop carries from one iteration to the next, so that a fit
//! stopped after iteration k and resumed goes on with the same bits as one that never stopped.
//!
//! What is carried: the factors, W^T W as the last half-step left it (after a sparseness
//! projection it is a scaled copy, not a fresh product), the extrapolation's accepted and best
//! pairs and its beta, the scores the stopping rule and keep-best read, the history, and the
//! restart bookkeeping. What is not: buffers every iteration overwrites, and what is a function
//! of the factors (W H of the beta-divergence, the filled-in X of missing data), recomputed on
//! resume. The bytes are a header line, a JSON record, then the arrays as little-endian f64
//! (exact for f32 and f64); floats the loop compares are stored as their bits.

use ndarray::Array2;

use super::result::{CoarseLevel, Iteration};
use crate::{Error, Float, Result};

/// First line of a checkpoint file.
const MAGIC: &[u8] = b"facenmf checkpoint 1\n";

/// The state of a fit between two iterations; see [`crate::Nmf::fit_checkpointed`].
#[derive(Debug, Clone)]
pub struct Checkpoint<T> {
    /// The caller's own record, kept with the state (the command line uses it for the
    /// arguments that rebuild the same X and parameters).
    pub context: String,
    pub(crate) meta: Meta,
    pub(crate) w: Array2<T>,
    pub(crate) ht: Array2<T>,
    pub(crate) gram_w: Array2<T>,
    pub(crate) extrapolation: Option<ExtrapolationArrays<T>>,
}

/// The extrapolation's arrays: the last accepted pair and the best pair.
#[derive(Debug, Clone)]
pub(crate) struct ExtrapolationArrays<T> {
    pub(crate) w: Array2<T>,
    pub(crate) ht: Array2<T>,
    pub(crate) best_w: Array2<T>,
    pub(crate) best_ht: Array2<T>,
}

/// The extrapolation's scalars.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct ExtrapolationScalars {
    pub(crate) beta: u64,
    pub(crate) previous: u64,
    pub(crate) ceiling: u64,
    pub(crate) warmup: usize,
}

/// Everything but the arrays.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Meta {
    /// f32 or f64.
    pub(crate) precision: String,
    /// The fit's parameters as run.json records them; a resume must match them.
    pub(crate) params: String,
    /// X's shape, and the bits of its sum and squared norm: the same images.
    pub(crate) shape: (usize, usize),
    pub(crate) x_sum: u64,
    pub(crate) x_norm_sq: u64,
    /// The last iteration run.
    pub(crate) iter: usize,
    /// Seconds the fit had run.
    pub(crate) seconds: f64,
    pub(crate) history: Vec<Iteration>,
    /// Bits of each iteration's score and of the best score up to it.
    pub(crate) scores: Vec<u64>,
    pub(crate) best_by_iter: Vec<u64>,
    pub(crate) restarts: Option<(usize, bool)>,
    /// An escape from a stall is due at the next iteration (named for its first kind, the
    /// merge, so that older checkpoints still read).
    #[serde(rename = "merge_pending")]
    pub(crate) escape_pending: bool,
    pub(crate) quiet_until: usize,
    pub(crate) given: bool,
    pub(crate) coarse_levels: Vec<CoarseLevel>,
    /// How the Frobenius fit a divergence fit started from went (absent in older checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) warm_start: Option<String>,
    pub(crate) extrapolation: Option<ExtrapolationScalars>,
}

impl<T: Float> Checkpoint<T> {
    /// The last iteration the checkpoint holds.
    pub fn iteration(&self) -> usize {
        self.meta.iter
    }

    /// The relative error after [`Checkpoint::iteration`].
    pub fn rel_error(&self) -> f64 {
        self.meta.history.last().map_or(f64::NAN, |i| i.rel_error)
    }

    /// The checkpoint as bytes, for a file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(&(&self.context, &self.meta)).expect("checkpoint serialises");
        let mut arrays: Vec<&Array2<T>> = vec![&self.w, &self.ht, &self.gram_w];
        if let Some(e) = &self.extrapolation {
            arrays.extend([&e.w, &e.ht, &e.best_w, &e.best_ht]);
        }
        let values: usize = arrays.iter().map(|a| a.len()).sum();
        let mut out =
            Vec::with_capacity(MAGIC.len() + 8 + json.len() + 16 * arrays.len() + 8 * values);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for a in arrays {
            out.extend_from_slice(&(a.nrows() as u64).to_le_bytes());
            out.extend_from_slice(&(a.ncols() as u64).to_le_bytes());
            for v in a.iter() {
                out.extend_from_slice(&v.to_f64().to_le_bytes());
            }
        }
        out
    }

    /// Reads [`Checkpoint::to_bytes`]' bytes.
    ///
    /// # Errors
    /// Not a checkpoint, a truncated or damaged one, or one of the other precision.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: &str| Error::Checkpoint {
            reason: reason.into(),
        };
        let mut reader = Reader { bytes, at: 0 };
        if reader.take(MAGIC.len()) != Some(MAGIC) {
            return Err(bad("not a facenmf checkpoint"));
        }
        let truncated = || bad("truncated or damaged");
        let len = reader.u64().ok_or_else(truncated)? as usize;
        let json = reader.take(len).ok_or_else(truncated)?;
        let (context, meta): (String, Meta) =
            serde_json::from_slice(json).map_err(|e| bad(&format!("damaged record: {e}")))?;
        if meta.precision != T::NAME {
            return Err(bad(&format!(
                "the fit ran in {}, not {}; resume at its precision",
                meta.precision,
                T::NAME
            )));
        }
        let mut array = || -> Result<Array2<T>> {
            let rows = reader.u64().ok_or_else(truncated)? as usize;
            let cols = reader.u64().ok_or_else(truncated)? as usize;
            let count = rows.checked_mul(cols).ok_or_else(truncated)?;
            let raw = reader
                .take(count.checked_mul(8).ok_or_else(truncated)?)
                .ok_or_else(truncated)?;
            let values = raw
                .as_chunks::<8>()
                .0
                .iter()
                .map(|b| T::from_f64(f64::from_le_bytes(*b)))
                .collect();
            Array2::from_shape_vec((rows, cols), values).map_err(|_| truncated())
        };
        let (w, ht, gram_w) = (array()?, array()?, array()?);
        let extrapolation = match meta.extrapolation {
            Some(_) => Some(ExtrapolationArrays {
                w: array()?,
                ht: array()?,
                best_w: array()?,
                best_ht: array()?,
            }),
            None => None,
        };
        if reader.at != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        let (m, n) = meta.shape;
        let r = w.ncols();
        let shapes_agree = w.dim() == (m, r)
            && ht.dim() == (n, r)
            && gram_w.dim() == (r, r)
            && extrapolation.as_ref().is_none_or(|e| {
                e.w.dim() == (m, r)
                    && e.best_w.dim() == (m, r)
                    && e.ht.dim() == (n, r)
                    && e.best_ht.dim() == (n, r)
            })
            && meta.history.len() == meta.iter + 1
            && meta.scores.len() == meta.iter + 1
            && meta.best_by_iter.len() == meta.iter + 1;
        if !shapes_agree {
            return Err(bad("its parts do not agree in size"));
        }
        Ok(Checkpoint {
            context,
            meta,
            w,
            ht,
            gram_w,
            extrapolation,
        })
    }
}

/// The [`Checkpoint::context`] of a checkpoint's bytes, whatever its precision.
///
/// # Errors
/// Not a checkpoint, or a damaged one.
pub fn checkpoint_context(bytes: &[u8]) -> Result<String> {
    let bad = |reason: String| Error::Checkpoint { reason };
    let mut reader = Reader { bytes, at: 0 };
    if reader.take(MAGIC.len()) != Some(MAGIC) {
        return Err(bad("not a facenmf checkpoint".into()));
    }
    let json = reader
        .u64()
        .and_then(|len| reader.take(len as usize))
        .ok_or_else(|| bad("truncated or damaged".into()))?;
    let (context, _): (String, serde::de::IgnoredAny) =
        serde_json::from_slice(json).map_err(|e| bad(format!("damaged record: {e}")))?;
    Ok(context)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}
