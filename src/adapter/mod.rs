//! Fine-tuned adapters on disk: PEFT LoRA folders (import and export) and merged models.
pub mod export;
pub mod peft;

pub use export::{peft_adapter_config, write_merged_model, write_peft_adapter, ExportError};
pub use peft::{load_peft_classifier, PeftAdapter, PeftAdapterConfig, PeftError};
