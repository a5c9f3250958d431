//! Streaming FASTA/FASTQ reading (plain, gzip/bgzip, xz, zstd, bzip2 — detected by content),
//! with the file's sha256 computed from the same bytes as they are read (or on a second
//! thread). FASTA goes through dnatune's own reader ([`super::fasta`]), FASTQ through
//! needletail.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use needletail::errors::{ParseError, ParseErrorKind};
use needletail::parser::Format;
use sha2::{Digest, Sha256};

use super::error::{describe_byte, DataError};
use super::fasta::{
    fill, parse_fasta, spawn_decoder, ChunkReader, ChunkSource, IdleWork, ReadChunks, RecordSink,
};
use super::normalize::normalize_into;
use super::types::InputFormat;

/// Passes bytes through while hashing them (unless another thread hashes the file) and
/// counting them (for progress).
pub(crate) struct DigestReader<'a, R> {
    inner: R,
    hasher: Option<&'a mut Sha256>,
    bytes_read: &'a AtomicU64,
}

impl<'a, R: Read> DigestReader<'a, R> {
    pub(crate) fn new(inner: R, hasher: Option<&'a mut Sha256>, bytes_read: &'a AtomicU64) -> Self {
        DigestReader {
            inner,
            hasher,
            bytes_read,
        }
    }
}

impl<R: Read> Read for DigestReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = self.hasher.as_deref_mut() {
            hasher.update(&buf[..n]);
        }
        self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Hashes whatever a parser left unread (e.g. padding after the last gzip member), so the
/// digest always covers the whole file, and returns it as hex.
pub(crate) fn finish_digest(
    path: &Path,
    file: &mut File,
    mut hasher: Sha256,
    bytes_read: &AtomicU64,
) -> Result<String, DataError> {
    let rest = io::copy(file, &mut hasher).map_err(|e| DataError::io(path, e))?;
    bytes_read.fetch_add(rest, Ordering::Relaxed);
    Ok(hex(&hasher.finalize()))
}

/// The sha256 of a whole file, read on its own in small steps: by a thread of its own, or
/// by the parsing thread while it waits for a decompressing thread ([`IdleWork`]).
pub(crate) struct FileHasher<'p> {
    path: &'p Path,
    file: File,
    hasher: Sha256,
    buffer: Vec<u8>,
    len: u64,
    done: bool,
    error: Option<io::Error>,
}

impl<'p> FileHasher<'p> {
    pub(crate) fn open(path: &'p Path) -> Result<Self, DataError> {
        Ok(FileHasher {
            path,
            file: open_input(path)?,
            hasher: Sha256::new(),
            buffer: vec![0u8; 1 << 18],
            len: 0,
            done: false,
            error: None,
        })
    }

    /// Hashes what is left; returns the hex digest and the file's length.
    pub(crate) fn finish(mut self) -> Result<(String, u64), DataError> {
        while self.step() {}
        match self.error {
            Some(err) => Err(DataError::io(self.path, err)),
            None => Ok((hex(&self.hasher.finalize()), self.len)),
        }
    }
}

