//! Embeds the source revision the crate is built from, so every result records the code that
//! produced it wherever the binary later runs (not the git repository of the user's current
//! directory). `REALBIAS_REVISION` overrides it for builds outside a checkout (a source
//! tarball, a distribution package).

use std::path::Path;
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `<12-hex revision>`, with `-dirty` when the build inputs (the crates, the manifest and the
/// lock file) differ from that commit; `unknown` outside a git checkout.
fn revision(root: &Path) -> String {
    let Some(head) = git(root, &["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    let inputs = ["crates", "Cargo.toml", "Cargo.lock"];
    let status = git(
        root,
        &[&["status", "--porcelain", "--"][..], &inputs[..]].concat(),
    );
    match status {
        Some(s) if s.is_empty() => head,
        Some(_) => format!("{head}-dirty"),
        None => format!("{head}-unknown-state"),
    }
}

/// The version of `name` in the workspace's lock file.
fn locked_version(root: &Path, name: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            let version = lines.next()?.strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_string());
        }
    }
    None
}

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../..");
    let revision = std::env::var("REALBIAS_REVISION").unwrap_or_else(|_| revision(&root));
    println!("cargo:rustc-env=REALBIAS_BUILD_REVISION={revision}");
    let burn = locked_version(&root, "burn").unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=REALBIAS_BURN_VERSION={burn}");
    println!("cargo:rerun-if-env-changed=REALBIAS_REVISION");
    // A directory is scanned recursively: any edit to the sources re-derives `-dirty`.
    for input in [
        "crates",
        "Cargo.toml",
        "Cargo.lock",
        ".git/HEAD",
        ".git/index",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    if let Some(head_ref) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
        println!(
            "cargo:rerun-if-changed={}",
            root.join(".git").join(head_ref).display()
        );
    }
}
