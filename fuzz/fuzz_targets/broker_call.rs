//! Fuzzes what a client sends the broker (protocol breakglass.broker/v1).
//! See breakglass::fuzzing::broker_call.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = breakglass::fuzzing::broker_call(data);
});
