//! `dnatune open` and `dnatune FILE…` through the real binary, without a display: they must
//! say why no window opens (never panic), and a file argument alone must mean `open`.
#![cfg(all(feature = "gui", unix, not(target_os = "macos")))]

use std::process::Command;

fn without_display(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dnatune"))
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .output()
        .expect("run dnatune")
}

#[test]
fn open_without_a_display_is_a_clear_error() {
    let out = without_display(&["open"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("no graphical display") && stderr.contains("dnatune --help"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

#[test]
fn a_file_alone_is_opened_in_the_app() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let fasta = tmp.path().join("reads.fa");
    std::fs::write(&fasta, ">a\nACGT\n").expect("write");
    // Parsed as `open FILE`: the app is asked for, so the missing display is the error (a
    // command-line parse error would say "unrecognized subcommand" and exit with 2).
    let out = without_display(&[fasta.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("no graphical display"), "stderr: {stderr}");
}
