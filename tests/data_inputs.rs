//! The data layer's input side: reading FASTA/FASTQ/tables, labels, normalisation and the
//! error a user gets for each kind of bad input. Bad-input cases run on real temp files;
//! real-data cases read `shared/data` and skip (with a printed reason) when it is absent.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use dnatune::data::{
    load, load_with_progress, load_with_settings, ClassInput, DataError, HeaderLabelRule,
    InputFormat, LoadOptions, LoadedData, ReadSettings, TableInput,
};
use sha2::{Digest, Sha256};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn class(name: &str, path: &Path) -> ClassInput {
    ClassInput {
        class: Some(name.to_string()),
        path: path.display().to_string(),
    }
}

fn classes(inputs: &[(&str, &Path)]) -> LoadOptions {
    LoadOptions {
        class_inputs: inputs.iter().map(|(n, p)| class(n, p)).collect(),
        ..LoadOptions::default()
    }
}

fn table(path: &Path) -> TableInput {
    TableInput {
        path: path.display().to_string(),
        ..TableInput::default()
    }
}

fn tables(paths: &[PathBuf]) -> LoadOptions {
    LoadOptions {
        tables: paths.iter().map(|p| table(p)).collect(),
        ..LoadOptions::default()
    }
}

/// The error message, checked to name the file.
fn error_naming(result: Result<LoadedData, DataError>, path: &Path) -> String {
    let message = result.expect_err("bad input must be an error").to_string();
    eprintln!("{message}");
    assert!(
        message.contains(&path.display().to_string()),
        "the message must name {}: {message}",
        path.display()
    );
    message
}

fn sequences(data: &LoadedData) -> Vec<String> {
    data.records
        .iter()
        .map(|r| String::from_utf8(data.sequence(r).to_vec()).unwrap())
        .collect()
}

fn records_per_class(data: &LoadedData) -> Vec<usize> {
    let mut counts = vec![0; data.classes.len()];
    for record in &data.records {
        counts[record.class as usize] += 1;
    }
    counts
}

// ---------------------------------------------------------------- bad input, one test each

#[test]
fn empty_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.fa", b"");
    let message = error_naming(load(&classes(&[("a", &empty)])), &empty);
    assert!(message.contains("is empty"), "{message}");

    let empty_gz = write(dir.path(), "empty.fa.gz", &gzip(b""));
    let message = error_naming(load(&classes(&[("a", &empty_gz)])), &empty_gz);
    assert!(message.contains("is empty"), "{message}");
}

#[test]
fn binary_file_given_as_fasta_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(std::iter::repeat_n(0u8, 100));
    let path = write(dir.path(), "photo.fa", &png);
    let message = error_naming(load(&classes(&[("a", &path)])), &path);
    assert!(message.contains("PNG image"), "{message}");
    assert!(message.contains("not FASTA or FASTQ"), "{message}");
}

#[test]
fn fasta_without_header_line_says_to_add_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bare.fa", b"ACGTACGTAC\nGGGTTT\n");
    let message = error_naming(load(&classes(&[("a", &path)])), &path);
    assert!(message.contains("line 1 is 'ACGTACGTAC'"), "{message}");
    assert!(message.contains("'>name'"), "{message}");
}

#[test]
fn header_with_no_sequence_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.fa",
        b">r1\nACGT\n>r2 nothing here\n>r3\nGG\n>r4\n",
    );
    let data = load(&classes(&[("a", &path)])).unwrap();
    assert_eq!(sequences(&data), ["ACGT", "GG"]);
    assert_eq!(data.normalization[0].empty_records, 2);
    assert_eq!(data.records[1].header, "r3");
    assert_eq!(data.records[1].line, 4);
}

#[test]
fn file_whose_every_record_is_empty_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.fa", b">r1\nACGT\n");
    let hollow = write(dir.path(), "hollow.fa", b">r1\n>r2\n\n>r3\n");
    let message = error_naming(load(&classes(&[("a", &good), ("a", &hollow)])), &hollow);
    assert!(message.contains("every one of the 3 records"), "{message}");
}

