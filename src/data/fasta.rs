//! dnatune's own FASTA reader: one pass over the text in large chunks, with each record's
//! sequence normalised straight into the caller's base buffer.
//!
//! A record's sequence runs from the line after its header to the next `>` that starts a line.
//! The reader finds that `>` with one `memchr` per stretch of sequence and hands the whole
//! stretch (line breaks included) to [`normalize_into`], which drops the breaks, counts them
//! for line numbers and checks every byte, so no line is looked at on its own. A record may
//! span any number of chunks; nothing is copied but the header. FASTQ (and files that start
//! with anything but `>`, which only give errors) stay with needletail (see
//! [`super::fastx`]).
//!
//! Chunks come from a [`ChunkSource`]: the file itself ([`ReadChunks`]) or a decompressor
//! running on its own thread ([`spawn_decoder`]).

use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};

use super::error::{describe_byte, DataError};
use super::fastx::{io_or_truncated, record_id};
use super::normalize::normalize_into;
use super::types::NormalizationCounts;

/// Receives the records of a FASTA/FASTQ file as they are read, bases normalised.
pub(crate) trait RecordSink {
    /// A record starts: its header line (without `>`/`@` and a trailing `\r`) and the
    /// header's 1-based line number.
    fn begin_record(&mut self, header: &[u8], line: u64) -> Result<(), DataError>;
    /// Where the current record's bases are appended, and where what normalisation changed
    /// is counted. Called once per stretch of sequence text, so a record's bases may arrive
    /// in several parts.
    fn bases(&mut self) -> (&mut Vec<u8>, &mut NormalizationCounts);
    /// The current record is complete (it may have no bases: an empty record).
    fn end_record(&mut self) -> Result<(), DataError>;
}

/// A [`RecordSink`] that gathers each record's bases in one reused buffer and hands the
/// complete record — header, header line, bases — to a closure.
pub(crate) struct EachRecord<F> {
    header: Vec<u8>,
    line: u64,
    bases: Vec<u8>,
    counts: NormalizationCounts,
    on_record: F,
}

impl<F: FnMut(&[u8], u64, &[u8]) -> Result<(), DataError>> EachRecord<F> {
    pub(crate) fn new(on_record: F) -> Self {
        EachRecord {
            header: Vec::new(),
            line: 0,
            bases: Vec::new(),
            counts: NormalizationCounts::default(),
            on_record,
        }
    }
}

impl<F: FnMut(&[u8], u64, &[u8]) -> Result<(), DataError>> RecordSink for EachRecord<F> {
    fn begin_record(&mut self, header: &[u8], line: u64) -> Result<(), DataError> {
        self.header.clear();
        self.header.extend_from_slice(header);
        self.line = line;
        self.bases.clear();
        Ok(())
    }

    fn bases(&mut self) -> (&mut Vec<u8>, &mut NormalizationCounts) {
        (&mut self.bases, &mut self.counts)
    }

    fn end_record(&mut self) -> Result<(), DataError> {
        (self.on_record)(&self.header, self.line, &self.bases)
    }
}

/// Text in chunks, in order; an empty chunk is the end.
pub(crate) trait ChunkSource {
    /// Moves on to the next chunk and returns it.
    fn next_chunk(&mut self) -> io::Result<&[u8]>;
    /// The chunk the last [`ChunkSource::next_chunk`] returned (empty before the first).
    fn current(&self) -> &[u8];
}

impl<S: ChunkSource + ?Sized> ChunkSource for &mut S {
    fn next_chunk(&mut self) -> io::Result<&[u8]> {
        (**self).next_chunk()
    }

    fn current(&self) -> &[u8] {
        (**self).current()
    }
}

/// Bytes per chunk read from a file: large enough that per-chunk costs vanish, small enough
/// to stay in the CPU's cache between reading and normalising.
const READ_CHUNK: usize = 256 << 10;

/// Chunks read from any reader into one reused buffer.
pub(crate) struct ReadChunks<R> {
    reader: R,
    buffer: Vec<u8>,
    len: usize,
    /// An error met after the bytes of the current chunk, reported with the next one.
    error: Option<io::Error>,
}

impl<R: Read> ReadChunks<R> {
    pub(crate) fn new(reader: R) -> Self {
        ReadChunks {
            reader,
            buffer: vec![0; READ_CHUNK],
            len: 0,
            error: None,
        }
    }
}

