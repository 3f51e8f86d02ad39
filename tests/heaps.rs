//! `facenmf::alloc::touch_heaps` with `keep_freed_heap`: a buffer below `LARGE` that a pool
//! thread allocates after its heap was touched has its pages in memory; before, it did not.
//!
//! Its own test binary with one test: the allocator's settings are the whole process's, and
//! the pool's threads must be the first to allocate on their heaps.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod common;

use common::resident_pages;

#[test]
fn a_touched_heap_serves_the_next_small_buffer_of_its_thread_from_memory() {
    facenmf::alloc::keep_freed_heap();
    // Below `LARGE` (the system allocator's), above glibc's default mapping threshold.
    let len = 200 << 10;
    assert!(len < facenmf::alloc::LARGE);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // Allocated, not written: what is resident was made so before.
    let residency = || {
        pool.broadcast(|_| {
            let buffer: Vec<u8> = Vec::with_capacity(len);
            resident_pages(buffer.as_ptr(), len)
        })
    };
    for (resident, pages) in residency() {
        assert!(resident < pages / 2, "{resident} of {pages} pages before");
    }
    pool.install(|| facenmf::alloc::touch_heaps(facenmf::alloc::HEAP_BYTES));
    for (resident, pages) in residency() {
        assert_eq!(resident, pages, "after touching");
    }
}
