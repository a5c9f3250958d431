//! Windows, blocks, leakage-free splits, duplicates, QC and the manifest: on hand-built data
//! (properties that must hold for any input) and on the real data in the shared folder.

mod common;

use std::collections::{HashMap, HashSet};

use dnatune::data::split::{SplitMix64, SPLITS};
use dnatune::data::window::blocks;
use dnatune::data::{
    load, ClassInput, Dataset, DatasetError, DatasetOptions, InputFile, InputFormat, LoadOptions,
    LoadedData, Manifest, Record, Split, TableInput, Window, WindowOptions,
};

/// Random bases (A/C/G/T, with `n_rate` N) from a seeded generator.
fn random_bases(rng: &mut SplitMix64, len: usize, gc: f64, n_rate: f64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            let u = rng.next_u64() as f64 / u64::MAX as f64;
            let v = rng.next_u64() as f64 / u64::MAX as f64;
            if u < n_rate {
                b'N'
            } else if v < gc / 2.0 {
                b'G'
            } else if v < gc {
                b'C'
            } else if v < (1.0 + gc) / 2.0 {
                b'A'
            } else {
                b'T'
            }
        })
        .collect()
}

/// Builds loaded data by hand: `(class, header, bases)`; one input file per class.
fn loaded(classes: &[&str], records: Vec<(u32, String, Vec<u8>)>) -> LoadedData {
    let mut data = LoadedData {
        classes: classes.iter().map(|c| c.to_string()).collect(),
        files: classes
            .iter()
            .enumerate()
            .map(|(i, c)| InputFile {
                path: format!("{c}.fa").into(),
                sha256: format!("{i:064x}"),
                format: InputFormat::Fasta,
                class: Some(i as u32),
                designated_test: false,
            })
            .collect(),
        normalization: vec![Default::default(); classes.len()],
        ..Default::default()
    };
    for (i, (class, header, bases)) in records.into_iter().enumerate() {
        data.records.push(Record {
            header,
            file: class,
            line: 1 + 2 * i as u64,
            class,
            offset: data.bases.len() as u64,
            len: bases.len() as u32,
            designated_test: false,
        });
        data.bases.extend_from_slice(&bases);
    }
    data
}

/// `count` random records per class with lengths in `lengths`.
fn random_data(seed: u64, classes: &[&str], count: usize, lengths: (usize, usize)) -> LoadedData {
    let mut rng = SplitMix64::new(seed);
    let mut records = Vec::new();
    for (class, _) in classes.iter().enumerate() {
        for i in 0..count {
            let len = lengths.0 + rng.below((lengths.1 - lengths.0 + 1) as u64) as usize;
            let bases = random_bases(&mut rng, len, 0.3 + 0.1 * class as f64, 0.01);
            records.push((
                class as u32,
                format!("c{class}_r{i} genome=g{}", i % 7),
                bases,
            ));
        }
    }
    loaded(classes, records)
}