#[test]
fn crlf_line_endings_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "win.fa",
        b">chr1_100_300 first\r\nACGTAC\r\nGTTT\r\n\r\n>chr2_5_9\r\nacgt\r\n",
    );
    let data = load(&classes(&[("enhancer", &path)])).unwrap();
    assert_eq!(sequences(&data), ["ACGTACGTTT", "ACGT"]);
    assert_eq!(data.records[0].header, "chr1_100_300 first");
    assert_eq!(data.records[0].id(), "chr1_100_300");
    assert_eq!(data.records[1].line, 5);
    assert_eq!(data.normalization[0].lowercase_bases, 4);

    let bad = write(
        dir.path(),
        "winbad.fa",
        b">r1\r\nACGT\r\n>r2\r\nAAAA\r\nAC!T\r\n",
    );
    let message = error_naming(load(&classes(&[("a", &bad)])), &bad);
    assert!(message.contains("line 5, column 3"), "{message}");
}

#[test]
fn non_iupac_character_names_record_line_column_and_character() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "prot.fa", b">r1\nACGT\n>r2 desc\nACGT\nACXT\n");
    let message = error_naming(load(&classes(&[("a", &path)])), &path);
    assert!(message.contains("record 'r2'"), "{message}");
    assert!(message.contains("line 5, column 3"), "{message}");
    assert!(
        message.contains("'X' is not a nucleotide code"),
        "{message}"
    );

    let fastq = write(
        dir.path(),
        "reads.fq",
        b"@q1\nACGT\n+\nIIII\n@q2\nAC\x01T\n+\nIIII\n",
    );
    let message = error_naming(load(&classes(&[("a", &fastq)])), &fastq);
    assert!(
        message.contains("record 'q2', line 6, column 3: byte 0x01"),
        "{message}"
    );
}

#[test]
fn truncated_gzip_is_reported_with_the_last_good_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut fasta = Vec::new();
    for i in 0..2000 {
        // Varied sequence so that it does not compress to almost nothing.
        let seq: String = (0..200)
            .map(|j| b"ACGT"[(i * 7 + j * j * 13 + j / 3) % 4] as char)
            .collect();
        writeln!(fasta, ">rec{i}\n{seq}").unwrap();
    }
    let compressed = gzip(&fasta);
    let path = write(
        dir.path(),
        "cut.fa.gz",
        &compressed[..compressed.len() * 2 / 3],
    );
    let message = error_naming(load(&classes(&[("a", &path)])), &path);
    assert!(message.contains("truncated or corrupt"), "{message}");
    assert!(
        message.contains("last complete record read was 'rec"),
        "{message}"
    );
}

#[test]
fn header_regex_that_matches_no_record_names_file_and_first_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "mixed.fa",
        b">s1 class=phage\nACGT\n>s2 kind=host\nACGT\n",
    );
    let options = LoadOptions {
        header_labelled: vec![path.display().to_string()],
        header_label: Some(HeaderLabelRule::Regex("type=(\\w+)".into())),
        ..LoadOptions::default()
    };
    let message = error_naming(load(&options), &path);
    assert!(
        message.contains("line 1: header 's1 class=phage'"),
        "{message}"
    );
    assert!(
        message.contains("0 earlier records had a label"),
        "{message}"
    );
}

#[test]
fn class_with_zero_usable_records_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.fa", b">r1\nACGT\n");
    let gaps = write(dir.path(), "gaps.fa", b">r1\n----\n>r2\n..\n");
    let message = error_naming(load(&classes(&[("good", &good), ("gappy", &gaps)])), &gaps);
    assert!(
        message.contains("class 'gappy' has no usable records (2 empty records skipped)"),
        "{message}"
    );
}

#[test]
fn csv_without_the_named_column_lists_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.csv",
        b"seq_text,is_promoter\nACGTACGTACGT,1\n",
    );
    let mut options = tables(std::slice::from_ref(&path));
    options.tables[0].sequence_column = Some("sequence".into());
    let message = error_naming(load(&options), &path);
    assert!(message.contains("no column 'sequence'"), "{message}");
    assert!(message.contains("'seq_text', 'is_promoter'"), "{message}");

    // No name given and none of the usual names present: also lists the columns.
    let message = error_naming(load(&tables(std::slice::from_ref(&path))), &path);
    assert!(message.contains("'seq_text', 'is_promoter'"), "{message}");
    assert!(message.contains("--sequence-column"), "{message}");
}

