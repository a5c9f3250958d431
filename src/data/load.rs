//! What to read ([`LoadOptions`]) and the one call that reads it all ([`load`]): files per
//! class, files labelled by their headers, and tables; test-set designation; normalisation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::error::{describe_byte, DataError};
use super::fasta::RecordSink;
use super::fastx::{read_fastx_file, record_id, FastxReading};
use super::feature_label::{
    feature_class_names, key_matches, parse_feature_keys, FeatureCover, FeatureLabelling,
    RemotePartSkipped,
};
use super::genbank::{looks_like_genbank, read_genbank_file, GenbankRecord};
use super::label::{compile_regex, ClassRegistry, HeaderLabelRule, HeaderLabeller};
use super::normalize::normalize_into;
use super::table::{read_table_file, TableInput, TableRow};
use super::types::{InputFile, InputFormat, LoadedData, NormalizationCounts, Record};

/// Everything that says which data to read and how it is labelled. Saved in the dataset
/// manifest, so a run can be repeated exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadOptions {
    /// `--class NAME=PATH` (or `PATH`, class = file stem): FASTA/FASTQ files per class, in the
    /// order given. PATH may be a glob; several entries may name one class.
    pub class_inputs: Vec<ClassInput>,
    /// FASTA/FASTQ files (paths or globs) whose records carry their label in the header.
    pub header_labelled: Vec<String>,
    /// How to read a label from a header; required when `header_labelled` is not empty.
    pub header_label: Option<HeaderLabelRule>,
    /// CSV/TSV tables (DNABERT-2 layout, named columns, header-less, DNABERT-1 k-mers).
    pub tables: Vec<TableInput>,
    /// `--test-class NAME=PATH`: files of this class whose records form (part of) the test set.
    pub test_class_inputs: Vec<ClassInput>,
    /// `--test-regex REGEX`: records whose header matches form (part of) the test set.
    pub test_regex: Option<String>,
    /// `--label-by-feature CDS,rRNA`: the windows of GenBank records are labelled `CDS+rRNA`
    /// or `non_CDS+rRNA` by their overlap with features of these keys (the class a GenBank
    /// file is given is then not used). Empty: off.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub label_by_feature: Vec<String>,
}

/// `NAME=PATH` or `PATH` as given to `--class` / `--test-class`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInput {
    /// The class name; `None` = each file's stem (`Ecoli_prom.fa.gz` → `Ecoli_prom`).
    pub class: Option<String>,
    /// A path or a glob pattern.
    pub path: String,
}

impl ClassInput {
    /// Reads `NAME=PATH` or `PATH`. A path that itself contains `=` is taken whole when such a
    /// file exists.
    pub fn parse(spec: &str) -> Result<Self, DataError> {
        let bad = |reason: &str| DataError::BadArgument {
            option: "--class",
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if spec.trim().is_empty() {
            return Err(bad("it is empty; give NAME=PATH or PATH"));
        }
        if let Some((name, path)) = spec.split_once('=') {
            let looks_like_name = !name.contains(['/', '\\']);
            if looks_like_name && !Path::new(spec).exists() {
                let name = name.trim();
                if name.is_empty() {
                    return Err(bad("the class name before '=' is empty"));
                }
                if path.trim().is_empty() {
                    return Err(bad("the path after '=' is empty"));
                }
                return Ok(ClassInput {
                    class: Some(name.to_string()),
                    path: path.to_string(),
                });
            }
        }
        Ok(ClassInput {
            class: None,
            path: spec.to_string(),
        })
    }
}

impl FromStr for ClassInput {
    type Err = DataError;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        ClassInput::parse(spec)
    }
}

/// How far [`load_with_progress`] has got, in bytes of the input files as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub files_done: usize,
    pub files_total: usize,
}

/// Reads, labels and normalises every input. See [`load_with_progress`].
pub fn load(options: &LoadOptions) -> Result<LoadedData, DataError> {
    load_with_progress(options, |_| {})
}

