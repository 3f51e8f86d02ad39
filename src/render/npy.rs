//! The `.npy` format (NumPy format version 1.0): a magic string, a header dict padded so the data
//! starts on a 64-byte boundary, then the raw little-endian values in C order.

use std::path::Path;

use ndarray::ArrayView2;

use super::write_atomic;
use crate::{Float, Result};

/// The bytes of a `.npy` file holding `a` (any layout; written in C order).
pub fn to_bytes<T: Float>(a: &ArrayView2<T>) -> Vec<u8> {
    let (rows, cols) = a.dim();
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}",
        T::NPY_DESCR
    );
    // magic (6) + version (2) + header length (2) + dict + padding + '\n' = multiple of 64
    let unpadded = 10 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(10 + header_len + rows * cols * size_of::<T>());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    for &v in a.iter() {
        v.write_le(&mut out);
    }
    out
}

/// Writes `a` to `path` as `.npy`, atomically.
///
/// # Errors
/// The file cannot be written.
pub fn write<T: Float>(path: &Path, a: &ArrayView2<T>) -> Result<()> {
    write_atomic(path, &to_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_to_64_bytes_and_data_follows_in_c_order() {
        let a = ndarray::array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let bytes = to_bytes(&a.t());
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (3, 2)"), "{header}");
        assert!(header.contains("'<f4'"));
        assert!(header.ends_with('\n'));
        let data: Vec<f32> = bytes[10 + header_len..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(data, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
