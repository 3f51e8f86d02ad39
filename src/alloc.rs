//! A global allocator for programs that run fits: [`Recycling`].
//!
//! A fit allocates the same large buffers again and again (a restriction of X, a product, a copy
//! of W for the extrapolation). From the system each comes as fresh pages: a page fault per
//! 4 KiB on first touch, and, when it is freed, an unmapping that interrupts every core running
//! one of the process's threads to flush their TLBs. On a short fit both are a visible share of
//! the time. [`Recycling`] keeps a bounded number of freed large blocks mapped and hands them
//! out again, so a buffer of a size seen before comes back resident and nothing is unmapped.
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: facenmf::alloc::Recycling = facenmf::alloc::Recycling;
//!
//! fn main() {
//!     // Every allocation of this program now goes through it.
//!     let buffer = vec![0.0f32; 1 << 20];
//!     assert_eq!(buffer.len(), 1 << 20);
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations from this size up are mapped and recycled; smaller ones go to the system's
/// allocator, which already reuses its heap.
pub const LARGE: usize = 256 << 10;

/// At most this many bytes of freed blocks are kept, unless [`keep_at_most`] says otherwise:
/// what peak memory can grow by.
pub const KEPT_BYTES: usize = 16 << 20;

/// Keeps at most `bytes` of freed blocks from now on (0: none, every large block is returned
/// to the system when freed, as without this allocator). For programs whose peak memory is
/// the point, such as a streamed fit, where the pages saved are a small share of the time.
/// Blocks kept already stay until they are used.
pub fn keep_at_most(bytes: usize) {
    imp::KEPT_LIMIT.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// Maps `bytes` now (up to the cap of [`keep_at_most`]), touches every page of them and keeps
/// them as one freed block, so that the large buffers the program allocates next come out of
/// resident memory instead of faulting in page by page. A program calls it on a spare thread
/// while it loads, before its first fit: in a fresh process a page touched for the first
/// time cost this machine 5-15 us (README, "Performance"), and a CBCL fit allocates a few MB
/// of buffers. Of use only with [`Recycling`] as the global allocator (the kept block is its
/// free list's); off Linux it does nothing.
pub fn reserve(bytes: usize) {
    imp::reserve(bytes);
}

/// Bytes [`touch_heaps`] is meant to be given per thread: more than the buffers below
/// [`LARGE`] a fit holds at once (CBCL's start: about 2 MiB).
pub const HEAP_BYTES: usize = 4 << 20;

/// Sets the system allocator (glibc) to keep freed heap for reuse: up to 32 MiB at the top
/// of a heap (default 128 KiB) stays instead of going back to the system, and blocks below
/// [`LARGE`] come from the heap (default: from 128 KiB, each its own mapping, faulted in page
/// by page when first touched and unmapped when freed, however often the same size comes
/// back). Blocks of [`LARGE`] and more are [`Recycling`]'s. A fit allocates its buffers once,
/// but a multilevel fit is two or three fits and a benchmark many. Called first thing in
/// `main`, before other threads exist; elsewhere than Linux with glibc it does nothing.
pub fn keep_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int);
    }
}

/// On every thread of the current rayon pool, allocates `bytes` in blocks below [`LARGE`],
/// touches them and frees them: with [`keep_freed_heap`] the heap keeps them, so that the
/// buffers below [`LARGE`] the next fit allocates on those threads (glibc gives each thread
/// its own heap; a fit runs on the pool) come out of resident memory. A program calls it on a
/// spare thread while it loads, as it does [`reserve`]. A CBCL start's small buffers faulted
/// in about 550 pages in a fresh process before, about 100 after.
pub fn touch_heaps(bytes: usize) {
    // A page at a time: small blocks fill the holes the heap has first (a freed buffer's tail
    // left behind larger blocks stays untouched, and the next buffer there faults it in), and
    // come from the heap whatever [`keep_freed_heap`] set.
    const BLOCK: usize = 4096;
    if bytes == 0 {
        return;
    }
    rayon::broadcast(|_| {
        let blocks: Vec<Vec<u8>> = (0..bytes.div_ceil(BLOCK))
            .map(|_| vec![1u8; BLOCK])
            .collect();
        // Opaque, so that the writes that fault the pages in are not dropped.
        std::hint::black_box(&blocks);
    });
}