#[test]
fn glob_that_matches_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("{}/*.fasta", dir.path().display());
    let options = LoadOptions {
        class_inputs: vec![ClassInput::parse(&format!("phage={pattern}")).unwrap()],
        ..LoadOptions::default()
    };
    let message = load(&options).unwrap_err().to_string();
    assert!(
        message.contains(&pattern) && message.contains("matches no file"),
        "{message}"
    );
}

#[test]
fn missing_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.fa");
    let message = error_naming(load(&classes(&[("a", &path)])), &path);
    assert!(message.contains("does not exist"), "{message}");
}

#[test]
fn label_regex_needs_exactly_one_capture_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.fa", b">s1|x\nACGT\n");
    let options = LoadOptions {
        header_labelled: vec![path.display().to_string()],
        header_label: Some(HeaderLabelRule::Regex("(s)(\\d)".into())),
        ..LoadOptions::default()
    };
    let message = load(&options).unwrap_err().to_string();
    assert!(
        message.contains("has 2 capture groups; it needs exactly one"),
        "{message}"
    );
}

#[test]
fn same_file_in_two_classes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.fa", b">s1\nACGT\n");
    let message = error_naming(load(&classes(&[("x", &path), ("y", &path)])), &path);
    assert!(message.contains("given twice"), "{message}");
}

#[test]
fn test_regex_that_matches_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.fa", b">s1\nACGT\n");
    let mut options = classes(&[("a", &path)]);
    options.test_regex = Some("^chr8_".into());
    let message = load(&options).unwrap_err().to_string();
    assert!(
        message.contains("`^chr8_` matches no record header"),
        "{message}"
    );
}

// ---------------------------------------------------------------- formats and labels

#[test]
fn every_compression_is_detected_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let fasta = b">r1 x\nACGTN\nacgt\n>r2\nGGCC\n";
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(fasta).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(fasta).unwrap();
    // bgzip is a series of gzip members: all must be read, not just the first.
    let mut bgzf = gzip(b">r1 x\nACGTN\nacgt\n");
    bgzf.extend(gzip(b">r2\nGGCC\n"));
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("plain.fa", fasta.to_vec()),
        ("gz.fa.gz", gzip(fasta)),
        ("bgzf.fa.gz", bgzf),
        ("bz.fa.bz2", bz.finish().unwrap()),
        ("xz.fa.xz", xz.finish().unwrap()),
        ("zst.fa.zst", zstd::encode_all(&fasta[..], 3).unwrap()),
        // A misleading extension must not matter.
        ("gz_named_plain.txt", gzip(fasta)),
    ];
    for (name, bytes) in variants {
        let path = write(dir.path(), name, &bytes);
        let data = load(&classes(&[("a", &path)])).unwrap();
        assert_eq!(sequences(&data), ["ACGTNACGT", "GGCC"], "{name}");
        let expected_sha = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(data.files[0].sha256, expected_sha, "{name}");
        assert_eq!(data.files[0].format, InputFormat::Fasta);
    }
}

