//! GenBank input: real files (phiX174 and 100 microviruses from `../shared`, Chlamydia
//! trachomatis and a cut-short honey bee contig from Debian's r-cran-seqinr, fetched by
//! `tests/data/fetch-genbank.sh`), every location form and every bad-input message on files
//! written here, and windows labelled by features at feature boundaries.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use dnatune::data::{
    load, read_genbank, read_sequences, ClassInput, Dataset, DatasetOptions, GenbankRecord,
    LoadOptions, Split, SplitFractions, WindowOptions,
};

fn cached(name: &str) -> Option<PathBuf> {
    common::fetched_genbank(name)
}

/// One feature of a generated record: key, location, qualifier lines as written.
struct FeatureText<'a> {
    key: &'a str,
    location: &'a str,
    qualifiers: &'a [&'a str],
}

/// A GenBank record laid out as NCBI writes it (ORIGIN in lower case, 60 bases a line).
fn genbank_text(name: &str, sequence: &str, features: &[FeatureText<'_>]) -> String {
    let mut text = format!(
        "LOCUS       {name:<16}{:>12} bp    DNA     linear   BCT 01-JAN-2020\n\
         DEFINITION  Test record {name},\n            made by the test.\n\
         ACCESSION   {name}\nVERSION     {name}.1\nKEYWORDS    .\n\
         FEATURES             Location/Qualifiers\n",
        sequence.len()
    );
    for feature in features {
        text.push_str(&format!("     {:<16}{}\n", feature.key, feature.location));
        for line in feature.qualifiers {
            text.push_str(&format!("                     {line}\n"));
        }
    }
    text.push_str("ORIGIN\n");
    let lower = sequence.to_ascii_lowercase();
    for (line_index, line) in lower.as_bytes().chunks(60).enumerate() {
        text.push_str(&format!("{:>9}", line_index * 60 + 1));
        for block in line.chunks(10) {
            text.push(' ');
            text.push_str(std::str::from_utf8(block).expect("ascii"));
        }
        text.push('\n');
    }
    text.push_str("//\n");
    text
}

/// `len` bases of a fixed pseudo-random sequence.
fn bases(len: usize, seed: u64) -> String {
    let mut rng = dnatune::data::split::SplitMix64::new(seed);
    (0..len)
        .map(|_| ['A', 'C', 'G', 'T'][rng.below(4) as usize])
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

#[test]
fn phix174_from_the_biopython_sources() {
    let Some(path) = common::shared_path("data/genomes/phage/biopython_phiX174_NC_001422.gbk")
    else {
        return;
    };
    let records = read_genbank(&path).expect("phiX174 reads");
    assert_eq!(records.len(), 1);
    let phix = &records[0];
    assert_eq!(phix.id(), "NC_001422.1");
    assert_eq!(phix.name, "NC_001422");
    assert_eq!(phix.definition, "Coliphage phiX174, complete genome.");
    assert!(phix.circular);
    assert_eq!(phix.sequence.len(), 5386);
    assert!(phix.sequence.starts_with(b"GAGTTTTATCGCTTCCATGAC"));
    let count = |key: &str| phix.features.iter().filter(|f| f.key == key).count();
    assert_eq!(
        (
            count("CDS"),
            count("mRNA"),
            count("variation"),
            count("source")
        ),
        (11, 2, 4, 1)
    );
    // Gene A runs across the origin of the circular genome: join(3981..5386,1..136).
    let across = phix
        .features
        .iter()
        .find(|f| f.location == "join(3981..5386,1..136)")
        .expect("the CDS across the origin");
    let spans: Vec<(u64, u64)> = across.spans.iter().map(|s| (s.start, s.end)).collect();
    assert_eq!(spans, [(3980, 5386), (0, 136)]);
    // The same record through the inference reader (predict, embed).
    let sequences = read_sequences(&path).expect("read as sequences");
    assert_eq!(sequences.len(), 1);
    assert_eq!(sequences[0].id, "NC_001422.1");
    assert_eq!(sequences[0].bases, phix.sequence);
}

#[test]
fn a_hundred_gzipped_microvirus_records_from_pharokka() {
    let Some(path) = common::shared_path("data/genomes/phage/pharokka_hundred_microviruses.gbk.gz")
    else {
        return;
    };
    let records = read_genbank(&path).expect("the microviruses read");
    assert_eq!(records.len(), 100);
    let cds: usize = records
        .iter()
        .map(|r| r.features.iter().filter(|f| f.key == "CDS").count())
        .sum();
    assert_eq!(cds, 1081);
    let first = &records[0];
    assert_eq!(first.id(), "Family1_AF454431");
    assert_eq!(first.sequence.len(), 5577);
    let protein = &first.features[0];
    assert_eq!(protein.spans[0].start, 0);
    assert_eq!(protein.spans[0].end, 1284);
    assert_eq!(
        protein.qualifier("locus_tag"),
        Some("Family1_AF454431_CDS_0001")
    );
    assert_eq!(protein.qualifier("product"), Some("major head protein"));
    for record in &records {
        assert_eq!(Some(record.sequence.len() as u64), record.declared_len);
    }
}

#[test]
fn chlamydia_trachomatis_from_debian_seqinr() {
    let Some(path) = cached("ct.gbk.gz") else {
        return;
    };
    let records = read_genbank(&path).expect("ct.gbk.gz reads");
    assert_eq!(records.len(), 1);
    let ct = &records[0];
    // No VERSION line: the id is the accession.
    assert_eq!((ct.name.as_str(), ct.id()), ("CHLTCG", "CG0037"));
    assert_eq!(ct.sequence.len(), 1_042_519);
    let count = |key: &str| ct.features.iter().filter(|f| f.key == key).count();
    assert_eq!(
        [count("CDS"), count("tRNA"), count("rRNA"), count("gene")],
        [895, 37, 6, 34]
    );
    let first = ct.features.iter().find(|f| f.key == "CDS").expect("a CDS");
    assert_eq!(first.location, "<1..1176");
    assert!(first.spans[0].partial_start && !first.spans[0].partial_end);
    assert_eq!(first.qualifier("gene"), Some("CT875"));
    assert_eq!(first.qualifier("product"), Some("hypothetical protein"));
    // A translation spread over 14 lines is joined without spaces.
    let translation = first.qualifier("translation").expect("a translation");
    assert!(translation.starts_with("MSIRGVGGNGNSRIPSHNGDGSNRRSQNTKGNNKVEDRVCSLYSSRSNENRES"));
    assert!(translation.ends_with("RDMLTNGSQTFRDLMRRWNREVDRE"));
    assert!(!translation.contains(' '));
    let joined = ct
        .features
        .iter()
        .find(|f| f.location == "complement(join(535378..536418,536417..536485))")
        .expect("the joined CDS");
    let spans: Vec<(u64, u64, bool)> = joined
        .spans
        .iter()
        .map(|s| (s.start, s.end, s.complement))
        .collect();
    assert_eq!(spans, [(536416, 536485, true), (535377, 536418, true)]);
    let last = ct
        .features
        .iter()
        .find(|f| f.location == "1041920..>1042519")
        .expect("the last CDS");
    assert!(last.spans[0].partial_end);
}

#[test]
fn a_record_cut_short_says_so() {
    let Some(path) = cached("ame1.gbk") else {
        return;
    };
    let err = read_genbank(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&path.display().to_string())
            && err.contains("record 'NW_001253191.1'")
            && err.contains("line 581")
            && err.contains("before its closing `//`")
            && err.contains("before any ORIGIN line")
            && err.contains("download or copy it again"),
        "{err}"
    );
}

#[test]
fn every_location_form_and_multi_line_qualifiers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sequence = bases(300, 1);
    let first = genbank_text(
        "REC1",
        &sequence,
        &[
            FeatureText {
                key: "gene",
                location: "10..20",
                qualifiers: &["/gene=\"abcD\"", "/locus_tag=\"T_0001\""],
            },
            FeatureText {
                key: "CDS",
                location: "complement(<30..>60)",
                qualifiers: &[
                    "/product=\"a protein with a long name that goes on over",
                    "two lines\"",
                    "/note=\"says \"\"hello\"\"\"",
                    "/pseudo",
                ],
            },
            FeatureText {
                key: "CDS",
                location: "join(70..80,",
                qualifiers: &["90..100,complement(110..120))", "/codon_start=1"],
            },
            FeatureText {
                key: "misc_feature",
                location: "order(130..135,140)",
                qualifiers: &[],
            },
            FeatureText {
                key: "misc_binding",
                location: "150^151",
                qualifiers: &[],
            },
            FeatureText {
                key: "CDS",
                location: "join(REC1.1:160..170,J00194.1:100..202,180..190)",
                qualifiers: &[],
            },
            FeatureText {
                key: "repeat_region",
                location: "300",
                qualifiers: &[],
            },
        ],
    );
    let second = genbank_text("REC2", &bases(61, 2), &[]);
    let path = write(dir.path(), "forms.gbk", &format!("{first}\n{second}"));
    let records = read_genbank(&path).expect("generated file reads");
    assert_eq!(records.len(), 2);
    let record: &GenbankRecord = &records[0];
    assert_eq!(record.id(), "REC1.1");
    assert_eq!(record.definition, "Test record REC1, made by the test.");
    assert_eq!(record.sequence, sequence.as_bytes());
    assert_eq!(records[1].sequence.len(), 61);
    let f = &record.features;
    assert_eq!(f.len(), 7);
    let spans = |i: usize| -> Vec<(u64, u64, bool)> {
        f[i].spans
            .iter()
            .map(|s| (s.start, s.end, s.complement))
            .collect()
    };
    assert_eq!(spans(0), [(9, 20, false)]);
    assert_eq!(f[0].qualifier("gene"), Some("abcD"));
    assert_eq!(f[0].qualifier("locus_tag"), Some("T_0001"));
    assert_eq!(spans(1), [(29, 60, true)]);
    assert!(f[1].spans[0].partial_start && f[1].spans[0].partial_end);
    assert_eq!(
        f[1].qualifier("product"),
        Some("a protein with a long name that goes on over two lines")
    );
    assert_eq!(f[1].qualifier("note"), Some("says \"hello\""));
    assert_eq!(f[1].qualifier("pseudo"), Some(""));
    // A location continued on the next line.
    assert_eq!(f[2].location, "join(70..80,90..100,complement(110..120))");
    assert_eq!(
        spans(2),
        [(69, 80, false), (89, 100, false), (109, 120, true)]
    );
    assert_eq!(f[2].qualifier("codon_start"), Some("1"));
    assert_eq!(spans(3), [(129, 135, false), (139, 140, false)]);
    // A site between two bases covers none.
    assert_eq!(spans(4), [(150, 150, false)]);
    assert!(f[4].spans[0].is_empty());
    // A part on this record named by its accession is kept; one on another record is set aside.
    assert_eq!(spans(5), [(159, 170, false), (179, 190, false)]);
    assert_eq!(f[5].remote_parts, ["J00194.1:100..202"]);
    assert_eq!(spans(6), [(299, 300, false)]);
}

