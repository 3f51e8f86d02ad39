//! The `.npy` format: a magic string, a header dict padded so the data starts on a 64-byte
//! boundary, then the raw values. Written as version 1.0, little-endian, C order; read in
//! versions 1-3, float32 or float64 of either byte order (`<f4`, `>f4`, `<f8`, `>f8`), C or
//! Fortran order, two dimensions.

use std::path::Path;

use ndarray::{Array2, ArrayView2, ShapeBuilder};

use std::io::Write;

use crate::files::write_atomic_with;
use crate::{Coefficients, Error, Float, Result};

/// The header of a `.npy` file holding a rows x cols array of T in C order.
fn header<T: Float>(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}",
        T::NPY_DESCR
    );
    // magic (6) + version (2) + header length (2) + dict + padding + '\n' = multiple of 64
    let unpadded = 10 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out
}

/// The bytes of a `.npy` file holding `a` (any layout; written in C order).
pub fn to_bytes<T: Float>(a: &ArrayView2<T>) -> Vec<u8> {
    let (rows, cols) = a.dim();
    let mut out = header::<T>(rows, cols);
    out.reserve(rows * cols * size_of::<T>());
    for &v in a.iter() {
        v.write_le(&mut out);
    }
    out
}

/// Writes `a` to `path` as `.npy`, atomically, a row at a time: the file's bytes are never
/// held whole (H of 200,000 faces is 39 MB in f32).
///
/// # Errors
/// The file cannot be written.
pub fn write<T: Float>(path: &Path, a: &ArrayView2<T>) -> Result<()> {
    let (rows, cols) = a.dim();
    write_atomic_with(path, |file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header::<T>(rows, cols))?;
        let mut row_bytes = Vec::with_capacity(cols * size_of::<T>());
        for row in a.rows() {
            row_bytes.clear();
            for &v in row {
                v.write_le(&mut row_bytes);
            }
            out.write_all(&row_bytes)?;
        }
        out.flush()
    })
}

/// Writes H (r x n) to `path` as `.npy` in C order, atomically, reading it a piece of images
/// at a time (each piece scattered to its place in every row of the file): a mapped H's pages
/// are dropped after each piece, so writing it does not bring all of it into memory. The
/// bytes are those of [`write()`].
///
/// # Errors
/// The file cannot be written.
pub fn write_coefficients<T: Float>(path: &Path, h: &Coefficients<T>) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    const PIECE: usize = 16_384;
    let (rows, cols) = h.dim();
    let ht = h.t();
    let size = size_of::<T>();
    write_atomic_with(path, |file| {
        let head = header::<T>(rows, cols);
        file.write_all(&head)?;
        // Sized first, so that the pieces below write within the file.
        file.set_len((head.len() + rows * cols * size) as u64)?;
        let mut bytes = Vec::with_capacity(PIECE * size);
        for start in (0..cols).step_by(PIECE) {
            let images = start..(start + PIECE).min(cols);
            let piece = ht.slice(ndarray::s![images.clone(), ..]);
            for (k, component) in piece.columns().into_iter().enumerate() {
                bytes.clear();
                for &v in component {
                    v.write_le(&mut bytes);
                }
                file.seek(SeekFrom::Start(
                    (head.len() + (k * cols + start) * size) as u64,
                ))?;
                file.write_all(&bytes)?;
            }
            h.release_images(images);
        }
        Ok(())
    })
}

/// Reads a two-dimensional float `.npy` file (as numpy's `np.save` writes it), converting to T.
///
/// # Errors
/// The file cannot be read, is not `.npy`, or holds something other than a 2-D float32/float64
/// array; the message names the file.
pub fn read<T: Float>(path: &Path) -> Result<Array2<T>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(|reason| Error::Npy {
        path: path.to_path_buf(),
        reason,
    })
}

