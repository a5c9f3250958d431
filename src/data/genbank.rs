//! GenBank flat files (`.gb`, `.gbk`, `.genbank`; plain or compressed like every other input):
//! records from `LOCUS` to `//`, their sequence from `ORIGIN` and their `FEATURES` table with
//! locations and qualifiers.
//!
//! A record's id is its accession with version (`VERSION NC_001422.1`), as NCBI writes it in
//! FASTA headers and as remote feature references (`J00194.1:100..202`) name records; without a
//! `VERSION` line, the first `ACCESSION`, and without that, the `LOCUS` name. The header, as
//! `--test-regex` and `--group-by` see it, is that id followed by the `DEFINITION` text.
//!
//! Locations are kept as 0-based, half-open spans of the record (as BED uses):
//! `100..200` → `[99, 200)`, `150` → `[149, 150)`, `100^101` (a site between two bases) →
//! the empty span `[100, 100)`. Parts that refer to another record are kept apart as text.
//!
//! GenBank writes every base in lower case; that is the format, not soft-masking, so it is not
//! counted as such.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::error::{describe_byte, DataError};
use super::fastx::{
    decompress, finish_digest, io_or_truncated, open_input, Compression, DigestReader, FileHasher,
};
use super::normalize::normalize_into;
use super::types::NormalizationCounts;

/// One GenBank record as read: its names, its features and its normalised bases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenbankRecord {
    /// The `LOCUS` name.
    pub name: String,
    /// The first accession of the `ACCESSION` line.
    pub accession: Option<String>,
    /// The accession with version from the `VERSION` line (e.g. `NC_001422.1`).
    pub version: Option<String>,
    /// The `DEFINITION` text, continuation lines joined.
    pub definition: String,
    /// The `LOCUS` line says `circular`.
    pub circular: bool,
    /// The length the `LOCUS` line gives.
    pub declared_len: Option<u64>,
    /// 1-based line of the `LOCUS` line.
    pub line: u64,
    pub features: Vec<Feature>,
    /// Upper-case `A C G T N` (ambiguity codes become N, as for FASTA).
    pub sequence: Vec<u8>,
    /// What normalising the sequence changed (lower case is not counted, see the module notes).
    pub normalization: NormalizationCounts,
}

impl GenbankRecord {
    /// The record id: `VERSION`, else `ACCESSION`, else the `LOCUS` name.
    pub fn id(&self) -> &str {
        self.version
            .as_deref()
            .or(self.accession.as_deref())
            .unwrap_or(&self.name)
    }

    /// The id and the definition, as a FASTA header would carry them.
    pub fn header(&self) -> String {
        if self.definition.is_empty() {
            self.id().to_string()
        } else {
            format!("{} {}", self.id(), self.definition)
        }
    }

    /// True when `accession` (of a remote location part) names this record.
    fn is_self(&self, accession: &str) -> bool {
        accession == self.name
            || self.accession.as_deref() == Some(accession)
            || self.version.as_deref() == Some(accession)
    }
}

/// One entry of the feature table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Feature {
    /// The feature key (`CDS`, `gene`, `tRNA`, …).
    pub key: String,
    /// The location as written (continuation lines joined, spaces removed).
    pub location: String,
    /// The parts of the location on this record, in the order written.
    pub spans: Vec<Span>,
    /// Parts on other records (e.g. `J00194.1:100..202`), as written; not part of `spans`.
    pub remote_parts: Vec<String>,
    /// `(name, value)`; quotes removed, `""` turned into `"`, continuation lines joined with a
    /// space (`/translation` without). A qualifier without value has an empty one.
    pub qualifiers: Vec<(String, String)>,
    /// 1-based line of the feature key.
    pub line: u64,
}

