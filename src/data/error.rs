//! The data layer's one error type. Every message names the file (and the record or line
//! where there is one) and says what the user can do about it.

use std::path::PathBuf;

/// Everything that can go wrong while reading, labelling, windowing or splitting data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("no input files were given: name at least one with --class NAME=PATH, --table PATH or a file whose headers carry labels")]
    NoInputs,

    #[error("input file {path} does not exist; check the path (relative paths are resolved from the current directory)")]
    MissingFile { path: PathBuf },

    #[error("the pattern `{pattern}` matches no file; check the path and the wildcard (quote it so the shell does not expand it)")]
    GlobMatchesNothing { pattern: String },

    #[error("`{pattern}` is not a valid file pattern: {reason}")]
    BadGlob { pattern: String, reason: String },

    #[error("`{spec}` is not a valid {option} value: {reason}")]
    BadArgument {
        option: &'static str,
        spec: String,
        reason: String,
    },

    #[error("{path} is given twice (as {first} and as {second}); a file may belong to one input only, or its records would be counted twice")]
    DuplicateInput {
        path: PathBuf,
        first: String,
        second: String,
    },

    #[error("could not read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is empty; give a FASTA/FASTQ file with at least one record (`>name` then the sequence)")]
    EmptyFile { path: PathBuf },

    #[error("{path} is not FASTA or FASTQ: {detail}")]
    NotSequenceFile { path: PathBuf, detail: String },

    #[error("{path}, line {line}{record}: {detail}")]
    Malformed {
        path: PathBuf,
        line: u64,
        /// `, record 'ID'` or empty.
        record: String,
        detail: String,
    },

    #[error("{path} ends early: the compressed data is truncated or corrupt ({detail}); the last complete record read was {last_record}. Download or compress the file again")]
    Truncated {
        path: PathBuf,
        last_record: String,
        detail: String,
    },

    #[error("{path}, record '{record}', {location}: {character} is not a nucleotide code (A C G T U N, IUPAC R Y K M S W B D H V, gaps - .); fix or remove it, or drop this record (protein files are not supported)")]
    InvalidCharacter {
        path: PathBuf,
        record: String,
        /// `line 5, column 3` (FASTA/FASTQ) or `line 5, base 17 of the sequence` (tables).
        location: String,
        /// The character, quoted and escaped, e.g. `'X'` or `byte 0x00`.
        character: String,
    },

    #[error("{path}, record '{record}' (line {line}) has {len} bases; records longer than {max} bases are not supported, split it first")]
    RecordTooLong {
        path: PathBuf,
        record: String,
        line: u64,
        len: u64,
        max: u64,
    },

    #[error("every one of the {records} records in {path} is empty (a header with no sequence); give the sequences after each header")]
    AllRecordsEmpty { path: PathBuf, records: u64 },

    #[error("class '{class}' has no usable records ({empty_records} empty records skipped) in {files}; check that the right files were given for it")]
    EmptyClass {
        class: String,
        files: String,
        empty_records: u64,
    },

    #[error("the {option} regex `{pattern}` is invalid: {reason}")]
    BadRegex {
        option: &'static str,
        pattern: String,
        reason: String,
    },

    #[error("the {option} regex `{pattern}` has {groups} capture groups; it needs exactly one, around the label, e.g. `_(\\w+)$` (use (?:...) for other groups)")]
    RegexGroupCount {
        option: &'static str,
        pattern: String,
        groups: usize,
    },

    #[error("{path}, line {line}: header '{header}' {problem}; {records_matched} earlier records had a label. Every header needs one: fix the pattern or the headers, or give this file with --class NAME=PATH")]
    HeaderWithoutLabel {
        path: PathBuf,
        line: u64,
        header: String,
        problem: String,
        records_matched: u64,
    },

    #[error("files whose labels come from their headers were given, but no rule to find the label: give --labels-from-header with a regex that has one capture group, or '|' for the `header|label` convention")]
    MissingHeaderLabelRule,

    #[error("--labels-from-header was given but no file to read labels from; give the FASTA/FASTQ files whose headers carry the labels")]
    HeaderLabelRuleWithoutFiles,

    #[error("the --test-regex `{pattern}` matches no record header; check the pattern against the headers (e.g. with `grep '>' FILE | head`)")]
    TestRegexMatchesNothing { pattern: String },

    #[error("{path} has no column '{column}'; the columns are: {present}. Name the right one with --{option} (or the column number 1, 2, … for a table without header)")]
    MissingColumn {
        path: PathBuf,
        column: String,
        option: &'static str,
        present: String,
    },

    #[error("{path}: cannot tell which column holds the {what}; the columns are: {present}. Name it with --{option}")]
    UnknownColumn {
        path: PathBuf,
        what: &'static str,
        option: &'static str,
        present: String,
    },

    #[error("{path} has no data rows; give a table with a header line and at least one row")]
    EmptyTable { path: PathBuf },

    #[error("--label-by-feature {keys} labels the windows of GenBank records by their features, but none of the inputs is a GenBank file (LOCUS … ORIGIN … //); give .gb/.gbk files, or leave the option out")]
    FeatureLabelsWithoutGenbank { keys: String },

    #[error("no GenBank record in {files} has a {keys} feature, so no window can be labelled {keys}; the feature keys there are: {found}. Give one of them with --label-by-feature")]
    FeatureKeyNotFound {
        keys: String,
        files: String,
        found: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `'X'` for printable ASCII, `byte 0x00` otherwise (the byte itself could garble a terminal).
pub(crate) fn describe_byte(byte: u8) -> String {
    match byte {
        b' ' => "' ' (a space)".to_string(),
        b'\t' => "a tab".to_string(),
        0x21..=0x7e => format!("'{}'", byte as char),
        _ => format!("byte 0x{byte:02X}"),
    }
}
