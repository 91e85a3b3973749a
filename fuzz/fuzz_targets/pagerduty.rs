//! Fuzzes PagerDuty listing pages (one JSON document per page) through the paging loop.
//! See breakglass::fuzzing::pagerduty.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = breakglass::fuzzing::pagerduty(data);
});