fn parse<T: Float>(bytes: &[u8]) -> std::result::Result<Array2<T>, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or unreadable header")?;
    let field = |key: &str| {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    let descr = field("descr")
        .and_then(|v| v.strip_prefix('\''))
        .and_then(|v| v.split('\'').next())
        .ok_or("header has no descr")?;
    let fortran = field("fortran_order")
        .map(|v| v.starts_with("True"))
        .ok_or("header has no fortran_order")?;
    let shape: Vec<usize> = field("shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or("header has no shape")?
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .map_err(|_| format!("bad shape entry '{d}'"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let [rows, cols] = shape[..] else {
        return Err(format!(
            "array has {} dimensions; a matrix has 2",
            shape.len()
        ));
    };
    let data = &bytes[start + header_len..];
    let four = |c: &[u8]| -> [u8; 4] { c.try_into().expect("4 bytes") };
    let eight = |c: &[u8]| -> [u8; 8] { c.try_into().expect("8 bytes") };
    let values: Vec<f64> = match descr {
        "<f4" => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(four(c)) as f64)
            .collect(),
        ">f4" => data
            .chunks_exact(4)
            .map(|c| f32::from_be_bytes(four(c)) as f64)
            .collect(),
        "<f8" => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(eight(c)))
            .collect(),
        ">f8" => data
            .chunks_exact(8)
            .map(|c| f64::from_be_bytes(eight(c)))
            .collect(),
        other => {
            return Err(format!(
                "dtype {other} is not supported (save as float32 or float64)"
            ));
        }
    };
    if values.len() != rows * cols {
        return Err(format!(
            "{rows} x {cols} needs {} values, the file has {}",
            rows * cols,
            values.len()
        ));
    }
    let values = values.into_iter().map(T::from_f64).collect();
    let shape = if fortran {
        (rows, cols).f()
    } else {
        (rows, cols).into_shape_with_order()
    };
    let array = Array2::from_shape_vec(shape, values).map_err(|e| e.to_string())?;
    Ok(array.as_standard_layout().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// H written a piece of images at a time (more images than a piece, and a partial last
    /// piece) is the file `write` makes of the same array, and reads back.
    #[test]
    fn coefficients_written_by_pieces_are_the_bytes_of_the_whole_array() {
        let dir = std::env::temp_dir().join(format!("facenmf-npy-h-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = Array2::from_shape_fn((3, 40_000), |(k, j)| (k * 40_000 + j) as f32 * 0.5);
        let (whole, pieces) = (dir.join("whole.npy"), dir.join("pieces.npy"));
        write(&whole, &h.view()).unwrap();
        write_coefficients(&pieces, &Coefficients::from(h.clone())).unwrap();
        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&pieces).unwrap()
        );
        assert_eq!(read::<f32>(&pieces).unwrap(), h);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn big_endian_floats_read_as_numpy_saves_them() {
        // np.save of a '>f8' array: [[1.5, -2.0], [3.0, 0.25]].
        let dict = "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{dict:<117}\n");
        bytes.extend((padded.len() as u16).to_le_bytes());
        bytes.extend(padded.as_bytes());
        for v in [1.5f64, -2.0, 3.0, 0.25] {
            bytes.extend(v.to_be_bytes());
        }
        let a: Array2<f64> = parse(&bytes).unwrap();
        assert_eq!(a, ndarray::array![[1.5, -2.0], [3.0, 0.25]]);
    }

    #[test]
    fn files_are_written_as_their_bytes_row_by_row() {
        let dir = tempfile::tempdir().unwrap();
        let a = ndarray::Array2::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f32 * 0.25);
        for view in [a.view(), a.t()] {
            let path = dir.path().join("a.npy");
            write(&path, &view).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), to_bytes(&view));
        }
    }

    #[test]
    fn written_files_read_back() {
        let a = ndarray::array![[1.5f64, -2.0, 3.25], [4.0, 5.0, 6.0]];
        let back: Array2<f64> = parse(&to_bytes(&a.view())).unwrap();
        assert_eq!(back, a);
        let back32: Array2<f32> = parse(&to_bytes(&a.mapv(|v| v as f32).view())).unwrap();
        assert_eq!(back32, a.mapv(|v| v as f32));
    }

    #[test]
    fn fortran_order_and_bad_files_are_handled() {
        let a = ndarray::array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]];
        let mut bytes = to_bytes(&a.t()); // (2, 3) in C order = (3, 2) in Fortran order
        let text = String::from_utf8_lossy(&bytes[10..74])
            .replace("False", "True ")
            .replace("(2, 3)", "(3, 2)");
        bytes.splice(10..74, text.bytes());
        let back: Array2<f64> = parse(&bytes).unwrap();
        assert_eq!(back, a);
        assert!(parse::<f64>(b"hello world").unwrap_err().contains("magic"));
        let mut three = to_bytes(&a.view());
        let text = String::from_utf8_lossy(&three[10..74]).replace("(3, 2)", "(3, 2, 1)");
        three.splice(10..74, text.bytes());
        assert!(parse::<f64>(&three).unwrap_err().contains("3 dimensions"));
    }

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
