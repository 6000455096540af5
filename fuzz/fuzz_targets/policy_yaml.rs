//! The YAML front end and the compiler must never panic, whatever the text: every input ends as
//! policies or diagnostics, and every valid document compiles and evaluates.
#![no_main]

use armlet_policy::eval::{Access, Resource, decide};
use armlet_policy::ir::{SourcePolicy, Posture, Workload, compile, latest_definitions};
use armlet_policy::parse::parse_policies;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = parse_policies(text);
    for d in &parsed.diagnostics {
        // Positions are always inside the text (1-based).
        assert!(d.pos.line >= 1 && d.pos.col >= 1);
    }
    let inputs: Vec<SourcePolicy> = parsed
        .documents
        .into_iter()
        .map(|d| SourcePolicy { policy: d.policy, source: "fuzz".into() })
        .collect();
    let (inputs, _) = latest_definitions(inputs);
    if let Ok(ir) = compile(&inputs, Posture::default()) {
        let bytes = ir.to_bytes().expect("encode");
        assert_eq!(armlet_policy::ir::CompiledPolicy::from_bytes(&bytes).expect("decode"), ir);
        let host = Workload::Host { labels: Default::default() };
        let eff = ir.effective(&host);
        let _ = decide(&eff, &Access {
            exe: "/bin/sh",
            resource: Resource::File("/etc/passwd"),
            uid: 0,
            owner_uid: Some(0),
            write: true,
        });
    }
});
