//! Compiles `src/bpf/armlet.bpf.c` with clang (BPF target, CO-RE) into `$OUT_DIR/armlet.bpf.o`,
//! and compiles a tiny host C program that prints the ABI header's sizes and offsets into
//! `$OUT_DIR/abi_layout.rs`, so the Rust mirror's layout tests compare against the C compiler.
//!
//! `CLANG` names the compiler, `ARMLET_BPF_CFLAGS` adds arguments (include paths for
//! libbpf's headers in a Yocto or Buildroot sysroot).
//!
//! `ARMLET_EBPF_STUB=1` (or no clang on the machine) builds an empty object instead, so
//! `cargo check`/`clippy` work anywhere; the agent refuses to enforce with an empty object.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    let obj = out.join("armlet.bpf.o");
    println!("cargo:rerun-if-changed=src/bpf");
    println!("cargo:rerun-if-changed=include");
    println!("cargo:rerun-if-env-changed=ARMLET_EBPF_STUB");
    println!("cargo:rerun-if-env-changed=CLANG");
    // Extra clang arguments for the BPF objects, e.g. `-I<sysroot>/usr/include` where a
    // distribution build (Yocto, Buildroot) keeps libbpf's bpf_helpers.h.
    println!("cargo:rerun-if-env-changed=ARMLET_BPF_CFLAGS");
    let extra: Vec<String> = env::var("ARMLET_BPF_CFLAGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let stub = env::var_os("ARMLET_EBPF_STUB").is_some_and(|v| v == "1");
    let have_clang = Command::new(&clang)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let audit = out.join("audit.bpf.o");
    let sock = out.join("sock.bpf.o");
    // The audit object reads syscall arguments from pt_regs: one build per target arch.
    let arch_define = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => Some("-DARMLET_ARCH_X86"),
        Ok("aarch64") => Some("-DARMLET_ARCH_ARM64"),
        _ => None,
    };
    if !have_clang && !stub {
        // Build again once a compiler appears: a watched path that does not exist makes cargo
        // rerun this script on every build, until clang is installed there (otherwise the
        // empty object would be kept after `scripts/setup-dev.sh` installs clang).
        let name = PathBuf::from(&clang);
        let dirs = env::var_os("PATH").unwrap_or_default();
        for d in env::split_paths(&dirs) {
            println!("cargo:rerun-if-changed={}", d.join(&name).display());
        }
    }
    if stub || !have_clang {
        println!(
            "cargo:warning=armlet-ebpf: building EMPTY eBPF objects ({}); the agent will refuse to enforce",
            if stub {
                "ARMLET_EBPF_STUB=1"
            } else {
                "clang not found; run scripts/setup-dev.sh"
            }
        );
        if fs::write(&obj, b"").is_err()
            || fs::write(&audit, b"").is_err()
            || fs::write(&sock, b"").is_err()
        {
            std::process::exit(1);
        }
    } else {
        let build = |src: &str, dest: &PathBuf, define: Option<&str>| {
            let mut cmd = Command::new(&clang);
            cmd.args([
                "-O2",
                "-g",
                "-target",
                "bpf",
                "-Wall",
                "-Werror",
                "-Wno-unused-function",
            ]);
            if let Some(d) = define {
                cmd.arg(d);
            }
            cmd.args(&extra);
            let ok = cmd
                .args(["-I", "include", "-c", src, "-o"])
                .arg(dest)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("armlet-ebpf: clang failed to build {src}");
                std::process::exit(1);
            }
        };
        build("src/bpf/armlet.bpf.c", &obj, None);
        build("src/bpf/sock.bpf.c", &sock, None);
        match arch_define {
            Some(d) => build("src/bpf/audit.bpf.c", &audit, Some(d)),
            None => {
                if fs::write(&audit, b"").is_err() {
                    std::process::exit(1);
                }
            }
        }
    }

    // The ABI layout as the C compiler sees it (host compiler; the structs use fixed-width
    // integers only, so BPF and host layouts agree).
    let probe_src = out.join("abi_layout.c");
    let probe_bin = out.join("abi_layout");
    let mut c =
        String::from("#include <stdio.h>\n#include <stddef.h>\n#include \"armlet_abi.h\"\n");
    c.push_str(
        "#define S(t) printf(\"pub const SIZE_%s: usize = %zu;\\n\", #t, sizeof(struct t));\n",
    );
    c.push_str("#define O(t,f) printf(\"pub const OFF_%s_%s: usize = %zu;\\n\", #t, #f, offsetof(struct t, f));\n");
    c.push_str("int main(void) {\n");
    for s in [
        "armlet_settings",
        "armlet_workload",
        "armlet_source_key",
        "armlet_path_key",
        "armlet_id_key",
        "armlet_rule_slot",
        "armlet_rule_set",
        "armlet_posture_key",
        "armlet_posture",
        "armlet_event_header",
        "armlet_event",
        "armlet_proc_event",
        "armlet_audit_settings",
        "armlet_syscall_event",
        "armlet_sock_settings",
        "armlet_sock_event",
        "armlet_sock_key",
    ] {
        c.push_str(&format!("S({s})\n"));
    }
    for (s, f) in [
        ("armlet_settings", "host_workload"),
        ("armlet_settings", "agent_tgid"),
        ("armlet_settings", "supervisor_tgid"),
        ("armlet_settings", "host_confined"),
        ("armlet_settings", "alerts_per_sec"),
        ("armlet_path_key", "generation"),
        ("armlet_path_key", "kind"),
        ("armlet_path_key", "path"),
        ("armlet_id_key", "id"),
        ("armlet_posture_key", "category"),
        ("armlet_event_header", "rule_id"),
        ("armlet_event_header", "cgroup_id"),
        ("armlet_event_header", "timestamp_ns"),
        ("armlet_event", "tid"),
        ("armlet_event", "id"),
        ("armlet_event", "sock"),
        ("armlet_event", "comm"),
        ("armlet_event", "source"),
        ("armlet_event", "target"),
        ("armlet_proc_event", "comm"),
        ("armlet_proc_event", "filename"),
        ("armlet_syscall_event", "dfd"),
        ("armlet_syscall_event", "comm"),
        ("armlet_syscall_event", "path"),
        ("armlet_sock_event", "comm"),
    ] {
        c.push_str(&format!("O({s},{f})\n"));
    }
    c.push_str("return 0; }\n");
    let layout_rs = out.join("abi_layout.rs");
    let built = fs::write(&probe_src, c).is_ok()
        && cc_host()
            .args(["-I", "include", "-o"])
            .arg(&probe_bin)
            .arg(&probe_src)
            .status()
            .is_ok_and(|s| s.success());
    let text = if built {
        Command::new(&probe_bin)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        None
    };
    let text = text.unwrap_or_else(|| {
        println!("cargo:warning=armlet-ebpf: no host C compiler: ABI layout tests will be skipped");
        "pub const MEASURED: bool = false;\n".into()
    });
    let text = if text.contains("MEASURED") {
        text
    } else {
        format!("pub const MEASURED: bool = true;\n{text}")
    };
    if fs::write(&layout_rs, text).is_err() {
        std::process::exit(1);
    }
}

fn cc_host() -> Command {
    Command::new(env::var("HOST_CC").unwrap_or_else(|_| "cc".into()))
}
