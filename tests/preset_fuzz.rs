//! The preset loader never panics, whatever the file or the overrides hold: it loads or returns an
//! error naming the file.
use proptest::prelude::*;
use sift_tui::experiment::preset::Preset;

const QUICK: &str = include_str!("../presets/quick.toml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_files_never_panic(text in "\\PC{0,400}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = Preset::load(&path, &[]) {
            let message = format!("{e:#}");
            prop_assert!(message.contains("p.toml"), "{}", message);
        }
    }

    #[test]
    fn arbitrary_overrides_never_panic(key in "[a-z_.]{0,24}", value in "\\PC{0,40}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quick.toml");
        std::fs::write(&path, QUICK).unwrap();
        let _ = Preset::load(&path, &[format!("{key}={value}")]);
    }

    /// Mangling one line of a real preset (dropping it or cutting it short) never panics.
    #[test]
    fn damaged_real_presets_never_panic(line in 0usize..60, cut in 0usize..40) {
        let mut lines: Vec<String> = QUICK.lines().map(str::to_string).collect();
        if let Some(l) = lines.get_mut(line % QUICK.lines().count()) {
            let end = l.char_indices().nth(cut).map_or(l.len(), |(i, _)| i);
            l.truncate(end);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quick.toml");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let _ = Preset::load(&path, &[]);
    }
}
