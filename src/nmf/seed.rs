//! The one hash behind every seeded choice that is not a ChaCha stream: SplitMix64's finaliser
//! (S. Vigna, "Further scramblings of Marsaglia's xorshift generators", 2017). It maps a counter
//! to well-mixed bits without state, so an entry's draw does not depend on the order in which
//! threads visit entries.

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: mixes all 64 bits of `z`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits of `z` as a number in [0, 1).
fn unit(z: u64) -> f64 {
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Element `counter` (from 1) of the SplitMix64 sequence that starts at `seed`.
pub(crate) fn nth(seed: u64, counter: u64) -> u64 {
    mix(seed.wrapping_add(counter.wrapping_mul(GOLDEN)))
}

/// A uniform draw in [0, 1) for counter `i` of stream `stream`, keyed by xor rather than by
/// addition so that streams and counters never alias along one sequence.
pub(crate) fn uniform(stream: u64, i: u64) -> f64 {
    unit(mix(stream ^ i.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// A uniform draw in [0, 1) from element `counter` of the sequence of [`nth`].
pub(crate) fn nth_uniform(seed: u64, counter: u64) -> f64 {
    unit(nth(seed, counter))
}

/// Seed of restart `run`: the given seed for the first, then a SplitMix64 scramble of it, so that
/// restarts are distinct and the first run is the single fit of the same seed.
pub(crate) fn run_seed(seed: u64, run: usize) -> u64 {
    if run == 0 {
        seed
    } else {
        nth(seed, run as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_its_reference_sequence() {
        // SplitMix64 from state 0: the published first outputs.
        assert_eq!(nth(0, 1), 0xE220_A839_7B1D_CDAF);
        assert_eq!(nth(0, 2), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn draws_are_in_the_unit_interval_and_spread() {
        let draws: Vec<f64> = (0..10_000).map(|i| uniform(7, i)).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        assert_eq!(run_seed(42, 0), 42);
        assert_ne!(run_seed(42, 1), run_seed(42, 2));
    }
}
