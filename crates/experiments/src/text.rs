//! Small text files of an experiment folder (results, `experiment.toml`, locks), read so that
//! a hostile one cannot hang or flood the tool.

use std::path::Path;

/// The most bytes a result, an `experiment.toml` or a table may hold (a result with a
/// 10,000-epoch history is well under 10 MB).
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

/// The UTF-8 text of the regular file `path` of at most `limit` bytes: `Ok(None)` when there
/// is no such file; an error for a FIFO or device (never waited on), a longer file (refused
/// unread) or bytes that are not UTF-8.
pub fn read_text(path: &Path, limit: u64) -> Result<Option<String>, String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let bytes = realbias_data::bounded::read_regular(path, limit).map_err(|e| e.to_string())?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("{}: not UTF-8 text", path.display()))
}
