//! Classification metrics (placeholder, filled in by the metrics work).
