//! What a reader needs to judge whether two results should agree: the revision the code was
//! built from (embedded at build time by `build.rs`), the Burn version, and the machine a run
//! ran on: its CPU, the SIMD kernels the CPU backend dispatches to on it, and the threads.
//!
//! On the CPU backends, a run is bit-identical only on the same binary and the same kernel
//! level: the GEMM and reduction kernels are chosen at run time by CPU features, and
//! different kernels sum in a different order (see docs/src/reproductions.md, "Reproducibility").

use serde::{Deserialize, Serialize};

/// The source revision this crate was built from: 12 hex digits, `-dirty` when the crates,
/// the manifest or the lock file differed from that commit, or `unknown` outside a checkout.
pub const BUILD_REVISION: &str = env!("REALBIAS_BUILD_REVISION");

/// The Burn version in the workspace's lock file.
pub const BURN_VERSION: &str = env!("REALBIAS_BURN_VERSION");

/// The machine a run ran on, as recorded in `result.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU model (`/proc/cpuinfo`), or the architecture where it is not known.
    pub cpu: String,
    /// The kernels the flex backend's GEMM (`gemm` crate) and its elementwise and reduction
    /// code (`macerator`) dispatch to on this CPU.
    pub cpu_kernels: String,
    /// Threads of the pool the run's tensor operations used.
    pub threads: usize,
    pub burn_version: String,
}

impl Machine {
    /// This machine, now, from inside the run's thread pool.
    pub fn this() -> Machine {
        Machine {
            cpu: cpu_model(),
            cpu_kernels: cpu_kernels(),
            threads: rayon::current_num_threads(),
            burn_version: BURN_VERSION.to_string(),
        }
    }
}

/// The first `model name` of `/proc/cpuinfo`, else the architecture.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("unknown {} CPU", std::env::consts::ARCH))
}

/// gemm 0.19 (built without its `x86-v4` feature) takes its FMA kernels where FMA exists and
/// scalar ones otherwise; macerator takes the widest x86-64 level the CPU has.
#[cfg(target_arch = "x86_64")]
fn cpu_kernels() -> String {
    use std::arch::is_x86_feature_detected as has;
    let gemm = if has!("fma") { "fma" } else { "scalar" };
    let v4 = has!("avx512f")
        && has!("avx512bw")
        && has!("avx512cd")
        && has!("avx512dq")
        && has!("avx512vl");
    let level = if v4 {
        "x86-64-v4 (AVX-512)"
    } else if has!("avx2") && has!("fma") {
        "x86-64-v3 (AVX2)"
    } else if has!("sse4.2") {
        "x86-64-v2 (SSE4.2)"
    } else {
        "scalar"
    };
    format!("gemm {gemm}; elementwise {level}")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_kernels() -> String {
    format!("{} defaults", std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_is_embedded_not_looked_up() {
        let hex = BUILD_REVISION.trim_end_matches("-dirty");
        assert!(
            BUILD_REVISION == "unknown"
                || (hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit())),
            "{BUILD_REVISION}"
        );
        assert!(BURN_VERSION.starts_with("0."), "{BURN_VERSION}");
    }

    #[test]
    fn the_machine_is_described() {
        let m = Machine::this();
        assert!(!m.cpu.is_empty() && !m.cpu_kernels.is_empty());
        assert!(m.threads >= 1);
    }
}
