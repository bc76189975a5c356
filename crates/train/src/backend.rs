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
/// backends, per thread, measured on the 2-core development machine (flex, batched
/// evaluation; `experiments/performance/ensembles/`): Figure 2's 35 runs of one width,
/// `--jobs 1`, took 42.5 s as one ensemble against 46.7 s one by one at H = 16, 50.3 s
/// against 57.0 s at H = 32, and 70.7 s against 71.1 s at H = 64 (no gain); one stack on one
/// thread (`--threads 1`) took 120.8 s against 108.0 s at H = 64 on a slower machine. On the
/// CPU the batched product is a loop of the same small GEMMs and the logits' reduction is per
/// member either way, so a stack saves only the per-operation overhead, which shrinks as H
/// grows. (Split over the run's threads, [`ensemble_threads`], an ensemble also gains the
/// cores a single run leaves idle; that gain is the threads', not the width's.)
pub const CPU_ENSEMBLE_MAX_HIDDEN: usize = 32;

/// Whether training runs of width `hidden` as one ensemble is faster per run than training
/// them one by one on this backend: always on a GPU (a step there is launch overhead), on
/// the CPU only for narrow networks.
pub fn ensembles_help(hidden: usize) -> bool {
    cfg!(feature = "wgpu") || hidden <= CPU_ENSEMBLE_MAX_HIDDEN
}

/// How many threads an ensemble's members are split over (`crate::engine::shards`): on the CPU
/// every thread of the run trains its own share of the members, since flex runs a batched
/// product's members in parallel but the rest of a step (the batch gather, the masks, the
/// host's reduction of the logits) on one thread; on a GPU one stack, whose step is one
/// launch per operation whatever its size.
pub fn ensemble_threads() -> usize {
    match cfg!(feature = "wgpu") {
        true => 1,
        false => rayon::current_num_threads(),
    }
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