#[test]
fn compressed_genbank_reads_like_plain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = genbank_text(
        "ZIP1",
        &bases(500, 3),
        &[FeatureText {
            key: "CDS",
            location: "1..300",
            qualifiers: &[],
        }],
    );
    let plain = read_genbank(&write(dir.path(), "plain.gb", &text)).expect("plain");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(text.as_bytes()).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(text.as_bytes()).unwrap();
    let compressed = [
        ("z.gb.gz", gz.finish().unwrap()),
        ("z.gb.bz2", bz.finish().unwrap()),
        ("z.gb.xz", xz.finish().unwrap()),
        ("z.gb.zst", zstd::encode_all(text.as_bytes(), 3).unwrap()),
    ];
    for (name, bytes) in compressed {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read_genbank(&path).expect(name), plain, "{name}");
    }
}

/// The error for `text`, checked to name the file.
fn error_for(text: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "bad.gbk", text);
    let err = read_genbank(&path)
        .expect_err("a bad file is refused")
        .to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    err
}

#[test]
fn bad_input_is_explained() {
    let good = genbank_text(
        "BAD1",
        &bases(120, 4),
        &[FeatureText {
            key: "CDS",
            location: "10..50",
            qualifiers: &["/gene=\"x\""],
        }],
    );

    // No ORIGIN section.
    let start = good.find("ORIGIN").unwrap();
    let no_origin = format!("{}//\n", &good[..start]);
    let err = error_for(&no_origin);
    assert!(
        err.contains("record 'BAD1.1'")
            && err.contains("line 10")
            && err.contains("no ORIGIN section")
            && err.contains("Download the record with its sequence"),
        "{err}"
    );

    // A location outside the sequence.
    let err = error_for(&good.replace("10..50", "10..500"));
    assert!(
        err.contains("line 8")
            && err.contains("record 'BAD1.1'")
            && err.contains("`10..500`")
            && err.contains("reaches base 500, but the record has only 120 bases")
            && err.contains("fix the location"),
        "{err}"
    );

    // Cut short: no closing `//`.
    let err = error_for(good.trim_end().strip_suffix("//").unwrap());
    assert!(
        err.contains("record 'BAD1.1'")
            && err.contains("line 12")
            && err.contains("before its closing `//`")
            && err.contains("cut short"),
        "{err}"
    );

    // An unparseable location.
    let err = error_for(&good.replace("10..50", "join(10..20,gap(5))"));
    assert!(
        err.contains("line 8")
            && err.contains("record 'BAD1.1'")
            && err.contains("cannot read the location `join(10..20,gap(5))`")
            && err.contains("`gap` is not a location operator")
            && err.contains("fix it or remove the feature"),
        "{err}"
    );

    // Text that is not a base in ORIGIN.
    let err = error_for(&good.replacen("        1 ", "        1 x", 1));
    assert!(
        err.contains("record 'BAD1.1'")
            && err.contains("line 11, column 11")
            && err.contains("'x'"),
        "{err}"
    );

    // A LOCUS length that the sequence does not match.
    let err = error_for(&good.replace("120 bp", "150 bp"));
    assert!(
        err.contains("says 150 bp") && err.contains("holds 120 bases"),
        "{err}"
    );

    // An unclosed quote.
    let err = error_for(&good.replace("/gene=\"x\"", "/gene=\"x"));
    assert!(
        err.contains("/gene") && err.contains("never closed"),
        "{err}"
    );

    // A range backwards on a linear record.
    let err = error_for(&good.replace("10..50", "50..10"));
    assert!(
        err.contains("runs from 50 back to 10") && err.contains("linear"),
        "{err}"
    );
}