/// A global allocator that keeps freed blocks of [`LARGE`] bytes or more (up to [`KEPT_BYTES`]
/// in all) for the next allocation they fit; everything else is the system allocator's.
///
/// Off Linux it is the system allocator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recycling;

// SAFETY: every block is either the system allocator's (small or over-aligned layouts, routed
// there the same way on allocation and deallocation) or a private anonymous mapping of
// `mapped_len(size)` bytes owned by exactly one live allocation or by the free list.
unsafe impl GlobalAlloc for Recycling {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !imp::mapped(layout.size(), layout.align()) {
            // SAFETY: the caller's contract is System's.
            return unsafe { System.alloc(layout) };
        }
        imp::take(imp::mapped_len(layout.size()), false)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !imp::mapped(layout.size(), layout.align()) {
            // SAFETY: as above.
            return unsafe { System.alloc_zeroed(layout) };
        }
        imp::take(imp::mapped_len(layout.size()), true)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !imp::mapped(layout.size(), layout.align()) {
            // SAFETY: routed to System on allocation by the same test.
            return unsafe { System.dealloc(ptr, layout) };
        }
        // SAFETY: `ptr` came from `take` with this length.
        unsafe { imp::give_back(ptr, imp::mapped_len(layout.size())) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (
            imp::mapped(layout.size(), align),
            imp::mapped(new_size, align),
        ) {
            // SAFETY: as in `alloc`.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            // SAFETY: `ptr` is a mapping of the old length, owned by the caller.
            (true, true) => unsafe {
                imp::resize(
                    ptr,
                    imp::mapped_len(layout.size()),
                    imp::mapped_len(new_size),
                )
            },
            _ => {
                // SAFETY: a layout of `new_size` with the same alignment is valid (the caller
                // guarantees the size does not overflow when rounded to it).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                // SAFETY: as in `alloc`.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks hold at least the smaller size and do not overlap.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{KEPT_BYTES, LARGE};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The cap on kept bytes ([`super::keep_at_most`]).
    pub(super) static KEPT_LIMIT: AtomicUsize = AtomicUsize::new(KEPT_BYTES);

    /// Mappings are made and kept in multiples of this (the smallest page size Linux uses;
    /// the kernel rounds lengths up to its own).
    const PAGE: usize = 4096;
    /// At most this many freed blocks are kept.
    const SLOTS: usize = 32;

    /// Freed mappings: (address, length), unordered, `bytes` in all.
    struct FreeList {
        blocks: [(usize, usize); SLOTS],
        count: usize,
        bytes: usize,
    }

    static FREE: Mutex<FreeList> = Mutex::new(FreeList {
        blocks: [(0, 0); SLOTS],
        count: 0,
        bytes: 0,
    });

    impl FreeList {
        fn remove(&mut self, i: usize) {
            self.bytes -= self.blocks[i].1;
            self.count -= 1;
            self.blocks[i] = self.blocks[self.count];
        }

        /// Adds a block there is room for (the caller makes sure).
        fn push(&mut self, addr: usize, len: usize) {
            if len == 0 {
                return;
            }
            self.blocks[self.count] = (addr, len);
            self.count += 1;
            self.bytes += len;
        }

        /// Keeps a freed block, joined to the kept blocks either side of it in the address
        /// space, so that neighbours freed apart serve a larger request together. Returns what
        /// does not fit within `cap` bytes and the slots, for the caller to unmap.
        fn keep(&mut self, mut addr: usize, mut len: usize, cap: usize) -> Option<(usize, usize)> {
            let mut i = 0;
            while i < self.count {
                let (a, l) = self.blocks[i];
                if a + l == addr || addr + len == a {
                    self.remove(i);
                    addr = addr.min(a);
                    len += l;
                } else {
                    i += 1;
                }
            }
            if self.count < SLOTS && self.bytes + len <= cap {
                self.push(addr, len);
                None
            } else {
                Some((addr, len))
            }
        }
    }

    fn free_list() -> std::sync::MutexGuard<'static, FreeList> {
        // Nothing panics while the lock is held; a poisoned list is still consistent.
        FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn mapped(size: usize, align: usize) -> bool {
        size >= LARGE && align <= PAGE
    }

    pub(super) fn mapped_len(size: usize) -> usize {
        size.div_ceil(PAGE) * PAGE
    }

    /// A block of `len` bytes: the smallest kept one that holds it (its tail kept apart), or a
    /// new mapping.
    pub(super) fn take(len: usize, zeroed: bool) -> *mut u8 {
        let kept = {
            let mut list = free_list();
            let best = (0..list.count)
                .filter(|&i| list.blocks[i].1 >= len)
                .min_by_key(|&i| list.blocks[i].1);
            best.map(|i| {
                let (addr, kept_len) = list.blocks[i];
                list.remove(i);
                // The rest stays kept (it is resident); its deallocation gives back `len`.
                if kept_len > len {
                    list.push(addr + len, kept_len - len);
                }
                addr
            })
        };
        match kept {
            Some(addr) => {
                let ptr = addr as *mut u8;
                if zeroed {
                    // SAFETY: the block is `len` writable bytes owned by the caller now.
                    unsafe { std::ptr::write_bytes(ptr, 0, len) };
                }
                ptr
            }
            None => map(len),
        }
    }

    fn map(len: usize) -> *mut u8 {
        // SAFETY: a new private anonymous mapping; it is zeroed by the kernel.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            ptr.cast()
        }
    }

    pub(super) fn reserve(bytes: usize) {
        let len = mapped_len(bytes.min(KEPT_LIMIT.load(Ordering::Relaxed)));
        if len == 0 {
            return;
        }
        let ptr = map(len);
        if ptr.is_null() {
            return;
        }
        for page in (0..len).step_by(PAGE) {
            // SAFETY: inside the new mapping of `len` bytes; volatile, so that the write that
            // faults the page in is not dropped as storing the zero it holds.
            unsafe { ptr.add(page).write_volatile(0) };
        }
        // SAFETY: a mapping of `len` bytes that nothing else uses.
        unsafe { give_back(ptr, len) };
    }

    /// Keeps a freed block if there is room, else unmaps it.
    ///
    /// # Safety
    /// `ptr` is a mapping of `len` bytes from [`take`] or [`resize`], no longer used.
    pub(super) unsafe fn give_back(ptr: *mut u8, len: usize) {
        let cap = KEPT_LIMIT.load(Ordering::Relaxed);
        let refused = free_list().keep(ptr as usize, len, cap);
        if let Some((addr, len)) = refused {
            // SAFETY: the mapping is no one's; it is ended outside the lock.
            unsafe { libc::munmap(addr as *mut libc::c_void, len) };
        }
    }

    /// The block at `ptr` (`old` bytes) resized to `new` bytes: moved by the kernel where it
    /// can (no copy through memory), else copied to a new block.
    ///
    /// # Safety
    /// `ptr` is a live block of `old` bytes from [`take`] or [`resize`].
    pub(super) unsafe fn resize(ptr: *mut u8, old: usize, new: usize) -> *mut u8 {
        if old == new {
            return ptr;
        }
        // SAFETY: remaps the caller's block.
        let moved = unsafe { libc::mremap(ptr.cast(), old, new, libc::MREMAP_MAYMOVE) };
        if moved != libc::MAP_FAILED {
            return moved.cast();
        }
        // A recycled block can span two of the kernel's mappings, which mremap refuses.
        let copy = take(new, false);
        if !copy.is_null() {
            // SAFETY: both blocks hold the smaller length and do not overlap; the old one is
            // the caller's to give up.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, copy, old.min(new));
                give_back(ptr, old);
            }
        }
        copy
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn kept_blocks_join_their_neighbours_and_stop_at_the_cap() {
            let mut list = FreeList {
                blocks: [(0, 0); SLOTS],
                count: 0,
                bytes: 0,
            };
            let base = 1 << 40;
            let cap = KEPT_BYTES;
            assert_eq!(list.keep(base, PAGE, cap), None);
            assert_eq!(list.keep(base + 2 * PAGE, PAGE, cap), None);
            assert_eq!((list.count, list.bytes), (2, 2 * PAGE));
            // The block between them joins both.
            assert_eq!(list.keep(base + PAGE, PAGE, cap), None);
            assert_eq!(list.count, 1);
            assert_eq!(list.blocks[0], (base, 3 * PAGE));
            // Beyond the cap a block is handed back to be unmapped, and the list is unchanged.
            let far = base + (1 << 30);
            assert_eq!(list.keep(far, KEPT_BYTES, cap), Some((far, KEPT_BYTES)));
            assert_eq!((list.count, list.bytes), (1, 3 * PAGE));
            // With no room at all, nothing is kept.
            assert_eq!(list.keep(far, PAGE, 0), Some((far, PAGE)));
            assert_eq!((list.count, list.bytes), (1, 3 * PAGE));
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    //! Elsewhere everything is the system allocator's.

    pub(super) static KEPT_LIMIT: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    pub(super) fn mapped(_size: usize, _align: usize) -> bool {
        false
    }

    pub(super) fn reserve(_bytes: usize) {}

    pub(super) fn mapped_len(size: usize) -> usize {
        size
    }

    pub(super) fn take(_len: usize, _zeroed: bool) -> *mut u8 {
        unreachable!("nothing is mapped off Linux")
    }

    pub(super) unsafe fn give_back(_ptr: *mut u8, _len: usize) {
        unreachable!("nothing is mapped off Linux")
    }

    pub(super) unsafe fn resize(_ptr: *mut u8, _old: usize, _new: usize) -> *mut u8 {
        unreachable!("nothing is mapped off Linux")
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 64).expect("a valid layout")
    }

    // One test, because the kept blocks are one list for the whole process.
    #[test]
    fn freed_large_blocks_serve_later_requests_and_keep_their_contents_when_resized() {
        let recycling = Recycling;
        // SAFETY: every block is used within its layout and freed with it.
        unsafe {
            let three = layout(3 * LARGE);
            let p = recycling.alloc(three);
            assert!(!p.is_null());
            p.write_bytes(7, three.size());
            recycling.dealloc(p, three);
            // The same memory again, zeroed when asked.
            let q = recycling.alloc_zeroed(three);
            assert_eq!(q, p);
            assert!(
                std::slice::from_raw_parts(q, three.size())
                    .iter()
                    .all(|&b| b == 0)
            );
            recycling.dealloc(q, three);
            // Smaller requests take the front of a kept block; the rest stays kept.
            let one = layout(LARGE);
            let r = recycling.alloc(one);
            let s = recycling.alloc(one);
            assert_eq!((r, s), (p, p.add(LARGE)));
            // Neighbours freed apart serve a larger request together.
            recycling.dealloc(r, one);
            recycling.dealloc(s, one);
            let two = layout(2 * LARGE);
            let t = recycling.alloc(two);
            assert_eq!(t, p);
            // Growing and shrinking keep the contents, across the small-block boundary too.
            for i in 0..two.size() {
                *t.add(i) = (i % 251) as u8;
            }
            let grown = recycling.realloc(t, two, 40 * LARGE);
            assert!(!grown.is_null());
            let small = recycling.realloc(grown, layout(40 * LARGE), 1000);
            assert!((0..1000).all(|i| *small.add(i) == (i % 251) as u8));
            let regrown = recycling.realloc(small, layout(1000), 5 * LARGE);
            assert!((0..1000).all(|i| *regrown.add(i) == (i % 251) as u8));
            recycling.dealloc(regrown, layout(5 * LARGE));
            // Small blocks are the system allocator's.
            let tiny = recycling.alloc(layout(100));
            assert!(!tiny.is_null());
            recycling.dealloc(tiny, layout(100));
        }
    }
}