impl<R: Read> ChunkSource for ReadChunks<R> {
    fn next_chunk(&mut self) -> io::Result<&[u8]> {
        if let Some(err) = self.error.take() {
            self.len = 0;
            return Err(err);
        }
        let (len, error) = fill(&mut self.reader, &mut self.buffer);
        self.len = len;
        match error {
            Some(err) if len == 0 => Err(err),
            error => {
                self.error = error;
                Ok(&self.buffer[..len])
            }
        }
    }

    fn current(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

/// Reads until `buffer` is full or the reader ends; returns the bytes read and the error
/// that stopped it early, if one did (the bytes before an error are still good text, and
/// the records in them are parsed before the error is reported).
pub(crate) fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

/// Bytes per chunk a decoder thread hands over, and how many chunks may be in flight.
const DECODED_CHUNK: usize = 1 << 20;
const CHUNKS_IN_FLIGHT: usize = 3;

/// Work the parsing thread may do in small steps while it waits for decoded text.
pub(crate) trait IdleWork {
    /// Does one small step; false when there is nothing left to do.
    fn step(&mut self) -> bool;
}

/// Chunks decoded by a thread of their own (see [`spawn_decoder`]).
pub(crate) struct DecodedChunks<'w> {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    ended: bool,
    idle: Option<&'w mut (dyn IdleWork + Send)>,
}

impl DecodedChunks<'_> {
    /// The next message from the decoder thread, doing idle work while none is there;
    /// `None` when the thread is gone.
    fn receive(&mut self) -> Option<io::Result<Vec<u8>>> {
        loop {
            match self.full.try_recv() {
                Ok(message) => return Some(message),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {
                    if let Some(idle) = self.idle.as_deref_mut() {
                        if idle.step() {
                            continue;
                        }
                        self.idle = None;
                    }
                    return self.full.recv().ok();
                }
            }
        }
    }
}

impl ChunkSource for DecodedChunks<'_> {
    fn next_chunk(&mut self) -> io::Result<&[u8]> {
        if self.ended {
            self.current.clear();
            return Ok(&self.current);
        }
        // Hand the chunk just parsed back for reuse; a decoder that has already finished no
        // longer takes it, which is fine.
        let _ = self.empty.try_send(std::mem::take(&mut self.current));
        match self.receive() {
            Some(Ok(chunk)) => {
                self.ended = chunk.is_empty();
                self.current = chunk;
                Ok(&self.current)
            }
            Some(Err(err)) => {
                self.ended = true;
                Err(err)
            }
            // The decoder thread is gone without saying why (it panicked).
            None => {
                self.ended = true;
                Err(io::Error::other("the decompressing thread stopped"))
            }
        }
    }

    fn current(&self) -> &[u8] {
        &self.current
    }
}

/// Runs `decoder` on a thread of `scope`, which reads ahead up to [`CHUNKS_IN_FLIGHT`] chunks
/// of [`DECODED_CHUNK`] bytes while the caller parses, so decompression and parsing overlap on
/// two cores. While the caller waits for text it does `idle` work, if any. The thread stops
/// at the end of the data, at an error (passed on) or when the returned source is dropped.
pub(crate) fn spawn_decoder<'scope, 'w, R: Read + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut decoder: R,
    idle: Option<&'w mut (dyn IdleWork + Send)>,
) -> io::Result<DecodedChunks<'w>> {
    let (full_tx, full) = sync_channel::<io::Result<Vec<u8>>>(CHUNKS_IN_FLIGHT);
    let (empty, empty_rx) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 1);
    std::thread::Builder::new()
        .name("decompress".into())
        .spawn_scoped(scope, move || loop {
            let mut chunk = empty_rx.try_recv().unwrap_or_default();
            chunk.resize(DECODED_CHUNK, 0);
            let (len, error) = fill(&mut decoder, &mut chunk);
            chunk.truncate(len);
            let last = len == 0 || error.is_some();
            if len > 0 && full_tx.send(Ok(chunk)).is_err() {
                return;
            }
            if let Some(err) = error {
                let _ = full_tx.send(Err(err));
            } else if len == 0 {
                let _ = full_tx.send(Ok(Vec::new()));
            }
            if last {
                return;
            }
        })?;
    Ok(DecodedChunks {
        full,
        empty,
        current: Vec::new(),
        ended: false,
        idle,
    })
}

/// A [`ChunkSource`] read as a plain [`Read`] (for needletail), starting with its current
/// chunk.
pub(crate) struct ChunkReader<S> {
    source: S,
    used: usize,
}