/// Loads `path` with labels from `keys` and builds a dataset of windows of `window` bp,
/// all in train.
fn feature_dataset(path: &Path, keys: &str, window: u32, min_overlap: f64) -> Dataset {
    let options = LoadOptions {
        class_inputs: vec![ClassInput {
            class: Some("ignored".into()),
            path: path.display().to_string(),
        }],
        label_by_feature: keys.split(',').map(str::to_string).collect(),
        ..LoadOptions::default()
    };
    let data = load(&options).expect("loads");
    let dataset_options = DatasetOptions {
        window: WindowOptions {
            window_bp: Some(window),
            ..WindowOptions::default()
        },
        split: "1,0,0".parse::<SplitFractions>().expect("fractions"),
        min_feature_overlap: min_overlap,
        ..DatasetOptions::default()
    };
    Dataset::build(data, &dataset_options).expect("builds")
}

#[test]
fn windows_are_labelled_at_feature_boundaries() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 20-bp windows over 200 bp: 0..20, 20..40, … 180..200.
    let text = genbank_text(
        "LAB1",
        &bases(200, 5),
        &[
            // Exactly window 20..40.
            FeatureText {
                key: "CDS",
                location: "21..40",
                qualifiers: &[],
            },
            // 10 bp of window 40..60: exactly half.
            FeatureText {
                key: "CDS",
                location: "complement(51..69)",
                qualifiers: &[],
            },
            // Two exons with an intron: window 100..120 has 9 bp, 120..140 has 20.
            FeatureText {
                key: "CDS",
                location: "join(112..119,121..141)",
                qualifiers: &[],
            },
            // Another key: ignored by CDS, counted by CDS,tRNA.
            FeatureText {
                key: "tRNA",
                location: "161..180",
                qualifiers: &[],
            },
            // A site between two bases inside window 180..200.
            FeatureText {
                key: "CDS",
                location: "190^191",
                qualifiers: &[],
            },
        ],
    );
    let path = write(dir.path(), "labels.gbk", &text);
    let labels = |dataset: &Dataset| -> Vec<(u32, String)> {
        dataset
            .windows(Split::Train)
            .iter()
            .map(|w| {
                let class = &dataset.data.classes[dataset.class_of(w) as usize];
                (w.start, class.clone())
            })
            .collect()
    };
    let owned = |pairs: &[(u32, &str)]| -> Vec<(u32, String)> {
        pairs.iter().map(|&(s, c)| (s, c.to_string())).collect()
    };

    let dataset = feature_dataset(&path, "CDS", 20, 0.5);
    assert_eq!(dataset.data.classes, ["CDS", "non_CDS"]);
    // Dropped: 60..80 (9 of 20 bp in a CDS), 100..120 (8 bp: the intron does not count),
    // 140..160 (1 bp) and 180..200 (holds a site between two bases).
    assert_eq!(
        labels(&dataset),
        owned(&[
            (0, "non_CDS"),
            (20, "CDS"),
            (40, "CDS"), // exactly half the window
            (80, "non_CDS"),
            (120, "CDS"),
            (160, "non_CDS"), // a tRNA is not a CDS
        ])
    );
    let qc = dataset.report.feature_labels.as_ref().expect("feature QC");
    assert_eq!(
        (
            qc.windows_with_feature,
            qc.windows_without_feature,
            qc.windows_partial_dropped
        ),
        (3, 3, 4)
    );
    assert_eq!((qc.features_used, qc.covered_bp), (4, 20 + 19 + 8 + 21));
    assert!(dataset
        .report
        .to_string()
        .contains("4 dropped with a partial overlap below 50%"));

    // The whole window in a feature; and two keys together.
    let strict = feature_dataset(&path, "CDS", 20, 1.0);
    assert_eq!(
        labels(&strict),
        owned(&[
            (0, "non_CDS"),
            (20, "CDS"),
            (80, "non_CDS"),
            (120, "CDS"),
            (160, "non_CDS")
        ])
    );
    let two_keys = feature_dataset(&path, "CDS,tRNA", 20, 0.5);
    assert_eq!(two_keys.data.classes, ["CDS+tRNA", "non_CDS+tRNA"]);
    assert_eq!(
        labels(&two_keys).last(),
        Some(&(160, "CDS+tRNA".to_string()))
    );
}

