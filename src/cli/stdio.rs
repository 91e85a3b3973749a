//! Printing that survives a closed pipe. `println!` panics when stdout is gone
//! (`breakglass activate REQ-1 --json | head -5`), after the grant was made; a
//! command must instead finish its work quietly: the access stays recorded and
//! revocable. Once a stream fails, later writes to it are dropped.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

fn write_line(gone: &AtomicBool, w: &mut dyn Write, args: std::fmt::Arguments) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    let ok = w
        .write_fmt(args)
        .and_then(|()| w.write_all(b"\n"))
        .and_then(|()| w.flush());
    if ok.is_err() {
        gone.store(true, Ordering::Relaxed);
    }
}

#[doc(hidden)]
pub fn out_line(args: std::fmt::Arguments) {
    write_line(&STDOUT_GONE, &mut std::io::stdout().lock(), args);
}

#[doc(hidden)]
pub fn err_line(args: std::fmt::Arguments) {
    write_line(&STDERR_GONE, &mut std::io::stderr().lock(), args);
}

/// `println!` that never panics.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::stdio::out_line(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::stdio::err_line(format_args!($($arg)*)) };
}

pub(crate) use {errln, outln};

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stream_is_marked_gone_and_never_panics() {
        let gone = AtomicBool::new(false);
        write_line(&gone, &mut Closed, format_args!("x"));
        assert!(gone.load(Ordering::Relaxed));
        write_line(&gone, &mut Closed, format_args!("y"));
    }
}