impl IdleWork for FileHasher<'_> {
    fn step(&mut self) -> bool {
        if self.done {
            return false;
        }
        match self.file.read(&mut self.buffer) {
            Ok(0) => self.done = true,
            Ok(n) => {
                self.hasher.update(&self.buffer[..n]);
                self.len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                self.error = Some(e);
                self.done = true;
            }
        }
        !self.done
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Opens an input, with a clear error for a path that does not exist.
pub(crate) fn open_input(path: &Path) -> Result<File, DataError> {
    File::open(path).map_err(|err| {
        if err.kind() == io::ErrorKind::NotFound {
            DataError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            DataError::io(path, err)
        }
    })
}

/// A compression format, recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    pub(crate) fn detect(first_bytes: &[u8]) -> Self {
        match first_bytes {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [b'B', b'Z', b'h', ..] => Compression::Bzip2,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// Wraps `reader` in the decompressor its first bytes call for (gzip members, bgzip included,
/// are read to the end).
pub(crate) fn decompress<'a, R: Read + Send + 'a>(
    mut reader: R,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut magic = [0u8; 6];
    let (filled, error) = fill(&mut reader, &mut magic);
    if let Some(err) = error {
        return Err(err);
    }
    let compression = Compression::detect(&magic[..filled]);
    let whole = io::Cursor::new(magic).take(filled as u64).chain(reader);
    let boxed: Box<dyn Read + Send + 'a> = match compression {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(whole)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
    };
    Ok((compression, boxed))
}

/// How a FASTA/FASTQ file is read: whether its sha256 is needed, and which work may run on
/// threads of its own (see [`super::ReadSettings`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastxReading {
    /// Compute the file's sha256 (else the returned digest is empty).
    pub hash: bool,
    /// Hash on a second thread that reads the file separately, in parallel with parsing.
    pub hash_on_second_thread: bool,
    /// Decompress on a second thread, handing the text over in large chunks.
    pub decompress_on_second_thread: bool,
}

impl FastxReading {
    /// Everything on the calling thread, no hash.
    pub(crate) const NO_HASH: FastxReading = FastxReading {
        hash: false,
        hash_on_second_thread: false,
        decompress_on_second_thread: false,
    };
}

/// Reads every record of a FASTA/FASTQ file (any supported compression), passing it to `sink`
/// with its bases normalised, and returns the file's format and sha256 (empty when `how`
/// asks for none).
pub(crate) fn read_fastx_file(
    path: &Path,
    bytes_read: &AtomicU64,
    how: FastxReading,
    sink: &mut impl RecordSink,
) -> Result<(InputFormat, String), DataError> {
    let hash_inline = how.hash && !how.hash_on_second_thread;
    let hash_apart = how.hash && how.hash_on_second_thread;
    let mut file = open_input(path)?;
    let mut hasher = Sha256::new();
    let (format, hashed_apart) = std::thread::scope(|scope| {
        let reader = DigestReader::new(&mut file, hash_inline.then_some(&mut hasher), bytes_read);
        let (compression, decoded) = decompress(reader).map_err(|e| DataError::io(path, e))?;
        let compressed = compression != Compression::None;
        if compressed && how.decompress_on_second_thread {
            // Decompression is then the longest task: its thread sets the pace, and the
            // parsing thread, which mostly waits for it, hashes the file meanwhile (a third
            // thread would only compete with the decompressing one for the cores).
            let mut idle = hash_apart.then(|| FileHasher::open(path)).transpose()?;
            let idle_work = idle.as_mut().map(|h| h as &mut (dyn IdleWork + Send));
            let mut chunks =
                spawn_decoder(scope, decoded, idle_work).map_err(|e| DataError::io(path, e))?;
            let format = parse_chunks(path, &mut chunks, compressed, sink)?;
            drop(chunks);
            Ok((format, idle.map(FileHasher::finish).transpose()?))
        } else {
            let hashing = hash_apart
                .then(|| {
                    std::thread::Builder::new()
                        .name("sha256".into())
                        .spawn_scoped(scope, || FileHasher::open(path)?.finish())
                        .map_err(|e| DataError::io(path, e))
                })
                .transpose()?;
            let format = parse_chunks(path, &mut ReadChunks::new(decoded), compressed, sink)?;
            let hashed = match hashing {
                Some(thread) => Some(thread.join().map_err(|_| {
                    DataError::io(
                        path,
                        io::Error::other("the thread computing the sha256 failed"),
                    )
                })??),
                None => None,
            };
            Ok::<_, DataError>((format, hashed))
        }
    })?;
    let sha256 = match hashed_apart {
        Some((sha256, file_len)) => {
            // The parser may stop short of the end (gzip padding); progress counts the whole
            // file.
            bytes_read.fetch_max(file_len, Ordering::Relaxed);
            sha256
        }
        None if hash_inline => finish_digest(path, &mut file, hasher, bytes_read)?,
        None => String::new(),
    };
    Ok((format, sha256))
}