/// Reads, labels and normalises every input, calling `on_progress` every few MB and after each
/// file. Classes are in order of first appearance (all-integer class names, e.g. table labels
/// "0"/"1", in numeric order).
pub fn load_with_progress(
    options: &LoadOptions,
    on_progress: impl FnMut(LoadProgress),
) -> Result<LoadedData, DataError> {
    load_with_settings(options, &ReadSettings::default(), on_progress)
}

/// How inputs are read; unlike [`LoadOptions`] it changes only the speed (and, with `sha256`
/// off, leaves the files' digests empty), so it is not part of the manifest. The default
/// computes every digest and uses a second thread for both kinds of work below when the
/// machine has more than one core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSettings {
    /// Compute each FASTA/FASTQ file's sha256, which a manifest needs. Off, their
    /// [`InputFile::sha256`] is left empty (for a QC report that writes no manifest).
    pub sha256: bool,
    /// Hash each FASTA/FASTQ/GenBank file on a second thread (reading the file again, in
    /// parallel with parsing) instead of on the parsing thread. Tables are always hashed
    /// inline.
    pub hash_on_second_thread: bool,
    /// Decompress each compressed FASTA/FASTQ file on a second thread, so that parsing
    /// overlaps with decompression.
    pub decompress_on_second_thread: bool,
}

impl ReadSettings {
    /// Everything on the calling thread.
    pub fn one_thread() -> Self {
        ReadSettings {
            sha256: true,
            hash_on_second_thread: false,
            decompress_on_second_thread: false,
        }
    }
}

impl Default for ReadSettings {
    fn default() -> Self {
        let spare_core = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        ReadSettings {
            sha256: true,
            hash_on_second_thread: spare_core,
            decompress_on_second_thread: spare_core,
        }
    }
}

