//! Fits across machines: the MPI process group behind the `mpi` feature, and the launcher's
//! traces in the environment (always, so that a binary built without the feature can say
//! that it is running P separate fits).
//!
//! `Mpi` (with the feature) gives the engine's [`Collective`](crate::nmf::Collective) over
//! MPI's world communicator (OpenMPI, through the `mpi` crate). Sums are a reduction to
//! process 0 followed by a broadcast, rather than one all-reduce: MPI does not promise that an
//! all-reduce gives every process the same bits, and the engine's W must be the same bits
//! everywhere.

#[cfg(feature = "mpi")]
pub use enabled::Mpi;

/// The number of processes an MPI launcher (`mpirun`, `mpiexec`, `srun`) started this one
/// among, read from the variables OpenMPI, PMIx and PMI (MPICH's Hydra, Slurm's srun) set;
/// `None` when there is no trace of one. (Slurm's own job variables are not read: a job of
/// many tasks may run the binary once, outside `srun`.)
pub fn launcher_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.trim().parse().ok())
}

/// How many of the launcher's processes run on this machine (OpenMPI, PMIx, MPICH's Hydra),
/// if it says: each takes its part of the cores.
pub fn launcher_local_size() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "PMIX_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok()?.trim().parse().ok())
}

#[cfg(feature = "mpi")]
mod enabled {
    use ::mpi::collective::SystemOperation;
    use ::mpi::datatype::PartitionMut;
    use ::mpi::environment::Universe;
    use ::mpi::topology::SimpleCommunicator;
    use ::mpi::traits::*;

    use crate::nmf::Collective;
    use crate::{Error, Result};

    /// MPI's world: every process the launcher started, as one group.
    pub struct Mpi {
        world: SimpleCommunicator,
        // Finalises MPI when dropped, after the communicator.
        _universe: Universe,
    }

    impl std::fmt::Debug for Mpi {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Mpi(process {} of {})", self.rank(), self.size())
        }
    }

    // SAFETY: MPI is initialised with `Threading::Serialized`, which allows calls from any
    // thread as long as no two overlap; the engine makes its collective calls one at a time
    // from the thread that runs the fit, and the binary calls the others from the main thread
    // only before and after the fit.
    unsafe impl Sync for Mpi {}

    impl Mpi {
        /// Joins the processes the launcher started.
        ///
        /// # Errors
        /// MPI was initialised already, or cannot give calls from the fit's thread.
        pub fn init() -> Result<Self> {
            let (universe, threading) = ::mpi::initialize_with_threading(
                ::mpi::Threading::Serialized,
            )
            .ok_or_else(|| Error::InvalidInput {
                reason: "MPI was initialised already in this process".into(),
            })?;
            if threading < ::mpi::Threading::Serialized {
                return Err(Error::InvalidInput {
                    reason: format!(
                        "this MPI gives {threading:?} threading; the fit calls MPI from a worker \
                         thread and needs Serialized"
                    ),
                });
            }
            Ok(Mpi {
                world: universe.world(),
                _universe: universe,
            })
        }

        /// Every process's `local` (lengths may differ), in rank order, on process 0 only
        /// (`None` elsewhere): for outputs that only process 0 writes.
        pub fn gather_to_root(&self, local: &[f64]) -> Option<Vec<f64>> {
            let root = self.world.process_at_rank(0);
            let count = local.len() as i32;
            if self.world.rank() != 0 {
                root.gather_into(&count);
                root.gather_varcount_into(local);
                return None;
            }
            let mut counts = vec![0i32; self.size()];
            root.gather_into_root(&count, &mut counts[..]);
            let displs = displacements(&counts);
            let mut all = vec![0.0; counts.iter().map(|&c| c as usize).sum()];
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            root.gather_varcount_into_root(local, &mut partition);
            Some(all)
        }

        /// Waits for every process.
        pub fn barrier(&self) {
            self.world.barrier();
        }
    }

    /// Where each process's part starts in a concatenation of parts of `counts` values.
    fn displacements(counts: &[i32]) -> Vec<i32> {
        counts
            .iter()
            .scan(0, |at, &c| {
                let start = *at;
                *at += c;
                Some(start)
            })
            .collect()
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }

        fn size(&self) -> usize {
            self.world.size() as usize
        }

        fn sum(&self, values: &mut [f64]) {
            let root = self.world.process_at_rank(0);
            if self.world.rank() == 0 {
                let mut total = vec![0.0; values.len()];
                root.reduce_into_root(&*values, &mut total[..], SystemOperation::sum());
                values.copy_from_slice(&total);
            } else {
                root.reduce_into(&*values, SystemOperation::sum());
            }
            root.broadcast_into(values);
        }

        fn gather(&self, local: &[f64]) -> Vec<f64> {
            let count = local.len() as i32;
            let mut counts = vec![0i32; self.size()];
            self.world.all_gather_into(&count, &mut counts[..]);
            let displs = displacements(&counts);
            let mut all = vec![0.0; counts.iter().map(|&c| c as usize).sum()];
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            self.world.all_gather_varcount_into(local, &mut partition);
            all
        }

        fn broadcast(&self, values: &mut [f64], root: usize) {
            self.world
                .process_at_rank(root as i32)
                .broadcast_into(values);
        }
    }
}
