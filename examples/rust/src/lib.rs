//! A Rust/wasm frontend using rotafetch's Rust API: the same app as `examples/vite-ts`,
//! written against [`rotafetch::AuthClient`] instead of the npm package.
//!
//! Build and serve it (from the repository root):
//!
//! ```sh
//! wasm-pack build --release --target web examples/rust --out-dir ../../target/examples/rust-pkg
//! target/server/rotafetch-server --static /rust=examples/rust/www \
//!   --static /rust-pkg=target/examples/rust-pkg
//! # open http://127.0.0.1:8080/rust/
//! ```
//!
//! On other targets the crate is empty (so `cargo test --workspace` builds natively).

#[cfg(target_arch = "wasm32")]
mod app;
