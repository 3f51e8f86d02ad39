//! How basis images are shown: the scale of each tile and the colours of its values.

use std::fmt;
use std::str::FromStr;

/// The value a basis tile's brightest colour stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TileScale {
    /// The given percentile (0 to 100) of the tile's positive values, brighter ones clipped: a
    /// few bright pixels cannot darken the rest of the part.
    Percentile(f64),
    /// The tile's largest value (every tile reaches full brightness at one pixel at least).
    Max,
}

/// The default tile scale: the 99th percentile of each part's positive values.
pub const DEFAULT_TILE_SCALE: TileScale = TileScale::Percentile(99.0);

/// The colours of a basis image's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Palette {
    /// White on black: bright = large; negative values (eigenfaces) in red.
    #[default]
    Gray,
    /// Lee & Seung's display (Nature 1999, Fig. 1): black on white, black = positive, red =
    /// negative.
    LeeSeung,
}

/// The whole choice of display, recorded in run.json.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Look {
    /// How each tile is scaled.
    #[serde(with = "as_string")]
    pub tile_scale: TileScale,
    /// The colours.
    #[serde(with = "as_string")]
    pub palette: Palette,
}

impl Default for Look {
    fn default() -> Self {
        Look {
            tile_scale: DEFAULT_TILE_SCALE,
            palette: Palette::Gray,
        }
    }
}

impl TileScale {
    /// The gain that maps `values` (one tile) onto [0, 1] under this scale; 0 for a tile with
    /// no positive value. For signed tiles pass the magnitudes.
    pub fn gain(self, values: impl Iterator<Item = f64>) -> f64 {
        let mut positive: Vec<f64> = values.filter(|v| *v > 0.0 && v.is_finite()).collect();
        if positive.is_empty() {
            return 0.0;
        }
        let top = match self {
            TileScale::Max => positive.iter().fold(0.0f64, |a, &v| a.max(v)),
            TileScale::Percentile(p) => {
                let rank = ((p / 100.0) * (positive.len() - 1) as f64).round() as usize;
                let rank = rank.min(positive.len() - 1);
                *positive
                    .select_nth_unstable_by(rank, |a, b| a.total_cmp(b))
                    .1
            }
        };
        if top > 0.0 { 1.0 / top } else { 0.0 }
    }
}

impl Palette {
    /// The colour of a value already scaled to [-1, 1] (clipped beyond).
    pub fn colour(self, v: f64) -> [u8; 3] {
        let level = |a: f64| (a.clamp(0.0, 1.0) * 255.0).round() as u8;
        match (self, v >= 0.0) {
            (Palette::Gray, true) => [level(v); 3],
            (Palette::Gray, false) => [level(-v), 0, 0],
            (Palette::LeeSeung, true) => [255 - level(v); 3],
            (Palette::LeeSeung, false) => [255, 255 - level(-v), 255 - level(-v)],
        }
    }

    /// The colour between tiles: one that neither palette gives a value.
    pub fn separator(self) -> [u8; 3] {
        match self {
            Palette::Gray => [200, 200, 200],
            Palette::LeeSeung => [150, 150, 170],
        }
    }
}

impl fmt::Display for TileScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TileScale::Percentile(p) => write!(f, "p{p}"),
            TileScale::Max => f.write_str("max"),
        }
    }
}

impl FromStr for TileScale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(TileScale::Max);
        }
        match s.strip_prefix('p').map(str::parse::<f64>) {
            Some(Ok(p)) if p > 0.0 && p <= 100.0 => Ok(TileScale::Percentile(p)),
            _ => Err(format!(
                "'{s}' is not a tile scale: use max, or p and a percentile in (0, 100] (p99)"
            )),
        }
    }
}

impl fmt::Display for Palette {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Palette::Gray => "gray",
            Palette::LeeSeung => "lee-seung",
        })
    }
}

impl FromStr for Palette {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gray" | "grey" => Ok(Palette::Gray),
            "lee-seung" => Ok(Palette::LeeSeung),
            _ => Err(format!(
                "'{s}' is not a display: use gray (white on black) or lee-seung (black on white, \
                 negative in red)"
            )),
        }
    }
}

/// run.json spells both choices as the CLI does.
mod as_string {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err = String>,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_scale_is_not_darkened_by_a_few_bright_pixels() {
        let mut tile = vec![0.2; 200];
        tile.extend([0.0; 100]);
        tile[0] = 5.0; // one hot pixel
        assert!((TileScale::Max.gain(tile.iter().copied()) - 0.2).abs() < 1e-12);
        assert!((TileScale::Percentile(99.0).gain(tile.iter().copied()) - 5.0).abs() < 1e-12);
        assert_eq!(TileScale::Max.gain([0.0, -1.0].into_iter()), 0.0);
    }

    #[test]
    fn choices_read_back_as_they_are_written() {
        for s in ["p99", "p99.5", "max"] {
            assert_eq!(s.parse::<TileScale>().unwrap().to_string(), s);
        }
        assert!("p0".parse::<TileScale>().is_err());
        assert!("p101".parse::<TileScale>().is_err());
        assert_eq!("lee-seung".parse::<Palette>().unwrap(), Palette::LeeSeung);
        let look = Look {
            tile_scale: TileScale::Max,
            palette: Palette::LeeSeung,
        };
        let json = serde_json::to_string(&look).unwrap();
        assert_eq!(json, r#"{"tile_scale":"max","palette":"lee-seung"}"#);
        assert_eq!(serde_json::from_str::<Look>(&json).unwrap(), look);
    }

    #[test]
    fn lee_seung_shows_positive_black_and_negative_red() {
        assert_eq!(Palette::LeeSeung.colour(1.0), [0, 0, 0]);
        assert_eq!(Palette::LeeSeung.colour(0.0), [255, 255, 255]);
        assert_eq!(Palette::LeeSeung.colour(-1.0), [255, 0, 0]);
        assert_eq!(Palette::Gray.colour(1.0), [255, 255, 255]);
        assert_eq!(Palette::Gray.colour(-1.0), [255, 0, 0]);
    }
}