#[test]
fn hashing_on_a_second_thread_gives_the_same_data_hash_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fasta = b">r1 x\nACGTN\nacgt\n>r2\nGGCC\n";
    let mut bgzf = gzip(b">r1 x\nACGTN\nacgt\n");
    bgzf.extend(gzip(b">r2\nGGCC\n"));
    let second_thread = ReadSettings {
        sha256: true,
        hash_on_second_thread: true,
        decompress_on_second_thread: true,
    };
    for (name, bytes) in [("plain.fa", fasta.to_vec()), ("bgzf.fa.gz", bgzf)] {
        let path = write(dir.path(), name, &bytes);
        let mut last_progress = None;
        let data = load_with_settings(&classes(&[("a", &path)]), &second_thread, |p| {
            last_progress = Some((p.bytes_read, p.bytes_total));
        })
        .unwrap();
        assert_eq!(sequences(&data), ["ACGTNACGT", "GGCC"], "{name}");
        let total = bytes.len() as u64;
        assert_eq!(
            last_progress,
            Some((total, total)),
            "{name}: progress ends at 100 %"
        );
        let expected_sha = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(data.files[0].sha256, expected_sha, "{name}");
    }
    // A parse error still wins over the hash and reads as without the second thread.
    let mut truncated = gzip(&b">r1\nACGTACGTACGT\n".repeat(2000));
    truncated.truncate(truncated.len() / 2);
    let path = write(dir.path(), "cut.fa.gz", &truncated);
    let options = classes(&[("a", &path)]);
    let inline = load_with_settings(&options, &ReadSettings::one_thread(), |_| {})
        .unwrap_err()
        .to_string();
    let threaded = load_with_settings(&options, &second_thread, |_| {})
        .unwrap_err()
        .to_string();
    assert_eq!(threaded, inline);
}

#[test]
fn fastq_is_read_and_its_lines_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "reads.fq.gz",
        &gzip(b"@q1 lane1\nACGU\n+\nIIII\n@q2\nNNRY\n+q2\nIIII\n"),
    );
    let data = load(&classes(&[("reads", &path)])).unwrap();
    assert_eq!(data.files[0].format, InputFormat::Fastq);
    assert_eq!(sequences(&data), ["ACGT", "NNNN"]);
    assert_eq!(data.records[1].line, 5);
    assert_eq!(data.normalization[0].u_to_t, 1);
    assert_eq!(data.normalization[0].ambiguous_to_n, 2);
}

#[test]
fn classes_keep_the_order_given_and_default_to_the_file_stem() {
    let dir = tempfile::tempdir().unwrap();
    let host_a = write(dir.path(), "host_a.fa", b">h1\nAAAA\n");
    let host_b = write(dir.path(), "host_b.fa", b">h2\nCCCC\n");
    let phage = write(dir.path(), "Phage_set.fasta.gz", &gzip(b">p1\nGGGG\n"));
    let options = LoadOptions {
        class_inputs: vec![
            ClassInput::parse(&phage.display().to_string()).unwrap(),
            ClassInput::parse(&format!("host={}/host_*.fa", dir.path().display())).unwrap(),
        ],
        ..LoadOptions::default()
    };
    let data = load(&options).unwrap();
    assert_eq!(data.classes, ["Phage_set", "host"]);
    assert_eq!(records_per_class(&data), [1, 2]);
    let files: Vec<&Path> = data.files.iter().map(|f| f.path.as_path()).collect();
    assert_eq!(files, [phage.as_path(), host_a.as_path(), host_b.as_path()]);
    assert_eq!(data.files[1].class, Some(1));
}

#[test]
fn labels_from_headers_by_regex_and_by_pipe_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "mixed.fa",
        b">c1 label=virus\nACGT\n>c2 label=host\nAAAA\n>c3 label=virus\nCC\n",
    );
    let options = LoadOptions {
        header_labelled: vec![path.display().to_string()],
        header_label: Some(HeaderLabelRule::Regex("label=(\\w+)".into())),
        ..LoadOptions::default()
    };
    let data = load(&options).unwrap();
    assert_eq!(data.classes, ["virus", "host"]);
    assert_eq!(records_per_class(&data), [2, 1]);
    assert_eq!(data.files[0].class, None);

    let piped = write(
        dir.path(),
        "piped.fa",
        b">chr1:1-5|enh\nACGT\n>chr2:1-5|non\nAAAA\n",
    );
    let options = LoadOptions {
        header_labelled: vec![piped.display().to_string()],
        header_label: Some(HeaderLabelRule::from_cli("|")),
        ..LoadOptions::default()
    };
    let data = load(&options).unwrap();
    assert_eq!(data.classes, ["enh", "non"]);
}

