//! Crash points for the crash tests: `BREAKGLASS_FAILPOINT=<name>` kills the process
//! with SIGKILL at that I/O boundary. Harmless in production: whoever can set the
//! environment can kill the process anyway, and recovery exists for exactly this.

pub fn hit(name: &str) {
    if std::env::var("BREAKGLASS_FAILPOINT").is_ok_and(|v| v == name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Panics at `name`, for testing that the console restores the terminal.
pub fn panic_at(name: &str) {
    if std::env::var("BREAKGLASS_FAILPOINT").is_ok_and(|v| v == name) {
        panic!("fail point {name}");
    }
}