/// [`load_with_progress`] with explicit [`ReadSettings`].
pub fn load_with_settings(
    options: &LoadOptions,
    settings: &ReadSettings,
    mut on_progress: impl FnMut(LoadProgress),
) -> Result<LoadedData, DataError> {
    let plan = plan_inputs(options)?;
    let feature_keys = if options.label_by_feature.is_empty() {
        Vec::new()
    } else {
        parse_feature_keys(&options.label_by_feature.join(","))?
    };
    let labeller = match (&options.header_label, options.header_labelled.is_empty()) {
        (Some(rule), false) => Some(HeaderLabeller::new(rule)?),
        // GenBank inputs are labelled by their features; a FASTA file among them still
        // needs a rule, which its first record reports.
        (None, false) if !feature_keys.is_empty() => None,
        (None, false) => return Err(DataError::MissingHeaderLabelRule),
        (Some(_), true) => return Err(DataError::HeaderLabelRuleWithoutFiles),
        (None, true) => None,
    };
    let test_regex = options
        .test_regex
        .as_deref()
        .map(|pattern| compile_regex("--test-regex", pattern))
        .transpose()?;

    let mut loader = Loader {
        data: LoadedData::default(),
        classes: ClassRegistry::default(),
        test_regex,
        test_regex_matches: 0,
        feature_keys,
    };
    let files_total = plan.len();
    let bytes_total: u64 = plan
        .iter()
        .map(|p| std::fs::metadata(&p.path).map_or(0, |m| m.len()))
        .sum();
    let mut bytes_done = 0u64;
    let mut per_file = Vec::with_capacity(plan.len());
    const PROGRESS_STEP: u64 = 4 << 20;

    for (file_index, planned) in plan.iter().enumerate() {
        let bytes_read = AtomicU64::new(0);
        let mut last_report = 0u64;
        let mut report = |force: bool, files_done: usize| {
            let now = bytes_read.load(Ordering::Relaxed);
            if force || now >= last_report + PROGRESS_STEP {
                last_report = now;
                on_progress(LoadProgress {
                    bytes_read: bytes_done + now,
                    bytes_total,
                    files_done,
                    files_total,
                });
            }
        };
        let genbank = matches!(planned.source, Source::Fasta) && looks_like_genbank(&planned.path)?;
        let labelled_by_features = genbank && !loader.feature_keys.is_empty();
        let class = match planned.class.as_deref() {
            // Its windows are labelled by the features; the class given is not used.
            Some(_) if labelled_by_features => None,
            Some(name) => Some(loader.classes.intern(name)),
            None => None,
        };
        loader.ensure_counts();
        let file_number = file_index as u32;
        let mut file_stats = FileStats::default();
        // One allocation for the file's bases instead of growing (and copying) the buffer by
        // doubling.
        let capacity_before = loader.data.bases.capacity();
        loader
            .data
            .bases
            .reserve(
                usize::try_from(expected_text_len(&planned.path)).map_or(0, |len| {
                    // Normalisation asks for one block (64 bytes) of room past the text it is
                    // given; without this the last chunk of a file could double the buffer.
                    len + 64
                }),
            );
        if loader.data.bases.capacity() != capacity_before {
            advise_huge_pages(&loader.data.bases);
        }
        let (format, sha256) = match &planned.source {
            Source::Fasta if genbank => {
                let labeller = if class.is_none() {
                    labeller.as_ref()
                } else {
                    None
                };
                let sha256 = read_genbank_file(
                    &planned.path,
                    &bytes_read,
                    settings.hash_on_second_thread,
                    |record| {
                        let result = loader.add_genbank_record(
                            &planned.path,
                            file_number,
                            class,
                            labeller,
                            planned.designated_test,
                            record,
                            &mut file_stats,
                        );
                        report(false, file_index);
                        result
                    },
                )?;
                (InputFormat::GenBank, sha256)
            }
            Source::Fasta => {
                let labeller = if class.is_none() {
                    labeller.as_ref()
                } else {
                    None
                };
                let how = FastxReading {
                    hash: settings.sha256,
                    hash_on_second_thread: settings.hash_on_second_thread,
                    decompress_on_second_thread: settings.decompress_on_second_thread,
                };
                let mut sink = LoaderSink {
                    loader: &mut loader,
                    path: &planned.path,
                    file: file_number,
                    class,
                    labeller,
                    file_is_test: planned.designated_test,
                    stats: &mut file_stats,
                    record_class: 0,
                    pending: None,
                    on_record: || report(false, file_index),
                };
                read_fastx_file(&planned.path, &bytes_read, how, &mut sink)?
            }
            Source::Table(input) => read_table_file(&planned.path, input, &bytes_read, |row| {
                let result =
                    loader.add_table_row(&planned.path, file_number, &row, &mut file_stats);
                report(false, file_index);
                result
            })?,
        };
        per_file.push(file_stats);
        loader.data.files.push(InputFile {
            path: planned.path.clone(),
            sha256,
            format,
            class,
            designated_test: planned.designated_test,
        });
        report(true, file_index + 1);
        bytes_done += bytes_read.load(Ordering::Relaxed);
    }

    loader.finish(options, &plan, &per_file)
}

/// About how many bytes of text a file holds, to size the base buffer: the file size, or for
/// a gzip file the uncompressed size its trailer records (exact for one member under 4 GiB;
/// only the last member's for bgzip, hence never below the file size), capped at 8× the file
/// size so a damaged trailer cannot make us reserve gigabytes.
fn expected_text_len(path: &Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    let file_len = file.metadata().map_or(0, |m| m.len());
    let mut magic = [0u8; 2];
    let mut trailer = [0u8; 4];
    let gzip_size = file
        .read_exact(&mut magic)
        .ok()
        .filter(|()| magic == [0x1f, 0x8b] && file_len >= 18)
        .and_then(|()| file.seek(SeekFrom::End(-4)).ok())
        .and_then(|_| file.read_exact(&mut trailer).ok())
        .map(|()| u64::from(u32::from_le_bytes(trailer)));
    match gzip_size {
        Some(size) => size.clamp(file_len, file_len.saturating_mul(8)),
        None => file_len,
    }
}

