//! Fuzzes the policy file a config names (policy = "policy.toml").
//! See breakglass::fuzzing::policy_file.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = breakglass::fuzzing::policy_file(data);
});
