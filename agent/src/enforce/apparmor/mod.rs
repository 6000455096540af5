//! The AppArmor enforcer: profiles generated from the rule IR, loaded into the kernel, and
//! AppArmor's own audit records turned back into KubeArmor-style alerts.
//!
//! Why AppArmor: on kernels without BPF-LSM but with AppArmor active (Debian, Ubuntu), it is the
//! only mechanism that can deny exec, file, network and capability use by path. `profile` is
//! the pure IR → text step (golden-tested); the rest talks to the kernel.

pub mod engine;
pub mod kernel;
pub mod log;
pub mod profile;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use armlet_policy::ir::{CompiledPolicy, Posture, Workload, WorkloadSelector};
    use armlet_policy::model::Action;
    use armlet_policy::support::{Enforcer, Support, support};

    use super::profile::{self, HOST_ATTACH, HOST_PROFILE};

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/enforce/apparmor/testdata")
            .join(name)
    }

    fn host() -> Workload {
        host_named("node1")
    }

    fn host_named(node: &str) -> Workload {
        Workload::Host {
            labels: BTreeMap::from([("kubernetes.io/hostname".to_string(), node.to_string())]),
        }
    }

    fn compile(name: &str, posture: Posture) -> CompiledPolicy {
        let src = std::fs::read_to_string(testdata(name)).unwrap();
        armlet_policy::compile_text(&src, name, posture).unwrap()
    }

    /// Compare with `testdata/<golden>`; `ARMLET_BLESS=1` rewrites it.
    fn golden(text: &str, golden: &str) {
        let path = testdata(golden);
        if std::env::var_os("ARMLET_BLESS").is_some() {
            std::fs::write(&path, text).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, want, "{golden} differs (ARMLET_BLESS=1 to update)");
    }

    /// The real parser accepts the text (skipped where apparmor_parser is not installed).
    fn parser_accepts(text: &str) {
        let Ok(out) = std::process::Command::new("apparmor_parser")
            .args(["-Q", "-K", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(text.as_bytes())?;
                c.wait_with_output()
            })
        else {
            eprintln!("SKIP parser check: apparmor_parser is not installed");
            return;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        let real: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("Cache read/write disabled"))
            .collect();
        assert!(
            out.status.success() && real.is_empty(),
            "apparmor_parser refused:\n{err}\n{text}"
        );
    }

    #[test]
    fn host_block_and_audit_profile() {
        let ir = compile("host_block.yaml", Posture::default());
        let p = profile::generate(HOST_PROFILE, Some(HOST_ATTACH), &ir.effective(&host()));
        golden(&p.text, "host_block.apparmor");
        parser_accepts(&p.text);
        let reasons: Vec<(String, &str)> = p
            .unexpressed
            .iter()
            .map(|u| (u.resource.clone(), u.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![(
                "icmpv6".to_string(),
                "AppArmor network rules cannot name this protocol"
            )]
        );
    }

    #[test]
    fn host_allow_lists_under_each_posture() {
        for (posture, file) in [
            (Action::Block, "host_allow_block.apparmor"),
            (Action::Audit, "host_allow_audit.apparmor"),
        ] {
            let ir = compile("host_allow.yaml", Posture::uniform(posture));
            let p = profile::generate(HOST_PROFILE, Some(HOST_ATTACH), &ir.effective(&host()));
            golden(&p.text, file);
            parser_accepts(&p.text);
            assert!(p.unexpressed.is_empty(), "{:?}", p.unexpressed);
        }
    }

    #[test]
    fn container_profile_names_follow_the_contract() {
        assert_eq!(
            profile::container_profile_name("multi ubuntu", "ubuntu-1/x"),
            "armlet-multi_ubuntu-ubuntu-1_x"
        );
        let ir = compile("host_block.yaml", Posture::default());
        let p = profile::generate("armlet-ns-c", None, &ir.effective(&host()));
        assert!(p.text.contains("profile armlet-ns-c flags="));
        assert!(p.text.contains("px -> armlet-ns-c,"));
    }

    /// Every rule the support table says AppArmor enforces (or observes) is in the profile,
    /// tagged with its id, and every rule it does not is in `unexpressed` — for every scenario
    /// policy the conformance data and the project ship.
    #[test]
    fn support_table_and_profile_agree() {
        let mut dirs =
            vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/enforce/apparmor/testdata")];
        let shared = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/conformance/kubearmor/host_scenarios");
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/examples/host"));
        if shared.is_dir() {
            dirs.extend(
                std::fs::read_dir(&shared)
                    .unwrap()
                    .map(|e| e.unwrap().path()),
            );
        } else {
            eprintln!("SKIP conformance policies: {} is absent", shared.display());
        }
        let mut checked = 0;
        for dir in dirs {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "yaml") {
                    continue;
                }
                let src = std::fs::read_to_string(&path).unwrap();
                let Ok(ir) = armlet_policy::compile_text(&src, "t", Posture::default()) else {
                    continue;
                };
                // One host per node selector (its own labels), so every host policy applies.
                let hosts: Vec<Workload> = ir
                    .workloads
                    .iter()
                    .filter_map(|w| match &w.selector {
                        WorkloadSelector::Host(sel) => Some(Workload::Host {
                            labels: sel.match_labels.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                for w in hosts {
                    let eff = ir.effective(&w);
                    let p = profile::generate(HOST_PROFILE, Some(HOST_ATTACH), &eff);
                    parser_accepts(&p.text);
                    for r in &eff.rules {
                        let s = support(Enforcer::AppArmor, &r.target, &r.from_source, r.action);
                        let in_text = p.text.contains(&format!("# rule {}\n", r.id));
                        let reported = p.unexpressed.iter().any(|u| u.rule == r.id);
                        match s {
                            Support::Enforced => assert!(
                                in_text && !reported,
                                "{}: rule {} ({:?}) is supported but not in the profile:\n{}",
                                path.display(),
                                r.id,
                                r.target,
                                p.text
                            ),
                            _ => assert!(
                                reported,
                                "{}: rule {} ({:?}) is unsupported ({s:?}) but not reported",
                                path.display(),
                                r.id,
                                r.target
                            ),
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 40, "only {checked} rules checked");
        eprintln!("{checked} rules checked against the support table");
    }
}