/// Asks Linux to back a large base buffer with transparent huge pages (honoured where THP is
/// `always` or `madvise`, the usual default): filling 1 GB then takes ~500 page faults instead
/// of ~250 000, which cost a fifth of the reading time in the benchmark. Best effort.
#[cfg(target_os = "linux")]
fn advise_huge_pages(buffer: &Vec<u8>) {
    const PAGE: usize = 4096;
    const WORTH_IT: usize = 8 << 20;
    if buffer.capacity() < WORTH_IT {
        return;
    }
    let start = buffer.as_ptr() as usize;
    let aligned_start = start.next_multiple_of(PAGE);
    let end = (start + buffer.capacity()) / PAGE * PAGE;
    // SAFETY: the range lies inside this Vec's own allocation, and MADV_HUGEPAGE only changes
    // how the kernel backs those pages, never their contents; a failure (e.g. a kernel
    // without THP) is harmless and ignored.
    unsafe {
        libc::madvise(
            aligned_start as *mut libc::c_void,
            end - aligned_start,
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buffer: &Vec<u8>) {}

/// One file to read, after glob expansion.
struct PlannedFile {
    path: PathBuf,
    /// The class of every record (per-file labels).
    class: Option<String>,
    designated_test: bool,
    source: Source,
}

enum Source {
    Fasta,
    Table(TableInput),
}

#[derive(Default)]
struct FileStats {
    records: u64,
    empty: u64,
}

/// Expands globs in the order the options list them and refuses a file given twice.
fn plan_inputs(options: &LoadOptions) -> Result<Vec<PlannedFile>, DataError> {
    let mut plan = Vec::new();
    let mut seen: HashMap<PathBuf, String> = HashMap::new();
    let mut add = |plan: &mut Vec<PlannedFile>, file: PlannedFile, given_as: String| {
        let key = std::fs::canonicalize(&file.path).unwrap_or_else(|_| file.path.clone());
        if let Some(first) = seen.get(&key) {
            return Err(DataError::DuplicateInput {
                path: file.path.clone(),
                first: first.clone(),
                second: given_as,
            });
        }
        seen.insert(key, given_as);
        plan.push(file);
        Ok(())
    };
    for (inputs, option, designated_test) in [
        (&options.class_inputs, "--class", false),
        (&options.test_class_inputs, "--test-class", true),
    ] {
        for input in inputs {
            for path in expand(&input.path)? {
                let class = match &input.class {
                    Some(name) => name.clone(),
                    None => default_class_name(&path),
                };
                let given_as = format!("{option} {class}={}", input.path);
                let file = PlannedFile {
                    path,
                    class: Some(class),
                    designated_test,
                    source: Source::Fasta,
                };
                add(&mut plan, file, given_as)?;
            }
        }
    }
    for pattern in &options.header_labelled {
        for path in expand(pattern)? {
            let file = PlannedFile {
                path,
                class: None,
                designated_test: false,
                source: Source::Fasta,
            };
            add(
                &mut plan,
                file,
                format!("a header-labelled input ({pattern})"),
            )?;
        }
    }
    for table in &options.tables {
        for path in expand(&table.path)? {
            let file = PlannedFile {
                path,
                class: None,
                designated_test: false,
                source: Source::Table(table.clone()),
            };
            add(&mut plan, file, format!("--table {}", table.path))?;
        }
    }
    if plan.is_empty() {
        return Err(DataError::NoInputs);
    }
    Ok(plan)
}

/// A literal path (which must exist) or a glob (which must match at least one file), sorted.
fn expand(pattern: &str) -> Result<Vec<PathBuf>, DataError> {
    let is_glob = pattern.contains(['*', '?', '[']);
    if !is_glob || Path::new(pattern).exists() {
        let path = PathBuf::from(pattern);
        if !path.exists() {
            return Err(DataError::MissingFile { path });
        }
        return Ok(vec![path]);
    }
    let entries = glob::glob(pattern).map_err(|err| DataError::BadGlob {
        pattern: pattern.to_string(),
        reason: err.to_string(),
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|err| {
            let path = err.path().to_path_buf();
            DataError::io(path, err.into())
        })?;
        if path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(DataError::GlobMatchesNothing {
            pattern: pattern.to_string(),
        });
    }
    paths.sort();
    Ok(paths)
}

/// The file name without compression and format extensions: `Ecoli_prom.fa.gz` → `Ecoli_prom`,
/// `enhancer.cv.txt` → `enhancer.cv`.
pub fn default_class_name(path: &Path) -> String {
    const COMPRESSION: [&str; 6] = ["gz", "bgz", "bz2", "xz", "zst", "zstd"];
    const FORMAT: [&str; 17] = [
        "fa", "fasta", "fna", "ffn", "fas", "fsa", "seq", "fq", "fastq", "txt", "csv", "tsv",
        "frn", "gb", "gbk", "gbff", "genbank",
    ];
    let mut name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for extensions in [&COMPRESSION[..], &FORMAT[..]] {
        if let Some((stem, ext)) = name.rsplit_once('.') {
            if !stem.is_empty() && extensions.iter().any(|e| ext.eq_ignore_ascii_case(e)) {
                name = stem.to_string();
            }
        }
    }
    name
}

/// Takes the records of one FASTA/FASTQ file into the [`Loader`].
struct LoaderSink<'a, F: FnMut()> {
    loader: &'a mut Loader,
    path: &'a Path,
    file: u32,
    /// The file's class (labels per file), else the header is read with `labeller`.
    class: Option<u32>,
    labeller: Option<&'a HeaderLabeller>,
    file_is_test: bool,
    stats: &'a mut FileStats,
    /// The class of the record being read.
    record_class: u32,
    /// Header, line and base offset of the record being read.
    pending: Option<(String, u64, usize)>,
    /// Called after each record (progress).
    on_record: F,
}

impl<F: FnMut()> RecordSink for LoaderSink<'_, F> {
    fn begin_record(&mut self, header: &[u8], line: u64) -> Result<(), DataError> {
        let header = String::from_utf8_lossy(header).into_owned();
        self.record_class = self.loader.record_class(
            self.path,
            self.class,
            self.labeller,
            &header,
            line,
            self.stats,
        )?;
        self.pending = Some((header, line, self.loader.data.bases.len()));
        Ok(())
    }

    fn bases(&mut self) -> (&mut Vec<u8>, &mut NormalizationCounts) {
        let data = &mut self.loader.data;
        (
            &mut data.bases,
            &mut data.normalization[self.record_class as usize],
        )
    }

    fn end_record(&mut self) -> Result<(), DataError> {
        let Some((header, line, offset)) = self.pending.take() else {
            return Ok(());
        };
        self.loader.push_record(
            self.path,
            self.file,
            self.record_class,
            header,
            line,
            offset,
            self.file_is_test,
            self.stats,
        )?;
        (self.on_record)();
        Ok(())
    }
}

