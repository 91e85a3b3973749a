//! Fuzzes a file incident source's incidents, as JSON and as TOML.
//! See breakglass::fuzzing::incident_file.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = breakglass::fuzzing::incident_file(data);
});
