//! Compiling on a thread with a large stack.
//!
//! jaq's lexer, parser and compiler recurse once per level of nesting in the jq text, with
//! large frames: in a debug build 200 nested parentheses overflow a 2 MiB stack (the size of
//! tokio's and the test harness's threads), in a release build about 1000 do. A stack overflow
//! aborts the process, so a bad spec could take down the operator that compiles it. Compiling
//! is rare (once per published spec), so it runs on a short-lived thread whose stack
//! ([`STACK_SIZE`], reserved lazily by the OS) holds any text within [`crate::guard::MAX_LEN`].
//! The guards then make sure what was compiled also runs on an ordinary stack.

use std::{
    panic::{self, AssertUnwindSafe},
    thread,
};

/// Stack for compiling; enough for the worst case of a text of `guard::MAX_LEN` bytes.
const STACK_SIZE: usize = 512 * 1024 * 1024;

/// Run `compile` on a large stack and return its result; a panic inside becomes an error.
///
/// If the thread cannot be started (the process is out of threads or address space), compile
/// on the current thread: ordinary expressions still work, only pathological ones would
/// overflow.
pub(crate) fn run<T: Send>(compile: impl Fn() -> T + Sync) -> Result<T, String> {
    let panicked = |_| "the jq compiler panicked".to_owned();
    thread::scope(|scope| {
        let spawned = thread::Builder::new()
            .name("hookplane-jq-compile".to_owned())
            .stack_size(STACK_SIZE)
            .spawn_scoped(scope, &compile);
        match spawned {
            Ok(handle) => handle.join().map_err(panicked),
            Err(_) => panic::catch_unwind(AssertUnwindSafe(&compile)).map_err(panicked),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_result_and_turns_panics_into_errors() {
        assert_eq!(run(|| 42), Ok(42));
        assert_eq!(
            run(|| -> u8 { panic!("inside") }),
            Err("the jq compiler panicked".to_owned())
        );
    }
}
