//! The one place where the compute backend is chosen, from the cargo features the binary was
//! built with: `wgpu` (GPU) over `ndarray` over `flex` (the default CPU backend).

use burn::tensor::{Device, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no backend compiled in: build with one of the features flex, ndarray, wgpu")]
    NoneCompiled,
    #[error(
        "the wgpu backend found no usable GPU adapter ({0}); rebuild without --features wgpu to train on the CPU"
    )]
    NoAdapter(String),
}

/// The backend in use, as recorded beside every result.
pub fn backend_name() -> &'static str {
    if cfg!(feature = "wgpu") {
        "wgpu"
    } else if cfg!(feature = "ndarray") {
        "ndarray"
    } else if cfg!(feature = "flex") {
        "flex"
    } else {
        "none"
    }
}

/// The widest H at which an ensemble is faster per run than single runs on the CPU
/// backends, measured on the 2-core development machine (flex; `experiments/performance/
/// ensembles/`): Figure 2's 35 runs of one width took 68.8 s as one ensemble against 88.7 s
/// one by one at H = 16, 110.6 s against 129.3 s at H = 64; per training step
/// (`realbias bench --ensemble 8`) the ensemble is faster at H = 16, even at H = 64 and
/// slower from H = 256 (878-1,001 against 485-712 µs per run): the CPU's batched product is
/// a loop of the same GEMM, so only the per-step overhead is shared, and a wide ensemble's
/// step falls out of cache.
pub const CPU_ENSEMBLE_MAX_HIDDEN: usize = 64;

/// Whether training runs of width `hidden` as one ensemble is faster per run than training
/// them one by one on this backend: always on a GPU (a step there is launch overhead), on
/// the CPU only for narrow networks.
pub fn ensembles_help(hidden: usize) -> bool {
    cfg!(feature = "wgpu") || hidden <= CPU_ENSEMBLE_MAX_HIDDEN
}

/// The inference device of the chosen backend (training uses its `.autodiff()` twin).
pub fn device() -> Result<Device, BackendError> {
    #[cfg(feature = "wgpu")]
    {
        return wgpu_device();
    }
    #[cfg(all(feature = "ndarray", not(feature = "wgpu")))]
    {
        // Deprecated in Burn 0.22 in favour of flex; kept as the comparison backend.
        #[allow(deprecated)]
        return Ok(Device::ndarray());
    }
    #[cfg(all(feature = "flex", not(any(feature = "ndarray", feature = "wgpu"))))]
    {
        return Ok(Device::flex());
    }
    #[allow(unreachable_code)]
    Err(BackendError::NoneCompiled)
}

/// wgpu panics deep inside when there is no adapter; turn that into an error, never a silent
/// fall-back to the CPU.
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, BackendError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
        let t = Tensor::<1>::from_floats([1.0, 2.0], &device);
        let s: f32 = t.sum().into_scalar();
        (device, s)
    });
    std::panic::set_hook(hook);
    match probe {
        Ok((device, s)) if s == 3.0 => Ok(device),
        Ok((_, s)) => Err(BackendError::NoAdapter(format!(
            "a test sum gave {s}, not 3"
        ))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "initialization panicked".into());
            Err(BackendError::NoAdapter(msg))
        }
    }
}

/// A one-line description for the start of every run.
pub fn describe(device: &Device) -> String {
    let _ = Tensor::<1>::zeros([1], device); // make sure the device is initialized
    // The backend as the user chose it (the cargo feature), and where it runs in words.
    let place = match backend_name() {
        "wgpu" => "the GPU (wgpu)",
        _ => "the CPU",
    };
    format!(
        "backend {} on {place}, {} threads available",
        backend_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}
