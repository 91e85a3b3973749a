//! Fuzzes a generic HTTP incident source's reply, read through two field maps.
//! See breakglass::fuzzing::incident_http.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = breakglass::fuzzing::incident_http(data);
});
