//! The data step driven through `egui_kittest` (no display): files are read in the
//! background and their rows show what was found or what is wrong; labels from headers get
//! a live preview; tables bring their own labels; the quality check shows per-split counts.
//! Every control is found by its accessible label.
#![cfg(feature = "gui")]

mod common;

use common::gui::{drop_files, step_until};

use std::path::{Path, PathBuf};

use dnatune::data::{load, Dataset, Split};
use dnatune::gui::dialogs::ScriptedDialogs;
use dnatune::gui::{AppSettings, DnatuneApp};
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

fn harness(runs: &Path) -> Harness<'static, DnatuneApp> {
    let settings = AppSettings {
        runs_dir: Some(runs.to_path_buf()),
        ..AppSettings::default()
    };
    Harness::builder()
        // Background results (file summaries, checks) can arrive mid-run and cost a few extra
        // layout frames before the UI settles.
        .with_max_steps(16)
        .with_size([1200.0, 1400.0])
        .build_eframe(move |cc| {
            DnatuneApp::with_parts(
                &cc.egui_ctx,
                settings,
                Vec::new(),
                Box::new(ScriptedDialogs::default()),
            )
        })
}

/// The text a label shows (egui puts it in the node's label or its value).
fn text_of(node: &egui_kittest::Node<'_>) -> String {
    let node = node.accesskit_node();
    node.label().or_else(|| node.value()).unwrap_or_default()
}

fn write_fasta(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

#[test]
fn a_dropped_file_shows_its_record_count_and_a_corrupt_one_its_error() {
    let Some(data) = common::shared_path("data/promoters_cnnprom") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let corrupt = write_fasta(
        tmp.path(),
        "corrupt.fa",
        ">good\nACGTACGTAC\n>bad one\nACGTAC\nACJTAC\n",
    );
    let mut harness = harness(&tmp.path().join("runs"));
    harness.run();
    drop_files(
        &mut harness,
        &[data.join("Bacillus_prom.fa.gz"), corrupt.clone()],
    );

    step_until(&mut harness, "the record count", |h| {
        h.query_by_label_contains("373 records").is_some()
    });
    step_until(&mut harness, "the inline error", |h| {
        h.query_all_by_label_contains("is not a nucleotide code")
            .next()
            .is_some()
    });
    // The row's error names the file, the record and the place, as the core reports it
    // (the quality check repeats it as the reason it cannot run yet).
    let errors: Vec<String> = harness
        .query_all_by_label_contains("is not a nucleotide code")
        .map(|node| text_of(&node))
        .collect();
    let row_error = errors
        .iter()
        .find(|text| text.starts_with(&corrupt.display().to_string()))
        .unwrap_or_else(|| panic!("no row error among {errors:?}"));
    assert!(
        row_error.contains("record 'bad'")
            && row_error.contains("line 5, column 3")
            && row_error.contains("'J'"),
        "{row_error}"
    );
    // Training refuses the data until the file is fixed or removed.
    let reason = harness.state().train_config().unwrap_err();
    assert!(reason.contains("corrupt.fa"), "{reason}");

    harness.get_by_label("Remove corrupt.fa").click();
    harness.run();
    assert!(harness
        .query_by_label_contains("is not a nucleotide code")
        .is_none());
    assert_eq!(harness.state().data.settings.files.len(), 1);
}

#[test]
fn labels_from_headers_get_a_live_preview() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = write_fasta(
        tmp.path(),
        "labelled.fa",
        ">s1 label=phage\nACGTACGTAA\n>s2 label=phage\nACGTACGTCC\n>s3 label=bacteria\nACGTACGTGG\n\
         >s4 no label here\nACGTACGTTT\n>s5 label=phage\nACGTACGGGG\n",
    );
    let mut harness = harness(&tmp.path().join("runs"));
    harness.run();
    drop_files(&mut harness, &[file]);
    step_until(&mut harness, "the file to be read", |h| {
        h.query_by_label_contains("5 records").is_some()
    });

    harness.get_by_label("Found in each header").click();
    harness.run();
    // No class per file any more.
    assert!(harness.query_by_label("Class of labelled.fa").is_none());
    harness.get_by_label("Label pattern:").focus();
    harness.run();
    harness
        .get_by_label("Label pattern:")
        .type_text(r"label=(\w+)");
    harness.run();
    harness.get_by_label("Labels found: phage: 3, bacteria: 1");
    let missing = harness.get_by_label_contains("Headers without a label: 1.");
    let text = text_of(&missing);
    assert!(text.contains("'s4 no label here'"), "{text}");
    // Training is refused while a header has no label, and names it.
    let reason = harness.state().train_config().unwrap_err();
    assert!(reason.contains("s4 no label here"), "{reason}");

    // A pattern that matches every header: the data is ready, labelled by the headers.
    let data = &mut harness.state_mut().data;
    data.settings.header_rule = r"(?:label=|s4 )(\w+)".into();
    harness.run();
    harness.get_by_label("Labels found: phage: 3, bacteria: 1, no: 1");
    assert!(harness.query_by_label_contains("without a label").is_none());
    let (options, _) = harness
        .state()
        .data
        .training_data()
        .expect("ready to train");
    assert_eq!(options.header_labelled.len(), 1);
    assert!(options.class_inputs.is_empty());

    // An invalid pattern is explained where it is typed.
    harness.state_mut().data.settings.header_rule = "(a)(b)".into();
    harness.run();
    assert!(harness
        .query_all_by_label_contains("has 2 capture groups")
        .next()
        .is_some());
}

