//! Error reports for people: the whole cause chain, without the backtraces that Candle appends to its
//! errors when `RUST_BACKTRACE` is set.

/// `outer: inner: root cause`, each part without a trailing backtrace.
pub fn report(error: &anyhow::Error) -> String {
    error.chain().map(|cause| without_backtrace(&cause.to_string()).to_string()).collect::<Vec<_>>().join(": ")
}

fn without_backtrace(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if offset > 0 && (trimmed.starts_with("0: ") || trimmed.starts_with("Stack backtrace")) {
            return text[..offset].trim_end();
        }
        offset += line.len();
    }
    text.trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtraces_are_cut_and_causes_joined() {
        let inner = anyhow::anyhow!("file.safetensors: truncated\n   0: candle::bt\n   1: main");
        let error = inner.context("loading the model");
        assert_eq!(report(&error), "loading the model: file.safetensors: truncated");
    }

    #[test]
    fn multi_line_messages_without_backtraces_are_kept() {
        let error = anyhow::anyhow!("not found; looked in:\n  a\n  b");
        assert_eq!(report(&error), "not found; looked in:\n  a\n  b");
    }
}