/// Parses the text `chunks` hold: FASTA with dnatune's own reader, anything else (FASTQ, and
/// files that are neither, for their error messages) with needletail.
fn parse_chunks<S: ChunkSource + Send>(
    path: &Path,
    chunks: &mut S,
    compressed: bool,
    sink: &mut impl RecordSink,
) -> Result<InputFormat, DataError> {
    let first = chunks
        .next_chunk()
        .map_err(|err| io_or_truncated(path, compressed, err.to_string(), None))?;
    match first.first() {
        None => Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        }),
        Some(b'>') => {
            parse_fasta(path, chunks, compressed, sink)?;
            Ok(InputFormat::Fasta)
        }
        Some(_) => parse_with_needletail(path, ChunkReader::new(chunks), compressed, sink),
    }
}

/// FASTQ (and the error for text that is neither FASTA nor FASTQ) through needletail.
fn parse_with_needletail(
    path: &Path,
    text: impl Read + Send,
    compressed: bool,
    sink: &mut impl RecordSink,
) -> Result<InputFormat, DataError> {
    let mut parser = match needletail::parse_fastx_reader(text) {
        Ok(parser) => parser,
        Err(err) => return Err(start_error(path, compressed, err)),
    };
    let mut format = InputFormat::Fasta;
    // Id and line of the last good record, for messages about what follows it.
    let mut last_record: Option<(String, u64)> = None;
    let mut no_records_yet = true;
    while let Some(next) = parser.next() {
        let record = match next {
            Ok(record) => record,
            Err(err) => return Err(parse_error(path, compressed, err, last_record)),
        };
        if no_records_yet {
            no_records_yet = false;
            if record.format() == Format::Fastq {
                format = InputFormat::Fastq;
            }
        }
        let line = record.start_line_number();
        let header = record.id();
        sink.begin_record(header, line)?;
        let raw_seq = record.raw_seq();
        let (bases, counts) = sink.bases();
        if let Err(bad) = normalize_into(raw_seq, bases, counts) {
            let (lines_before, column) = bad.position_in(raw_seq);
            return Err(DataError::InvalidCharacter {
                path: path.to_path_buf(),
                record: record_id(header).into_owned(),
                location: format!("line {}, column {column}", line + 1 + lines_before),
                character: describe_byte(bad.byte),
            });
        }
        sink.end_record()?;
        let id = record_id(header);
        match &mut last_record {
            Some((last_id, last_line)) => {
                last_id.clear();
                last_id.push_str(&id);
                *last_line = line;
            }
            None => last_record = Some((id.into_owned(), line)),
        }
    }
    if no_records_yet {
        // A parser that yields nothing saw no record at all.
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(format)
}

/// The record id (header up to the first whitespace), for messages.
/// The first word of a header (`> 4214020 x` gives `4214020`: some files put a space after `>`).
pub(crate) fn record_id(header: &[u8]) -> std::borrow::Cow<'_, str> {
    let start = header
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(header.len());
    let rest = &header[start..];
    let end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
}

/// Errors from opening the stream: empty file, or not FASTA/FASTQ at all.
fn start_error(path: &Path, compressed: bool, err: ParseError) -> DataError {
    match err.kind {
        ParseErrorKind::EmptyFile => DataError::EmptyFile {
            path: path.to_path_buf(),
        },
        ParseErrorKind::UnknownFormat => describe_unknown_start(path),
        ParseErrorKind::Io => io_or_truncated(path, compressed, err.msg, None),
        _ => DataError::Malformed {
            path: path.to_path_buf(),
            line: err.position.line.max(1),
            record: String::new(),
            detail: err.to_string(),
        },
    }
}