#[test]
fn a_table_brings_its_own_labels() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let table = tmp.path().join("promoters.csv");
    let mut text = String::from("sequence,label\n");
    for i in 0..30 {
        let base = ["ACGTTGCAAC", "GGGCCCGGGC"][i % 2];
        text.push_str(&format!("{base}{},{}\n", "ACGT".repeat(i + 1), i % 2));
    }
    std::fs::write(&table, text).expect("write a table");
    let mut harness = harness(&tmp.path().join("runs"));
    harness.run();
    drop_files(&mut harness, &[table]);
    step_until(&mut harness, "the table to be read", |h| {
        h.query_by_label_contains("30 records").is_some()
    });
    harness.get_by_label("Table labels: 0 (15), 1 (15)");
    assert!(harness.query_by_label("Class of promoters.csv").is_none());
    let (options, _) = harness
        .state()
        .data
        .training_data()
        .expect("one table with two labels is enough");
    assert_eq!(options.tables.len(), 1);
    assert!(options.class_inputs.is_empty());
}

#[test]
fn the_window_follows_the_model_context_until_the_user_sets_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let long = write_fasta(
        tmp.path(),
        "contig.fa",
        &format!(">contig\n{}\n", "ACGTTGCA".repeat(250)),
    );
    let mut harness = harness(&tmp.path().join("runs"));
    harness.run();
    harness.state_mut().data.set_model_context(512, Some(515));
    drop_files(&mut harness, &[long]);
    step_until(&mut harness, "the file to be read", |h| {
        h.query_by_label_contains("1 record, 2,000 bp").is_some()
    });
    // A 2 kb record is longer than the model reads: windows of its context.
    let window = &harness.state().data.settings.dataset.window;
    assert_eq!(window.window_bp, Some(515));
    harness.get_by_label_contains("Suggested for this model: windows of 515 bp");

    // The user's choice wins over later suggestions.
    harness.get_by_label("Whole records").click();
    harness.run();
    harness.state_mut().data.set_model_context(1000, Some(5994));
    harness.run();
    assert_eq!(harness.state().data.settings.dataset.window.window_bp, None);
    harness.get_by_label("Use suggestion").click();
    harness.run();
    // 2 kb fits 5994 bp: whole records.
    assert_eq!(harness.state().data.settings.dataset.window.window_bp, None);
    assert!(!harness.state().data.settings.window_chosen);
}

