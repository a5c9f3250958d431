//! Fine-tuned adapters on disk: PEFT LoRA folders (import and export), merged models, and
//! dnatune's own files beside them (`dnatune.json`, the model card).
pub mod bundle;
pub mod export;
pub mod peft;

pub use bundle::{RunBundle, SplitMetrics};
pub use export::{peft_adapter_config, write_merged_model, write_peft_adapter, ExportError};
pub use peft::{load_peft_classifier, PeftAdapter, PeftAdapterConfig, PeftError};
