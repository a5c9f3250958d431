//! `dnatune pretrain`: masked-language-model pretraining on real sequences with the tiny
//! fixture models — it learns, its checkpoints are model folders, and a resumed run ends
//! exactly where an uninterrupted one does.

mod golden;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use dnatune::pretrain::{pretrain, PretrainConfig, PretrainEvent};
use dnatune::train::{Cancel, DeviceChoice};

const BIN: &str = env!("CARGO_BIN_EXE_dnatune");

struct Inputs {
    nt_v2: PathBuf,
    dnabert1: PathBuf,
    phages: PathBuf,
}

fn inputs(test: &str) -> Option<Inputs> {
    let fixtures = golden::fixtures_dir(test)?;
    let shared = fixtures.parent()?.to_path_buf();
    Some(Inputs {
        nt_v2: fixtures.join("nt_v2/model"),
        dnabert1: fixtures.join("dnabert1/model"),
        phages: shared.join("data/genomes/phage/pharokka_hundred_microviruses.fasta"),
    })
}

fn config(model: &Path, data: &Path, out: &Path) -> PretrainConfig {
    PretrainConfig {
        model: model.display().to_string(),
        from_scratch: true,
        inputs: vec![data.to_path_buf()],
        window_bp: 300,
        batch_size: 8,
        max_steps: 6,
        learning_rate: 2e-3,
        eval_every: 3,
        checkpoint_every: 3,
        keep_checkpoints: 5,
        max_validation_windows: 32,
        device: DeviceChoice::Cpu,
        out_dir: out.to_path_buf(),
        ..PretrainConfig::default()
    }
}

fn run(cfg: &PretrainConfig, resume: bool) -> Vec<PretrainEvent> {
    let mut events = Vec::new();
    pretrain(cfg, resume, &Cancel::new(), |e| events.push(e)).expect("pretraining run");
    events
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn max_diff(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> f32 {
    assert_eq!(
        a.keys().collect::<std::collections::BTreeSet<_>>(),
        b.keys().collect::<std::collections::BTreeSet<_>>()
    );
    a.iter()
        .map(|(name, t)| golden::max_abs_diff(t, &b[name]))
        .fold(0f32, f32::max)
}

#[test]
fn a_resumed_run_ends_exactly_where_an_uninterrupted_one_does() {
    let Some(inputs) = inputs("a_resumed_run_ends_exactly_where_an_uninterrupted_one_does") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let straight = tmp.path().join("straight");
    run(&config(&inputs.nt_v2, &inputs.phages, &straight), false);

    // The same run stopped after its step-3 checkpoint (as closing the app or Ctrl+C would),
    // then continued as `dnatune pretrain --resume DIR` does: the saved configuration.
    let interrupted = tmp.path().join("interrupted");
    let cancel = Cancel::new();
    pretrain(
        &config(&inputs.nt_v2, &inputs.phages, &interrupted),
        false,
        &cancel,
        |event| {
            if matches!(event, PretrainEvent::CheckpointSaved { step: 3, .. }) {
                cancel.cancel();
            }
        },
    )
    .expect("first half");
    assert!(!interrupted.join("checkpoint-0000006").exists());
    let rest = dnatune::pretrain::read_run_config(&interrupted).expect("pretrain.json");
    let events = run(&rest, true);
    assert!(events
        .iter()
        .any(|e| matches!(e, PretrainEvent::ModelReady { start_step: 3, .. })));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, PretrainEvent::Step { .. }))
            .count(),
        3,
        "the resumed run trains only the missing steps"
    );

    let ours = interrupted.join("checkpoint-0000006");
    let reference = straight.join("checkpoint-0000006");
    let weights = max_diff(
        &tensors(&ours.join("model.safetensors")),
        &tensors(&reference.join("model.safetensors")),
    );
    let moments = max_diff(
        &tensors(&ours.join("optimizer.safetensors")),
        &tensors(&reference.join("optimizer.safetensors")),
    );
    assert!(weights == 0.0, "weights differ by {weights:e}");
    assert!(moments == 0.0, "optimizer moments differ by {moments:e}");
    assert_eq!(
        std::fs::read_to_string(interrupted.join("latest")).unwrap(),
        "checkpoint-0000006"
    );
}

