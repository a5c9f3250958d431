//! Fine-tuned adapters on disk: PEFT LoRA folders (import here; export comes with training).
pub mod peft;

pub use peft::{load_peft_classifier, PeftAdapter, PeftAdapterConfig, PeftError};