#[test]
fn the_quality_check_shows_counts_per_split() {
    let Some(data) = common::shared_path("data/promoters_cnnprom") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut harness = harness(&tmp.path().join("runs"));
    harness.run();
    drop_files(
        &mut harness,
        &[
            data.join("Bacillus_prom.fa.gz"),
            data.join("Bacillus_non_prom.fa.gz"),
        ],
    );
    step_until(&mut harness, "both files to be read", |h| {
        h.query_by_label_contains("373 records").is_some()
            && h.query_by_label_contains("1,000 records").is_some()
    });
    harness.get_by_label("Check data").click();
    step_until(&mut harness, "the quality check", |h| {
        h.state().data.qc_result().is_some()
    });

    // The same counts as the core gives for the same options.
    let (load_options, dataset_options) = harness.state().data.training_data().expect("ready");
    let expected = Dataset::build(load(&load_options).expect("load"), &dataset_options)
        .expect("split")
        .report;
    assert_eq!(
        harness.state().data.qc_result().map(|r| &r.report),
        Some(&expected)
    );
    for row in &expected.splits {
        assert!(row.windows > 0, "{row:?}");
        harness.get_by_label(&format!(
            "{} in {}: {} windows from {} records",
            row.class, row.split, row.windows, row.records
        ));
    }
    let train: u64 = expected
        .splits
        .iter()
        .filter(|r| r.split == Split::Train)
        .map(|r| r.windows)
        .sum();
    assert!(train > 500, "{train} train windows");
    // The composition-shortcut warning is shown whenever the core raises it.
    let warning = harness.query_by_label_contains("Warning: GC content alone");
    assert_eq!(warning.is_some(), expected.composition.warning.is_some());
    harness.get_by_label("Windows per class and split");
    harness.get_by_label("GC content of windows");

    // Changing an option marks the check as out of date.
    harness.state_mut().data.settings.dataset.seed = 7;
    harness.run();
    harness.get_by_label_contains("changed since this check");
}

#[test]
fn a_genbank_file_labels_windows_by_feature() {
    let Some(phix) = common::shared_path("data/genomes/phage/biopython_phiX174_NC_001422.gbk")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut harness = harness(&tmp.path().join("runs"));
    harness.run();
    drop_files(&mut harness, &[phix]);
    // Its row shows records and bases like a FASTA file, and that it is GenBank.
    step_until(&mut harness, "the GenBank file to be read", |h| {
        h.query_by_label_contains("1 record, 5,386 bp").is_some()
    });
    let row = text_of(&harness.get_by_label_contains("1 record, 5,386 bp"));
    assert!(row.contains("GenBank, 21 features"), "{row}");

    harness.get_by_label("Label windows by feature").click();
    harness.run();
    // The keys found in the file, with their counts, fill the key.
    harness.get_by_label("Keys in the files:").click();
    harness.run();
    harness.get_by_label("CDS (11)").click();
    harness.run();
    assert_eq!(harness.state().data.settings.feature_labels.keys, "CDS");
    harness.get_by_label("windows: CDS / non_CDS");
    // Windows are needed; the step says so and training is refused until they are chosen.
    let reason = harness.state().data.training_data().unwrap_err();
    assert!(reason.contains("needs windows"), "{reason}");
    harness.get_by_label("Windows").click();
    harness.run();
    harness
        .get_by_label("Share of the window in the feature:")
        .focus();
    harness.run();
    harness
        .state_mut()
        .data
        .settings
        .dataset
        .min_feature_overlap = 0.8;
    harness.run();
    harness.get_by_label_contains("at least 80% of it lies in such features");
    let (options, dataset) = harness
        .state()
        .data
        .training_data()
        .expect("ready: one GenBank file gives two labels");
    assert_eq!(options.label_by_feature, ["CDS"]);
    assert_eq!(options.class_inputs.len(), 1);
    assert_eq!(dataset.min_feature_overlap, 0.8);

    // A key the file does not have is explained where it is typed.
    harness.state_mut().data.settings.feature_labels.keys = "tRNA".into();
    harness.run();
    let message = harness
        .query_all_by_label_contains("no GenBank file has a tRNA feature")
        .map(|node| text_of(&node))
        .next()
        .expect("the message");
    assert!(message.contains("CDS (11)"), "{message}");
}
