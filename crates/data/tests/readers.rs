//! Every failure mode of the readers names the file and the problem; arbitrary bytes never panic.

use realbias_fixtures as common;

use std::path::Path;

use common::*;
use realbias_data::{DataError, DatasetSource, cifar, idx};

fn format_problem(err: DataError) -> (std::path::PathBuf, String) {
    match err {
        DataError::Format { path, problem } => (path, problem),
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn reads_gzipped_and_raw_mnist_folders_alike() {
    for gz in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(&dir.path().join("mnist"), 30, 20, gz);
        let raw = DatasetSource::Mnist.load(dir.path()).unwrap();
        assert_eq!((raw.train.len(), raw.test.len(), raw.classes), (30, 20, 10));
        assert_eq!(
            (raw.train.height, raw.train.width, raw.train.channels),
            (28, 28, 1)
        );
        assert_eq!(raw.train.labels[13], 3);
        assert_eq!(raw.test.image(1), &noise_bytes(20 * 784, 20)[784..1568]);
    }
}

#[test]
fn idx_source_reads_any_folder_in_the_mnist_layout() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("fashion");
    write_mnist(&folder, 12, 10, true);
    let source: DatasetSource = format!("idx:{}", folder.display()).parse().unwrap();
    let raw = source.load(Path::new("unused")).unwrap();
    assert_eq!(raw.name, "fashion");
    assert_eq!((raw.train.len(), raw.test.len(), raw.classes), (12, 10, 10));
}

#[test]
fn missing_folder_says_where_it_looked_and_how_to_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let err = DatasetSource::Mnist.load(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DataError::NotFound { .. }));
    assert!(
        text.contains(&dir.path().join("mnist").display().to_string()),
        "{text}"
    );
    assert!(text.contains("train-images-idx3-ubyte"), "{text}");
    assert!(text.contains("realbias data fetch mnist"), "{text}");
    let err = DatasetSource::Cifar10
        .load(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cifar-10-binary.tar.gz") && err.contains("data fetch cifar10"),
        "{err}"
    );
}

#[test]
fn wrong_magic_is_reported_with_expected_and_found() {
    let p = Path::new("x/train-images-idx3-ubyte");
    let (path, problem) = format_problem(idx::parse_images(&idx_labels(&[1, 2]), p).unwrap_err());
    assert_eq!(path, p);
    assert!(
        problem.contains("wrong magic number: expected 2051, found 2049"),
        "{problem}"
    );
}

#[test]
fn truncated_header_is_reported() {
    let p = Path::new("f");
    let bytes = idx_images(2, 28, 28, &[]);
    let (_, problem) = format_problem(idx::parse_images(&bytes[..10], p).unwrap_err());
    assert!(
        problem.contains("truncated header: 10 bytes, expected 16"),
        "{problem}"
    );
    let (_, problem) = format_problem(idx::parse_labels(&bytes[..3], p, None).unwrap_err());
    assert!(problem.contains("truncated header"), "{problem}");
}

#[test]
fn truncated_body_is_reported() {
    let bytes = idx_images(2, 28, 28, &[7u8; 2 * 784 - 5]);
    let (_, problem) = format_problem(idx::parse_images(&bytes, Path::new("f")).unwrap_err());
    assert!(
        problem.contains("header promises 1568 bytes of data, found 1563"),
        "{problem}"
    );
    let mut labels = idx_labels(&[1, 2, 3]);
    labels.pop();
    let (_, problem) =
        format_problem(idx::parse_labels(&labels, Path::new("l"), None).unwrap_err());
    assert!(problem.contains("truncated body"), "{problem}");
    let mut extra = idx_labels(&[1, 2, 3]);
    extra.push(0);
    let (_, problem) = format_problem(idx::parse_labels(&extra, Path::new("l"), None).unwrap_err());
    assert!(problem.contains("1 unexpected bytes"), "{problem}");
}

#[test]
fn label_image_count_mismatch_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    write_mnist(&mnist, 10, 10, false);
    std::fs::write(mnist.join("t10k-labels-idx1-ubyte"), idx_labels(&[0; 9])).unwrap();
    let (path, problem) = format_problem(DatasetSource::Mnist.load(dir.path()).unwrap_err());
    assert!(path.ends_with("t10k-labels-idx1-ubyte"));
    assert!(
        problem.contains("9 labels but") && problem.contains("holds 10 images"),
        "{problem}"
    );
}

