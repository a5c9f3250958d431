//! `dnatune data …`: the data options every command that reads data shares ([`DataArgs`]),
//! and `dnatune data inspect`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::data::feature_label::parse_feature_keys;
use crate::data::window::DEFAULT_MAX_N_FRACTION;
use crate::data::{
    dataset::DEFAULT_SEED, ClassInput, Dataset, DatasetOptions, HeaderLabelRule, LoadOptions,
    Manifest, ReadSettings, SplitFractions, TableInput, WindowOptions, DEFAULT_MIN_FEATURE_OVERLAP,
};

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Read the inputs, label, window and split them, and print a QC report.
    // Boxed: the data options are large and clap's command enum holds every subcommand.
    Inspect(Box<InspectArgs>),
}

/// Which data to read, how to label, window and split it. Shared by every command that
/// reads sequence data (flatten it with `#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Data")]
pub struct DataArgs {
    /// FASTA/FASTQ/GenBank files of one class, as NAME=PATH (PATH may be a glob such as 'dir/*.fa.gz';
    /// quote it). Repeat for each class or file. With only PATH the class is the file name.
    #[arg(long = "class", value_name = "NAME=PATH")]
    pub class: Vec<String>,

    /// FASTA/FASTQ/GenBank files (or globs) whose labels are in the headers (see
    /// --labels-from-header), or GenBank files labelled by --label-by-feature.
    #[arg(long = "input", value_name = "PATH")]
    pub input: Vec<String>,

    /// How to read the label from each header of the --input files: a regex with one capture
    /// group (e.g. 'label=(\w+)'), or '|' for the `header|label` convention.
    #[arg(long, value_name = "REGEX")]
    pub labels_from_header: Option<String>,

    /// CSV/TSV tables of sequences and labels (DNABERT-2 `sequence,label` layout, named
    /// columns, or DNABERT-1 k-mer TSV); may be gzipped. Repeatable.
    #[arg(long = "table", value_name = "PATH")]
    pub table: Vec<String>,

    /// The tables' sequence column (name, or 1-based number); detected when not given.
    #[arg(long, value_name = "COLUMN")]
    pub sequence_column: Option<String>,

    /// The tables' label column (name, or 1-based number); detected when not given.
    #[arg(long, value_name = "COLUMN")]
    pub label_column: Option<String>,

    /// Cut records into windows of this many bp (e.g. 1024). Without it each record is one
    /// window.
    #[arg(long = "window", value_name = "BP")]
    pub window_bp: Option<u32>,

    /// Step between window starts in bp (e.g. 512 for half-overlapping windows); default: the
    /// window length.
    #[arg(long = "stride", value_name = "BP", requires = "window_bp")]
    pub stride_bp: Option<u32>,

    /// Shortest window (and record) kept, in bp; default: the window length, or 1 without
    /// --window. A record's last window is aligned to its end.
    #[arg(long = "min-window", value_name = "BP")]
    pub min_window_bp: Option<u32>,

    /// Drop windows with a larger fraction of N (unknown) bases.
    #[arg(long, value_name = "F", default_value_t = DEFAULT_MAX_N_FRACTION)]
    pub max_n_fraction: f64,

    /// Cut every record into contiguous blocks of this many bp that are split as units (no
    /// window straddles two blocks). Classes with too few records to fill every split are
    /// cut into blocks automatically.
    #[arg(long = "block", value_name = "BP", conflicts_with = "group_by")]
    pub block_bp: Option<u32>,

    /// Train, validation and test fractions (per class, in windows).
    #[arg(long, value_name = "TRAIN,VAL,TEST", default_value = "0.8,0.1,0.1")]
    pub split: SplitFractions,

    /// Keep records whose headers share this regex's capture group in one split (e.g.
    /// '^(chr\w+):' for whole chromosomes).
    #[arg(long, value_name = "REGEX")]
    pub group_by: Option<String>,

    /// Files of a class that form the test set, as NAME=PATH (repeatable); train and
    /// validation then share the rest in their --split proportion.
    #[arg(long = "test-class", value_name = "NAME=PATH")]
    pub test_class: Vec<String>,

