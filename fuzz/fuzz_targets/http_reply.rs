//! Fuzzes the HTTP backend's answer: optional "HTTP <status>" line, then the body.
//! See breakglass::fuzzing::http_reply.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = breakglass::fuzzing::http_reply(data);
});
