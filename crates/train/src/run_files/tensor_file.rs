//! Named f32 matrices and string metadata in one safetensors file: the format of a run's
//! checkpoint and of its saved networks. Python reads it with `safetensors.numpy.load_file`,
//! Burn with its `store` feature.
//!
//! Every file this writes is sealed: its metadata key `sha256` is the SHA-256 of everything
//! else in it (each metadata key and value, then each tensor's name, dtype, shape and bytes,
//! in name order), and a read checks it. One flipped bit in a checkpoint used to resume a run
//! to a `u_frobenius` of 1.49e37; another run's tensors under this run's header were read as
//! its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::TrainError;
use crate::run_files::files::write_atomic;

/// One matrix to write: its name, `[rows, cols]` and row-major values.
pub struct NamedMatrix<'a> {
    pub name: &'a str,
    pub shape: [usize; 2],
    pub values: &'a [f32],
}

/// Writes `matrices` and `metadata` to `path` atomically.
pub fn write(
    path: &Path,
    matrices: &[NamedMatrix],
    metadata: HashMap<String, String>,
) -> Result<(), TrainError> {
    write_with_bytes(path, matrices, &[], metadata)
}

/// `write`, with raw byte strings `blobs` (`(name, bytes)`, stored as U8 vectors) beside
/// the matrices.
pub fn write_with_bytes(
    path: &Path,
    matrices: &[NamedMatrix],
    blobs: &[(&str, &[u8])],
    metadata: HashMap<String, String>,
) -> Result<(), TrainError> {
    let mut bytes: Vec<(String, Vec<u8>, Dtype, Vec<usize>)> = matrices
        .iter()
        .map(|m| {
            let le = m.values.iter().flat_map(|x| x.to_le_bytes()).collect();
            (m.name.to_string(), le, Dtype::F32, m.shape.to_vec())
        })
        .collect();
    for (name, blob) in blobs {
        bytes.push((name.to_string(), blob.to_vec(), Dtype::U8, vec![blob.len()]));
    }
    let encode_err = |e: safetensors::SafeTensorError| TrainError::Encode {
        what: path.display().to_string(),
        message: e.to_string(),
    };
    let views = bytes
        .iter()
        .map(|(name, le, dtype, shape)| {
            let view = TensorView::new(*dtype, shape.clone(), le).map_err(encode_err)?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>, TrainError>>()?;
    let mut metadata = metadata;
    metadata.remove(DIGEST_KEY);
    let digest = content_digest(&metadata, views.iter().map(|(n, v)| (n.as_str(), v)));
    metadata.insert(DIGEST_KEY.to_string(), digest);
    let encoded = safetensors::serialize(views, Some(metadata)).map_err(encode_err)?;
    write_atomic(path, &encoded)
}

/// The metadata key of a tensor file's integrity digest.
pub const DIGEST_KEY: &str = "sha256";

/// The SHA-256 (hex) of `metadata` (without [`DIGEST_KEY`]) and `tensors`: keys, values and
/// names in sorted order, each length-prefixed, so no two different contents hash alike by
/// moving a boundary.
fn content_digest<'a, V: safetensors::View + 'a>(
    metadata: &HashMap<String, String>,
    tensors: impl Iterator<Item = (&'a str, V)>,
) -> String {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    let mut keys: Vec<&String> = metadata.keys().filter(|k| *k != DIGEST_KEY).collect();
    keys.sort();
    for key in keys {
        field(key.as_bytes());
        field(metadata[key].as_bytes());
    }
    let mut tensors: Vec<(&str, V)> = tensors.collect();
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    for (name, view) in tensors {
        field(name.as_bytes());
        field(format!("{:?}{:?}", view.dtype(), view.shape()).as_bytes());
        field(&view.data());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A file's format against its reader's ([`TensorFile::sealing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// The reader's own format, its digest checked.
    Sealed,
    /// The format before digests: nothing to check the content against.
    Unsealed,
}

/// A safetensors file read into memory, its digest checked.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
    sealed: bool,
}

/// The bytes a tensor file of the run's size may hold beyond its tensors: the header, with
/// the history a checkpoint carries (about 1 KB an epoch).
pub fn header_budget(max_epochs: usize) -> u64 {
    (1 << 20) + 2048 * max_epochs as u64
}

impl TensorFile {
    /// Reads `path`, a file of at most `limit` bytes; `Ok(None)` when there is no such file.
    ///
    /// Hostile files are refused before anything is allocated for them: anything but a
    /// regular file (a FIFO would block `open` and `read` for ever, so the file is opened
    /// non-blocking and checked first), a file longer than `limit` (the most the run's
    /// tensors and header take; a 3 GiB sparse file was read whole), and a header or tensor
    /// data whose declared size disagrees with the file's length.
    pub fn read(path: &Path, limit: u64) -> Result<Option<TensorFile>, TrainError> {
        let Some(bytes) = read_bounded(path, limit)? else {
            return Ok(None);
        };
        let mut file = TensorFile {
            path: path.to_path_buf(),
            bytes,
            sealed: false,
        };
        file.sealed = file.check_digest()?;
        Ok(Some(file))
    }

    /// Whether the file carries an integrity digest (every file written since format 2
    /// does); an error when it carries one that its content does not match.
    fn check_digest(&self) -> Result<bool, TrainError> {
        let tensors = self.parsed()?;
        let metadata = self.metadata()?;
        let Some(stored) = metadata.get(DIGEST_KEY) else {
            return Ok(false);
        };
        let views = tensors.tensors();
        let actual = content_digest(&metadata, views.iter().map(|(n, v)| (n.as_str(), v)));
        match *stored == actual {
            true => Ok(true),
            false => Err(file_error(
                &self.path,
                "its content does not match its sha256 digest: the file is corrupt (a flipped \
                 bit, a truncation, or tensors from another file)"
                    .into(),
            )),
        }
    }

    /// Whether the file carries an integrity digest that its content matched. Only files
    /// written before digests (checkpoint format 1, network format 1) lack one.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// How the file stands against the format its reader writes (`current`, always sealed)
    /// and the one before digests (`unsealed`); why it is neither (the reader words the
    /// error). Each reader decides what an unsealed file means.
    pub fn sealing(
        &self,
        current: &str,
        unsealed: &str,
    ) -> Result<Result<Sealing, String>, TrainError> {
        let format = self.metadata_value("format")?;
        Ok(if format == current && self.sealed {
            Ok(Sealing::Sealed)
        } else if format == current {
            Err(format!(
                "it has no integrity digest (metadata \"{DIGEST_KEY}\"), which every {current:?} file carries"
            ))
        } else if format == unsealed {
            Ok(Sealing::Unsealed)
        } else {
            Err(format!("its format is {format:?}, not {current:?}"))
        })
    }

    fn parsed(&self) -> Result<SafeTensors<'_>, TrainError> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| file_error(&self.path, format!("not a safetensors file: {e}")))
    }

    /// The file's string metadata.
    pub fn metadata(&self) -> Result<HashMap<String, String>, TrainError> {
        let (_, metadata) = SafeTensors::read_metadata(&self.bytes)
            .map_err(|e| file_error(&self.path, e.to_string()))?;
        Ok(metadata.metadata().clone().unwrap_or_default())
    }

    /// One metadata value, an error naming the key when it is missing.
    pub fn metadata_value(&self, key: &str) -> Result<String, TrainError> {
        self.metadata()?
            .remove(key)
            .ok_or_else(|| file_error(&self.path, format!("no metadata key {key:?}")))
    }

    /// Whether the file holds a tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.parsed().is_ok_and(|t| t.tensor(name).is_ok())
    }

    /// The f32 matrix `name`, which must have `shape`.
    pub fn matrix(&self, name: &str, shape: [usize; 2]) -> Result<Vec<f32>, TrainError> {
        let tensors = self.parsed()?;
        let view = tensors
            .tensor(name)
            .map_err(|_| file_error(&self.path, format!("no tensor {name:?}")))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(file_error(
                &self.path,
                format!(
                    "tensor {name:?} is {:?} {:?}, expected F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        let values = view.data().chunks_exact(4);
        Ok(values
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// The byte string `name` (a U8 vector).
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, TrainError> {
        let tensors = self.parsed()?;
        let view = tensors
            .tensor(name)
            .map_err(|_| file_error(&self.path, format!("no tensor {name:?}")))?;
        if view.dtype() != Dtype::U8 || view.shape().len() != 1 {
            return Err(file_error(
                &self.path,
                format!(
                    "tensor {name:?} is {:?} {:?}, expected a U8 vector",
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        Ok(view.data().to_vec())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The bytes of the regular file `path` of at most `limit` bytes, whose safetensors header
/// declares its length (`None`: no such file).
fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, TrainError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |message: String| Err(file_error(path, message));
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return bad(e.to_string()),
    };
    let metadata = file
        .metadata()
        .map_err(|e| file_error(path, e.to_string()))?;
    if !metadata.is_file() {
        return bad("is not a regular file (a FIFO, a device or a folder): refused".into());
    }
    let len = metadata.len();
    if len > limit {
        return bad(format!(
            "is {len} bytes, more than the {limit} a file of this run can hold: refused unread"
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    (&mut file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, e.to_string()))?;
    if bytes.len() as u64 != len {
        return bad(format!(
            "changed while it was read ({len} bytes, then {})",
            bytes.len()
        ));
    }
    let declared = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8])));
    match declared {
        Some(n) if n <= len - 8 => Ok(Some(bytes)),
        Some(n) => bad(format!(
            "its header declares {n} bytes, but the file has {} after the length",
            len - 8
        )),
        None => bad(format!("is {len} bytes, shorter than a safetensors header")),
    }
}

/// An error about the file `path`.
pub fn file_error(path: &Path, message: String) -> TrainError {
    TrainError::File {
        path: path.to_path_buf(),
        message,
    }
}
