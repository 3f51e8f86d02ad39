//! The split fit's exchange on this machine's MPI, for the cost model in the README ("Across
//! machines"): the time of one sum over the processes (a reduction to process 0 and a
//! broadcast, as [`facenmf::mpi::Mpi`] makes it) of 1 value, of 8 KiB, and of the W
//! half-step's `m r + r r` values for face sizes, median of many. Run under mpirun:
//!
//! ```text
//! cargo build --release --features mpi --bench mpi_exchange
//! mpirun -np P target/release/deps/mpi_exchange-* [REPEATS]
//! ```
//!
//! Process 0 prints one JSON line per size: processes, values, bytes, median seconds.

use std::time::Instant;

use facenmf::nmf::Collective;

fn main() {
    let mpi = facenmf::mpi::Mpi::init().expect("MPI starts");
    let repeats: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let rank = 49;
    // 1 value (the stopping flags' latency), 8 KiB, then m r + r r for CBCL (19 x 19),
    // Olivetti (64 x 64: the cost model's 4096 pixels) and ORL (92 x 112).
    let sizes = [
        1,
        1024,
        361 * rank + rank * rank,
        4096 * rank + rank * rank,
        10304 * rank + rank * rank,
    ];
    for values in sizes {
        let mut buffer: Vec<f64> = (0..values).map(|i| i as f64 + mpi.rank() as f64).collect();
        // Warm up the transport.
        for _ in 0..5 {
            mpi.sum(&mut buffer);
        }
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            mpi.barrier();
            let start = Instant::now();
            mpi.sum(&mut buffer);
            times.push(start.elapsed().as_secs_f64());
        }
        // The slowest process sets the pace: the largest time over the processes, per repeat.
        let slowest: Vec<f64> = {
            let all = mpi.gather(&times);
            (0..repeats)
                .map(|k| {
                    (0..mpi.size())
                        .map(|p| all[p * repeats + k])
                        .fold(0.0, f64::max)
                })
                .collect()
        };
        let mut sorted = slowest;
        sorted.sort_by(f64::total_cmp);
        if mpi.rank() == 0 {
            println!(
                "{{\"processes\": {}, \"values\": {values}, \"bytes\": {}, \"median_seconds\": {:.3e}}}",
                mpi.size(),
                values * 8,
                sorted[repeats / 2]
            );
        }
    }
}