    /// Records whose header matches this regex form the test set.
    #[arg(long, value_name = "REGEX")]
    pub test_regex: Option<String>,

    /// Label the windows of GenBank records by their features: KEY (e.g. CDS, gene, tRNA,
    /// or a list such as CDS,rRNA) when at least --min-feature-overlap of the window lies in
    /// such features (either strand), non_KEY when none of it does; windows in between are
    /// dropped and counted. Needs --window.
    #[arg(long, value_name = "KEY[,KEY…]")]
    pub label_by_feature: Option<String>,

    /// With --label-by-feature: the fraction of a window that must lie in the features for
    /// the window to be labelled KEY (0 < F ≤ 1).
    #[arg(long, value_name = "F", default_value_t = DEFAULT_MIN_FEATURE_OVERLAP)]
    pub min_feature_overlap: f64,

    /// Seed of the random split: the same inputs, options and seed give the same split.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
}

impl DataArgs {
    /// What to read, for [`crate::data::load`].
    pub fn load_options(&self) -> anyhow::Result<LoadOptions> {
        let parse_all = |specs: &[String]| -> anyhow::Result<Vec<ClassInput>> {
            specs
                .iter()
                .map(|spec| ClassInput::parse(spec).map_err(anyhow::Error::from))
                .collect()
        };
        Ok(LoadOptions {
            class_inputs: parse_all(&self.class)?,
            header_labelled: self.input.clone(),
            header_label: self
                .labels_from_header
                .as_deref()
                .map(HeaderLabelRule::from_cli),
            tables: self
                .table
                .iter()
                .map(|path| TableInput {
                    path: path.clone(),
                    sequence_column: self.sequence_column.clone(),
                    label_column: self.label_column.clone(),
                })
                .collect(),
            test_class_inputs: parse_all(&self.test_class)?,
            test_regex: self.test_regex.clone(),
            label_by_feature: match &self.label_by_feature {
                Some(spec) => parse_feature_keys(spec)?,
                None => Vec::new(),
            },
        })
    }

    /// How to window and split, for [`Dataset::build`].
    pub fn dataset_options(&self) -> DatasetOptions {
        DatasetOptions {
            window: WindowOptions {
                window_bp: self.window_bp,
                stride_bp: self.stride_bp,
                min_window_bp: self.min_window_bp,
                max_n_fraction: self.max_n_fraction,
            },
            block_bp: self.block_bp,
            split: self.split,
            group_by: self.group_by.clone(),
            seed: self.seed,
            min_feature_overlap: self.min_feature_overlap,
        }
    }

    /// Loads, windows and splits the data.
    pub fn build(&self) -> anyhow::Result<(LoadOptions, Dataset)> {
        self.build_with(&ReadSettings::default())
    }

    /// [`DataArgs::build`] with explicit [`ReadSettings`].
    pub fn build_with(&self, settings: &ReadSettings) -> anyhow::Result<(LoadOptions, Dataset)> {
        let load_options = self.load_options()?;
        let data = crate::data::load_with_settings(&load_options, settings, |_| {})?;
        let dataset = Dataset::build(data, &self.dataset_options())?;
        Ok((load_options, dataset))
    }
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub data: DataArgs,

    /// Print the QC report as JSON (and nothing else) on standard output.
    #[arg(long)]
    pub json: bool,

    /// Write the dataset manifest (input checksums, options, seed and every window of every
    /// split) to this JSON file, to repeat the exact split later.
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
}

pub fn run(cmd: DataCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Inspect(args) => inspect(*args),
    }
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    // The files' checksums are only needed for the manifest.
    let settings = ReadSettings {
        sha256: args.manifest.is_some(),
        ..ReadSettings::default()
    };
    let (load_options, dataset) = args.data.build_with(&settings)?;
    if let Some(path) = &args.manifest {
        Manifest::new(&dataset, &load_options).write(path)?;
    }
    if args.json {
        let json = serde_json::to_string_pretty(&dataset.report)
            .context("could not write the QC report as JSON")?;
        println!("{json}");
    } else {
        print!("{}", dataset.report);
    }
    if let Some(path) = &args.manifest {
        eprintln!("manifest written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