struct Loader {
    data: LoadedData,
    classes: ClassRegistry,
    test_regex: Option<Regex>,
    test_regex_matches: u64,
    /// `--label-by-feature` keys; empty: off.
    feature_keys: Vec<String>,
}

impl Loader {
    /// One `NormalizationCounts` per class known so far.
    fn ensure_counts(&mut self) {
        let n = self.classes.names().len();
        if self.data.normalization.len() < n {
            self.data
                .normalization
                .resize(n, NormalizationCounts::default());
        }
    }

    /// The class of a FASTA/FASTQ record: its file's, or the label its header carries.
    fn record_class(
        &mut self,
        path: &Path,
        class: Option<u32>,
        labeller: Option<&HeaderLabeller>,
        header: &str,
        line: u64,
        stats: &FileStats,
    ) -> Result<u32, DataError> {
        match (class, labeller) {
            (Some(class), _) => Ok(class),
            (None, Some(labeller)) => match labeller.label(header) {
                Ok(label) => {
                    let class = self.classes.intern(label);
                    self.ensure_counts();
                    Ok(class)
                }
                Err(problem) => Err(DataError::HeaderWithoutLabel {
                    path: path.to_path_buf(),
                    line,
                    header: header.to_string(),
                    problem: problem.to_string(),
                    records_matched: stats.records + stats.empty,
                }),
            },
            (None, None) => unreachable_class(path),
        }
    }