#[test]
fn label_out_of_range_is_reported() {
    let (_, problem) = format_problem(
        idx::parse_labels(&idx_labels(&[1, 10, 2]), Path::new("l"), Some(10)).unwrap_err(),
    );
    assert!(
        problem.contains("label 10 at item 1 is out of range 0..9"),
        "{problem}"
    );
    let mut rec = cifar_records(3, 1);
    rec[2 * 3073] = 11;
    let (_, problem) = format_problem(cifar::parse_batch(&rec, Path::new("b")).unwrap_err());
    assert!(
        problem.contains("label 11 of record 2 is out of range"),
        "{problem}"
    );
}

#[test]
fn bad_gzip_is_reported_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    write_mnist(&mnist, 10, 10, true);
    let f = mnist.join("train-images-idx3-ubyte.gz");
    let mut bytes = std::fs::read(&f).unwrap();
    let cut = bytes.len() / 2;
    bytes.truncate(cut);
    std::fs::write(&f, bytes).unwrap();
    let (path, problem) = format_problem(DatasetSource::Mnist.load(dir.path()).unwrap_err());
    assert_eq!(path, f);
    assert!(problem.contains("bad gzip data"), "{problem}");
}

#[test]
fn empty_files_are_reported() {
    let (_, problem) = format_problem(idx::parse_images(&[], Path::new("f")).unwrap_err());
    assert_eq!(problem, "empty file");
    let (_, problem) = format_problem(cifar::parse_batch(&[], Path::new("f")).unwrap_err());
    assert_eq!(problem, "empty file");
}

#[test]
fn wrong_cifar_record_size_is_reported() {
    let rec = cifar_records(2, 1);
    let (_, problem) =
        format_problem(cifar::parse_batch(&rec[..6000], Path::new("b")).unwrap_err());
    assert!(
        problem.contains("not a multiple of the record size 3073"),
        "{problem}"
    );
}

#[test]
fn cifar_archive_and_folder_read_identically() {
    let dir = tempfile::tempdir().unwrap();
    let batches = cifar_batches(4);
    let cifar_dir = dir.path().join("cifar10");
    std::fs::create_dir_all(&cifar_dir).unwrap();
    write_cifar_archive(&cifar_dir.join(cifar::ARCHIVE), &batches);
    let from_archive = DatasetSource::Cifar10.load(dir.path()).unwrap();
    assert_eq!((from_archive.train.len(), from_archive.test.len()), (20, 4));
    assert_eq!(from_archive.train.channels, 3);
    // Training batches are concatenated in order 1..5.
    assert_eq!(from_archive.train.image(4), &batches[1].1[1..3073]);

    let other = tempfile::tempdir().unwrap();
    let folder = other.path().join("cifar10").join(cifar::FOLDER);
    std::fs::create_dir_all(&folder).unwrap();
    for (name, bytes) in &batches {
        std::fs::write(folder.join(name), bytes).unwrap();
    }
    assert_eq!(
        DatasetSource::Cifar10.load(other.path()).unwrap(),
        from_archive
    );

    std::fs::remove_file(folder.join("data_batch_3.bin")).unwrap();
    let (_, problem) = format_problem(DatasetSource::Cifar10.load(other.path()).unwrap_err());
    assert!(
        problem.contains("batch data_batch_3.bin is missing"),
        "{problem}"
    );
}

