//! Atomic file writes: a temporary file in the same directory, fsync, then rename, so a reader (or a
//! resumed run after a crash or a full disk) sees either the old file or the complete new one. The
//! safetensors files written here carry a CRC-32 of their tensor data, which reading verifies: a
//! file damaged after it was written (a bad disk, a stray write) fails to load instead of training
//! on garbage.
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use candle_core::{Device, Tensor};

/// Marks a temporary file's name: `.<name>.tmp-<pid>-<n>`, unique per write of this process, so
/// that two threads writing the same file (two downloads into one cache) never share a temporary.
const TEMPORARY: &str = ".tmp-";
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Whether `name` is the temporary file of an atomic write (left behind when its writer was killed):
/// `.<name>.tmp-<pid>` or `.<name>.tmp-<pid>-<n>`.
pub fn is_temporary(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.starts_with('.')
        && name.rsplit_once(TEMPORARY).is_some_and(|(_, tag)| match tag.split_once('-') {
            Some((pid, n)) => digits(pid) && digits(n),
            None => digits(tag),
        })
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_parts(path, &[bytes])
}

/// Writes the concatenation of `parts` to `path` atomically.
fn write_parts(path: &Path, parts: &[&[u8]]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create directory", dir.display()))?;
    let name = path.file_name().context("atomic write needs a file name")?;
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{}{TEMPORARY}{}-{n}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Persist the rename itself.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}: cannot write", path.display()))
}

/// The safetensors metadata key of the data checksum.
const CHECKSUM: &str = "crc32";

/// Serialises named tensors as safetensors, with the CRC-32 of their data in the header's
/// `__metadata__`, and writes them atomically.
pub fn write_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> anyhow::Result<()> {
    let cannot = || format!("{}: cannot serialise tensors", path.display());
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None).with_context(cannot)?;
    let (header, data) = split_safetensors(&bytes).with_context(cannot)?;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).with_context(cannot)?;
    let checksum = serde_json::json!({ CHECKSUM: crc32fast::hash(data).to_string() });
    header.insert("__metadata__".into(), checksum);
    let mut header = serde_json::to_vec(&header).with_context(cannot)?;
    // The format pads the header with spaces so that the data starts 8-byte aligned.
    header.resize(header.len().next_multiple_of(8), b' ');
    write_parts(path, &[&(header.len() as u64).to_le_bytes(), &header, data])
}

/// Reads a safetensors file, verifying the checksum that [`write_safetensors`] puts in its header
/// (files from elsewhere, without one, load unverified).
pub fn read_safetensors(path: &Path, device: &Device) -> anyhow::Result<HashMap<String, Tensor>> {
    let bytes = fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (header, data) = split_safetensors(&bytes)
        .with_context(|| format!("{}: truncated or not a safetensors file", path.display()))?;
    let header: serde_json::Value =
        serde_json::from_slice(header).with_context(|| format!("{}: damaged safetensors header", path.display()))?;
    if let Some(expected) = header["__metadata__"][CHECKSUM].as_str() {
        let actual = crc32fast::hash(data).to_string();
        anyhow::ensure!(
            actual == expected,
            "{}: damaged: the tensor data's checksum is {actual}, {expected} when written",
            path.display()
        );
    }
    candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| anyhow::anyhow!("{}: corrupt or truncated: {e}", path.display()))
}

/// The header (JSON) and the data of serialised safetensors.
fn split_safetensors(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let length = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = usize::try_from(length).ok()?.checked_add(8)?;
    Some((bytes.get(8..end)?, bytes.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_recognised_and_unique_per_write() {
        for name in [".ckpt-00-0000005.safetensors.tmp-4242", ".metrics.jsonl.tmp-17-3"] {
            assert!(is_temporary(name), "{name}");
        }
        for name in ["notes.tmp-1", ".hidden", ".x.tmp-", ".x.tmp-12-", ".x.tmp-a-1"] {
            assert!(!is_temporary(name), "{name}");
        }
        // Threads writing one file at once each use a temporary of their own: every write lands.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refs").join("main");
        std::thread::scope(|scope| {
            for i in 0..8 {
                let path = &path;
                scope.spawn(move || (0..20).for_each(|_| write(path, format!("{i}").as_bytes()).unwrap()));
            }
        });
        assert!(fs::read_dir(path.parent().unwrap())
            .unwrap()
            .all(|e| !is_temporary(&e.unwrap().file_name().to_string_lossy())));
    }
}