    /// A GenBank record: labelled by its features (`--label-by-feature`), else like a FASTA
    /// record (the file's class, or its header's label).
    #[allow(clippy::too_many_arguments)]
    fn add_genbank_record(
        &mut self,
        path: &Path,
        file: u32,
        class: Option<u32>,
        labeller: Option<&HeaderLabeller>,
        file_is_test: bool,
        record: GenbankRecord,
        stats: &mut FileStats,
    ) -> Result<(), DataError> {
        let header = record.header();
        let class = if !self.feature_keys.is_empty() {
            self.feature_classes().0
        } else {
            self.record_class(path, class, labeller, &header, record.line, stats)?
        };
        let offset = self.data.bases.len();
        self.data.bases.extend_from_slice(&record.sequence);
        add_counts(
            &mut self.data.normalization[class as usize],
            &record.normalization,
        );
        let records_before = self.data.records.len();
        self.push_record(
            path,
            file,
            class,
            header,
            record.line,
            offset,
            file_is_test,
            stats,
        )?;
        if self.feature_keys.is_empty() {
            return Ok(());
        }
        let record_index = records_before as u32;
        let pushed = self.data.records.len() > records_before;
        let keys = self.feature_keys.clone();
        let labels = self
            .data
            .feature_labels
            .as_mut()
            .expect("feature classes are set up above");
        let mut spans = Vec::new();
        for feature in &record.features {
            labels.count_key(&feature.key);
            if !key_matches(&keys, &feature.key) {
                continue;
            }
            labels.features_used += 1;
            spans.extend_from_slice(&feature.spans);
            for part in &feature.remote_parts {
                labels.remote_parts_skipped.push(RemotePartSkipped {
                    file: path.to_path_buf(),
                    record: record.id().to_string(),
                    line: feature.line,
                    key: feature.key.clone(),
                    part: part.clone(),
                });
            }
        }
        if pushed {
            labels
                .covers
                .push((record_index, FeatureCover::new(&spans)));
        }
        Ok(())
    }

    /// The feature class and the `non_` class, registered on first use.
    fn feature_classes(&mut self) -> (u32, u32) {
        if let Some(labels) = &self.data.feature_labels {
            return (labels.positive, labels.negative);
        }
        let (positive_name, negative_name) = feature_class_names(&self.feature_keys);
        let positive = self.classes.intern(&positive_name);
        let negative = self.classes.intern(&negative_name);
        self.ensure_counts();
        self.data.feature_labels = Some(FeatureLabelling {
            keys: self.feature_keys.clone(),
            positive,
            negative,
            ..FeatureLabelling::default()
        });
        (positive, negative)
    }

    fn add_table_row(
        &mut self,
        path: &Path,
        file: u32,
        row: &TableRow<'_>,
        stats: &mut FileStats,
    ) -> Result<(), DataError> {
        let class = self.classes.intern(row.label);
        self.ensure_counts();
        let offset = self.data.bases.len();
        let counts = &mut self.data.normalization[class as usize];
        if let Err(bad) = normalize_into(row.sequence, &mut self.data.bases, counts) {
            return Err(DataError::InvalidCharacter {
                path: path.to_path_buf(),
                record: row.header.to_string(),
                location: format!("line {}, base {} of the sequence", row.line, bad.index + 1),
                character: describe_byte(bad.byte),
            });
        }
        self.push_record(
            path,
            file,
            class,
            row.header.to_string(),
            row.line,
            offset,
            false,
            stats,
        )
    }