#[test]
fn a_genome_labelled_by_features_is_split_in_blocks_without_leaks() {
    let Some(path) = common::shared_path("data/genomes/phage/pharokka_hundred_microviruses.gbk.gz")
    else {
        return;
    };
    let options = LoadOptions {
        header_labelled: vec![path.display().to_string()],
        label_by_feature: vec!["CDS".into()],
        ..LoadOptions::default()
    };
    let data = load(&options).expect("loads");
    assert_eq!(data.classes, ["CDS", "non_CDS"]);
    let dataset_options = DatasetOptions {
        window: WindowOptions {
            window_bp: Some(100),
            stride_bp: Some(50),
            ..WindowOptions::default()
        },
        ..DatasetOptions::default()
    };
    let dataset = Dataset::build(data, &dataset_options).expect("builds");
    // 100 records: enough groups, so whole records are split; no record in two splits.
    let mut split_of_record = std::collections::HashMap::new();
    for split in [Split::Train, Split::Validation, Split::Test] {
        for window in dataset.windows(split) {
            let earlier = split_of_record.insert(window.record, split);
            assert!(earlier.is_none_or(|s| s == split), "record in two splits");
        }
    }
    for row in &dataset.report.splits {
        assert!(row.windows > 0, "{row:?}");
    }
    // No validation or test window repeats a training window.
    let train: std::collections::HashSet<&[u8]> = dataset
        .windows(Split::Train)
        .iter()
        .map(|w| dataset.bases(w))
        .collect();
    for split in [Split::Validation, Split::Test] {
        for window in dataset.windows(split) {
            assert!(!train.contains(dataset.bases(window)));
        }
    }
}