impl Feature {
    /// The first value of qualifier `name` (`gene`, `locus_tag`, `product`, `note`, …).
    pub fn qualifier(&self, name: &str) -> Option<&str> {
        self.qualifiers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A part of a location on the record: bases `[start, end)`, 0-based. `start == end` is a
/// site between two bases (`a^b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    /// Inside `complement(...)`: on the reverse strand.
    pub complement: bool,
    /// `<` at the start: the feature begins before this position.
    pub partial_start: bool,
    /// `>` at the end: the feature continues after this position.
    pub partial_end: bool,
}

impl Span {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True for a site between two bases (`a^b`).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Reads every record of a GenBank file (any supported compression).
pub fn read_genbank(path: &Path) -> Result<Vec<GenbankRecord>, DataError> {
    let mut records = Vec::new();
    read_genbank_file(path, &AtomicU64::new(0), false, |record| {
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

/// True when the file's text (after decompression) starts with a `LOCUS` line.
pub fn looks_like_genbank(path: &Path) -> Result<bool, DataError> {
    let file = open_input(path)?;
    let (_, mut decoded) = decompress(file).map_err(|e| DataError::io(path, e))?;
    let mut head = [0u8; 512];
    let mut filled = 0;
    while filled < head.len() {
        match decoded.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            // Corrupt compressed data: the full read reports it properly.
            Err(_) => break,
        }
    }
    Ok(starts_like_genbank(&head[..filled]))
}

/// True when `text` (the start of a file) begins, after blank lines, with `LOCUS`.
pub(crate) fn starts_like_genbank(text: &[u8]) -> bool {
    text.trim_ascii_start().starts_with(b"LOCUS ")
}

/// Reads every record of a GenBank file, calling `on_record` for each, and returns the file's
/// sha256. With `hash_on_second_thread` the file is hashed by a second thread that reads it
/// separately, in parallel with parsing.
pub(crate) fn read_genbank_file(
    path: &Path,
    bytes_read: &AtomicU64,
    hash_on_second_thread: bool,
    on_record: impl FnMut(GenbankRecord) -> Result<(), DataError>,
) -> Result<String, DataError> {
    if !hash_on_second_thread {
        return parse_file(path, bytes_read, true, on_record);
    }
    std::thread::scope(|scope| {
        let hashing = std::thread::Builder::new()
            .name("sha256".into())
            .spawn_scoped(scope, || FileHasher::open(path)?.finish())
            .map_err(|e| DataError::io(path, e))?;
        parse_file(path, bytes_read, false, on_record)?;
        let (sha256, file_len) = hashing.join().map_err(|_| {
            DataError::io(
                path,
                io::Error::other("the thread computing the sha256 failed"),
            )
        })??;
        bytes_read.fetch_max(file_len, Ordering::Relaxed);
        Ok(sha256)
    })
}

fn parse_file(
    path: &Path,
    bytes_read: &AtomicU64,
    hash: bool,
    on_record: impl FnMut(GenbankRecord) -> Result<(), DataError>,
) -> Result<String, DataError> {
    let mut file = open_input(path)?;
    let mut hasher = Sha256::new();
    {
        let reader = DigestReader::new(&mut file, hash.then_some(&mut hasher), bytes_read);
        let (compression, decoded) = decompress(reader).map_err(|e| DataError::io(path, e))?;
        let mut parser = Parser {
            path,
            compressed: compression != Compression::None,
            line_number: 0,
            state: State::BetweenRecords,
            record: GenbankRecord::default(),
            has_contig: false,
            last_record: None,
            records: 0,
            on_record,
        };
        parser.run(BufReader::with_capacity(1 << 18, decoded))?;
    }
    if !hash {
        return Ok(String::new());
    }
    finish_digest(path, &mut file, hasher, bytes_read)
}

/// Where the parser is within a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    BetweenRecords,
    /// Header lines (LOCUS, DEFINITION, ACCESSION, …) and sections other than the two below.
    Header,
    Features,
    Origin,
}

struct Parser<'p, F> {
    path: &'p Path,
    compressed: bool,
    line_number: u64,
    state: State,
    record: GenbankRecord,
    /// The record has a CONTIG line (a CON record: pieces of other records, no sequence).
    has_contig: bool,
    /// Id and LOCUS line of the last complete record, for messages.
    last_record: Option<(String, u64)>,
    records: u64,
    on_record: F,
}

/// A feature whose lines are still being read.
struct FeatureDraft {
    feature: Feature,
    /// The location (which may span lines) ends where the first qualifier starts.
    location: String,
    in_qualifiers: bool,
    /// The last qualifier's value is quoted and its closing quote has not come yet.
    open_quote: bool,
}

impl<F: FnMut(GenbankRecord) -> Result<(), DataError>> Parser<'_, F> {
    fn run(&mut self, mut reader: impl BufRead) -> Result<(), DataError> {
        let mut line = Vec::with_capacity(128);
        let mut draft: Option<FeatureDraft> = None;
        let mut in_definition = false;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(|err| {
                io_or_truncated(self.path, self.compressed, err.to_string(), self.last())
            })?;
            if n == 0 {
                break;
            }
            self.line_number += 1;
            let mut text: &[u8] = &line;
            if let Some(rest) = text.strip_suffix(b"\n") {
                text = rest;
            }
            if let Some(rest) = text.strip_suffix(b"\r") {
                text = rest;
            }
            match self.state {
                State::Origin => {
                    if text.starts_with(b"LOCUS") {
                        return Err(self.malformed(
                            true,
                            "a new `LOCUS` line starts before this record's closing `//`: the \
                             record was cut short; get a complete copy of the file"
                                .to_string(),
                        ));
                    }
                    if text.starts_with(b"//") {
                        self.finish_record()?;
                    } else {
                        self.add_sequence_line(text)?;
                    }
                    continue;
                }
                State::BetweenRecords => {
                    if text.trim_ascii().is_empty() {
                        continue;
                    }
                    if !text.starts_with(b"LOCUS") {
                        let after = match &self.last_record {
                            Some((id, _)) => format!(" after record '{id}' ended (`//`)"),
                            None => String::new(),
                        };
                        return Err(self.malformed(
                            false,
                            format!(
                                "expected a record starting with `LOCUS`, found '{}'{after}; \
                                 remove the stray text or restore the record's first lines",
                                shorten(text)
                            ),
                        ));
                    }
                    self.start_record(text);
                    in_definition = false;
                    continue;
                }
                State::Header | State::Features => {}
            }
            let starts_section = text.first().is_some_and(|b| !b.is_ascii_whitespace());
            if !starts_section {
                if self.state == State::Features {
                    if !text.trim_ascii().is_empty() {
                        self.feature_line(text, &mut draft)?;
                    }
                } else if in_definition {
                    let more = String::from_utf8_lossy(text.trim_ascii());
                    self.record.definition.push(' ');
                    self.record.definition.push_str(&more);
                }
                continue;
            }
            // A keyword in the first column ends the feature table.
            if let Some(done) = draft.take() {
                self.close_feature(done)?;
            }
            in_definition = false;
            let keyword_len = text
                .iter()
                .position(|b| b.is_ascii_whitespace())
                .unwrap_or(text.len());
            let (keyword, rest) = text.split_at(keyword_len);
            let rest = String::from_utf8_lossy(rest.trim_ascii());
            self.state = State::Header;
            match keyword {
                b"//" => return Err(self.no_origin_error()),
                b"LOCUS" => {
                    return Err(self.malformed(
                        true,
                        "a new `LOCUS` line starts before this record's closing `//` and \
                         before any ORIGIN (sequence) section: the record was cut short; get \
                         a complete copy of the file"
                            .to_string(),
                    ));
                }
                b"DEFINITION" => {
                    self.record.definition = rest.into_owned();
                    in_definition = true;
                }
                b"ACCESSION" if self.record.accession.is_none() => {
                    self.record.accession = rest.split_whitespace().next().map(str::to_string);
                }
                b"VERSION" => {
                    self.record.version = rest
                        .split_whitespace()
                        .next()
                        .filter(|v| !v.starts_with("GI:"))
                        .map(str::to_string);
                }
                b"FEATURES" => self.state = State::Features,
                b"ORIGIN" => self.state = State::Origin,
                b"CONTIG" => self.has_contig = true,
                _ => {}
            }
        }
        if let Some(done) = draft.take() {
            self.close_feature(done)?;
        }
        if self.state != State::BetweenRecords {
            let origin = if self.state == State::Origin {
                ""
            } else {
                " (and before any ORIGIN line, so its sequence is missing)"
            };
            return Err(self.malformed(
                true,
                format!(
                    "the file ends inside this record, before its closing `//` line{origin}: \
                     the file was cut short; download or copy it again"
                ),
            ));
        }
        if self.records == 0 {
            return Err(DataError::EmptyFile {
                path: self.path.to_path_buf(),
            });
        }
        Ok(())
    }