    /// Records the bases appended since `offset` as one record, or counts an empty one.
    #[allow(clippy::too_many_arguments)]
    fn push_record(
        &mut self,
        path: &Path,
        file: u32,
        class: u32,
        header: String,
        line: u64,
        offset: usize,
        file_is_test: bool,
        stats: &mut FileStats,
    ) -> Result<(), DataError> {
        let len = self.data.bases.len() - offset;
        if len == 0 {
            self.data.normalization[class as usize].empty_records += 1;
            stats.empty += 1;
            return Ok(());
        }
        let len = u32::try_from(len).map_err(|_| DataError::RecordTooLong {
            path: path.to_path_buf(),
            record: record_id(header.as_bytes()).into_owned(),
            line,
            len: len as u64,
            max: u64::from(u32::MAX),
        })?;
        let regex_test = self
            .test_regex
            .as_ref()
            .is_some_and(|r| r.is_match(&header));
        self.test_regex_matches += u64::from(regex_test);
        self.data.records.push(Record {
            header,
            file,
            line,
            class,
            offset: offset as u64,
            len,
            designated_test: file_is_test || regex_test,
        });
        stats.records += 1;
        Ok(())
    }

    /// Checks what can only be judged once everything is read, then fixes the class order.
    fn finish(
        mut self,
        options: &LoadOptions,
        plan: &[PlannedFile],
        per_file: &[FileStats],
    ) -> Result<LoadedData, DataError> {
        self.ensure_counts();
        self.check_feature_labels(plan)?;
        let mut per_class = vec![0u64; self.classes.names().len()];
        for record in &self.data.records {
            per_class[record.class as usize] += 1;
        }
        let feature_classes = self
            .data
            .feature_labels
            .as_ref()
            .map(|labels| [labels.positive, labels.negative]);
        for (class, &count) in per_class.iter().enumerate() {
            // Feature classes are judged per window, when the dataset is built.
            let by_features = feature_classes.is_some_and(|c| c.contains(&(class as u32)));
            if count == 0 && !by_features {
                let name = &self.classes.names()[class];
                let files: Vec<String> = plan
                    .iter()
                    .filter(|p| p.class.as_deref() == Some(name.as_str()))
                    .map(|p| p.path.display().to_string())
                    .collect();
                return Err(DataError::EmptyClass {
                    class: name.clone(),
                    files: files.join(", "),
                    empty_records: self.data.normalization[class].empty_records,
                });
            }
        }
        // After the class check, so that a class with no records is reported as such.
        for (planned, stats) in plan.iter().zip(per_file) {
            if stats.records == 0 && stats.empty > 0 {
                return Err(DataError::AllRecordsEmpty {
                    path: planned.path.clone(),
                    records: stats.empty,
                });
            }
        }
        if let (Some(pattern), 0) = (&options.test_regex, self.test_regex_matches) {
            return Err(DataError::TestRegexMatchesNothing {
                pattern: pattern.clone(),
            });
        }
        if let Some(remap) = self.classes.numeric_order() {
            self.classes.reorder(&remap);
            for record in &mut self.data.records {
                record.class = remap[record.class as usize];
            }
            for file in &mut self.data.files {
                if let Some(class) = &mut file.class {
                    *class = remap[*class as usize];
                }
            }
            if let Some(labels) = &mut self.data.feature_labels {
                labels.positive = remap[labels.positive as usize];
                labels.negative = remap[labels.negative as usize];
            }
            let mut counts = vec![NormalizationCounts::default(); remap.len()];
            for (old, c) in self.data.normalization.drain(..).enumerate() {
                counts[remap[old] as usize] = c;
            }
            self.data.normalization = counts;
        }
        self.data.classes = self.classes.names().to_vec();
        Ok(self.data)
    }
}

