//! What every bench binary shares: the quick switch and numeric overrides.

use anyhow::{Context, Result};

/// `--quick` or `BENCH_QUICK=1`: small sizes, a smoke run in seconds.
/// (`cargo bench` passes `--bench`; other arguments are ignored.)
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
        || std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A size from the environment (`BENCH_EVENTS=1_000_000`), else `default`.
#[allow(dead_code)] // not every bench takes overrides
pub fn env_num(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        _ => Ok(default),
    }
}