fn windowed(window: u32, stride: u32) -> DatasetOptions {
    DatasetOptions {
        window: WindowOptions {
            window_bp: Some(window),
            stride_bp: Some(stride),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Which splits each record's windows landed in.
fn splits_per_record(dataset: &Dataset) -> HashMap<u32, HashSet<Split>> {
    let mut out: HashMap<u32, HashSet<Split>> = HashMap::new();
    for split in SPLITS {
        for window in dataset.windows(split) {
            out.entry(window.record).or_default().insert(split);
        }
    }
    out
}

/// No bp of a record is in windows of two different splits (the leakage we prevent).
fn assert_no_overlap_across_splits(dataset: &Dataset) {
    let mut by_record: HashMap<u32, Vec<(Window, Split)>> = HashMap::new();
    for split in SPLITS {
        for window in dataset.windows(split) {
            by_record
                .entry(window.record)
                .or_default()
                .push((*window, split));
        }
    }
    for (record, mut windows) in by_record {
        windows.sort_by_key(|(w, _)| w.start);
        // Overlap with any earlier window of another split: track the furthest end per split.
        let mut furthest_end = [0u32; 3];
        let mut seen = [false; 3];
        for (window, split) in windows {
            for other in SPLITS {
                if other != split && seen[other.index()] {
                    assert!(
                        furthest_end[other.index()] <= window.start,
                        "record {record}: {split} window at {} overlaps a {other} window",
                        window.start
                    );
                }
            }
            let slot = split.index();
            seen[slot] = true;
            furthest_end[slot] = furthest_end[slot].max(window.start + window.len);
        }
    }
}

fn class_windows(dataset: &Dataset, class: u32, split: Split) -> usize {
    dataset
        .windows(split)
        .iter()
        .filter(|w| dataset.class_of(w) == class)
        .count()
}

#[test]
fn every_record_lands_in_exactly_one_split_for_many_seeds() {
    for seed in 0..20 {
        let data = random_data(seed, &["a", "b", "c"], 40, (300, 5000));
        let mut options = windowed(200, 100);
        options.seed = seed;
        let dataset = Dataset::build(data, &options).expect("enough records");
        for (record, splits) in splits_per_record(&dataset) {
            assert_eq!(
                splits.len(),
                1,
                "seed {seed}: record {record} in {splits:?}"
            );
        }
        // Every class is present in every split, close to 80/10/10 of its windows.
        for class in 0..3 {
            let counts: Vec<usize> = SPLITS
                .iter()
                .map(|&s| class_windows(&dataset, class, s))
                .collect();
            let total: usize = counts.iter().sum();
            for (count, fraction) in counts.iter().zip([0.8, 0.1, 0.1]) {
                let share = *count as f64 / total as f64;
                assert!(
                    (share - fraction).abs() < 0.05,
                    "seed {seed} class {class}: {counts:?}"
                );
            }
        }
    }
}

#[test]
fn blocks_are_split_as_units_and_windows_never_straddle_a_border() {
    for seed in 0..10 {
        let data = random_data(seed, &["a", "b"], 6, (20_000, 60_000));
        let block_bp = 4_000;
        let mut options = windowed(500, 250);
        options.block_bp = Some(block_bp);
        options.seed = seed;
        let lens: Vec<u32> = data.records.iter().map(|r| r.len).collect();
        let dataset = Dataset::build(data, &options).expect("enough blocks");
        let mut split_of_block: HashMap<(u32, usize), Split> = HashMap::new();
        for split in SPLITS {
            for window in dataset.windows(split) {
                let record_blocks = blocks(lens[window.record as usize], block_bp, 500);
                let block = record_blocks
                    .iter()
                    .position(|&(start, end)| window.start >= start && window.start < end)
                    .expect("window inside the record");
                let (block_start, block_end) = record_blocks[block];
                assert!(
                    window.start >= block_start && window.start + window.len <= block_end,
                    "window {window:?} straddles a border of block {block_start}..{block_end}"
                );
                let previous = split_of_block.insert((window.record, block), split);
                assert!(previous.is_none_or(|p| p == split), "block in two splits");
            }
        }
        assert_no_overlap_across_splits(&dataset);
        let dropped: u64 = dataset
            .report
            .classes_before_split
            .iter()
            .map(|c| c.windows_crossing_block_border)
            .sum();
        assert!(
            dropped > 0,
            "borders every 4 kb must cut some 500 bp windows"
        );
    }
}

#[test]
fn a_single_genome_is_cut_into_blocks_that_fill_every_split() {
    let mut rng = SplitMix64::new(1);
    let mut records = vec![(
        0,
        "genome".to_string(),
        random_bases(&mut rng, 400_000, 0.5, 0.0),
    )];
    for i in 0..30 {
        records.push((
            1,
            format!("phage{i}"),
            random_bases(&mut rng, 8_000, 0.4, 0.0),
        ));
    }
    let dataset = Dataset::build(
        loaded(&["bacterium", "phage"], records),
        &windowed(1000, 500),
    )
    .expect("the genome is blocked");
    let bacterium = &dataset.report.classes_before_split[0];
    assert!(bacterium.block_bp.is_some(), "one record must be blocked");
    assert!(dataset.report.classes_before_split[1].block_bp.is_none());
    for split in SPLITS {
        let count = class_windows(&dataset, 0, split);
        assert!(count > 0, "the genome has no windows in {split}");
    }
    let train = class_windows(&dataset, 0, Split::Train) as f64;
    let total: f64 = SPLITS
        .iter()
        .map(|&s| class_windows(&dataset, 0, s) as f64)
        .sum();
    assert!(
        (train / total - 0.8).abs() < 0.05,
        "train share {}",
        train / total
    );
    assert_no_overlap_across_splits(&dataset);
}

#[test]
fn the_same_seed_gives_a_byte_identical_manifest_and_another_seed_another_split() {
    let options = windowed(200, 100);
    let manifest = |seed: u64| {
        let data = random_data(7, &["a", "b"], 50, (200, 2000));
        let dataset = Dataset::build(
            data,
            &DatasetOptions {
                seed,
                ..options.clone()
            },
        )
        .expect("valid");
        Manifest::new(&dataset, &LoadOptions::default()).to_json()
    };
    let first = manifest(1);
    assert_eq!(first, manifest(1));
    assert_ne!(first, manifest(2));
}

#[test]
fn duplicate_sequences_never_reach_validation_or_test_twice() {
    let mut rng = SplitMix64::new(3);
    let shared = random_bases(&mut rng, 300, 0.5, 0.0);
    let mut records = Vec::new();
    for i in 0..200 {
        let bases = if i % 4 == 0 {
            shared.clone()
        } else {
            random_bases(&mut rng, 300, 0.5, 0.0)
        };
        records.push((((i / 4) % 2) as u32, format!("r{i}"), bases));
    }
    let dataset =
        Dataset::build(loaded(&["a", "b"], records), &DatasetOptions::default()).expect("valid");
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for split in SPLITS {
        for window in dataset.windows(split) {
            let bases = dataset.bases(window).to_vec();
            let first_time = seen.insert(bases);
            assert!(split == Split::Train || first_time, "duplicate in {split}");
        }
    }
    // 50 copies of one sequence: the first stays; the others are counted, none silently.
    let counted: u64 = dataset
        .report
        .splits
        .iter()
        .map(|r| r.duplicates_removed + r.duplicates_kept_in_train)
        .sum();
    assert_eq!(counted, 49);
    // The copies carry both classes: the contradicting labels are reported.
    let conflicting: u64 = dataset
        .report
        .splits
        .iter()
        .map(|r| r.duplicates_with_other_class)
        .sum();
    assert!(conflicting > 0);
}

#[test]
fn designated_test_records_form_the_test_set() {
    let mut data = random_data(5, &["a", "b"], 60, (300, 300));
    for record in data.records.iter_mut() {
        record.designated_test = record.header.ends_with("genome=g3");
    }
    let designated: HashSet<u32> = data
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.designated_test)
        .map(|(i, _)| i as u32)
        .collect();
    assert!(!designated.is_empty());
    let dataset = Dataset::build(data, &DatasetOptions::default()).expect("valid");
    let test: HashSet<u32> = dataset
        .windows(Split::Test)
        .iter()
        .map(|w| w.record)
        .collect();
    assert_eq!(test, designated);
    // Train and validation share the rest 8:1.
    let train = dataset.windows(Split::Train).len() as f64;
    let validation = dataset.windows(Split::Validation).len() as f64;
    assert!((validation / (train + validation) - 1.0 / 9.0).abs() < 0.03);
}

#[test]
fn group_by_keeps_each_genome_in_one_split() {
    let data = random_data(11, &["a", "b"], 70, (300, 600));
    let options = DatasetOptions {
        group_by: Some(r"genome=(\w+)".into()),
        split: "0.6,0.2,0.2".parse().expect("valid"),
        ..Default::default()
    };
    let headers: Vec<String> = data.records.iter().map(|r| r.header.clone()).collect();
    let dataset = Dataset::build(data, &options).expect("7 genomes fill 3 splits");
    let mut split_of_genome: HashMap<String, Split> = HashMap::new();
    for split in SPLITS {
        for window in dataset.windows(split) {
            let genome = headers[window.record as usize]
                .rsplit('=')
                .next()
                .unwrap_or_default()
                .to_string();
            let previous = split_of_genome.insert(genome.clone(), split);
            assert!(
                previous.is_none_or(|p| p == split),
                "{genome} in two splits"
            );
        }
    }
    assert_eq!(split_of_genome.len(), 7);
}

#[test]
fn group_by_errors_name_the_record_that_does_not_match() {
    let data = random_data(11, &["a"], 20, (300, 300));
    let options = DatasetOptions {
        group_by: Some(r"chrom=(\w+)".into()),
        ..Default::default()
    };
    let err = Dataset::build(data, &options).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, DatasetError::GroupByNoMatch { .. }),
        "{message}"
    );
    assert!(message.contains("a.fa") && message.contains("c0_r0") && message.contains("line 1"));
    let options = DatasetOptions {
        group_by: Some(r"genome=\w+".into()),
        ..Default::default()
    };
    let message = Dataset::build(random_data(1, &["a"], 20, (300, 300)), &options)
        .unwrap_err()
        .to_string();
    assert!(message.contains("one capture group"), "{message}");
}

