//! What every bench binary shares: the quick switch, numeric overrides, the
//! temp dir, and how figures are printed.
#![allow(dead_code)] // each bench uses a subset

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// `--quick` or `BENCH_QUICK=1`: small sizes, a smoke run in seconds.
/// (`cargo bench` passes `--bench`; other arguments are ignored.)
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
        || std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A size from the environment (`BENCH_EVENTS=1_000_000`), else `default`.
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

/// Where temp files go: `BENCH_DIR`, else the system temp dir.
pub fn bench_dir() -> PathBuf {
    std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A duration in s, ms (with `ms_decimals`) or µs, whichever reads best.
pub fn secs(d: Duration, ms_decimals: usize) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.*} ms", ms_decimals, s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// A count with thousands separators: 1,000,000.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nearest-rank percentile of a sorted slice.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
