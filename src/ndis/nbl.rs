//! NBL chains: the walk over a `Next`-linked chain ([`NblChain`]) and a counted queue built in order
//! without allocation ([`NblQueue`], the shape of the counted NBL queue that NDIS drivers commonly
//! keep: head, tail and count).
//!
//! Owns: reading and writing NBLs' `Next` links for the data path. Must not: touch anything else of
//! an NBL. IRQL: any.

use core::iter::FusedIterator;
use core::ptr;
use ndis_sys::NET_BUFFER_LIST;

/// The NBLs of a NULL-terminated chain, first to last.
///
/// **Invariant** (established by [`NblChain::new`]): every NBL still ahead of the iterator is valid
/// and owned by the holder of the iterator, and the chain from the next one on is not relinked while
/// the iterator is used. Each NBL's `Next` is read *before* the NBL is yielded, so the consumer may
/// relink (push on an [`NblQueue`]), complete or return the NBL it was given, but no NBL after it.
#[derive(Clone)]
pub struct NblChain {
    next: *mut NET_BUFFER_LIST,
}

impl NblChain {
    /// Walks the chain starting at `head` (NULL: an empty chain). Any IRQL.
    ///
    /// # Safety
    /// `head` must be NULL or the first NBL of a NULL-terminated chain of valid NBLs that the caller
    /// owns for as long as it uses the iterator (the type's invariant).
    #[inline]
    pub unsafe fn new(head: *mut NET_BUFFER_LIST) -> Self {
        Self { next: head }
    }
}

impl Iterator for NblChain {
    type Item = *mut NET_BUFFER_LIST;

    #[inline]
    fn next(&mut self) -> Option<*mut NET_BUFFER_LIST> {
        let nbl = self.next;
        if nbl.is_null() {
            return None;
        }
        // SAFETY: NblChain's invariant: `nbl` is a valid, owned NBL of the chain; its `Next` is read
        // before it is handed out.
        self.next = unsafe { (*nbl).Next };
        Some(nbl)
    }
}

impl FusedIterator for NblChain {}

/// A NULL-terminated NBL chain built in order, with its length. Any IRQL.
///
/// **Invariant**: `head` is NULL (and then `tail` is NULL and `count` 0) or the first of `count`
/// valid NBLs linked by `Next`, the last of which is `tail` with `Next == NULL`; the queue's holder
/// owns them all.
pub struct NblQueue {
    head: *mut NET_BUFFER_LIST,
    tail: *mut NET_BUFFER_LIST,
    count: u32,
}

impl NblQueue {
    /// An empty queue. Any IRQL.
    #[inline]
    pub const fn new() -> Self {
        Self {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            count: 0,
        }
    }

    /// Appends `nbl` (its `Next` is set to NULL). Any IRQL.
    ///
    /// # Safety
    /// `nbl` must be a valid NBL owned by the caller and in no other list (a chain being walked by an
    /// [`NblChain`] counts as none: the chain has read its `Next` already).
    #[inline]
    pub unsafe fn push(&mut self, nbl: *mut NET_BUFFER_LIST) {
        // SAFETY: `nbl` is valid and owned (caller contract); `tail`, if any, is the queue's own last
        // NBL (NblQueue's invariant).
        unsafe {
            (*nbl).Next = ptr::null_mut();
            if self.tail.is_null() {
                self.head = nbl;
            } else {
                (*self.tail).Next = nbl;
            }
        }
        self.tail = nbl;
        self.count += 1;
    }

    /// Whether the queue is empty. Any IRQL.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The chain's first NBL (NULL when empty), to hand to NDIS. Any IRQL.
    #[inline]
    pub fn head(&self) -> *mut NET_BUFFER_LIST {
        self.head
    }

    /// How many NBLs the chain holds. Any IRQL.
    #[inline]
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl Default for NblQueue {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nbls<const N: usize>() -> std::boxed::Box<[NET_BUFFER_LIST; N]> {
        // SAFETY: NET_BUFFER_LIST is plain data; all-zero is a valid (unlinked) NBL for these tests.
        std::boxed::Box::new(unsafe { core::mem::zeroed() })
    }

    #[test]
    fn queue_keeps_order_and_count_and_the_chain_reads_next_first() {
        let mut a = nbls::<3>();
        let [p0, p1, p2] = [0, 1, 2].map(|i| &mut a[i] as *mut NET_BUFFER_LIST);
        // SAFETY: three owned, zeroed NBLs.
        unsafe {
            (*p0).Next = p1;
            (*p1).Next = p2;
        }
        let (mut even, mut odd) = (NblQueue::new(), NblQueue::new());
        // SAFETY: the three NBLs above, owned by this test; each is pushed once, after the chain read
        // its Next.
        for (i, p) in unsafe { NblChain::new(p0) }.enumerate() {
            let q = if i % 2 == 0 { &mut even } else { &mut odd };
            // SAFETY: as above.
            unsafe { q.push(p) };
        }
        assert_eq!((even.count(), odd.count()), (2, 1));
        assert_eq!(even.head(), p0);
        assert_eq!(odd.head(), p1);
        // SAFETY: as above.
        let walked: std::vec::Vec<_> = unsafe { NblChain::new(even.head()) }.collect();
        assert_eq!(walked, [p0, p2]);
        // SAFETY: as above.
        assert_eq!(unsafe { (*p1).Next }, ptr::null_mut());
        assert!(NblQueue::new().is_empty());
        // SAFETY: an empty chain.
        assert_eq!(unsafe { NblChain::new(ptr::null_mut()) }.count(), 0);
    }
}
