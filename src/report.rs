//! Error reports for people: the whole cause chain, without the backtraces that Candle appends to its
//! errors when `RUST_BACKTRACE` is set, and short enough to read: a cause may quote its input (a
//! header line, a file name, a value), and input can be megabytes on one line.

/// The most characters a report keeps of one line of one cause.
pub const MAX_LINE_CHARS: usize = 400;
/// The most lines a report keeps of one cause.
const MAX_LINES: usize = 30;

/// `outer: inner: root cause`, each part without a trailing backtrace and capped in length.
pub fn report(error: &anyhow::Error) -> String {
    error.chain().map(|cause| capped(without_backtrace(&cause.to_string()))).collect::<Vec<_>>().join(": ")
}

/// `text` with each line cut to [`MAX_LINE_CHARS`] and at most [`MAX_LINES`] lines, saying how much
/// was left out.
pub fn capped(text: &str) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .take(MAX_LINES)
        .map(|line| match line.char_indices().nth(MAX_LINE_CHARS) {
            Some((end, _)) => format!("{}… ({} more characters)", &line[..end], line[end..].chars().count()),
            None => line.to_string(),
        })
        .collect();
    let more = text.lines().count().saturating_sub(MAX_LINES);
    if more > 0 {
        lines.push(format!("… ({more} more lines)"));
    }
    lines.join("\n")
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
    fn a_megabyte_line_becomes_a_short_one() {
        let header = "x,".repeat(5_000_000);
        let error = anyhow::anyhow!("data.csv:1: the header has no column \"text\" (columns: {header})");
        let report = report(&error.context("reading the source"));
        assert!(report.chars().count() < MAX_LINE_CHARS + 100, "{} characters", report.len());
        assert!(report.starts_with("reading the source: data.csv:1: the header has no column"), "{report}");
        assert!(report.ends_with(" more characters)"), "{}", &report[report.len() - 40..]);
        let many = anyhow::anyhow!("{}", "line\n".repeat(1000));
        assert_eq!(super::report(&many).lines().count(), MAX_LINES + 1);
    }

    #[test]
    fn multi_line_messages_without_backtraces_are_kept() {
        let error = anyhow::anyhow!("not found; looked in:\n  a\n  b");
        assert_eq!(report(&error), "not found; looked in:\n  a\n  b");
    }
}
