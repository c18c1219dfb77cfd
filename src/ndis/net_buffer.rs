//! [`NetBuffer`]: a handle on a NET_BUFFER the holder owns, and [`NetBuffers`], the walk over an
//! NBL's NBs.
//!
//! Owns: the NetBuffer invariant below. Must not: retreat, advance or touch bytes (that is `nb/`).
//! IRQL: any.

use super::mdl::MdlPos;
use core::iter::FusedIterator;
use core::ptr::NonNull;
use ndis_sys::{NET_BUFFER, NET_BUFFER_LIST};

/// A NET_BUFFER that the holder owns: a non-NULL pointer with the layout of `*mut NET_BUFFER`
/// (`#[repr(transparent)]`), so it costs what the raw pointer costs.
///
/// **Invariant** (established by [`NetBuffer::from_raw`] / [`NetBuffers::of`]): for as long as the
/// handle is used, it points at a valid NET_BUFFER of an NBL the holder owns (being sent, completed,
/// indicated or returned to it), whose `Next` is NULL or another such NB, and whose MDL chain
/// describes memory that is mapped into system space or locked. A handle must not be used once its
/// NBL has been passed on to another driver.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetBuffer(NonNull<NET_BUFFER>);

const _: () = assert!(core::mem::size_of::<NetBuffer>() == core::mem::size_of::<*mut NET_BUFFER>());
const _: () =
    assert!(core::mem::size_of::<Option<NetBuffer>>() == core::mem::size_of::<*mut NET_BUFFER>());

impl NetBuffer {
    /// The handle for `nb`, `None` if it is NULL. Any IRQL.
    ///
    /// # Safety
    /// `nb` must be NULL or satisfy the type's invariant for as long as the handle is used.
    #[inline]
    pub unsafe fn from_raw(nb: *mut NET_BUFFER) -> Option<Self> {
        NonNull::new(nb).map(Self)
    }

    /// The handle for `nb`, which is not NULL. Any IRQL.
    ///
    /// # Safety
    /// `nb` must satisfy the type's invariant (so it is not NULL) for as long as the handle is used.
    #[inline]
    pub unsafe fn new_unchecked(nb: *mut NET_BUFFER) -> Self {
        // SAFETY: not NULL (caller contract).
        Self(unsafe { NonNull::new_unchecked(nb) })
    }

    /// The raw pointer, for the `nb/` routines and NDIS. Any IRQL.
    #[inline]
    pub fn as_ptr(self) -> *mut NET_BUFFER {
        self.0.as_ptr()
    }

    /// `NET_BUFFER_DATA_LENGTH`. Any IRQL.
    #[inline]
    pub fn data_length(self) -> u32 {
        // SAFETY: NetBuffer's invariant: a valid NB.
        unsafe { (*self.as_ptr()).DataLength() }
    }

    /// The NB's data start: `CurrentMdl` at `CurrentMdlOffset`. Any IRQL.
    #[inline]
    pub fn data_start(self) -> MdlPos {
        // SAFETY: NetBuffer's invariant: a valid NB.
        let (mdl, offset) = unsafe {
            (
                (*self.as_ptr()).CurrentMdl,
                (*self.as_ptr()).CurrentMdlOffset,
            )
        };
        MdlPos { mdl, offset }
    }

    /// The next NB of the same NBL, if any. Any IRQL.
    #[inline]
    pub fn next(self) -> Option<Self> {
        // SAFETY: NetBuffer's invariant: a valid NB whose `Next` is NULL or an NB of the same owned
        // NBL, which satisfies the invariant as long as this one does.
        unsafe { Self::from_raw((*self.as_ptr()).Next) }
    }
}

/// The NBs of one NBL, first to last. Any IRQL.
#[derive(Clone)]
pub struct NetBuffers {
    next: Option<NetBuffer>,
}

impl NetBuffers {
    /// Walks the NBs of `nbl`. Any IRQL.
    ///
    /// # Safety
    /// `nbl` must be a valid NBL the caller owns for as long as it uses the iterator and the
    /// handles it yields (then every NB of it satisfies [`NetBuffer`]'s invariant).
    #[inline]
    pub unsafe fn of(nbl: *const NET_BUFFER_LIST) -> Self {
        // SAFETY: valid, owned NBL (caller contract): its NBs satisfy NetBuffer's invariant.
        let first = unsafe { NetBuffer::from_raw((*nbl).FirstNetBuffer) };
        Self { next: first }
    }
}

impl Iterator for NetBuffers {
    type Item = NetBuffer;

    #[inline]
    fn next(&mut self) -> Option<NetBuffer> {
        let nb = self.next?;
        self.next = nb.next();
        Some(nb)
    }
}

impl FusedIterator for NetBuffers {}
