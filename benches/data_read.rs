//! Read + normalise + window throughput of dnatune's data loader, next to Biopython.
//!
//! `cargo bench --no-default-features --bench data_read` builds a FASTA of ≥ 50 MB from the
//! genomes in `shared/data/genomes` (60-column lines, distinct headers) and its gzip in a temp
//! dir, then measures, each in a fresh child process (so peak memory is that run's own):
//! dnatune `load` + 1024/512 windows on the plain and the gzipped file, flate2 decompression
//! alone, and `bench/biopython_read.py` (`SeqIO.parse` + `upper()` + slicing) on both files.
//! Single-threaded throughout. See `bench/README.md`.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use dnatune::data::{load, load_with_settings, ClassInput, LoadOptions, ReadSettings, Window};

const WINDOW_BP: u32 = 1024;
const STRIDE_BP: u32 = 512;
const TARGET_BYTES: u64 = 50 * 1024 * 1024;
const REPEATS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Child mode: one measured run, result printed as one line.
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let what = &args[pos + 1];
        let path = PathBuf::from(&args[pos + 2]);
        child(what, &path);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probing
    }
    let Some(shared) = shared_dir() else {
        println!("skipped: shared/data is missing (set DNATUNE_SHARED or put it at ../shared)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let fasta = dir.path().join("bench.fa");
    let build = Instant::now();
    let size = build_fasta(&shared, &fasta);
    println!(
        "built {} ({:.1} MB) in {:.1} s",
        fasta.display(),
        mb(size),
        build.elapsed().as_secs_f64()
    );
    let gz = dir.path().join("bench.fa.gz");
    let start = Instant::now();
    {
        let mut input = std::fs::File::open(&fasta).expect("open");
        let out = BufWriter::new(std::fs::File::create(&gz).expect("create"));
        let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        std::io::copy(&mut input, &mut encoder).expect("gzip");
        encoder.finish().expect("gzip").flush().expect("gzip");
    }
    let gzip_s = start.elapsed().as_secs_f64();
    let gz_size = std::fs::metadata(&gz).expect("gz").len();
    println!(
        "gzip (flate2 level 1): {:.1} MB in {gzip_s:.1} s = {:.0} MB/s of input",
        mb(gz_size),
        mb(size) / gzip_s
    );

    let exe = std::env::current_exe().expect("own path");
    let best = |what: &str, path: &Path| best_of(&exe, what, path);
    let plain = best("dnatune", &fasta);
    let gzipped = best("dnatune", &gz);
    let plain_hash_thread = best("dnatune-hash-thread", &fasta);
    let gzipped_hash_thread = best("dnatune-hash-thread", &gz);
    let inflate = best("inflate", &gz);
    let parts: Vec<(&str, Option<Run>)> = ["sha256", "needletail", "needletail+normalize"]
        .into_iter()
        .map(|what| (what, best(what, &fasta)))
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/biopython_read.py");
    let bio_plain = biopython(&script, &fasta);
    let bio_gz = biopython(&script, &gz);

    println!();
    println!("input: {:.1} MB FASTA (60-column lines); rates are MB of uncompressed FASTA per second, best of {REPEATS}", mb(size));
    println!("| run | MB/s | seconds | CPU seconds | peak RSS MB | windows |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, r: &Option<Run>| match r {
        Some(r) => println!(
            "| {name} | {:.0} | {:.3} | {} | {:.0} | {} |",
            mb(size) / r.seconds,
            r.seconds,
            r.cpu_seconds.map_or("–".to_string(), |c| format!("{c:.2}")),
            r.peak_kb as f64 / 1024.0,
            r.windows
        ),
        None => println!("| {name} | – | – | – | – | – |"),
    };
    row("dnatune, plain", &plain);
    row("dnatune, gzip", &gzipped);
    row(
        "dnatune, plain, sha256 on a second thread",
        &plain_hash_thread,
    );
    row(
        "dnatune, gzip, sha256 on a second thread",
        &gzipped_hash_thread,
    );
    row("flate2 decompression alone (to a sink)", &inflate);
    for (what, run) in &parts {
        row(&format!("part: {what}, plain"), run);
    }
    row("Biopython, plain", &bio_plain);
    row("Biopython, gzip", &bio_gz);
    println!();
    if let (Some(d), Some(b)) = (&plain, &bio_plain) {
        println!(
            "plain: dnatune is {:.1}x Biopython (target >= 10x)",
            b.seconds / d.seconds
        );
    }
    if let (Some(d), Some(b)) = (&gzipped, &bio_gz) {
        println!("gzip: dnatune is {:.1}x Biopython", b.seconds / d.seconds);
    }
    if let (Some(d), Some(i)) = (&gzipped, &inflate) {
        println!(
            "gzip: dnatune takes {:.2}x the time of decompression alone (target <= 1.2x)",
            d.seconds / i.seconds
        );
    }
    if let (Some(p), Some(d)) = (&plain, &bio_plain) {
        if p.windows != d.windows {
            println!(
                "WARNING: window counts differ: dnatune {} vs Biopython {}",
                p.windows, d.windows
            );
        }
    }
}

struct Run {
    seconds: f64,
    /// CPU time of the measured work (all threads).
    cpu_seconds: Option<f64>,
    peak_kb: u64,
    windows: u64,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("DNATUNE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    dir.join("data/genomes").is_dir().then_some(dir)
}

/// Writes the genomes again and again (60-column lines, distinct headers) until the file
/// holds at least `TARGET_BYTES`; returns its size.
fn build_fasta(shared: &Path, out_path: &Path) -> u64 {
    let genomes = shared.join("data/genomes");
    let options = LoadOptions {
        class_inputs: vec![
            ClassInput::parse(&format!("bacteria={}/bacteria/*.fna.gz", genomes.display()))
                .expect("spec"),
            ClassInput::parse(&format!("phage={}/phage/*.fa*", genomes.display())).expect("spec"),
        ],
        ..LoadOptions::default()
    };
    let data = load(&options).expect("reading the shared genomes");
    let mut out = BufWriter::new(std::fs::File::create(out_path).expect("create"));
    let mut written = 0u64;
    let mut copy = 0;
    while written < TARGET_BYTES {
        for record in &data.records {
            let header = format!(
                ">copy{copy}_{} {}\n",
                record.id(),
                data.classes[record.class as usize]
            );
            out.write_all(header.as_bytes()).expect("write");
            written += header.len() as u64;
            for line in data.sequence(record).chunks(60) {
                out.write_all(line).expect("write");
                out.write_all(b"\n").expect("write");
                written += line.len() as u64 + 1;
            }
        }
        copy += 1;
    }
    out.flush().expect("write");
    written
}

fn best_of(exe: &Path, what: &str, path: &Path) -> Option<Run> {
    let mut best: Option<Run> = None;
    for _ in 0..REPEATS {
        let output = Command::new(exe)
            .args(["--child", what])
            .arg(path)
            .output()
            .expect("run child");
        let text = String::from_utf8_lossy(&output.stdout);
        let Some(run) = parse_run(&text) else {
            println!(
                "{what} on {} failed: {text}{}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            return None;
        };
        if best.as_ref().is_none_or(|b| run.seconds < b.seconds) {
            best = Some(run);
        }
    }
    best
}

/// `seconds=… peak_kb=… windows=…`
fn parse_run(text: &str) -> Option<Run> {
    let line = text.lines().find(|l| l.starts_with("seconds="))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(Run {
        seconds: field("seconds")?.parse().ok()?,
        cpu_seconds: field("cpu_seconds").and_then(|c| c.parse().ok()),
        peak_kb: field("peak_kb")?.parse().ok()?,
        windows: field("windows")?.parse().ok()?,
    })
}

fn child(what: &str, path: &Path) {
    let start = Instant::now();
    let windows = match what {
        "dnatune" | "dnatune-hash-thread" => {
            let settings = ReadSettings {
                hash_on_second_thread: what == "dnatune-hash-thread",
            };
            let options = LoadOptions {
                class_inputs: vec![ClassInput {
                    class: Some("all".into()),
                    path: path.display().to_string(),
                }],
                ..LoadOptions::default()
            };
            let data = load_with_settings(&options, &settings, |_| {}).expect("load");
            // Windows reference the one base buffer by (record, start, len).
            let mut windows: Vec<Window> = Vec::new();
            for (index, record) in data.records.iter().enumerate() {
                let mut start = 0u32;
                while start + WINDOW_BP <= record.len {
                    windows.push(Window {
                        record: index as u32,
                        start,
                        len: WINDOW_BP,
                    });
                    start += STRIDE_BP;
                }
            }
            std::hint::black_box(&data.bases);
            windows.len() as u64
        }
        "inflate" => {
            let file = std::fs::File::open(path).expect("open");
            let mut decoder =
                flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 16, file));
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            loop {
                let n = decoder.read(&mut buf).expect("inflate");
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            std::hint::black_box(total);
            0
        }
        // Parts of the dnatune run, to see where the time goes.
        "sha256" => {
            use sha2::Digest;
            let mut file = std::fs::File::open(path).expect("open");
            let mut hasher = sha2::Sha256::new();
            std::io::copy(&mut file, &mut hasher).expect("hash");
            std::hint::black_box(hasher.finalize());
            0
        }
        "needletail" | "needletail+normalize" => {
            let normalize = what == "needletail+normalize";
            let mut reader = needletail::parse_fastx_file(path).expect("open");
            // Reserved from the file size, as `load` does.
            let file_len = std::fs::metadata(path).expect("size").len() as usize;
            let mut bases = Vec::with_capacity(if normalize { file_len } else { 0 });
            let mut counts = dnatune::data::NormalizationCounts::default();
            let mut total = 0usize;
            while let Some(record) = reader.next() {
                let record = record.expect("parse");
                total += record.raw_seq().len();
                if normalize {
                    dnatune::data::normalize::normalize_into(
                        record.raw_seq(),
                        &mut bases,
                        &mut counts,
                    )
                    .expect("normalize");
                }
            }
            std::hint::black_box((total, bases.len()));
            0
        }
        other => panic!("unknown child task {other}"),
    };
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "seconds={seconds} peak_kb={} windows={windows} cpu_seconds={}",
        peak_kb(),
        cpu_seconds()
    );
}

/// User + system CPU time of this process (all threads), from `/proc/self/stat` (1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// This process's peak resident memory (`VmHWM`), in KiB.
fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the Biopython script (it makes its own venv in `bench/.venv` on first use).
fn biopython(script: &Path, path: &Path) -> Option<Run> {
    let mut best: Option<Run> = None;
    for _ in 0..REPEATS {
        let output = match Command::new("python3").arg(script).arg(path).output() {
            Ok(output) => output,
            Err(err) => {
                println!("Biopython skipped: cannot run python3: {err}");
                return None;
            }
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let Some(run) = parse_run(&text) else {
            println!(
                "Biopython skipped: {}{}",
                text.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return None;
        };
        if best.as_ref().is_none_or(|b| run.seconds < b.seconds) {
            best = Some(run);
        }
    }
    best
}