#[test]
fn a_split_that_would_leave_a_class_empty_is_an_error_that_says_what_to_do() {
    // Class b: two records, no windows: they cannot fill train, validation and test.
    let mut rng = SplitMix64::new(2);
    let mut records: Vec<(u32, String, Vec<u8>)> = (0..30)
        .map(|i| (0, format!("a{i}"), random_bases(&mut rng, 300, 0.5, 0.0)))
        .collect();
    records.push((1, "b0".into(), random_bases(&mut rng, 300, 0.5, 0.0)));
    records.push((1, "b1".into(), random_bases(&mut rng, 300, 0.5, 0.0)));
    let err = Dataset::build(loaded(&["a", "b"], records), &DatasetOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, DatasetError::SplitWouldBeEmpty { .. }),
        "{message}"
    );
    assert!(
        message.contains("class `b`") && message.contains("--split"),
        "{message}"
    );
}

#[test]
fn short_records_and_n_rich_windows_are_dropped_and_counted() {
    let mut rng = SplitMix64::new(4);
    let mut records: Vec<(u32, String, Vec<u8>)> = (0..40)
        .map(|i| (0, format!("a{i}"), random_bases(&mut rng, 1000, 0.5, 0.0)))
        .collect();
    records.push((0, "short".into(), random_bases(&mut rng, 99, 0.5, 0.0)));
    records.push((0, "unknown".into(), vec![b'N'; 1000]));
    let dataset = Dataset::build(loaded(&["a"], records), &windowed(100, 100)).expect("valid");
    let class = &dataset.report.classes_before_split[0];
    assert_eq!(class.records_loaded, 42);
    assert_eq!(class.records_too_short, 1);
    assert_eq!(class.windows_too_many_n, 10);
    let windows: u64 = dataset.report.splits.iter().map(|r| r.windows).sum();
    assert_eq!(windows, 400);
}

