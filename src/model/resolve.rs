//! TODO (being written on branch `tok`).
use std::path::{Path, PathBuf};
pub fn weights_file(dir: &Path) -> anyhow::Result<PathBuf> {
    for f in ["model.safetensors", "pytorch_model.bin"] {
        if dir.join(f).is_file() {
            return Ok(dir.join(f));
        }
    }
    anyhow::bail!("{}: no weights", dir.display())
}
pub fn resolve_model(id: &str) -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(id))
}