impl<S: ChunkSource> ChunkReader<S> {
    pub(crate) fn new(source: S) -> Self {
        ChunkReader { source, used: 0 }
    }
}

impl<S: ChunkSource> Read for ChunkReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.used == self.source.current().len() {
            self.source.next_chunk()?;
            self.used = 0;
        }
        let chunk = &self.source.current()[self.used..];
        let n = buf.len().min(chunk.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        self.used += n;
        Ok(n)
    }
}

/// Header lines longer than this are refused: a file without line breaks (or a binary file
/// that happens to start with `>`) would otherwise be read whole into memory as one header.
const MAX_HEADER: usize = 1 << 20;

/// Parses FASTA text whose first chunk is `source`'s current one (it starts with `>`) and
/// whose remaining chunks come from `source`, passing every record to `sink`. Errors name `path`, the record
/// and the line (and column) they are about; `compressed` turns read errors into "truncated
/// or corrupt".
pub(crate) fn parse_fasta(
    path: &Path,
    source: &mut impl ChunkSource,
    compressed: bool,
    sink: &mut impl RecordSink,
) -> Result<(), DataError> {
    let first = source.current();
    debug_assert_eq!(first.first(), Some(&b'>'));
    let mut parser = FastaParser {
        path,
        in_header: true,
        header: Vec::new(),
        header_line: 1,
        line: 1,
        line_start: 0,
        after_line_break: false,
        last_record: None,
    };
    // The leading '>' opens the first header.
    parser.chunk(&first[1..], 1, sink)?;
    let mut offset = first.len() as u64;
    loop {
        let chunk = source
            .next_chunk()
            .map_err(|err| io_or_truncated(path, compressed, err.to_string(), parser.last()))?;
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len() as u64;
        parser.chunk(chunk, offset, sink)?;
        offset += len;
    }
    parser.finish(sink)
}

struct FastaParser<'p> {
    path: &'p Path,
    /// Inside a header line (else inside a record's sequence).
    in_header: bool,
    header: Vec<u8>,
    header_line: u64,
    /// 1-based line of the next byte.
    line: u64,
    /// Offset in the text where the current line starts (for columns).
    line_start: u64,
    /// The byte before the next one is a `\n`: a `>` there starts a record.
    after_line_break: bool,
    /// The id and header line of the last complete record, for messages about what follows.
    last_record: Option<(String, u64)>,
}