#[test]
fn pretraining_from_scratch_learns_and_its_checkpoint_is_a_model_folder() {
    let Some(inputs) =
        inputs("pretraining_from_scratch_learns_and_its_checkpoint_is_a_model_folder")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("run");
    let mut cfg = config(&inputs.nt_v2, &inputs.phages, &out);
    cfg.max_steps = 40;
    cfg.eval_every = 10;
    cfg.checkpoint_every = 20;
    cfg.learning_rate = 5e-3;
    cfg.keep_checkpoints = 0;
    let events = run(&cfg, false);
    let validation: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            PretrainEvent::Eval { loss, .. } => Some(*loss),
            _ => None,
        })
        .collect();
    assert_eq!(validation.len(), 4);
    // A random 4107-token model starts at ln(4107) ≈ 8.32. 6-mer frequencies are nearly
    // uniform, so what falls below it comes from context; 40 steps of a 32-wide model is a
    // small but steady drop (8.30 → 8.23 when this was written).
    assert!(
        validation.windows(2).all(|w| w[1] < w[0]) && validation[3] < validation[0] - 0.04,
        "validation loss did not fall: {validation:?}"
    );
    let Some(PretrainEvent::Finished { summary }) = events.last() else {
        panic!("no finished event");
    };
    assert_eq!(summary.steps, 40);
    // Only the newest checkpoint is kept (keep_checkpoints 0).
    let checkpoints: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("checkpoint-"))
        .collect();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(summary.checkpoint, out.join("checkpoint-0000040"));
    // A model folder in Hub layout that fine-tuning and embedding read like any other.
    let loaded = dnatune::model::encoder::load_encoder(
        &summary.checkpoint,
        candle_core::DType::F32,
        &Device::Cpu,
    )
    .expect("the checkpoint loads as a model");
    assert!(
        loaded.report().initialized.is_empty(),
        "{:?}",
        loaded.report()
    );
    dnatune::tokenize::Tokenizer::from_model_dir(&summary.checkpoint).expect("tokenizer");
    let history = std::fs::read_to_string(out.join("history.jsonl")).expect("history");
    assert_eq!(
        history
            .lines()
            .filter(|l| l.starts_with("{\"event\":\"step\""))
            .count(),
        40
    );
}

#[test]
fn overlapping_kmer_models_are_masked_in_spans_and_continue_from_their_weights() {
    let Some(inputs) =
        inputs("overlapping_kmer_models_are_masked_in_spans_and_continue_from_their_weights")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("run");
    let mut cfg = config(&inputs.dnabert1, &inputs.phages, &out);
    cfg.from_scratch = false;
    cfg.max_steps = 2;
    cfg.window_bp = 100;
    let events = run(&cfg, false);
    let masking = events
        .iter()
        .find_map(|e| match e {
            PretrainEvent::ModelReady {
                masking,
                from_scratch,
                ..
            } => Some((masking.clone(), *from_scratch)),
            _ => None,
        })
        .expect("model_ready");
    assert_eq!(masking, ("span of 6 tokens".to_string(), false));
    // Continued pretraining starts from the checkpoint's weights and changes them.
    let before = tensors(&inputs.dnabert1.join("model.safetensors"));
    let after = tensors(&out.join("checkpoint-0000002/model.safetensors"));
    let name = "bert.encoder.layer.0.attention.self.query.weight";
    let diff = golden::max_abs_diff(&before[name], &after[name]);
    assert!(diff > 0.0 && diff < 0.05, "{name} moved by {diff}");
}

#[test]
fn pretrain_refuses_clearly_on_the_command_line() {
    let Some(inputs) = inputs("pretrain_refuses_clearly_on_the_command_line") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dnatune = |args: &[&str]| {
        let output = Command::new(BIN).args(args).output().expect("run dnatune");
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let empty = tmp.path().join("nothing-here");
    let stderr = dnatune(&["pretrain", "--resume", empty.to_str().unwrap()]);
    assert!(stderr.contains("pretrain.json"), "{stderr}");

    let out = tmp.path().join("run");
    run(&config(&inputs.nt_v2, &inputs.phages, &out), false);
    let stderr = dnatune(&[
        "pretrain",
        "--model",
        inputs.nt_v2.to_str().unwrap(),
        "--from-scratch",
        inputs.phages.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stderr.contains("--resume"), "{stderr}");

    let short = tmp.path().join("short.fa");
    std::fs::write(&short, ">tiny\nACGTACGT\n").unwrap();
    let stderr = dnatune(&[
        "pretrain",
        "--model",
        inputs.nt_v2.to_str().unwrap(),
        "--from-scratch",
        short.to_str().unwrap(),
        "--out",
        tmp.path().join("r2").to_str().unwrap(),
    ]);
    assert!(stderr.contains("--window"), "{stderr}");
}