// ---- the manifest ----

#[test]
fn a_manifest_reproduces_the_split_and_notices_a_changed_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = random_data(9, &["a", "b"], 40, (500, 3000));
    let dataset = Dataset::build(data.clone(), &windowed(250, 125)).expect("valid");
    let path = dir.path().join("manifest.json");
    Manifest::new(&dataset, &LoadOptions::default())
        .write(&path)
        .expect("written");
    let manifest = Manifest::read(&path).expect("readable");
    let again = manifest
        .reproduce(data.clone())
        .expect("same data, same split");
    for split in SPLITS {
        assert_eq!(again.windows(split), dataset.windows(split));
    }
    let mut changed = data;
    changed.files[1].sha256 = "f".repeat(64);
    let err = manifest.reproduce(changed).unwrap_err();
    assert!(matches!(err, DatasetError::FileChanged { .. }), "{err}");
    assert!(err.to_string().contains("b.fa"), "{err}");
    // Nothing but the manifest is left in the folder (the temporary file was renamed).
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("manifest.json")]);
}

// ---- real data ----

fn class_input(name: &str, path: &std::path::Path) -> ClassInput {
    ClassInput {
        class: Some(name.to_string()),
        path: path.display().to_string(),
    }
}

#[test]
fn phages_vs_the_e_coli_genome_in_overlapping_windows_never_leak() {
    let Some(phage) = common::shared_path("data/genomes/phage") else {
        return;
    };
    let Some(bacterium) =
        common::shared_path("data/genomes/bacteria/bowtie_E.coli_536_NC_008253.fna.gz")
    else {
        return;
    };
    let load_options = LoadOptions {
        class_inputs: vec![
            class_input("phage", &phage.join("*.fa*")),
            class_input("bacterium", &bacterium),
        ],
        ..Default::default()
    };
    let data = load(&load_options).expect("real genomes load");
    let e_coli_len = data.records.iter().find(|r| r.class == 1).map(|r| r.len);
    assert_eq!(data.records.iter().filter(|r| r.class == 1).count(), 1);
    let dataset = Dataset::build(data, &windowed(1024, 512)).expect("splits");
    // The bacterium's one record was blocked, so it fills every split...
    assert!(dataset.report.classes_before_split[1].block_bp.is_some());
    for split in SPLITS {
        assert!(
            class_windows(&dataset, 1, split) > 0,
            "no E. coli in {split}"
        );
        assert!(class_windows(&dataset, 0, split) > 0, "no phage in {split}");
    }
    // ...without any train window sharing a base with a validation/test window of the
    // same record.
    assert_no_overlap_across_splits(&dataset);
    // Nearly all of the genome is still used: about 2 windows per 1024 bp.
    let e_coli_windows: usize = SPLITS.iter().map(|&s| class_windows(&dataset, 1, s)).sum();
    let expected = e_coli_len.expect("E. coli record") as f64 / 512.0;
    assert!(
        e_coli_windows as f64 > 0.95 * expected,
        "{e_coli_windows} vs {expected}"
    );
    // Phage and E. coli GC overlap (independently: best GC threshold MCC ≈ 0.49): no warning.
    assert!(dataset.report.composition.warning.is_none());
    // The manifest reloads the same split from the real files.
    let manifest = Manifest::new(&dataset, &load_options);
    let again = manifest.reload().expect("same files");
    for split in SPLITS {
        assert_eq!(again.windows(split), dataset.windows(split));
    }
}