    fn last(&self) -> Option<(String, u64)> {
        self.last_record.clone()
    }

    /// `LOCUS       NC_001422   5386 bp ss-DNA   circular PHG 09-JUL-2002`
    fn start_record(&mut self, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut record = GenbankRecord {
            name: words.get(1).map_or_else(String::new, |w| w.to_string()),
            line: self.line_number,
            ..GenbankRecord::default()
        };
        for pair in words.windows(2) {
            if matches!(pair[1], "bp" | "aa") {
                record.declared_len = pair[0].parse().ok();
            }
        }
        record.circular = words.iter().any(|w| w.eq_ignore_ascii_case("circular"));
        self.record = record;
        self.has_contig = false;
        self.state = State::Header;
    }

    /// A feature-table line that does not start in the first column.
    fn feature_line(
        &mut self,
        text: &[u8],
        draft: &mut Option<FeatureDraft>,
    ) -> Result<(), DataError> {
        let indent = text.iter().take_while(|&&b| b == b' ').count();
        let content = String::from_utf8_lossy(text[indent..].trim_ascii_end());
        // Keys sit at column 6 (5 spaces); qualifiers and continuations at column 22.
        let is_key = (indent <= 5 || (indent < 21 && !content.starts_with('/')))
            && !draft.as_ref().is_some_and(|d| d.open_quote);
        if is_key {
            if let Some(done) = draft.take() {
                self.close_feature(done)?;
            }
            let (key, location) = match content.split_once(char::is_whitespace) {
                Some((key, location)) => (key, location.trim()),
                None => (content.as_ref(), ""),
            };
            *draft = Some(FeatureDraft {
                feature: Feature {
                    key: key.to_string(),
                    line: self.line_number,
                    ..Feature::default()
                },
                location: location.replace(char::is_whitespace, ""),
                in_qualifiers: false,
                open_quote: false,
            });
            return Ok(());
        }
        let Some(current) = draft.as_mut() else {
            return Err(self.malformed(
                false,
                format!(
                    "'{}' continues a feature, but no feature key (such as `CDS` at column 6) \
                     came before it in the FEATURES table; restore the feature's first line",
                    shorten(text)
                ),
            ));
        };
        if current.open_quote {
            let (name, value) = current
                .feature
                .qualifiers
                .last_mut()
                .expect("an open quote belongs to a qualifier");
            if name != "translation" {
                value.push(' ');
            }
            value.push_str(&content);
            current.open_quote = quotes_open(value);
            return Ok(());
        }
        if let Some(qualifier) = content.strip_prefix('/') {
            current.in_qualifiers = true;
            let (name, value) = match qualifier.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => (qualifier.to_string(), String::new()),
            };
            current.open_quote = quotes_open(&value);
            current.feature.qualifiers.push((name, value));
        } else if !current.in_qualifiers {
            current
                .location
                .extend(content.chars().filter(|c| !c.is_whitespace()));
        } else if let Some((_, value)) = current.feature.qualifiers.last_mut() {
            // An unquoted value continued on the next line.
            value.push(' ');
            value.push_str(&content);
        }
        Ok(())
    }

    /// Parses a finished feature's location and strips its qualifiers' quotes.
    fn close_feature(&mut self, draft: FeatureDraft) -> Result<(), DataError> {
        let FeatureDraft {
            mut feature,
            location,
            open_quote,
            ..
        } = draft;
        if open_quote {
            let name = feature
                .qualifiers
                .last()
                .map_or(String::new(), |(n, _)| n.clone());
            return Err(DataError::Malformed {
                path: self.path.to_path_buf(),
                line: feature.line,
                record: self.record_label(),
                detail: format!(
                    "the value of /{name} of the {} feature opens a quote (\") that is never \
                     closed before the feature table ends; add the closing quote",
                    feature.key
                ),
            });
        }
        for (_, value) in &mut feature.qualifiers {
            if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                *value = inner.replace("\"\"", "\"");
            }
        }
        let parts = parse_location(&location).map_err(|reason| DataError::Malformed {
            path: self.path.to_path_buf(),
            line: feature.line,
            record: self.record_label(),
            detail: format!(
                "cannot read the location `{location}` of the {} feature: {reason}. Locations \
                 look like 100..200, <1..>200, 150, 100^101, complement(…), join(…,…) or \
                 order(…,…); fix it or remove the feature",
                feature.key
            ),
        })?;
        for part in parts {
            match part {
                LocationPart::Local(span) => feature.spans.push(span),
                LocationPart::Remote {
                    accession,
                    text,
                    inner,
                } => {
                    if self.record.is_self(&accession) {
                        let local =
                            parse_location(&inner).map_err(|reason| DataError::Malformed {
                                path: self.path.to_path_buf(),
                                line: feature.line,
                                record: self.record_label(),
                                detail: format!(
                                    "cannot read the location `{location}` of the {} feature: \
                                     {reason}",
                                    feature.key
                                ),
                            })?;
                        feature
                            .spans
                            .extend(local.into_iter().filter_map(|p| match p {
                                LocationPart::Local(span) => Some(span),
                                LocationPart::Remote { .. } => None,
                            }));
                    } else {
                        feature.remote_parts.push(text);
                    }
                }
            }
        }
        feature.location = location;
        self.record.features.push(feature);
        Ok(())
    }

    /// One line of the ORIGIN section: `        61 ggtgctgcac gaaaattatt …`.
    fn add_sequence_line(&mut self, text: &[u8]) -> Result<(), DataError> {
        let skip = text
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b' ' || **b == b'\t')
            .count();
        let bases = &text[skip..];
        if push_plain_bases(bases, &mut self.record.sequence) {
            return Ok(());
        }
        let counts = &mut self.record.normalization;
        let lower_before = counts.lowercase_bases;
        let result = normalize_into(bases, &mut self.record.sequence, counts);
        counts.lowercase_bases = lower_before;
        if let Err(bad) = result {
            return Err(DataError::InvalidCharacter {
                path: self.path.to_path_buf(),
                record: self.record.id().to_string(),
                location: format!("line {}, column {}", self.line_number, skip + bad.index + 1),
                character: describe_byte(bad.byte),
            });
        }
        Ok(())
    }

    /// At `//` after ORIGIN: checks the record against its sequence and hands it over.
    fn finish_record(&mut self) -> Result<(), DataError> {
        let len = self.record.sequence.len() as u64;
        if let Some(declared) = self.record.declared_len {
            if declared != len {
                return Err(self.malformed(
                    false,
                    format!(
                        "record '{}' (LOCUS line {}) says {declared} bp, but its ORIGIN section \
                         holds {len} bases: the sequence is incomplete or was edited; get a \
                         complete copy of the record",
                        self.record.id(),
                        self.record.line
                    ),
                ));
            }
        }
        let circular = self.record.circular;
        let mut bad = None;
        for feature in &mut self.record.features {
            let mut spans = Vec::with_capacity(feature.spans.len());
            for span in &feature.spans {
                let outside =
                    span.start.max(span.end) > len || (span.is_empty() && span.start > len);
                if outside {
                    bad = Some(format!(
                        "the {} feature's location `{}` reaches base {}, but the record has only \
                         {len} bases; fix the location or use the complete record",
                        feature.key,
                        feature.location,
                        span.start.max(span.end)
                    ));
                    break;
                }
                if span.start > span.end {
                    if !circular {
                        bad = Some(format!(
                            "the {} feature's location `{}` runs from {} back to {} on a linear \
                             record; write the smaller position first (a feature across the \
                             origin of a circular sequence is join(START..LEN,1..END), and the \
                             LOCUS line must say circular)",
                            feature.key,
                            feature.location,
                            span.start + 1,
                            span.end
                        ));
                        break;
                    }
                    // Across the origin of a circular record.
                    spans.push(Span {
                        end: len,
                        partial_end: false,
                        ..*span
                    });
                    spans.push(Span {
                        start: 0,
                        partial_start: false,
                        ..*span
                    });
                } else {
                    spans.push(*span);
                }
            }
            if bad.is_some() {
                let line = feature.line;
                let detail = bad.take().unwrap_or_default();
                return Err(DataError::Malformed {
                    path: self.path.to_path_buf(),
                    line,
                    record: format!(", record '{}'", self.record.id()),
                    detail,
                });
            }
            feature.spans = spans;
        }
        let record = std::mem::take(&mut self.record);
        self.last_record = Some((record.id().to_string(), record.line));
        self.records += 1;
        self.state = State::BetweenRecords;
        (self.on_record)(record)
    }

    fn no_origin_error(&self) -> DataError {
        let what = if self.has_contig {
            "is a CON record: it only lists the pieces it is assembled from (CONTIG line) and has \
             no ORIGIN section, so no sequence. Download it with its sequence (at NCBI: \
             'GenBank (full)' with 'Show sequence', or efetch rettype=gbwithparts)"
        } else {
            "has no ORIGIN section, so no sequence. Download the record with its sequence (at \
             NCBI: 'GenBank (full)' with 'Show sequence')"
        };
        self.malformed(true, format!("the record ends (`//`) but {what}"))
    }

    /// `, record 'ID' (LOCUS line N)` for the record being read.
    fn record_label(&self) -> String {
        format!(
            ", record '{}' (LOCUS line {})",
            self.record.id(),
            self.record.line
        )
    }

    /// An error at the current line; `in_record` names the record being read.
    fn malformed(&self, in_record: bool, detail: String) -> DataError {
        DataError::Malformed {
            path: self.path.to_path_buf(),
            line: self.line_number.max(1),
            record: if in_record {
                self.record_label()
            } else {
                String::new()
            },
            detail,
        }
    }
}

