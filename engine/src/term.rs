//! Messages to standard error and output that never panic.
//!
//! `eprintln!` and `println!` panic when their stream is gone: `ringwire
//! capture ... 2>&1 | head -3` closes standard error after three lines, and
//! the capture's closing summary then ended it with exit status 101 instead
//! of 0. The binaries write through these instead: what cannot be written
//! is dropped (the stream's reader left), and the program goes on to close
//! its files and exit as it would have.

use std::io::Write as _;

/// Write `args` to standard error; dropped if standard error is gone.
pub fn err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Write `args` to standard output and flush it; false once its reader is
/// gone (a closed pipe), so that a loop printing to it can stop.
pub fn out(args: std::fmt::Arguments<'_>) -> bool {
    let mut o = std::io::stdout().lock();
    o.write_fmt(args).and_then(|()| o.flush()).is_ok()
}

/// `eprintln!` that does not panic (see [`err`]).
#[macro_export]
macro_rules! say {
    () => {
        $crate::term::err(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::term::err(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `eprint!` that does not panic (see [`err`]).
#[macro_export]
macro_rules! say_raw {
    ($($t:tt)*) => {
        $crate::term::err(format_args!($($t)*))
    };
}

/// `println!` that does not panic: false once standard output is gone (see [`out`]).
#[macro_export]
macro_rules! out {
    () => {
        $crate::term::out(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::term::out(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` that does not panic: false once standard output is gone (see [`out`]).
#[macro_export]
macro_rules! out_raw {
    ($($t:tt)*) => {
        $crate::term::out(format_args!($($t)*))
    };
}
