//! Fuzzes a whole config file (breakglass.toml) through config::load_str.
//! See breakglass::fuzzing::config.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = breakglass::fuzzing::config(data);
});