#[test]
fn test_set_designation_by_file_and_by_header_regex() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "pos.fa", b">chr1_1\nACGT\n>chr8_1\nACGT\n");
    let held_out = write(dir.path(), "pos_test.fa", b">chr2_1\nGGGG\n");
    let neg = write(dir.path(), "neg.fa", b">chr8_2\nTTTT\n>chr3_2\nTTTT\n");
    let mut options = classes(&[("pos", &train), ("neg", &neg)]);
    options.test_class_inputs = vec![class("pos", &held_out)];
    options.test_regex = Some("^chr8_".into());
    let data = load(&options).unwrap();
    let designated: Vec<(&str, bool)> = data
        .records
        .iter()
        .map(|r| (r.id(), r.designated_test))
        .collect();
    assert_eq!(
        designated,
        [
            ("chr1_1", false),
            ("chr8_1", true),
            ("chr8_2", true),
            ("chr3_2", false),
            ("chr2_1", true)
        ]
    );
    assert_eq!(data.classes, ["pos", "neg"]);
    assert!(data.files[2].designated_test);
}

#[test]
fn tables_with_header_index_column_and_numeric_label_order() {
    let dir = tempfile::tempdir().unwrap();
    // pandas' unnamed index column; labels first seen as 1 then 0.
    let path = write(
        dir.path(),
        "p.csv.gz",
        &gzip(b",sequence,promoter_presence\n17,acgtACGTAC,1\n18,GGGGCCCCAA,0\n"),
    );
    let data = load(&tables(std::slice::from_ref(&path))).unwrap();
    assert_eq!(data.classes, ["0", "1"]);
    assert_eq!(data.records[0].header, "17");
    assert_eq!(data.records[0].class, 1);
    assert_eq!(data.records[0].line, 2);
    assert_eq!(sequences(&data), ["ACGTACGTAC", "GGGGCCCCAA"]);
    assert_eq!(data.normalization[1].lowercase_bases, 4);
    assert_eq!(data.files[0].format, InputFormat::Table);

    // TSV with user-named columns; the id column is used when named `id`.
    let tsv = write(
        dir.path(),
        "t.tsv",
        b"id\tdna_seq\ttissue\nx1\tACGTACGTAAA\tliver\n",
    );
    let mut options = tables(std::slice::from_ref(&tsv));
    options.tables[0].sequence_column = Some("dna_seq".into());
    options.tables[0].label_column = Some("tissue".into());
    let data = load(&options).unwrap();
    assert_eq!(data.classes, ["liver"]);
    assert_eq!(data.records[0].header, "x1");
}

#[test]
fn table_without_header_is_detected_from_its_first_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "contigs.csv",
        b"seq1_exp,ACGTACGTACGTAAAA,0\nseq2_exp,TTTTACGTACGTCCCC,1\n",
    );
    let data = load(&tables(std::slice::from_ref(&path))).unwrap();
    assert_eq!(data.records.len(), 2);
    assert_eq!(data.records[0].header, "seq1_exp");
    assert_eq!(data.records[0].line, 1);
    assert_eq!(data.classes, ["0", "1"]);

    // Columns of a header-less table are addressed by number.
    let mut options = tables(std::slice::from_ref(&path));
    options.tables[0].label_column = Some("label".into());
    let message = error_naming(load(&options), &path);
    assert!(
        message.contains("no header line, so use numbers"),
        "{message}"
    );
}

#[test]
fn kmer_table_is_turned_back_into_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "dev.tsv",
        b"sequence\tlabel\nACGTAC CGTACG GTACGT\t1\nTTTAAA TTAAAC\t0\n",
    );
    let data = load(&tables(std::slice::from_ref(&path))).unwrap();
    assert_eq!(data.files[0].format, InputFormat::KmerTable);
    assert_eq!(sequences(&data), ["ACGTACGT", "TTTAAAC"]);

    let broken = write(
        dir.path(),
        "bad.tsv",
        b"sequence\tlabel\nACGTAC CGTACG\t1\nACGTAC TTTTTT\t0\n",
    );
    let message = error_naming(load(&tables(std::slice::from_ref(&broken))), &broken);
    assert!(
        message.contains("line 3") && message.contains("do not overlap"),
        "{message}"
    );
}