/// Per byte of ORIGIN text: the upper-case base for `a c g t n` (either case), 0 for a space,
/// [`NOT_PLAIN`] for anything else.
const PLAIN: [u8; 256] = {
    let mut table = [NOT_PLAIN; 256];
    table[b' ' as usize] = 0;
    let mut i = 0;
    while i < 5 {
        let upper = b"ACGTN"[i];
        table[upper as usize] = upper;
        table[upper.to_ascii_lowercase() as usize] = upper;
        i += 1;
    }
    table
};
const NOT_PLAIN: u8 = 0xFF;

/// Appends the bases of the usual ORIGIN text (groups of `acgtn` separated by spaces), without
/// branches per byte; false (and nothing appended) when the text holds anything else, which
/// then goes through the full normalisation (ambiguity codes, errors).
fn push_plain_bases(text: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.resize(start + text.len(), 0);
    let buffer = &mut out[start..];
    let mut written = 0;
    let mut seen = 0u8;
    for &byte in text {
        let base = PLAIN[byte as usize];
        buffer[written] = base;
        written += usize::from(base != 0);
        seen |= base;
    }
    if seen & 0x80 != 0 {
        out.truncate(start);
        return false;
    }
    out.truncate(start + written);
    true
}

/// True while a qualifier value opened with `"` has not been closed (`""` is an escaped quote).
fn quotes_open(value: &str) -> bool {
    value.starts_with('"') && (value.len() == 1 || value.matches('"').count() % 2 == 1)
}

