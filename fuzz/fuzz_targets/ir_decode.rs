//! A bundle payload that passed signature checks is still decoded defensively: arbitrary bytes
//! must be rejected with an error, never a panic or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = armlet_policy::ir::CompiledPolicy::from_bytes(data);
});