#[test]
fn progress_reaches_the_total_size() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.fa", b">r1\nACGT\n");
    let b = write(dir.path(), "b.fa.gz", &gzip(b">r2\nACGTACGT\n"));
    let total = std::fs::metadata(&a).unwrap().len() + std::fs::metadata(&b).unwrap().len();
    let mut seen = Vec::new();
    load_with_progress(&classes(&[("a", &a), ("b", &b)]), |p| seen.push(p)).unwrap();
    let last = seen.last().unwrap();
    assert_eq!((last.bytes_read, last.bytes_total), (total, total));
    assert_eq!((last.files_done, last.files_total), (2, 2));
    assert!(seen.windows(2).all(|w| w[0].bytes_read <= w[1].bytes_read));
}

// ---------------------------------------------------------------- real data in shared/data

fn shared(relative: &str) -> Option<PathBuf> {
    common::shared_path(&format!("data/{relative}"))
}

#[test]
fn real_enhancer_fasta_with_crlf() {
    let Some(dir) = shared("enhancers_human_ienhancer2l") else {
        return;
    };
    let mut options = classes(&[
        ("enhancer", &dir.join("enhancer.cv.txt")),
        ("non_enhancer", &dir.join("non.cv.txt")),
    ]);
    options.test_class_inputs = vec![
        class("enhancer", &dir.join("enhancer.ind.txt")),
        class("non_enhancer", &dir.join("non.ind.txt")),
    ];
    let data = load(&options).unwrap();
    assert_eq!(data.classes, ["enhancer", "non_enhancer"]);
    // README: 1,484 + 1,484 cross-validation and 200 + 200 independent-test records.
    assert_eq!(records_per_class(&data), [1484 + 200, 1484 + 200]);
    assert_eq!(
        data.records.iter().filter(|r| r.designated_test).count(),
        400
    );
    assert!(data.records.iter().all(|r| r.len == 200));
    assert!(data.bases.iter().all(|b| b"ACGTN".contains(b)));
    assert!(
        data.records[0].header.starts_with("CHR"),
        "{}",
        data.records[0].header
    );
}

#[test]
fn real_cnnprom_gzipped_fasta() {
    let Some(dir) = shared("promoters_cnnprom") else {
        return;
    };
    let pattern = format!("{}/Ecoli_*.fa.gz", dir.display());
    let options = LoadOptions {
        class_inputs: vec![ClassInput::parse(&pattern).unwrap()],
        ..LoadOptions::default()
    };
    let data = load(&options).unwrap();
    // Glob results are sorted, each file its own class named by its stem.
    assert_eq!(data.classes, ["Ecoli_non_prom", "Ecoli_prom"]);
    assert_eq!(records_per_class(&data), [3000, 839]);
    assert!(data.records.iter().all(|r| r.len == 81));

    let all = LoadOptions {
        class_inputs: vec![ClassInput::parse(&format!("{}/*.fa.gz", dir.display())).unwrap()],
        ..LoadOptions::default()
    };
    let data = load(&all).unwrap();
    assert_eq!(data.records.len(), 33_091);
    // `zcat *.fa.gz | grep -v '>' | tr -d '\n' | wc -c`
    assert_eq!(data.bases.len(), 7_419_801);
}

#[test]
fn real_gena_promoter_folds() {
    let Some(dir) = shared("promoters_human_epd_gena300") else {
        return;
    };
    let folds: Vec<PathBuf> = (1..=5)
        .map(|i| dir.join(format!("fold_{i}.csv.gz")))
        .collect();
    let data = load(&tables(&folds)).unwrap();
    assert_eq!(data.classes, ["0", "1"]);
    assert_eq!(records_per_class(&data), [29_598, 29_598]);
    assert!(data.records.iter().all(|r| r.len == 300));
    assert_eq!(data.records[0].header, "0");
    assert_eq!(data.files.len(), 5);
}

