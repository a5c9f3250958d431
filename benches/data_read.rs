//! Read + normalise + window throughput of dnatune's data loader, next to Biopython.
//!
//! `cargo bench --no-default-features --bench data_read` builds a FASTA of ≥ 50 MB from the
//! genomes in `shared/data/genomes` (60-column lines, distinct headers) and its gzip in a temp
//! dir, then measures, each in a fresh child process (so peak memory is that run's own):
//! dnatune `load` + 1024/512 windows on the plain and the gzipped file (on one thread without
//! and with the sha256 a manifest needs, and with the default settings, which use a second
//! thread), flate2 decompression and sha256 alone, needletail parsing alone, and
//! `bench/biopython_read.py` (`SeqIO.parse` + `upper()` + slicing) on both files. See
//! `bench/README.md`.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use dnatune::data::{load, load_with_settings, ClassInput, LoadOptions, ReadSettings, Window};

const WINDOW_BP: u32 = 1024;
const STRIDE_BP: u32 = 512;
const TARGET_BYTES: u64 = 50 * 1024 * 1024;
const REPEATS: usize = 3;
/// Back-to-back runs of a reference and of dnatune, for the median ratio.
const PAIRS: usize = 9;

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
    // `DNATUNE_BENCH_DIR=DIR` keeps the built files there (to profile a single run with
    // `--child WHAT FILE`); by default they go to a temp dir that is removed at the end.
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var_os("DNATUNE_BENCH_DIR")
        .map(PathBuf::from)
        .inspect(|dir| std::fs::create_dir_all(dir).expect("DNATUNE_BENCH_DIR"))
        .unwrap_or_else(|| temp.path().to_path_buf());
    let fasta = dir.join("bench.fa");
    let build = Instant::now();
    let size = build_fasta(&shared, &fasta);
    println!(
        "built {} ({:.1} MB) in {:.1} s",
        fasta.display(),
        mb(size),
        build.elapsed().as_secs_f64()
    );
    let gz = dir.join("bench.fa.gz");
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
    // (label, child task, plain or gzip input)
    const PLANS: [(&str, &str, bool); 12] = [
        (
            "dnatune, plain: read + normalise + window, one thread, no sha256",
            "dnatune-no-sha256-one-thread",
            false,
        ),
        (
            "the same, AVX2 path (CPUs without AVX-512 VBMI2)",
            "dnatune-no-sha256-one-thread-avx2",
            false,
        ),
        (
            "dnatune, plain, one thread, with sha256",
            "dnatune-one-thread",
            false,
        ),
        (
            "dnatune, plain, default (sha256 on a second thread)",
            "dnatune",
            false,
        ),
        (
            "dnatune, gzip: read + normalise + window, one thread, no sha256",
            "dnatune-no-sha256-one-thread",
            true,
        ),
        (
            "dnatune, gzip, one thread, with sha256",
            "dnatune-one-thread",
            true,
        ),
        (
            "dnatune, gzip, default (decompression and sha256 on second threads)",
            "dnatune",
            true,
        ),
        ("flate2 decompression alone (to a sink)", "inflate", true),
        ("part: sha256 of the plain file", "sha256", false),
        ("part: sha256 of the gzip file", "sha256", true),
        (
            "reference: needletail parsing alone (no normalisation), plain",
            "needletail",
            false,
        ),
        (
            "reference: needletail parsing alone (no normalisation), gzip",
            "needletail",
            true,
        ),
    ];
    let input = |gzipped: bool| if gzipped { &gz } else { &fasta };
    let runs: Vec<Option<Run>> = PLANS
        .iter()
        .map(|&(_, what, gzipped)| best(what, input(gzipped)))
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/biopython_read.py");
    let bio_plain = biopython(&script, &fasta);
    let bio_gz = biopython(&script, &gz);

    println!();
    println!("input: {:.1} MB FASTA (60-column lines), {:.1} MB gzip; rates are MB of uncompressed FASTA per second, best of {REPEATS}", mb(size), mb(gz_size));
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
    for ((label, _, _), run) in PLANS.iter().zip(&runs) {
        row(label, run);
    }
    row("Biopython, plain", &bio_plain);
    row("Biopython, gzip", &bio_gz);
    println!();
    // The best time of a child task on the plain or gzip input.
    let seconds = |what: &str, gzipped: bool| {
        PLANS
            .iter()
            .zip(&runs)
            .find(|((_, task, gz), _)| *task == what && *gz == gzipped)
            .and_then(|(_, run)| run.as_ref().map(|r| r.seconds))
    };
    let biopython_s = |gzipped: bool| {
        if gzipped { &bio_gz } else { &bio_plain }
            .as_ref()
            .map(|r| r.seconds)
    };
    for (what, gzipped, text) in [
        (
            "dnatune-no-sha256-one-thread",
            false,
            "plain, read + normalise + window on one core (target >= 10x)",
        ),
        (
            "dnatune-no-sha256-one-thread-avx2",
            false,
            "plain, the same on the AVX2 path",
        ),
        (
            "dnatune-one-thread",
            false,
            "plain, one core, sha256 included",
        ),
        ("dnatune", false, "plain, default settings"),
        ("dnatune", true, "gzip, default settings"),
    ] {
        if let (Some(d), Some(b)) = (seconds(what, gzipped), biopython_s(gzipped)) {
            println!("{text}: dnatune is {:.1}x Biopython", b / d);
        }
    }
    // This machine's speed drifts between runs seconds apart, so both targets are also
    // judged on pairs run back to back: the median of their ratios.
    let paired =
        |text: &str, numerator: &dyn Fn() -> Option<Run>, denominator: &dyn Fn() -> Option<Run>| {
            let mut ratios: Vec<f64> = (0..PAIRS)
                .filter_map(|_| Some(numerator()?.seconds / denominator()?.seconds))
                .collect();
            ratios.sort_by(f64::total_cmp);
            if let Some(median) = ratios.get(ratios.len() / 2) {
                println!(
                    "{text}, {} back-to-back pairs: median {median:.2} (range {:.2}-{:.2})",
                    ratios.len(),
                    ratios[0],
                    ratios[ratios.len() - 1]
                );
            }
        };
    paired(
        "plain, read + normalise + window on one core: Biopython time / dnatune time (target >= 10)",
        &|| biopython_once(&script, &fasta),
        &|| best_of_n(&exe, "dnatune-no-sha256-one-thread", &fasta, 1),
    );
    paired(
        "plain, the same on the AVX2 path: Biopython time / dnatune time",
        &|| biopython_once(&script, &fasta),
        &|| best_of_n(&exe, "dnatune-no-sha256-one-thread-avx2", &fasta, 1),
    );
    paired(
        "gzip, default settings: dnatune time / decompression-alone time (target <= 1.2)",
        &|| best_of_n(&exe, "dnatune", &gz, 1),
        &|| best_of_n(&exe, "inflate", &gz, 1),
    );
    if let Some(inflate) = seconds("inflate", true) {
        for (what, text) in [
            ("dnatune", "default settings"),
            ("dnatune-no-sha256-one-thread", "one thread, no sha256"),
            ("dnatune-one-thread", "one thread, with sha256"),
        ] {
            if let Some(d) = seconds(what, true) {
                println!("gzip, {text}: dnatune takes {:.2}x the time of decompression alone (target <= 1.2x)", d / inflate);
            }
        }
    }
    if let (Some(Some(p)), Some(b)) = (runs.first(), &bio_plain) {
        if p.windows != b.windows {
            println!(
                "WARNING: window counts differ: dnatune {} vs Biopython {}",
                p.windows, b.windows
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
    best_of_n(exe, what, path, REPEATS)
}

fn best_of_n(exe: &Path, what: &str, path: &Path, repeats: usize) -> Option<Run> {
    let mut best: Option<Run> = None;
    for _ in 0..repeats {
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
        "dnatune"
        | "dnatune-one-thread"
        | "dnatune-no-sha256-one-thread"
        | "dnatune-no-sha256-one-thread-avx2" => {
            if what.ends_with("-avx2") {
                // Read once, at the first normalisation; no other thread runs yet.
                std::env::set_var("DNATUNE_SIMD", "avx2");
            }
            let settings = match what {
                "dnatune" => ReadSettings::default(),
                "dnatune-one-thread" => ReadSettings::one_thread(),
                // The two `dnatune-no-sha256-one-thread` tasks.
                _ => ReadSettings {
                    sha256: false,
                    ..ReadSettings::one_thread()
                },
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
            // The same backend and read size as dnatune's decompressing thread (64 KiB to
            // 1 MiB reads made no difference here).
            let file = std::fs::File::open(path).expect("open");
            let mut decoder =
                flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 16, file));
            let mut buf = vec![0u8; 1 << 20];
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
        "needletail" => {
            let mut reader = needletail::parse_fastx_file(path).expect("open");
            let mut total = 0usize;
            while let Some(record) = reader.next() {
                total += record.expect("parse").raw_seq().len();
            }
            std::hint::black_box(total);
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

/// Runs the Biopython script once (it makes its own venv in `bench/.venv` on first use).
fn biopython_once(script: &Path, path: &Path) -> Option<Run> {
    let output = Command::new("python3")
        .arg(script)
        .arg(path)
        .output()
        .ok()?;
    parse_run(&String::from_utf8_lossy(&output.stdout))
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