fn parse_error(
    path: &Path,
    compressed: bool,
    err: ParseError,
    last_record: Option<(String, u64)>,
) -> DataError {
    let after = |what: &str| match &last_record {
        Some((id, line)) => format!("{what} (after record '{id}' at line {line})"),
        None => what.to_string(),
    };
    let record = err
        .position
        .id
        .as_ref()
        .map(|id| format!(", record '{id}'"))
        .unwrap_or_default();
    let line = err.position.line.max(1);
    match err.kind {
        ParseErrorKind::Io => io_or_truncated(path, compressed, err.msg, last_record),
        ParseErrorKind::UnexpectedEnd => DataError::Malformed {
            path: path.to_path_buf(),
            line,
            record,
            detail: after(
                "the file ends in the middle of a record; it may be cut short, get a complete copy",
            ),
        },
        ParseErrorKind::InvalidStart => DataError::Malformed {
            path: path.to_path_buf(),
            line,
            record,
            detail: after(&format!(
                "{}; every record must start with a header line ('>' in FASTA, '@' in FASTQ)",
                err.msg
            )),
        },
        ParseErrorKind::InvalidSeparator | ParseErrorKind::UnequalLengths => DataError::Malformed {
            path: path.to_path_buf(),
            line,
            record,
            detail: format!(
                "{}; a FASTQ record is 4 lines: @header, sequence, +, qualities of the same length",
                err.msg
            ),
        },
        ParseErrorKind::EmptyFile => DataError::EmptyFile {
            path: path.to_path_buf(),
        },
        ParseErrorKind::UnknownFormat => describe_unknown_start(path),
    }
}

/// An I/O error while decoding: in a compressed file that means truncated or corrupt data.
pub(crate) fn io_or_truncated(
    path: &Path,
    compressed: bool,
    detail: String,
    last_record: Option<(String, u64)>,
) -> DataError {
    if compressed {
        DataError::Truncated {
            path: path.to_path_buf(),
            last_record: match last_record {
                Some((id, line)) => format!("'{id}' (line {line})"),
                None => "none".to_string(),
            },
            detail,
        }
    } else {
        DataError::io(path, io::Error::other(detail))
    }
}

/// Says what a file that starts with neither `>` nor `@` looks like instead.
fn describe_unknown_start(path: &Path) -> DataError {
    let mut head = Vec::new();
    let read = open_input(path).and_then(|file| {
        decompress(file)
            .and_then(|(_, mut reader)| reader.by_ref().take(4096).read_to_end(&mut head))
            .map_err(|e| DataError::io(path, e))
    });
    if let Err(err) = read {
        return err;
    }
    let text = head.trim_ascii_start();
    let detail = if text.is_empty() {
        return DataError::EmptyFile {
            path: path.to_path_buf(),
        };
    } else if let Some(kind) = binary_kind(&head) {
        let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02X}")).collect();
        format!(
            "it is a binary file ({kind}; it starts with bytes {}). Give a FASTA file (text starting with '>') or FASTQ ('@')",
            shown.join(" ")
        )
    } else if text[0] == b'>' || text[0] == b'@' {
        "it starts with blank lines before the first header; remove them".to_string()
    } else {
        let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let shown = String::from_utf8_lossy(&first_line[..first_line.len().min(60)]);
        let shown = shown.trim_end();
        if first_line.contains(&b',') || first_line.contains(&b'\t') {
            format!("line 1 is '{shown}', which looks like a table; give tables with --table PATH")
        } else {
            format!(
                "line 1 is '{shown}', but a FASTA file starts with a header line '>name' (FASTQ: '@name'); add one before the sequence"
            )
        }
    };
    DataError::NotSequenceFile {
        path: path.to_path_buf(),
        detail,
    }
}

/// A name for well-known binary formats, or "unknown binary data" when control bytes show up.
fn binary_kind(head: &[u8]) -> Option<&'static str> {
    const KNOWN: [(&[u8], &str); 6] = [
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a zip archive"),
        (b"\x7fELF", "a program"),
        (b"BAM\x01", "a BAM alignment file"),
    ];
    for (magic, name) in KNOWN {
        if head.starts_with(magic) {
            return Some(name);
        }
    }
    let control = head
        .iter()
        .filter(|&&b| b == 0 || (b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t')))
        .count();
    (control > 0).then_some("unknown binary data")
}