#[test]
fn real_ipromoter_csv_lowercase_with_upper_tss() {
    let Some(path) = shared("promoters_ecoli_ipromoter2l/v9d3.csv.gz") else {
        return;
    };
    let data = load(&tables(&[path])).unwrap();
    assert_eq!(data.classes, ["0", "1"]);
    assert_eq!(records_per_class(&data), [2860, 2860]);
    assert!(data.records.iter().all(|r| r.len == 81));
    // Promoters are lower case except the TSS base; negatives are upper case.
    assert_eq!(data.normalization[1].lowercase_bases, 2860 * 80);
    assert_eq!(data.normalization[0].lowercase_bases, 0);
    assert!(data.bases.iter().all(|b| b"ACGTN".contains(b)));
}

#[test]
fn real_viraminer_headerless_csv() {
    let Some(dir) = shared("viral_contigs_viraminer") else {
        return;
    };
    let options = LoadOptions {
        tables: vec![TableInput {
            path: format!("{}/*.csv.gz", dir.display()),
            ..TableInput::default()
        }],
        ..LoadOptions::default()
    };
    let data = load(&options).unwrap();
    assert_eq!(data.classes, ["0", "1"]);
    assert_eq!(records_per_class(&data), [28_761, 630]);
    assert_eq!(data.files.len(), 8);
    assert!(data.records.iter().all(|r| r.header.starts_with("seq")));
}

#[test]
fn real_dnabert2_sample_csvs() {
    let Some(dir) = shared("formats") else { return };
    for (name, zeros, ones) in [("train", 10, 5), ("dev", 9, 6), ("test", 9, 6)] {
        let path = dir.join(format!("dnabert2_sample_{name}.csv"));
        let data = load(&tables(&[path])).unwrap();
        assert_eq!(records_per_class(&data), [zeros, ones], "{name}");
        assert_eq!(data.files[0].format, InputFormat::Table);
    }
}

#[test]
fn real_dnabert1_kmer_tsv() {
    let Some(path) = shared("formats/dnabert1_prom_core_6mer_dev.tsv") else {
        return;
    };
    let data = load(&tables(&[path])).unwrap();
    assert_eq!(data.files[0].format, InputFormat::KmerTable);
    assert_eq!(records_per_class(&data), [500, 500]);
    // 96 six-mers per row: k + n_kmers - 1 = 6 + 96 - 1 = 101 bases.
    assert!(data.records.iter().all(|r| r.len == 101));
}

#[test]
fn real_phage_and_bacterial_genomes() {
    let Some(phage) = shared("genomes/phage") else {
        return;
    };
    let Some(ecoli) = shared("genomes/bacteria/bowtie_E.coli_536_NC_008253.fna.gz") else {
        return;
    };
    let options = LoadOptions {
        class_inputs: vec![
            ClassInput::parse(&format!("phage={}/*.fa*", phage.display())).unwrap(),
            class("bacteria", &ecoli),
        ],
        ..LoadOptions::default()
    };
    let data = load(&options).unwrap();
    assert_eq!(data.classes, ["phage", "bacteria"]);
    // 6 single-genome files + 100 microviruses; E. coli 536 is one record.
    assert_eq!(records_per_class(&data), [106, 1]);
    let lambda = data
        .records
        .iter()
        .find(|r| r.id() == "gi|9626243|ref|NC_001416.1|");
    let lambda = lambda.or_else(|| data.records.iter().find(|r| r.len == 48_502));
    assert_eq!(lambda.map(|r| r.len), Some(48_502));
    let genome = data.records.iter().find(|r| r.class == 1).unwrap();
    assert_eq!(genome.len, 4_938_920);
    assert_eq!(genome.line, 1);
    // The microviruses hold one R and one Y.
    assert_eq!(data.normalization[0].ambiguous_to_n, 2);
    let phage_bases: u64 = data
        .records
        .iter()
        .filter(|r| r.class == 0)
        .map(|r| u64::from(r.len))
        .sum();
    assert_eq!(
        phage_bases,
        48_502 + 101_130 + 42_722 + 37_253 + 58_758 + 140_135 + 586_883
    );
}

