//! `facenmf::alloc::reserve`: memory reserved before a fit is resident when the next large
//! buffer takes it, where a new mapping faults its pages in one by one.
//!
//! Its own test binary, with [`facenmf::alloc::Recycling`] as the global allocator and one
//! test, because the kept blocks are one list for the whole process.
#![cfg(target_os = "linux")]

#[global_allocator]
static GLOBAL: facenmf::alloc::Recycling = facenmf::alloc::Recycling;

const PAGE: usize = 4096;

/// How many of the pages of `len` bytes from `ptr` (page-aligned) are in memory.
fn resident_pages(ptr: *const u8, len: usize) -> usize {
    let mut flags = vec![0u8; len.div_ceil(PAGE)];
    // SAFETY: `ptr` starts a live mapping of at least `len` bytes; `flags` holds one byte per
    // page.
    let status = unsafe { libc::mincore(ptr as *mut libc::c_void, len, flags.as_mut_ptr()) };
    assert_eq!(status, 0, "mincore: {}", std::io::Error::last_os_error());
    flags.iter().filter(|&&f| f & 1 == 1).count()
}

#[test]
fn a_reserved_block_serves_the_next_large_buffer_with_its_pages_in_memory() {
    let len = 4 << 20;
    facenmf::alloc::reserve(len);
    // Allocated, not written: what is resident was made so by the reservation.
    let reserved: Vec<u8> = Vec::with_capacity(len);
    assert_eq!(reserved.as_ptr() as usize % PAGE, 0);
    assert_eq!(resident_pages(reserved.as_ptr(), len), len / PAGE);
    // With the reservation taken, the next one is a new mapping, faulted in as it is touched.
    let mut fresh: Vec<u8> = Vec::with_capacity(len);
    assert_eq!(resident_pages(fresh.as_ptr(), len), 0);
    fresh.resize(PAGE, 1);
    // One page, or one huge page where the kernel gives those.
    let touched = resident_pages(fresh.as_ptr(), len);
    assert!((1..len / PAGE).contains(&touched), "{touched} pages");
}