/// The start of a line, for messages.
fn shorten(text: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&text[..text.len().min(60)]);
    let ellipsis = if text.len() > 60 { "…" } else { "" };
    format!("{}{ellipsis}", shown.trim_end())
}

/// A part of a location as written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LocationPart {
    Local(Span),
    /// `ACCESSION:location`: a part on another record (`inner` is the location after `:`).
    Remote {
        accession: String,
        text: String,
        inner: String,
    },
}

/// Parses a location (spaces already removed) into its parts, in the order written.
fn parse_location(text: &str) -> Result<Vec<LocationPart>, String> {
    if text.is_empty() {
        return Err("the location is empty".into());
    }
    let mut parser = LocationParser {
        text: text.as_bytes(),
        pos: 0,
    };
    let parts = parser.location()?;
    if parser.pos != text.len() {
        return Err(format!(
            "unexpected `{}` at character {}",
            &text[parser.pos..],
            parser.pos + 1
        ));
    }
    Ok(parts)
}

struct LocationParser<'t> {
    text: &'t [u8],
    pos: usize,
}

impl LocationParser<'_> {
    fn rest(&self) -> &[u8] {
        &self.text[self.pos..]
    }

    fn location(&mut self) -> Result<Vec<LocationPart>, String> {
        for (operator, complement) in [
            (&b"complement("[..], true),
            (b"join(", false),
            (b"order(", false),
        ] {
            if !self.rest().starts_with(operator) {
                continue;
            }
            self.pos += operator.len();
            let mut parts = Vec::new();
            loop {
                parts.extend(self.location()?);
                match self.rest().first() {
                    Some(b',') if !complement => self.pos += 1,
                    Some(b')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(_) => {
                        return Err(format!(
                            "expected `,` or `)` at character {}, found `{}`",
                            self.pos + 1,
                            String::from_utf8_lossy(self.rest())
                        ))
                    }
                    None => {
                        return Err(format!(
                            "`{}` is never closed with `)`",
                            String::from_utf8_lossy(operator)
                        ))
                    }
                }
            }
            if complement {
                // The reverse strand: parts in reverse order, each on the other strand.
                parts.reverse();
                for part in &mut parts {
                    if let LocationPart::Local(span) = part {
                        span.complement = !span.complement;
                    }
                }
            }
            return Ok(parts);
        }
        // `ACCESSION.VERSION:location`: a part on another record.
        let element_end = self
            .rest()
            .iter()
            .position(|&b| b == b',' || b == b')')
            .unwrap_or(self.rest().len());
        if let Some(colon) = self.rest()[..element_end].iter().position(|&b| b == b':') {
            let accession = String::from_utf8_lossy(&self.rest()[..colon]).into_owned();
            if accession.is_empty() || accession.contains('(') {
                return Err(format!(
                    "unexpected `:` at character {}",
                    self.pos + colon + 1
                ));
            }
            // The remote location may itself be complement(...) etc.: take up to the
            // matching close.
            let start = self.pos;
            self.pos += colon + 1;
            let inner_start = self.pos;
            let mut depth = 0usize;
            while let Some(&b) = self.text.get(self.pos) {
                match b {
                    b'(' => depth += 1,
                    b')' if depth == 0 => break,
                    b')' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
                self.pos += 1;
            }
            let text = String::from_utf8_lossy(&self.text[start..self.pos]).into_owned();
            let inner = String::from_utf8_lossy(&self.text[inner_start..self.pos]).into_owned();
            return Ok(vec![LocationPart::Remote {
                accession,
                text,
                inner,
            }]);
        }
        Ok(vec![LocationPart::Local(self.range()?)])
    }

    /// `[<]a..[>]b`, `[<|>]a`, `a^b` or the old `a.b` (one base within a..b).
    fn range(&mut self) -> Result<Span, String> {
        let (first, first_lt, first_gt) = self.position()?;
        let rest = self.rest();
        if rest.starts_with(b"..") {
            self.pos += 2;
            let (second, second_lt, second_gt) = self.position()?;
            Ok(Span {
                start: first - 1,
                end: second,
                complement: false,
                partial_start: first_lt || first_gt,
                partial_end: second_gt || second_lt,
            })
        } else if rest.starts_with(b"^") {
            self.pos += 1;
            let (second, _, _) = self.position()?;
            if second != first + 1 && second != 1 {
                return Err(format!(
                    "`{first}^{second}` is a site between two bases, which must be neighbours \
                     (e.g. 100^101)"
                ));
            }
            Ok(Span {
                start: first,
                end: first,
                complement: false,
                partial_start: false,
                partial_end: false,
            })
        } else if rest.first() == Some(&b'.') && rest.get(1).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
            let (second, _, _) = self.position()?;
            Ok(Span {
                start: first - 1,
                end: second,
                complement: false,
                partial_start: false,
                partial_end: false,
            })
        } else {
            Ok(Span {
                start: first - 1,
                end: first,
                complement: false,
                partial_start: first_lt,
                partial_end: first_gt,
            })
        }
    }

    /// A 1-based position with an optional `<` or `>`: (position, `<`, `>`).
    fn position(&mut self) -> Result<(u64, bool, bool), String> {
        let lt = self.rest().first() == Some(&b'<');
        let gt = self.rest().first() == Some(&b'>');
        if lt || gt {
            self.pos += 1;
        }
        let digits = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            let found = String::from_utf8_lossy(self.rest());
            return Err(if found.is_empty() {
                format!(
                    "a position is missing at the end (character {})",
                    self.pos + 1
                )
            } else {
                let word: String = found
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
                    .collect();
                if word.is_empty() {
                    format!(
                        "expected a base position at character {}, found `{found}`",
                        self.pos + 1
                    )
                } else {
                    format!("`{word}` is not a location operator this reader knows (it reads complement, join and order)")
                }
            });
        }
        let number = std::str::from_utf8(&self.rest()[..digits])
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or_else(|| format!("the position at character {} is too large", self.pos + 1))?;
        if number == 0 {
            return Err("positions start at 1, not 0".into());
        }
        self.pos += digits;
        let gt_after = self.rest().first() == Some(&b'>');
        if gt_after {
            // `100>`: tolerated the way `>100` is.
            self.pos += 1;
        }
        Ok((number, lt, gt || gt_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<(u64, u64, bool)> {
        parse_location(text)
            .unwrap()
            .into_iter()
            .map(|p| match p {
                LocationPart::Local(s) => (s.start, s.end, s.complement),
                LocationPart::Remote { .. } => panic!("remote"),
            })
            .collect()
    }

    #[test]
    fn location_forms() {
        assert_eq!(spans("100..200"), [(99, 200, false)]);
        assert_eq!(spans("150"), [(149, 150, false)]);
        assert_eq!(spans("100^101"), [(100, 100, false)]);
        assert_eq!(spans("complement(10..20)"), [(9, 20, true)]);
        assert_eq!(spans("join(1..5,10..12)"), [(0, 5, false), (9, 12, false)]);
        assert_eq!(
            spans("complement(join(1..5,10..12))"),
            [(9, 12, true), (0, 5, true)]
        );
        assert_eq!(
            spans("join(complement(10..12),complement(1..5))"),
            [(9, 12, true), (0, 5, true)]
        );
        assert_eq!(spans("order(1..5,8)"), [(0, 5, false), (7, 8, false)]);
        let partial = parse_location("<1..>200").unwrap();
        assert_eq!(
            partial,
            [LocationPart::Local(Span {
                start: 0,
                end: 200,
                complement: false,
                partial_start: true,
                partial_end: true
            })]
        );
        let remote = parse_location("join(J00194.1:100..202,1..50)").unwrap();
        assert!(
            matches!(&remote[0], LocationPart::Remote { text, accession, .. }
            if text == "J00194.1:100..202" && accession == "J00194.1")
        );
        assert!(matches!(remote[1], LocationPart::Local(_)));
    }

    #[test]
    fn bad_locations_are_explained() {
        for (text, expected) in [
            ("", "empty"),
            ("join(1..5,", "missing"),
            ("join(1..5", "never closed"),
            ("1..", "missing"),
            ("0..5", "start at 1"),
            ("bond(1,5)", "`bond`"),
            ("5^9", "neighbours"),
            ("1..5)", "unexpected"),
            ("abc", "`abc`"),
        ] {
            let err = parse_location(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn quotes() {
        assert!(quotes_open("\"abc"));
        assert!(!quotes_open("\"abc\""));
        assert!(quotes_open("\"a \"\"b\"\" c"));
        assert!(!quotes_open("\"a \"\"b\"\"\""));
        assert!(quotes_open("\""));
        assert!(!quotes_open("abc"));
    }
}
