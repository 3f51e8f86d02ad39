//! `facenmf::alloc::touch_heaps` with `keep_freed_heap`: a buffer below `LARGE` that a pool
//! thread allocates after its heap was touched has its pages in memory; before, it did not.
//!
//! Its own test binary with one test: the allocator's settings are the whole process's, and
//! the pool's threads must be the first to allocate on their heaps.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

const PAGE: usize = 4096;

/// How many of the pages spanned by `len` bytes from `ptr` are in memory, and how many there
/// are.
fn resident_pages(ptr: *const u8, len: usize) -> (usize, usize) {
    let start = ptr as usize / PAGE * PAGE;
    let end = (ptr as usize + len).div_ceil(PAGE) * PAGE;
    let mut flags = vec![0u8; (end - start) / PAGE];
    // SAFETY: [start, end) covers a live allocation's pages; `flags` holds one byte per page.
    let status =
        unsafe { libc::mincore(start as *mut libc::c_void, end - start, flags.as_mut_ptr()) };
    assert_eq!(status, 0, "mincore: {}", std::io::Error::last_os_error());
    (flags.iter().filter(|&&f| f & 1 == 1).count(), flags.len())
}

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