#[test]
fn corrupt_cifar_archive_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cifar_dir = dir.path().join("cifar10");
    std::fs::create_dir_all(&cifar_dir).unwrap();
    let path = cifar_dir.join(cifar::ARCHIVE);
    write_cifar_archive(&path, &cifar_batches(2));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let (p, problem) = format_problem(DatasetSource::Cifar10.load(dir.path()).unwrap_err());
    assert_eq!(p, path);
    assert!(problem.contains("bad tar.gz archive"), "{problem}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..5000)) {
        let p = Path::new("fuzz");
        let _ = idx::parse_images(&bytes, p);
        let _ = idx::parse_labels(&bytes, p, Some(10));
        let _ = cifar::parse_batch(&bytes, p);
    }

    #[test]
    fn arbitrary_bodies_behind_valid_headers_never_panic(
        dims in proptest::collection::vec(0u32..70_000, 3),
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
    ) {
        let mut bytes = idx_images(dims[0], dims[1], dims[2], &[]);
        bytes.extend_from_slice(&body);
        let _ = idx::parse_images(&bytes, Path::new("fuzz"));
    }

    #[test]
    fn arbitrary_files_on_disk_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4000)) {
        let dir = tempfile::tempdir().unwrap();
        let mnist = dir.path().join("mnist");
        write_mnist(&mnist, 3, 3, false);
        std::fs::write(mnist.join("train-images-idx3-ubyte"), &bytes).unwrap();
        let _ = DatasetSource::Mnist.load(dir.path());
        let cifar = dir.path().join("cifar10");
        std::fs::create_dir_all(&cifar).unwrap();
        std::fs::write(cifar.join(cifar::ARCHIVE), &bytes).unwrap();
        let _ = DatasetSource::Cifar10.load(dir.path());
    }
}

#[test]
fn a_cifar_batch_with_more_than_10000_records_is_refused() {
    let bytes = cifar_records(cifar::RECORDS_PER_BATCH + 1, 3);
    let e = cifar::parse_batch(&bytes, Path::new("data_batch_1.bin")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("data_batch_1.bin") && text.contains("10001 records"),
        "{text}"
    );
    let ok = cifar_records(3, 3);
    assert_eq!(
        cifar::parse_batch(&ok, Path::new("b"))
            .unwrap()
            .labels
            .len(),
        3
    );
}

#[test]
fn idx_with_a_file_or_a_missing_folder_says_what_idx_takes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&file, idx_images(1, 2, 2, &[0; 4])).unwrap();
    let source: realbias_data::DatasetSource = format!("idx:{}", file.display()).parse().unwrap();
    let e = source.load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("is a file") && !e.contains("data fetch"), "{e}");
    let missing: realbias_data::DatasetSource =
        format!("idx:{}", dir.path().join("nope").display())
            .parse()
            .unwrap();
    let e = missing.load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("no such folder") && !e.contains("data fetch"),
        "{e}"
    );
}

/// A small gzip file that inflates to 256 MB (a gzip bomb) is refused once it passes
/// `MAX_INFLATION` times its size, without inflating it whole.
#[test]
fn a_gzip_bomb_is_refused_without_inflating_it() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    write_mnist(&mnist, 10, 10, true);
    let f = mnist.join("train-images-idx3-ubyte.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    std::fs::write(&f, &bomb).unwrap();
    let (path, problem) = format_problem(DatasetSource::Mnist.load(dir.path()).unwrap_err());
    assert_eq!(path, f);
    assert!(problem.contains("gzip bomb"), "{problem}");
}

/// A FIFO where an IDX file should be is an error at once, never waited on.
#[test]
fn a_fifo_in_place_of_a_dataset_file_is_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    write_mnist(&mnist, 10, 10, false);
    let f = mnist.join("train-labels-idx1-ubyte");
    std::fs::remove_file(&f).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&f).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "mkfifo is needed for this test"
    );
    let started = std::time::Instant::now();
    assert!(DatasetSource::Mnist.load(dir.path()).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let e = idx::read_maybe_gz(&f).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

/// A CIFAR-10 archive whose batch is longer than any real batch is refused once it passes
/// the bound, and what its tar header declares is not trusted with an allocation.
#[test]
fn a_cifar_archive_entry_longer_than_a_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cifar_dir = dir.path().join("cifar10");
    std::fs::create_dir_all(&cifar_dir).unwrap();
    let path = cifar_dir.join(cifar::ARCHIVE);
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    let len = ((cifar::RECORDS_PER_BATCH + 1) * cifar::RECORD_SIZE) as u64;
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(0o644);
    header.set_cksum();
    let body = std::io::Read::take(std::io::repeat(0), len);
    tar.append_data(&mut header, "cifar-10-batches-bin/data_batch_1.bin", body)
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let (p, problem) = format_problem(DatasetSource::Cifar10.load(dir.path()).unwrap_err());
    assert_eq!(p, path);
    assert!(problem.contains("more than"), "{problem}");
}
