//! `facenmf::alloc::reserve`: memory reserved before a fit is resident when the next large
//! buffer takes it, where a new mapping faults its pages in one by one.
//!
//! Its own test binary, with [`facenmf::alloc::Recycling`] as the global allocator and one
//! test, because the kept blocks are one list for the whole process.
#![cfg(target_os = "linux")]

#[global_allocator]
static GLOBAL: facenmf::alloc::Recycling = facenmf::alloc::Recycling;

mod common;

use common::{PAGE, resident_pages};

#[test]
fn a_reserved_block_serves_the_next_large_buffer_with_its_pages_in_memory() {
    let len = 4 << 20;
    facenmf::alloc::reserve(len);
    // Allocated, not written: what is resident was made so by the reservation.
    let reserved: Vec<u8> = Vec::with_capacity(len);
    assert_eq!(reserved.as_ptr() as usize % PAGE, 0);
    assert_eq!(
        resident_pages(reserved.as_ptr(), len),
        (len / PAGE, len / PAGE)
    );
    // With the reservation taken, the next one is a new mapping, faulted in as it is touched.
    let mut fresh: Vec<u8> = Vec::with_capacity(len);
    assert_eq!(resident_pages(fresh.as_ptr(), len).0, 0);
    fresh.resize(PAGE, 1);
    // One page, or one huge page where the kernel gives those.
    let (touched, _) = resident_pages(fresh.as_ptr(), len);
    assert!((1..len / PAGE).contains(&touched), "{touched} pages");
}
