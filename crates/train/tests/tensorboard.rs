//! A run's history as a TensorBoard event file, read back by an independent reader: the
//! records' framing and masked CRC-32Cs (the `crc32c` crate, not the writer's own CRC), and
//! each event's protobuf fields decoded here from the wire format.

mod common;

use common::{checked, config, device, teacher_data};
use realbias_train::run_files::record::history_csv;
use realbias_train::run_files::tensorboard::{EVENT_FILE, events_of_history, write_events};
use realbias_train::run_files::write_run;
use realbias_train::{Quiet, TrainError, train};

/// One decoded `Event`: wall time, step, and either the file version or one scalar.
#[derive(Debug, PartialEq)]
struct Event {
    wall_time: f64,
    step: i64,
    file_version: Option<String>,
    scalar: Option<(String, f32)>,
}

/// TensorFlow's mask, written as its source writes it (not as the writer does).
#[allow(clippy::manual_rotate)]
fn masked(crc: u32) -> u32 {
    ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
}

/// The records of an event file, each checked against its two CRCs.
fn records(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            return Err("a truncated record header".into());
        }
        let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let length_crc = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if length_crc != masked(crc32c::crc32c(&bytes[..8])) {
            return Err(format!(
                "record {}: the length's CRC does not match",
                out.len()
            ));
        }
        let data = bytes.get(12..12 + length).ok_or("a truncated record")?;
        let crc = bytes
            .get(12 + length..16 + length)
            .ok_or("a record without CRC")?;
        if u32::from_le_bytes(crc.try_into().unwrap()) != masked(crc32c::crc32c(data)) {
            return Err(format!(
                "record {}: the data's CRC does not match",
                out.len()
            ));
        }
        out.push(data.to_vec());
        bytes = &bytes[16 + length..];
    }
    Ok(out)
}

fn varint(bytes: &mut &[u8]) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let b = bytes[0];
        *bytes = &bytes[1..];
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// The fields of one protobuf message: (field number, wire type, payload bytes).
fn fields(mut bytes: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        let (field, wire) = (key >> 3, key & 7);
        let payload = match wire {
            0 => varint(&mut bytes).to_le_bytes().to_vec(),
            1 => {
                let p = bytes[..8].to_vec();
                bytes = &bytes[8..];
                p
            }
            2 => {
                let n = varint(&mut bytes) as usize;
                let p = bytes[..n].to_vec();
                bytes = &bytes[n..];
                p
            }
            5 => {
                let p = bytes[..4].to_vec();
                bytes = &bytes[4..];
                p
            }
            other => panic!("wire type {other}"),
        };
        out.push((field, wire, payload));
    }
    out
}

fn decode(data: &[u8]) -> Event {
    let mut e = Event {
        wall_time: 0.0,
        step: 0,
        file_version: None,
        scalar: None,
    };
    for (field, _, p) in fields(data) {
        match field {
            1 => e.wall_time = f64::from_le_bytes(p[..8].try_into().unwrap()),
            2 => e.step = i64::from_le_bytes(p[..8].try_into().unwrap()),
            3 => e.file_version = Some(String::from_utf8(p).unwrap()),
            5 => {
                let (_, _, value) = fields(&p).remove(0);
                let mut tag = String::new();
                let mut simple = f32::NAN;
                for (f, _, q) in fields(&value) {
                    match f {
                        1 => tag = String::from_utf8(q).unwrap(),
                        2 => simple = f32::from_le_bytes(q[..4].try_into().unwrap()),
                        _ => {}
                    }
                }
                e.scalar = Some((tag, simple));
            }
            _ => {}
        }
    }
    e
}

const RUN: &str = r#"
[data]
dataset = { kind = "mnist" }
[model]
hidden = 8
[optim]
batch_size = 20
[train]
max_epochs = 4
eval_test_every_epoch = true
"#;

