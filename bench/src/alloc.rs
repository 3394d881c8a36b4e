//! A global allocator that counts: allocations, bytes asked for, and the peak of live bytes.
//! The decode benchmark reads the counters around a measured section to report allocations and
//! bytes per record.

// `GlobalAlloc` is an unsafe trait: implementing it is the only unsafe code of the workspace,
// and it only forwards to the system allocator with the caller's own arguments.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

/// The system allocator with counters.
pub(crate) struct Counting;

/// Whether allocations are counted: only while measuring them, so that timed runs do not pay
/// for the counters (four atomic operations per allocation would favour the decoder that
/// allocates less).
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

fn grew(bytes: u64) {
    if !COUNTING.load(Relaxed) {
        return;
    }
    ALLOCATIONS.fetch_add(1, Relaxed);
    BYTES.fetch_add(bytes, Relaxed);
    let live = LIVE.fetch_add(bytes as i64, Relaxed) + bytes as i64;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every method forwards to `System` with the arguments it was given; the counters do not
// touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as u64);
        // SAFETY: the caller's contract for `alloc` is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as u64);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as i64, Relaxed);
        }
        // SAFETY: `ptr` was allocated by `System` with `layout` (through this allocator).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A reallocation counts as one allocation of the new size: what a copy would cost.
        if COUNTING.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as i64, Relaxed);
        }
        grew(new_size as u64);
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    /// Allocations (and reallocations) so far.
    pub(crate) allocations: u64,
    /// Bytes asked for so far.
    pub(crate) bytes: u64,
}

impl Snapshot {
    /// The counters now.
    pub(crate) fn now() -> Snapshot {
        Snapshot {
            allocations: ALLOCATIONS.load(Relaxed),
            bytes: BYTES.load(Relaxed),
        }
    }

    /// What was allocated between `earlier` and `self`.
    pub(crate) fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            allocations: self.allocations - earlier.allocations,
            bytes: self.bytes - earlier.bytes,
        }
    }
}

/// Counts allocations from now on, with the live bytes and their peak starting at zero: what is
/// freed afterwards but was allocated before makes the live count lower (the measured section
/// only frees what it allocated).
pub(crate) fn start_counting() {
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
}

/// Stops counting.
pub(crate) fn stop_counting() {
    COUNTING.store(false, Relaxed);
}

/// Highest live bytes since [`start_counting`].
pub(crate) fn peak() -> u64 {
    PEAK.load(Relaxed).max(0) as u64
}
