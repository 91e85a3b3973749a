//! One module per screen. Each renders from the app state; `hints` is the
//! one-line reminder of the screen's keys (from the keymap the handlers use).

pub mod access;
pub mod audit;
pub mod queues;
pub mod walk;

pub use super::app::keymap::hints;
