//! Compiles every eBPF C program with libbpf-cargo (clang -target bpf) into
//! an object in OUT_DIR: ringwire's own programs (embedded in the library),
//! the example user filter and the test fixtures (whose paths are exported
//! to the crate as `RW_BPF_OBJ_<NAME>`).

use std::{env, path::PathBuf};

use libbpf_cargo::SkeletonBuilder;

const PROGRAMS: &[(&str, &str)] = &[
    ("classifier", "src/bpf/classifier.bpf.c"),
    ("steer", "src/bpf/steer.bpf.c"),
    ("keep_udp", "examples/keep_udp.bpf.c"),
    ("rejected", "tests/fixtures/rejected.bpf.c"),
    ("not_socket", "tests/fixtures/not_socket.bpf.c"),
    ("silent", "tests/fixtures/silent.bpf.c"),
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // <linux/bpf.h> includes <asm/types.h>, which Debian keeps under the
    // multiarch directory clang -target bpf does not search by itself.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    println!("cargo:rerun-if-changed=src/bpf/ringwire.h");
    for (name, src) in PROGRAMS {
        let obj = out.join(format!("{name}.bpf.o"));
        SkeletonBuilder::new()
            .source(src)
            .obj(&obj)
            .clang_args([multiarch.as_str(), "-Isrc/bpf", "-Wall", "-Werror"])
            .build()
            .unwrap_or_else(|e| panic!("compiling {src} (is clang installed? `make deps`): {e:#}"));
        println!("cargo:rerun-if-changed={src}");
        println!("cargo:rustc-env=RW_BPF_OBJ_{}={}", name.to_uppercase(), obj.display());
    }
}
