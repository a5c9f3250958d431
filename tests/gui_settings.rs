//! Settings and the last project survive a restart: what the app saves into eframe's storage
//! builds the same project again.
#![cfg(feature = "gui")]

use std::collections::HashMap;
use std::path::PathBuf;

use dnatune::gui::dialogs::ScriptedDialogs;
use dnatune::gui::model_ui::ModelSource;
use dnatune::gui::{AppSettings, DnatuneApp};
use eframe::egui;

/// eframe's storage interface over a map (what eframe writes to its RON file).
#[derive(Default)]
struct MemoryStorage(HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }

    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }

    fn flush(&mut self) {}
}

#[test]
fn the_project_and_settings_come_back_after_a_restart() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let fasta = tmp.path().join("promoters.fa");
    std::fs::write(&fasta, ">a\nACGTACGTAC\n").expect("write FASTA");
    let model_dir: PathBuf = tmp.path().join("model");
    let ctx = egui::Context::default();
    let settings = AppSettings {
        runs_dir: Some(tmp.path().join("runs")),
        ..AppSettings::default()
    };
    let mut app = DnatuneApp::with_parts(
        &ctx,
        settings,
        vec![fasta.clone()],
        Box::new(ScriptedDialogs::default()),
    );
    app.data.settings.files[0].class = "promoter".into();
    app.model.settings.source = Some(ModelSource::Local(model_dir.clone()));
    app.model.settings.lora.rank = 16;
    app.model.settings.learning_rate = 3e-4;

    let mut storage = MemoryStorage::default();
    eframe::App::save(&mut app, &mut storage);
    let restored: AppSettings =
        eframe::get_value(&storage, dnatune::gui::SETTINGS_KEY).expect("saved settings");
    assert_eq!(restored, app.settings());

    let again = DnatuneApp::with_parts(
        &ctx,
        restored,
        Vec::new(),
        Box::new(ScriptedDialogs::default()),
    );
    assert_eq!(again.data.settings.files.len(), 1);
    assert_eq!(again.data.settings.files[0].path, fasta);
    assert_eq!(again.data.settings.files[0].class, "promoter");
    assert_eq!(
        again.model.settings.source,
        Some(ModelSource::Local(model_dir))
    );
    assert_eq!(again.model.settings.lora.rank, 16);
    assert_eq!(again.train.runs_dir, tmp.path().join("runs"));
}
