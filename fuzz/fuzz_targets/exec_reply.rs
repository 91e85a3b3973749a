//! Fuzzes an exec plugin's stdout reply (protocol breakglass.exec/v1) and stderr.
//! See breakglass::fuzzing::exec_reply.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = breakglass::fuzzing::exec_reply(data);
});
