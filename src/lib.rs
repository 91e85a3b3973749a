//! breakglass: governed emergency access from a terminal.
//!
//! `domain` holds the pure lifecycle; `engine` orchestrates store, backends,
//! incident sources and alerts; `cli` and `tui` are thin front ends (ARCHITECTURE.md has the map).
#![forbid(unsafe_code)] // no unsafe in the product; the test harness alone needs pre_exec

pub mod alert;
pub mod alert_vocab;
pub mod audit;
pub mod backend;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod exit;
pub mod failpoint;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod incident;
pub mod net;
pub mod pty;
pub mod sanitize;
pub mod service;
pub mod signing;
pub mod store;
pub mod sync;
pub mod tui;