fn composition_mcc(load_options: &LoadOptions) -> (f64, bool) {
    let data = load(load_options).expect("real data loads");
    let dataset = Dataset::build(data, &DatasetOptions::default()).expect("splits");
    let check = &dataset.report.composition;
    (
        check.gc_only_mcc.expect("two classes"),
        check.warning.is_some(),
    )
}

#[test]
fn gc_shortcut_warning_on_species_promoters_but_not_on_shuffled_negatives() {
    let Some(arabidopsis) = common::shared_path("data/promoters_cnnprom/Arabidopsis_tata.fa.gz")
    else {
        return;
    };
    let Some(mouse) = common::shared_path("data/promoters_cnnprom/Mouse_tata.fa.gz") else {
        return;
    };
    // Arabidopsis vs mouse TATA promoters: GC 34% vs 57% (checked independently: a GC
    // threshold reaches MCC ≈ 0.88 on all sequences).
    let (mcc, warned) = composition_mcc(&LoadOptions {
        class_inputs: vec![
            class_input("arabidopsis", &arabidopsis),
            class_input("mouse", &mouse),
        ],
        ..Default::default()
    });
    assert!(warned && mcc >= 0.8, "MCC {mcc}");

    // E. coli promoters vs non-promoters differ in GC (41% vs 53%; best threshold on all
    // sequences MCC ≈ 0.67) but less.
    let Some(ecoli) = common::shared_path("data/promoters_cnnprom/Ecoli_prom.fa.gz") else {
        return;
    };
    let Some(ecoli_non) = common::shared_path("data/promoters_cnnprom/Ecoli_non_prom.fa.gz") else {
        return;
    };
    let (mcc, warned) = composition_mcc(&LoadOptions {
        class_inputs: vec![
            class_input("promoter", &ecoli),
            class_input("non", &ecoli_non),
        ],
        ..Default::default()
    });
    assert!(!warned && (0.4..0.8).contains(&mcc), "MCC {mcc}");

    // GENA promoters vs shuffled promoters: identical composition.
    let Some(fold) = common::shared_path("data/promoters_human_epd_gena300/fold_1.csv.gz") else {
        return;
    };
    let (mcc, warned) = composition_mcc(&LoadOptions {
        tables: vec![TableInput {
            path: fold.display().to_string(),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert!(!warned && mcc.abs() < 0.2, "MCC {mcc}");
}

#[test]
fn reloading_a_manifest_after_an_input_file_changed_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = SplitMix64::new(12);
    let mut write_class = |name: &str| {
        let mut fasta = String::new();
        for i in 0..30 {
            let bases = random_bases(&mut rng, 150, 0.5, 0.0);
            fasta.push_str(&format!(
                ">{name}{i}\n{}\n",
                String::from_utf8_lossy(&bases)
            ));
        }
        let path = dir.path().join(format!("{name}.fa"));
        std::fs::write(&path, fasta).expect("written");
        path
    };
    let yes = write_class("yes");
    let no = write_class("no");
    let load_options = LoadOptions {
        class_inputs: vec![class_input("yes", &yes), class_input("no", &no)],
        ..Default::default()
    };
    let dataset = Dataset::build(
        load(&load_options).expect("loads"),
        &DatasetOptions::default(),
    )
    .expect("splits");
    let manifest_path = dir.path().join("manifest.json");
    Manifest::new(&dataset, &load_options)
        .write(&manifest_path)
        .expect("written");
    let manifest = Manifest::read(&manifest_path).expect("readable");
    let again = manifest.reload().expect("unchanged files");
    assert_eq!(again.windows(Split::Test), dataset.windows(Split::Test));

    // One base changed in one file.
    let mut text = std::fs::read_to_string(&no).expect("readable");
    let at = text.find('\n').expect("a header line") + 1;
    let replacement = if &text[at..at + 1] == "A" { "C" } else { "A" };
    text.replace_range(at..at + 1, replacement);
    std::fs::write(&no, text).expect("rewritten");
    let err = manifest.reload().unwrap_err();
    assert!(matches!(err, DatasetError::FileChanged { .. }), "{err}");
    assert!(err.to_string().contains("no.fa"), "{err}");
}
