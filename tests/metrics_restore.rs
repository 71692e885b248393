//! `metrics.jsonl` restored to a checkpoint after kills at random bytes, torn lines and repeated
//! attempts: restoring never fails, never keeps a line twice, and a run that restores and rewrites
//! after every kill ends with the file an uninterrupted run writes.
use proptest::prelude::*;
use sift_tui::experiment::rundir::restore_metrics;

/// The lines an uninterrupted run writes: per stage, a step line per update, a dev evaluation every
/// `eval_every` updates, and the stage's final evaluations after its last update.
fn uninterrupted(stages: &[u64], eval_every: u64) -> Vec<((u64, u64), String)> {
    let mut lines = Vec::new();
    for (stage, &steps) in stages.iter().enumerate() {
        let stage = stage as u64;
        for step in 1..=steps {
            let at = (stage, step);
            lines.push((at, format!(r#"{{"kind":"step","stage_index":{stage},"step":{step},"loss":0.{step}}}"#)));
            if step % eval_every == 0 || step == steps {
                lines.push((at, eval(stage, step, "source-dev")));
            }
            if step == steps {
                lines.push((at, eval(stage, step, "0%")));
                lines.push((at, eval(stage, step, "test")));
            }
        }
    }
    lines
}

fn eval(stage: u64, step: u64, split: &str) -> String {
    format!(r#"{{"kind":"eval","stage_index":{stage},"step":{step},"split":"{split}","scores":{{"accuracy":0.5}}}}"#)
}

fn text(lines: &[((u64, u64), String)]) -> String {
    lines.iter().map(|(_, line)| format!("{line}\n")).collect()
}

/// Checks the invariant of a restored file: positions never go back, a step line opens its
/// position, and no line appears twice.
fn assert_ordered_and_unique(restored: &str, clean: &[((u64, u64), String)]) {
    let mut seen = std::collections::HashSet::new();
    let mut last: Option<(u64, u64)> = None;
    for line in restored.lines() {
        let (position, _) = clean.iter().find(|(_, l)| l == line).expect("every kept line is a line the run wrote");
        assert!(seen.insert(line), "{line} kept twice in:\n{restored}");
        let is_step = line.contains(r#""kind":"step""#);
        match last {
            Some(last) if *position < last => panic!("{line} goes back before {last:?}"),
            Some(last) if *position == last => assert!(!is_step, "a second step line at {position:?}"),
            _ => {}
        }
        last = Some(*position);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Kill, restore at the newest checkpoint the killed attempt completed, write on; repeat. The
    /// final file is the uninterrupted one.
    #[test]
    fn kills_and_restarts_end_with_the_uninterrupted_file(
        stages in prop::collection::vec(1u64..12, 1..4),
        eval_every in 1u64..5,
        kills in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..10),
    ) {
        let clean = uninterrupted(&stages, eval_every);
        let clean_text = text(&clean);
        let mut file: Vec<u8> = Vec::new();
        let mut checkpoint = (0u64, 0u64);
        for (cut, pick) in kills {
            // This attempt restores, then writes the lines after its checkpoint until a kill at a
            // random byte, possibly mid-line.
            let restored = restore_metrics(&file, checkpoint);
            assert_ordered_and_unique(&restored.text, &clean);
            file = restored.text.into_bytes();
            let rest = text(&clean.iter().filter(|(at, _)| *at > checkpoint).cloned().collect::<Vec<_>>());
            let written = cut.index(rest.len() + 1);
            file.extend_from_slice(&rest.as_bytes()[..written]);
            // It may have checkpointed at any position whose lines were all complete by then
            // (the file now holds the first `complete` lines of the uninterrupted run).
            let complete = file.iter().filter(|&&b| b == b'\n').count();
            let reachable: Vec<(u64, u64)> = clean[..complete]
                .iter()
                .map(|(at, _)| *at)
                .filter(|at| *at >= checkpoint && clean.iter().filter(|(p, _)| p <= at).count() <= complete)
                .collect();
            if !reachable.is_empty() {
                checkpoint = reachable[pick.index(reachable.len())];
            }
        }
        let restored = restore_metrics(&file, checkpoint);
        let mut last = restored.text.into_bytes();
        last.extend_from_slice(text(&clean.iter().filter(|(at, _)| *at > checkpoint).cloned().collect::<Vec<_>>()).as_bytes());
        prop_assert_eq!(String::from_utf8(last).unwrap(), clean_text);
    }

    /// Any mix of truncation, torn fragments and lines written again (what an older version could
    /// leave behind): restoring keeps each line at most once, in order.
    #[test]
    fn damaged_files_restore_without_duplicates(
        stages in prop::collection::vec(1u64..8, 1..3),
        edits in prop::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..8),
        until in (0u64..3, 0u64..10),
    ) {
        let clean = uninterrupted(&stages, 2);
        let mut bytes = text(&clean).into_bytes();
        for (kind, a, b) in edits {
            match kind {
                // A kill mid-write: cut anywhere.
                0 => bytes.truncate(a.index(bytes.len() + 1)),
                // A torn fragment that a later line was written after, at the start of a line.
                1 => {
                    let starts: Vec<usize> =
                        (0..=bytes.len()).filter(|&i| i == 0 || bytes[i - 1] == b'\n').collect();
                    let at = starts[a.index(starts.len())];
                    bytes.splice(at..at, b"{\"kind\":\"step\",\"stage_in".iter().copied());
                }
                // Whole lines written again (a restart that did not restore), glued onto whatever
                // the file ends with.
                _ => {
                    let from = a.index(clean.len());
                    let to = from + b.index(clean.len() - from) + 1;
                    bytes.extend_from_slice(text(&clean[from..to]).as_bytes());
                }
            }
        }
        let restored = restore_metrics(&bytes, until);
        assert_ordered_and_unique(&restored.text, &clean);
        let within = restored.text.lines().all(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["stage_index"].as_u64().unwrap(), v["step"].as_u64().unwrap()) <= until
        });
        prop_assert!(within, "a line after {:?} kept", until);
    }
}
