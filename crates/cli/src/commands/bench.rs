//! `realbias bench`: training throughput of the real training path against this machine's
//! measured matrix-multiply peak.

use anyhow::Result;
use clap::Args;
use realbias_train::backend;
use realbias_train::bench::{self, BenchRow, BenchSettings};
use realbias_train::engine::classifier::LossPath;

#[derive(Args)]
pub struct BenchArgs {
    /// Hidden widths to time.
    #[arg(long, value_delimiter = ',', default_value = "16,256,1024,4096")]
    hidden: Vec<usize>,
    /// Training examples per epoch (the paper's MNIST training split: 50,000).
    #[arg(long, default_value_t = 50_000)]
    examples: usize,
    /// Validation examples evaluated every epoch with the training set (MNIST: 10,000).
    #[arg(long, default_value_t = 10_000)]
    validation: usize,
    /// Epochs per width (the medians are reported).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Threads (the run's rayon pool).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// One JSON object per line, one per width.
    #[arg(long)]
    json: bool,
    /// The loss implementation: `fused` (one autodiff node, what training uses) or
    /// `composed` (Burn's operations one by one, the reference).
    #[arg(long, default_value = "fused")]
    loss: LossPath,
    /// Train R runs (seeds 0..R) as one batched ensemble; `µs/step` is then one step of the
    /// whole ensemble, `µs/member` its share per run.
    #[arg(long, value_name = "R")]
    ensemble: Option<usize>,
    /// Also time writing each width's checkpoint (with a full run's 500-epoch history) in
    /// this folder, and print the share of training time it costs at the default interval
    /// of 60 s (every member's, for an ensemble).
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<std::path::PathBuf>,
}

fn print_header(settings: &BenchSettings, device: &burn::tensor::Device) {
    println!("{}", backend::describe(device));
    println!(
        "{} examples (+{} validation) per epoch, d = 100, k = 10, batch 100, f32, {} thread(s), median of {} epochs, {} loss",
        settings.examples,
        settings.validation,
        settings.threads,
        settings.epochs,
        settings.loss.name()
    );
    if let Some(r) = settings.ensemble {
        println!("{r} runs (seeds 0..{r}) trained as one ensemble: times are the whole ensemble's");
    }
    println!(
        "{:>6} {:>10} {:>10} {:>9} {:>9} {:>10} {:>9} {:>8}",
        "H", "epoch s", "eval s", "eval/ep", "µs/step", "µs/member", "GFLOP/s", "% peak"
    );
}

fn print_row(r: &BenchRow, json: bool) {
    if json {
        match serde_json::to_string(r) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("cannot encode a benchmark row as JSON: {e}"),
        }
        return;
    }
    println!(
        "{:>6} {:>10.4} {:>10.4} {:>8.0}% {:>9.1} {:>10.1} {:>9.1} {:>7.1}%",
        r.hidden,
        r.epoch_seconds,
        r.eval_seconds,
        100.0 * r.eval_overhead,
        r.step_micros,
        r.step_micros_per_member,
        r.gflops,
        r.percent_of_peak
    );
    if let (Some(bytes), Some(seconds), Some(share)) = (
        r.checkpoint_bytes,
        r.checkpoint_seconds,
        r.checkpoint_overhead,
    ) {
        println!(
            "{:>6} checkpoint {:.1} KiB written in {:.2} ms: {:.3}% of training time at one per 60 s{}",
            "",
            bytes as f64 / 1024.0,
            1e3 * seconds,
            100.0 * share,
            r.ensemble
                .map_or(String::new(), |m| format!(" for all {m} members"))
        );
    }
}

pub fn command(args: BenchArgs) -> Result<()> {
    let settings = BenchSettings {
        hidden: args.hidden,
        examples: args.examples,
        validation: args.validation,
        epochs: args.epochs,
        threads: args.threads,
        inputs: 100,
        classes: 10,
        batch_size: 100,
        loss: args.loss,
        ensemble: args.ensemble,
        checkpoint_dir: args.checkpoint_dir,
    };
    let device = backend::device()?;
    if !args.json {
        print_header(&settings, &device);
    }
    let json = args.json;
    let rows = bench::run(&settings, &device, &mut |r| print_row(r, json))?;
    if !json && let Some(r) = rows.first() {
        println!(
            "measured matrix-multiply peak (same backend, best of 5 over {} shapes; {}x{} by {}x{}): {:.1} GFLOP/s",
            bench::PEAK_SHAPES.len(),
            r.peak_shape[0],
            r.peak_shape[1],
            r.peak_shape[1],
            r.peak_shape[2],
            r.peak_gflops
        );
    }
    Ok(())
}