#[test]
fn a_runs_history_reads_back_from_its_event_file_value_for_value() {
    let run = train(&checked(&config(RUN)), &teacher_data(2), &device(), Quiet).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("history.csv"), history_csv(&run.history)).unwrap();
    let path = write_events(dir.path(), &dir.path().join("tb")).unwrap();
    assert_eq!(path, dir.path().join("tb").join(EVENT_FILE));
    let bytes = std::fs::read(&path).unwrap();
    let events: Vec<Event> = records(&bytes).unwrap().iter().map(|d| decode(d)).collect();
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    let value = |tag: &str, step: usize| {
        let found = events
            .iter()
            .find(|e| e.step == step as i64 && e.scalar.as_ref().is_some_and(|(t, _)| t == tag));
        found.map(|e| (e.scalar.as_ref().unwrap().1, e.wall_time))
    };
    for r in &run.history {
        let wall = r.wall_seconds;
        let expect = [
            ("loss/train", r.train_loss),
            ("loss/validation", r.validation_loss),
            ("error/train", r.train_error),
            ("error/validation", r.validation_error),
            ("error/test", r.test_error.unwrap()),
            ("norm/group", r.group_norm),
            ("schedule/lr", r.lr),
            ("schedule/momentum", r.momentum),
        ];
        for (tag, v) in expect {
            let (got, at) = value(tag, r.epoch).unwrap_or_else(|| panic!("{tag} {}", r.epoch));
            assert_eq!(got, v as f32, "{tag} at epoch {}", r.epoch);
            // history.csv prints wall_seconds to 4 decimals.
            assert!((at - wall).abs() < 1e-4, "{tag}: wall time {at} vs {wall}");
        }
    }
    // 16 shown columns (20 less the epoch and 3 timings) of 5 epochs (0-4), and the version.
    assert_eq!(events.len(), 1 + 16 * run.history.len());
    // The same history gives the same bytes.
    let again = events_of_history(&history_csv(&run.history), &path).unwrap();
    assert_eq!(again, bytes);
    // The reader is not blind: one flipped bit in a value fails its record's CRC.
    let mut flipped = bytes.clone();
    let at = flipped.len() - 6;
    flipped[at] ^= 1;
    assert!(records(&flipped).unwrap_err().contains("data's CRC"));
}

#[test]
fn a_finished_run_with_tensorboard_writes_its_events_beside_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut with = config(RUN);
    with.train.tensorboard = true;
    let run = train(&checked(&with), &teacher_data(2), &device(), Quiet).unwrap();
    write_run(dir.path(), &run).unwrap();
    let events = std::fs::read(dir.path().join("tb").join(EVENT_FILE)).unwrap();
    let history = std::fs::read_to_string(dir.path().join("history.csv")).unwrap();
    assert_eq!(
        events,
        events_of_history(&history, std::path::Path::new("h")).unwrap()
    );
    // Off (the default), nothing is written; either way the run's numbers are the same.
    let without = train(&checked(&config(RUN)), &teacher_data(2), &device(), Quiet).unwrap();
    assert_eq!(
        history_csv(&without.history).lines().count(),
        history.lines().count()
    );
    assert_eq!(without.result.test_error, run.result.test_error);
    let other = tempfile::tempdir().unwrap();
    write_run(other.path(), &without).unwrap();
    assert!(!other.path().join("tb").exists());
}

#[test]
fn a_file_that_is_not_a_history_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("history.csv"), "a,b\n1,2\n").unwrap();
    let e = write_events(dir.path(), &dir.path().join("tb")).unwrap_err();
    assert!(matches!(e, TrainError::File { .. }), "{e}");
    assert!(
        e.to_string().contains("history.csv: not a history.csv"),
        "{e}"
    );
    assert!(!dir.path().join("tb").exists(), "nothing written");
    let missing = write_events(&dir.path().join("none"), &dir.path().join("tb")).unwrap_err();
    assert!(missing.to_string().contains("cannot read"), "{missing}");
}