impl FastaParser<'_> {
    fn last(&self) -> Option<(String, u64)> {
        self.last_record.clone()
    }

    /// Parses `data`, which starts at `offset` in the text.
    fn chunk(
        &mut self,
        data: &[u8],
        offset: u64,
        sink: &mut impl RecordSink,
    ) -> Result<(), DataError> {
        let mut pos = 0usize;
        while pos < data.len() {
            if self.in_header {
                let rest = &data[pos..];
                match memchr::memchr(b'\n', rest) {
                    Some(end) => {
                        self.push_header(&rest[..end])?;
                        pos += end + 1;
                        self.line += 1;
                        self.line_start = offset + pos as u64;
                        self.after_line_break = true;
                        if self.header.last() == Some(&b'\r') {
                            self.header.pop();
                        }
                        self.in_header = false;
                        sink.begin_record(&self.header, self.header_line)?;
                    }
                    None => {
                        self.push_header(rest)?;
                        pos = data.len();
                    }
                }
                continue;
            }
            let rest = &data[pos..];
            let next_header = memchr::memchr(b'>', rest);
            let text = &rest[..next_header.unwrap_or(rest.len())];
            if !text.is_empty() {
                self.sequence(text, offset + pos as u64, sink)?;
                pos += text.len();
            }
            if next_header.is_some() {
                if !self.after_line_break {
                    return Err(self.invalid_character(b'>', offset + pos as u64));
                }
                sink.end_record()?;
                self.last_record = Some((record_id(&self.header).into_owned(), self.header_line));
                self.header.clear();
                self.header_line = self.line;
                self.in_header = true;
                pos += 1;
            }
        }
        Ok(())
    }

    fn push_header(&mut self, part: &[u8]) -> Result<(), DataError> {
        if self.header.len() + part.len() > MAX_HEADER {
            return Err(DataError::Malformed {
                path: self.path.to_path_buf(),
                line: self.header_line,
                record: String::new(),
                detail: format!(
                    "the header line is longer than {} MB; a FASTA header is one line ('>name description') followed by the sequence on the next lines",
                    MAX_HEADER >> 20
                ),
            });
        }
        self.header.extend_from_slice(part);
        Ok(())
    }

    /// Normalises a stretch of sequence text that starts at `offset` in the text.
    fn sequence(
        &mut self,
        text: &[u8],
        offset: u64,
        sink: &mut impl RecordSink,
    ) -> Result<(), DataError> {
        let (bases, counts) = sink.bases();
        match normalize_into(text, bases, counts) {
            Ok(0) => {}
            Ok(line_breaks) => {
                self.line += line_breaks;
                let last_break = memchr::memrchr(b'\n', text).unwrap_or(0);
                self.line_start = offset + last_break as u64 + 1;
            }
            Err(bad) => {
                let (lines_before, column) = bad.position_in(text);
                if lines_before == 0 {
                    return Err(self.invalid_character(bad.byte, offset + bad.index as u64));
                }
                return Err(self.invalid_character_at(bad.byte, self.line + lines_before, column));
            }
        }
        self.after_line_break = text.last() == Some(&b'\n');
        Ok(())
    }

    /// An invalid byte at `offset` in the text, on the current line.
    fn invalid_character(&self, byte: u8, offset: u64) -> DataError {
        self.invalid_character_at(byte, self.line, offset - self.line_start + 1)
    }

    fn invalid_character_at(&self, byte: u8, line: u64, column: u64) -> DataError {
        DataError::InvalidCharacter {
            path: self.path.to_path_buf(),
            record: record_id(&self.header).into_owned(),
            location: format!("line {line}, column {column}"),
            character: describe_byte(byte),
        }
    }

    /// The text has ended: the last record is complete (a header with no line after it is an
    /// empty record).
    fn finish(mut self, sink: &mut impl RecordSink) -> Result<(), DataError> {
        if self.in_header {
            if self.header.last() == Some(&b'\r') {
                self.header.pop();
            }
            sink.begin_record(&self.header, self.header_line)?;
        }
        sink.end_record()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `text` in chunks of `size` bytes (the last one shorter).
    struct Pieces<'t> {
        text: &'t [u8],
        size: usize,
        at: usize,
        current: &'t [u8],
    }

    impl<'t> Pieces<'t> {
        fn new(text: &'t [u8], size: usize) -> Self {
            Pieces {
                text,
                size,
                at: 0,
                current: &[],
            }
        }
    }

    impl ChunkSource for Pieces<'_> {
        fn next_chunk(&mut self) -> io::Result<&[u8]> {
            let end = (self.at + self.size).min(self.text.len());
            self.current = &self.text[self.at..end];
            self.at = end;
            Ok(self.current)
        }

        fn current(&self) -> &[u8] {
            self.current
        }
    }

    /// (header, header line, bases) of every record, and the counts.
    type Parsed = (Vec<(String, u64, String)>, NormalizationCounts);

    fn parse(text: &[u8], chunk_size: usize) -> Result<Parsed, DataError> {
        let mut records = Vec::new();
        let mut sink = EachRecord::new(|header: &[u8], line: u64, bases: &[u8]| {
            records.push((
                String::from_utf8_lossy(header).into_owned(),
                line,
                String::from_utf8_lossy(bases).into_owned(),
            ));
            Ok(())
        });
        let mut source = Pieces::new(text, chunk_size);
        source.next_chunk().unwrap();
        parse_fasta(Path::new("in.fa"), &mut source, false, &mut sink)?;
        let counts = sink.counts.clone();
        drop(sink);
        Ok((records, counts))
    }

    /// A plain line-by-line reading of the same FASTA, for comparison.
    fn reference(text: &str) -> Vec<(String, u64, String)> {
        let mut records: Vec<(String, u64, String)> = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some(header) = line.strip_prefix('>') {
                records.push((header.to_string(), index as u64 + 1, String::new()));
            } else if let Some(last) = records.last_mut() {
                last.2.extend(
                    line.chars()
                        .filter(|c| !c.is_ascii_whitespace())
                        .map(|c| c.to_ascii_uppercase()),
                );
            }
        }
        records
    }

    /// Deterministic pseudo-random numbers (xorshift), so the test needs no dependency.
    fn numbers(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut state = seed | 1;
        move |below| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        }
    }

    #[test]
    fn records_are_the_same_whatever_the_chunk_size_and_match_a_line_by_line_reading() {
        for seed in 0..40u64 {
            let mut next = numbers(seed);
            let line_break = if seed % 4 == 0 { "\r\n" } else { "\n" };
            let mut text = String::new();
            for record in 0..(1 + next(6)) {
                text.push_str(&format!(">r{record} seed {seed}{line_break}"));
                let width = 1 + next(100) as usize;
                let len = next(400) as usize;
                let bases: String = (0..len)
                    .map(|_| b"ACGTNacgtn"[next(10) as usize] as char)
                    .collect();
                for line in bases.as_bytes().chunks(width) {
                    text.push_str(std::str::from_utf8(line).unwrap());
                    text.push_str(line_break);
                }
                if next(5) == 0 {
                    text.push_str(line_break); // a blank line inside the record
                }
            }
            if next(3) == 0 {
                // No line break after the last line.
                text.truncate(text.trim_end().len());
            }
            let expected = reference(&text);
            for chunk_size in [1, 2, 3, 7, 63, 64, 65, 200, 1 << 20] {
                let (records, _) = parse(text.as_bytes(), chunk_size).unwrap();
                assert_eq!(records, expected, "seed {seed}, chunks of {chunk_size}");
            }
        }
    }

    #[test]
    fn empty_records_and_a_last_header_without_sequence_are_passed_on() {
        for chunk_size in [1, 4, 1000] {
            let (records, counts) = parse(b">a\n>b x\r\nac\ngT\n>c", chunk_size).unwrap();
            let got: Vec<(&str, u64, &str)> = records
                .iter()
                .map(|(h, l, b)| (h.as_str(), *l, b.as_str()))
                .collect();
            assert_eq!(got, [("a", 1, ""), ("b x", 2, "ACGT"), ("c", 5, "")]);
            assert_eq!(counts.lowercase_bases, 3);
        }
    }

    #[test]
    fn invalid_characters_are_reported_at_their_line_and_column_across_chunks() {
        let mut text = b">first\nACGT\n>second record\n".to_vec();
        for _ in 0..30 {
            text.extend_from_slice(&[b'A'; 70]);
            text.push(b'\n');
        }
        text.extend_from_slice(b"ACGTACGTXACGT\n");
        for chunk_size in [1, 5, 64, 100, 1 << 20] {
            let message = parse(&text, chunk_size).unwrap_err().to_string();
            assert!(
                message.contains("record 'second', line 34, column 9: 'X'"),
                "chunks of {chunk_size}: {message}"
            );
        }
    }

    #[test]
    fn a_gt_sign_inside_a_line_is_an_invalid_character() {
        for chunk_size in [1, 3, 1000] {
            let message = parse(b">a\nACGT\nAC>GT\n", chunk_size)
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("record 'a', line 3, column 3: '>'"),
                "chunks of {chunk_size}: {message}"
            );
        }
    }

    #[test]
    fn a_header_without_end_is_refused_before_it_fills_the_memory() {
        let mut text = b">".to_vec();
        text.resize(MAX_HEADER + 10, b'x');
        let message = parse(&text, 1 << 16).unwrap_err().to_string();
        assert!(
            message.contains("header line is longer than 1 MB"),
            "{message}"
        );
    }

    #[test]
    fn a_decoder_thread_hands_over_everything_and_then_its_error() {
        /// Gives `text` a few bytes at a time, then fails.
        struct Failing<'t> {
            text: &'t [u8],
        }
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.text.is_empty() {
                    return Err(io::Error::other("cut short"));
                }
                let n = buf.len().min(self.text.len()).min(1000);
                buf[..n].copy_from_slice(&self.text[..n]);
                self.text = &self.text[n..];
                Ok(n)
            }
        }
        let text: Vec<u8> = b">r\n"
            .iter()
            .chain(&[b'A'; 3 * DECODED_CHUNK])
            .copied()
            .collect();
        std::thread::scope(|scope| {
            let mut chunks = spawn_decoder(scope, Failing { text: &text }, None).unwrap();
            let mut received = Vec::new();
            let error = loop {
                match chunks.next_chunk() {
                    Ok([]) => panic!("the error was lost"),
                    Ok(chunk) => received.extend_from_slice(chunk),
                    Err(err) => break err,
                }
            };
            assert_eq!(received, text);
            assert_eq!(error.to_string(), "cut short");
            // Asked again, the source stays at its end.
            assert!(chunks.next_chunk().unwrap().is_empty());
        });
    }
}