#[test]
fn label_by_feature_needs_genbank_input_and_windows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fasta = write(dir.path(), "a.fa", ">a\nACGTACGTAC\n");
    let options = LoadOptions {
        class_inputs: vec![ClassInput::parse(&format!("x={}", fasta.display())).unwrap()],
        label_by_feature: vec!["CDS".into()],
        ..LoadOptions::default()
    };
    let err = load(&options).unwrap_err().to_string();
    assert!(
        err.contains("none of the inputs is a GenBank file"),
        "{err}"
    );

    let text = genbank_text(
        "W1",
        &bases(100, 6),
        &[FeatureText {
            key: "gene",
            location: "1..50",
            qualifiers: &[],
        }],
    );
    let path = write(dir.path(), "w.gbk", &text);
    let options = LoadOptions {
        class_inputs: vec![ClassInput::parse(&path.display().to_string()).unwrap()],
        label_by_feature: vec!["CDS".into()],
        ..LoadOptions::default()
    };
    let err = load(&options).unwrap_err().to_string();
    assert!(
        err.contains("has a CDS feature") && err.contains("gene (1)"),
        "{err}"
    );
    let options = LoadOptions {
        label_by_feature: vec!["gene".into()],
        ..options
    };
    let data = load(&options).expect("loads");
    let err = Dataset::build(data, &DatasetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs --window BP"), "{err}");
}
