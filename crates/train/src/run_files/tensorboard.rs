//! A run's `history.csv` as a TensorBoard event file, so that `tensorboard --logdir DIR`
//! shows the learning curves of every run of a folder.
//!
//! The format (TensorFlow's `tensorflow/core/lib/io/record_writer.cc` and `event.proto`): a
//! sequence of records, each `u64` length (little-endian), the masked CRC-32C of those 8 bytes,
//! the data, and the masked CRC-32C of the data. Each record's data is one `Event` protobuf:
//! the first holds `file_version = "brain.Event:2"`, every other one a `Summary` of one scalar
//! (`tag`, `simple_value`) at `step` = the epoch. The encoding is written here by hand (a
//! dozen bytes of protobuf per scalar) rather than through a protobuf or TensorBoard crate.
//!
//! `wall_time` is the run's own clock (`wall_seconds` of the history, from the run's start),
//! so the file depends only on the history: converting the same history twice gives the same
//! bytes. TensorBoard's "relative" horizontal axis shows it as the run's elapsed time.

use std::path::{Path, PathBuf};

use crate::TrainError;

/// The file name TensorBoard looks for (`events.out.tfevents.*`).
pub const EVENT_FILE: &str = "events.out.tfevents.0.realbias";

/// The tag a `history.csv` column is shown under (`None`: not shown), grouped as TensorBoard
/// groups tags by their prefix.
fn tag_of(column: &str) -> Option<String> {
    let tag = match column {
        "epoch" | "train_seconds" | "eval_seconds" | "wall_seconds" => return None,
        "train_loss" => "loss/train",
        "validation_loss" => "loss/validation",
        "train_error" => "error/train",
        "validation_error" => "error/validation",
        "test_error" => "error/test",
        "group_norm" => "norm/group",
        "u_frobenius" => "norm/u_frobenius",
        "v_frobenius" => "norm/v_frobenius",
        "weight_decay_penalty" => "norm/weight_decay_penalty",
        "lr" => "schedule/lr",
        "momentum" => "schedule/momentum",
        other => return Some(format!("dynamics/{other}")),
    };
    Some(tag.to_string())
}

/// The event file of a `history.csv` (its text; `path` names it in errors): every numeric
/// column but the epoch and the timings, one scalar per epoch (an empty cell is skipped: the
/// test error of an epoch it was not evaluated at).
pub fn events_of_history(text: &str, path: &Path) -> Result<Vec<u8>, TrainError> {
    let bad = |message: String| TrainError::File {
        path: path.to_path_buf(),
        message,
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let (Some(epoch_at), Some(wall_at)) = (column("epoch"), column("wall_seconds")) else {
        return Err(bad(
            "not a history.csv: no epoch or wall_seconds column".into()
        ));
    };
    let tags: Vec<Option<String>> = header.iter().map(|h| tag_of(h)).collect();
    let mut out = Vec::new();
    push_record(
        &mut out,
        &event(0.0, 0, EventBody::FileVersion("brain.Event:2")),
    );
    for (row, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let at = |what: &str| format!("row {} ({what})", row + 2);
        if cells.len() != header.len() {
            return Err(bad(format!(
                "{}: {} cells, not {}",
                at("length"),
                cells.len(),
                header.len()
            )));
        }
        let epoch: i64 = cells[epoch_at].parse().map_err(|_| bad(at("epoch")))?;
        let wall: f64 = cells[wall_at]
            .parse()
            .map_err(|_| bad(at("wall_seconds")))?;
        for (cell, tag) in cells.iter().zip(&tags) {
            let Some(tag) = tag.as_deref().filter(|_| !cell.is_empty()) else {
                continue;
            };
            let value: f64 = cell.parse().map_err(|_| bad(at(tag)))?;
            let body = EventBody::Scalar(tag, value as f32);
            push_record(&mut out, &event(wall, epoch, body));
        }
    }
    Ok(out)
}

/// Writes the event file of the run folder `run_dir`'s `history.csv` under `out_dir`
/// (atomically); returns its path.
pub fn write_events(run_dir: &Path, out_dir: &Path) -> Result<PathBuf, TrainError> {
    let history = run_dir.join("history.csv");
    let text = std::fs::read_to_string(&history).map_err(|e| TrainError::File {
        path: history.clone(),
        message: format!("cannot read: {e}"),
    })?;
    write_event_file(&text, &history, out_dir)
}

/// The folder of a run that `train.tensorboard` writes its events into.
pub const RUN_EVENTS_DIR: &str = "tb";

/// Writes a run's history (`text`, read from or written to `path`) as the event file in
/// `run_dir/tb/`, replacing the last one: a run in flight rewrites it after every epoch.
pub fn write_history_events(
    text: &str,
    path: &Path,
    run_dir: &Path,
) -> Result<PathBuf, TrainError> {
    write_event_file(text, path, &run_dir.join(RUN_EVENTS_DIR))
}

fn write_event_file(text: &str, path: &Path, out_dir: &Path) -> Result<PathBuf, TrainError> {
    let bytes = events_of_history(text, path)?;
    let out = out_dir.join(EVENT_FILE);
    crate::run_files::files::write_atomic(&out, &bytes)?;
    Ok(out)
}

enum EventBody<'a> {
    FileVersion(&'a str),
    Scalar(&'a str, f32),
}

/// An `Event` protobuf: `wall_time` (field 1, double), `step` (2, int64), and either
/// `file_version` (3, string) or `summary` (5: `Summary { value (1): Value { tag (1),
/// simple_value (2, float) } }`).
fn event(wall_time: f64, step: i64, body: EventBody) -> Vec<u8> {
    let mut e = vec![0x09];
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        e.push(0x10);
        push_varint(&mut e, step as u64);
    }
    match body {
        EventBody::FileVersion(v) => push_bytes(&mut e, 0x1a, v.as_bytes()),
        EventBody::Scalar(tag, value) => {
            let mut v = Vec::new();
            push_bytes(&mut v, 0x0a, tag.as_bytes());
            v.push(0x15);
            v.extend_from_slice(&value.to_le_bytes());
            let mut summary = Vec::new();
            push_bytes(&mut summary, 0x0a, &v);
            push_bytes(&mut e, 0x2a, &summary);
        }
    }
    e
}

fn push_bytes(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    push_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One record: length, its masked CRC, the data, the data's masked CRC.
fn push_record(out: &mut Vec<u8>, data: &[u8]) {
    let length = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// TensorFlow's masked CRC-32C: the CRC rotated right by 15 bits plus a constant (so that a
/// CRC of data holding CRCs stays well distributed).
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: event files are small.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    /// The check value of the CRC-32C catalogue: "123456789" → 0xE3069283.
    #[test]
    fn crc32c_gives_the_catalogue_check_value() {
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
    }
}