/// Every record of a FASTA file (plain or gzip) read line by line, the plain way: (header,
/// header line, upper-cased bases with IUPAC codes as N).
fn read_line_by_line(path: &Path) -> Vec<(String, u64, Vec<u8>)> {
    use std::io::Read;
    let bytes = std::fs::read(path).unwrap();
    let mut text = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut text)
            .unwrap();
    } else {
        text = bytes;
    }
    let mut records: Vec<(String, u64, Vec<u8>)> = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(header) = line.strip_prefix(b">") {
            let header = String::from_utf8_lossy(header).into_owned();
            records.push((header, index as u64 + 1, Vec::new()));
        } else if let Some((_, _, bases)) = records.last_mut() {
            bases.extend(line.iter().map(|b| match b.to_ascii_uppercase() {
                b @ (b'A' | b'C' | b'G' | b'T' | b'N') => b,
                b'U' => b'T',
                _ => b'N',
            }));
        }
    }
    records
}

#[test]
fn real_fasta_files_read_as_line_by_line_with_and_without_helper_threads() {
    let Some(data_dir) = shared("") else { return };
    let files = [
        "genomes/bacteria/bowtie_E.coli_536_NC_008253.fna.gz",
        "genomes/phage/pharokka_hundred_microviruses.fasta",
        "genomes/phage/bowtie2_lambda_virus_NC_001416.fa",
        "enhancers_human_ienhancer2l/enhancer.cv.txt",
        "promoters_cnnprom/Mouse_tata.fa.gz",
    ];
    let threaded = ReadSettings {
        sha256: true,
        hash_on_second_thread: true,
        decompress_on_second_thread: true,
    };
    for file in files {
        let path = data_dir.join(file);
        if !path.exists() {
            println!("skipped {file}: not in shared/data");
            continue;
        }
        let expected = read_line_by_line(&path);
        let sha256 = format!("{:x}", Sha256::digest(std::fs::read(&path).unwrap()));
        for settings in [ReadSettings::one_thread(), threaded.clone()] {
            let data = load_with_settings(&classes(&[("all", &path)]), &settings, |_| {}).unwrap();
            let got: Vec<(String, u64, Vec<u8>)> = data
                .records
                .iter()
                .map(|r| (r.header.clone(), r.line, data.sequence(r).to_vec()))
                .collect();
            assert_eq!(got.len(), expected.len(), "{file}, {settings:?}");
            assert!(got == expected, "{file}, {settings:?}: records differ");
            assert_eq!(data.files[0].sha256, sha256, "{file}, {settings:?}");
        }
    }
}

#[test]
fn invalid_character_in_a_table_names_row_and_base() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.csv",
        b"sequence,label\nACGTACGTACGT,0\nACGTZCGTACGT,1\n",
    );
    let message = error_naming(load(&tables(std::slice::from_ref(&path))), &path);
    assert!(
        message.contains("line 3, base 5 of the sequence: 'Z'"),
        "{message}"
    );
}

#[test]
fn header_labels_need_both_a_rule_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.fa", b">s1|x\nACGT\n");
    let without_rule = LoadOptions {
        header_labelled: vec![path.display().to_string()],
        ..LoadOptions::default()
    };
    let message = load(&without_rule).unwrap_err().to_string();
    assert!(message.contains("no rule to find the label"), "{message}");
    let mut without_files = classes(&[("a", &path)]);
    without_files.header_label = Some(HeaderLabelRule::PipeSuffix);
    let message = load(&without_files).unwrap_err().to_string();
    assert!(message.contains("no file to read labels from"), "{message}");
}

#[test]
fn truncated_gzip_table_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = b"sequence,label\n".to_vec();
    for i in 0..3000 {
        let seq: String = (0..100)
            .map(|j| b"ACGT"[(i * 5 + j * j * 7 + j / 3) % 4] as char)
            .collect();
        writeln!(csv, "{seq},{}", i % 2).unwrap();
    }
    let compressed = gzip(&csv);
    let path = write(
        dir.path(),
        "cut.csv.gz",
        &compressed[..compressed.len() / 2],
    );
    let message = error_naming(load(&tables(std::slice::from_ref(&path))), &path);
    assert!(message.contains("truncated or corrupt"), "{message}");
    assert!(message.contains("the row at line"), "{message}");
}