impl Loader {
    /// With `--label-by-feature`: some input is GenBank and has a feature of the keys.
    fn check_feature_labels(&self, plan: &[PlannedFile]) -> Result<(), DataError> {
        if self.feature_keys.is_empty() {
            return Ok(());
        }
        let keys = self.feature_keys.join(",");
        let Some(labels) = &self.data.feature_labels else {
            return Err(DataError::FeatureLabelsWithoutGenbank { keys });
        };
        if labels.features_used > 0 {
            return Ok(());
        }
        let files: Vec<String> = plan
            .iter()
            .zip(&self.data.files)
            .filter(|(_, file)| file.format == InputFormat::GenBank)
            .map(|(planned, _)| planned.path.display().to_string())
            .collect();
        let found = if labels.feature_counts.is_empty() {
            "none (the records have no FEATURES table)".to_string()
        } else {
            labels
                .feature_counts
                .iter()
                .map(|(key, count)| format!("{key} ({count})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(DataError::FeatureKeyNotFound {
            keys,
            files: files.join(", "),
            found,
        })
    }
}

fn add_counts(total: &mut NormalizationCounts, more: &NormalizationCounts) {
    total.ambiguous_to_n += more.ambiguous_to_n;
    total.gaps_removed += more.gaps_removed;
    total.u_to_t += more.u_to_t;
    total.lowercase_bases += more.lowercase_bases;
    total.empty_records += more.empty_records;
}

/// A FASTA file always has a class or a labeller (checked up front); reaching here would be
/// a bug, reported rather than panicked.
fn unreachable_class(_path: &Path) -> Result<u32, DataError> {
    Err(DataError::MissingHeaderLabelRule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_text_len_reads_the_gzip_trailer_and_caps_it() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let text = b">r\nACGTACGTAC\n".repeat(1000);
        let plain = dir.path().join("a.fa");
        std::fs::write(&plain, &text).unwrap();
        assert_eq!(expected_text_len(&plain), text.len() as u64);

        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&text).unwrap();
        let gz_bytes = encoder.finish().unwrap();
        let gz = dir.path().join("a.fa.gz");
        std::fs::write(&gz, &gz_bytes).unwrap();
        // Highly repetitive text compresses > 8×, so the estimate is capped.
        assert!(gz_bytes.len() * 8 < text.len());
        assert_eq!(expected_text_len(&gz), gz_bytes.len() as u64 * 8);

        let mut damaged = gz_bytes.clone();
        let n = damaged.len();
        damaged[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&gz, &damaged).unwrap();
        assert_eq!(expected_text_len(&gz), damaged.len() as u64 * 8);

        // Random bases (xorshift) compress about 4×: under the cap, so the trailer is used.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let random_like: Vec<u8> = (0..20_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b"ACGT"[(state >> 62) as usize]
            })
            .collect();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&random_like).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
        assert_eq!(expected_text_len(&gz), random_like.len() as u64);
    }

    #[test]
    fn a_buffer_advised_for_huge_pages_keeps_its_contents_and_grows() {
        let mut bases: Vec<u8> = b"ACGT".to_vec();
        bases.reserve(16 << 20);
        advise_huge_pages(&bases);
        let pattern: Vec<u8> = b"ACGTN".iter().copied().cycle().take(16 << 20).collect();
        bases.extend_from_slice(&pattern);
        bases.reserve(32 << 20);
        advise_huge_pages(&bases);
        bases.extend_from_slice(&pattern);
        assert_eq!(&bases[..4], b"ACGT");
        assert_eq!(&bases[4..4 + pattern.len()], &pattern[..]);
        assert_eq!(&bases[4 + pattern.len()..], &pattern[..]);
    }

    #[test]
    fn class_specs() {
        let named = ClassInput::parse("phage=data/*.fa").unwrap();
        assert_eq!(named.class.as_deref(), Some("phage"));
        assert_eq!(named.path, "data/*.fa");
        let bare = ClassInput::parse("data/x.fa").unwrap();
        assert_eq!(bare.class, None);
        assert!(ClassInput::parse("=x.fa").is_err());
        assert!(ClassInput::parse("a=").is_err());
        assert!(ClassInput::parse("").is_err());
        // '=' inside a directory name is part of the path.
        assert_eq!(ClassInput::parse("runs/a=b/x.fa").unwrap().class, None);
    }

    #[test]
    fn default_class_names_drop_compression_and_format_extensions() {
        for (file, class) in [
            ("d/Ecoli_prom.fa.gz", "Ecoli_prom"),
            ("enhancer.cv.txt", "enhancer.cv"),
            ("reads.fastq.zst", "reads"),
            ("genome.fna", "genome"),
            ("ct.gbk.gz", "ct"),
            ("NC_001422.genbank", "NC_001422"),
            ("plain", "plain"),
            (".fa", ".fa"),
        ] {
            assert_eq!(default_class_name(Path::new(file)), class, "{file}");
        }
    }
}
