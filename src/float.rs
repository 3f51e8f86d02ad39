//! The two floating-point types facenmf computes in.

use std::fmt::{Debug, Display};

/// A real scalar facenmf can factorize in: `f32` (the default, twice the GEMM throughput) or
/// `f64`. Norms and errors are always accumulated in `f64`.
///
/// The trait is sealed: it exists to name the bounds faer and ndarray need, not to be implemented
/// elsewhere.
pub trait Float:
    faer::traits::RealField
    + ndarray::LinalgScalar
    + Copy
    + Send
    + Sync
    + Debug
    + Display
    + PartialOrd
    + private::Sealed
    + 'static
{
    /// Name of the type as the CLI and run.json spell it (`"f32"` or `"f64"`).
    const NAME: &'static str;
    /// Machine epsilon of the type.
    const EPSILON: Self;
    /// The type's smallest positive normal value.
    const MIN_POSITIVE: Self;
    /// Converts from `f64`, rounding to nearest.
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts an 8-bit value exactly.
    fn from_u8(v: u8) -> Self;
    /// The larger of `self` and `other` (NaN-free inputs).
    #[inline]
    fn max_of(self, other: Self) -> Self {
        if self > other { self } else { other }
    }
    /// `self * a + b` in one rounding. Compiles to one instruction only where FMA is enabled;
    /// elsewhere it is a slow library call, so call it only from FMA-enabled code.
    fn fused_mul_add(self, a: Self, b: Self) -> Self;
    /// Little-endian bytes, for `.npy` output.
    fn write_le(self, out: &mut Vec<u8>);
    /// The `.npy` dtype descriptor (`"<f4"` or `"<f8"`).
    const NPY_DESCR: &'static str;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    const EPSILON: Self = f32::EPSILON;
    const MIN_POSITIVE: Self = f32::MIN_POSITIVE;
    const NPY_DESCR: &'static str = "<f4";
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_u8(v: u8) -> Self {
        f32::from(v)
    }
    #[inline(always)]
    fn fused_mul_add(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    const EPSILON: Self = f64::EPSILON;
    const MIN_POSITIVE: Self = f64::MIN_POSITIVE;
    const NPY_DESCR: &'static str = "<f8";
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_u8(v: u8) -> Self {
        f64::from(v)
    }
    #[inline(always)]
    fn fused_mul_add(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}
