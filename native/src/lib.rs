//! The rating engine's decision core.
//!
//! Pure and deterministic: no I/O besides reading a deck file, no clock of its own. Drivers
//! (the `rate` and `simulate` commands, the Kafka worker) hand it bytes and instants and get
//! bytes back. Every amount is an integer of micro-units; every instant an exact number of
//! microseconds (a rational when a shared pool empties between two microseconds).
//!
//! Input never panics it: outside tests, `unwrap`, `expect` and `panic!` are refused by the
//! linter, so every failure is a value the driver turns into a dead letter or an error.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

/// Every Rust allocation of the core (Python's own objects keep Python's allocator): the
/// decisions make and drop many small buffers, which glibc's allocator serves slowly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod batch;
pub mod clock;
pub mod deck;
pub mod engine;
pub mod events;
pub mod fields;
pub mod fxhash;
pub mod json;
pub mod money;
pub mod pricing;
pub mod pystr;
pub mod rate;
pub mod records;
pub mod state;
pub mod table;
pub mod tenant;
pub mod view;

#[cfg(feature = "python")]
mod py;
