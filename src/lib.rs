//! # rotafetch
//!
//! A drop-in `fetch` for browsers that keeps users signed in with short-lived JWT access
//! tokens and rotating, one-time-use refresh tokens: one serialized refresh per browser
//! (every concurrent request and every open tab), transparent replay after a 401, and no
//! background timers.
//!
//! The crate has two layers:
//! - pure decision modules ([`jwt`], [`token`], [`policy`], [`dpop`], [`error`], [`event`]) and the
//!   session state machine ([`session`]) that never touch the browser and are tested natively,
//!   and [`seam`], the names the browser layer's Rust core and its JS driver share;
//! - on `wasm32`, the browser layer ([`AuthClient`], [`Options`], [`AuthEvent`]) and the JS
//!   façade exported to the npm package.
#![warn(missing_docs)]
#![cfg_attr(all(target_arch = "wasm32", not(feature = "std")), no_std)]

extern crate alloc;

// The npm package's panic handler (see the `panic-trap` feature).
#[cfg(all(target_arch = "wasm32", feature = "panic-trap", not(feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(all(feature = "panic-trap", feature = "std"))]
compile_error!("`panic-trap` needs `std` off (a program that links std has std's panic handler)");
#[cfg(all(
    target_arch = "wasm32",
    feature = "panic-trap",
    not(feature = "small-alloc")
))]
compile_error!("`panic-trap` builds a whole program: it needs `small-alloc` as its allocator");

pub mod dpop;
pub mod error;
pub mod event;
pub mod json;
pub mod jwt;
pub mod policy;
pub mod seam;
pub mod session;
pub mod token;

pub use error::{AuthError, ErrorCode};
pub use event::{AuthEvent, SignoutReason, Source};

// wasm is single-threaded here (no atomics/shared memory), which is what
// `AssumeSingleThreaded` requires.
#[cfg(all(target_arch = "wasm32", feature = "small-alloc"))]
#[global_allocator]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::*;

/// The JS façade (the npm package's `AuthClient` and `AuthError`). Rust code uses
/// [`AuthClient`] directly; this is public for the browser tests that drive the façade.
#[cfg(all(target_arch = "wasm32", feature = "js"))]
#[doc(hidden)]
pub mod js;
