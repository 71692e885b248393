//! `sift-tui slurm`: an `sbatch` job-array script with one task per run of a preset. The tasks share
//! one runs directory; run ids are deterministic, so each task finds its own run (`--only N`).
use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};

use crate::experiment::preset::Preset;
use crate::experiment::rundir::runs_dir_default;
use crate::experiment::sweep::RunSpec;

#[derive(Debug, clap::Args)]
pub struct SlurmArgs {
    /// Preset file.
    preset: PathBuf,
    /// Override a preset key (TOML value), passed on to every task; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Runs directory shared by the tasks [default: $SIFT_RUNS_DIR or runs/].
    #[arg(long)]
    runs_dir: Option<PathBuf>,
    /// Time limit per task.
    #[arg(long, default_value = "24:00:00")]
    time: String,
    /// CPU cores per task.
    #[arg(long, default_value_t = 4)]
    cpus: usize,
    /// Memory per task.
    #[arg(long, default_value = "16G")]
    mem: String,
    /// Slurm partition [default: the cluster's].
    #[arg(long)]
    partition: Option<String>,
}

pub fn run(args: &SlurmArgs) -> anyhow::Result<()> {
    let preset = Preset::load(&args.preset, &args.overrides)?;
    ensure!(args.cpus > 0, "--cpus must be at least 1");
    let sbatch_values =
        [("--time", Some(&args.time)), ("--mem", Some(&args.mem)), ("--partition", args.partition.as_ref())];
    for (flag, value) in sbatch_values.iter().filter_map(|(flag, value)| Some((flag, (*value)?))) {
        let plain = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.,".contains(c));
        ensure!(plain, "{flag} `{value}` is not a plain sbatch value");
    }
    let exe = std::env::current_exe().context("cannot locate the sift-tui executable")?;
    let runs_dir = args.runs_dir.clone().unwrap_or_else(runs_dir_default);
    // Absolute paths, so the script works from any submission directory.
    let mut command = vec![absolute(&exe)?, "run".into(), absolute(&args.preset)?];
    for set in &args.overrides {
        command.extend(["--set".into(), set.clone()]);
    }
    command.extend(["--runs-dir".into(), absolute(&runs_dir)?]);
    print!("{}", script(&preset.name, &preset.runs(), args, &command));
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<String> {
    let absolute = std::path::absolute(path).with_context(|| format!("{}: cannot resolve", path.display()))?;
    absolute.to_str().map(str::to_string).with_context(|| format!("{}: not a UTF-8 path", path.display()))
}

/// The script: sbatch directives, the run list as comments, and the command for this task. Every
/// value is quoted (sbatch reads `#SBATCH` lines with shell quoting), and the preset loader has
/// rejected control characters in the name, so nothing a preset says can add a line.
fn script(name: &str, runs: &[RunSpec], args: &SlurmArgs, command: &[String]) -> String {
    let mut out = String::from("#!/bin/bash\n");
    let mut directive = |option: &str, value: &str| {
        let _ = writeln!(out, "#SBATCH --{option}={}", shell_quote(value));
    };
    directive("job-name", &format!("sift-{name}"));
    directive("array", &format!("1-{}", runs.len()));
    directive("time", &args.time);
    directive("cpus-per-task", &args.cpus.to_string());
    directive("mem", &args.mem);
    if let Some(partition) = &args.partition {
        directive("partition", partition);
    }
    let _ = writeln!(
        out,
        "#\n# One array task per run of preset {}; the tasks share the runs directory.",
        shell_quote(name)
    );
    let _ = writeln!(out, "# sbatch passes on the environment (SIFT_DATA_DIR, SIFT_MODEL_PATH) by default.");
    for run in runs {
        let _ = writeln!(out, "#   {:>3}  {}", run.index, shell_quote(&run.run_id));
    }
    let quoted: Vec<String> = command.iter().map(|word| shell_quote(word)).collect();
    let _ = writeln!(out, "\nset -euo pipefail");
    let _ = writeln!(out, "# Candle's CPU kernels use this many threads.");
    let _ = writeln!(out, "export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-{}}}\"", args.cpus);
    let _ = writeln!(out, "exec {} --only \"$SLURM_ARRAY_TASK_ID\"", quoted.join(" "));
    out
}

/// `word` as one shell word: as is when it has no special characters, else single-quoted.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_words_survive_the_shell() {
        let words = ["plain", "sweep.models=[\"org/m\", 'x']", "", "a b", "$HOME", "it's", "train.lr=3e-5"];
        let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        assert_eq!(quoted[0], "plain");
        assert_eq!(quoted[6], "train.lr=3e-5");
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {}", quoted.join(" ")))
            .output()
            .expect("sh runs");
        let printed = String::from_utf8(output.stdout).unwrap();
        assert_eq!(printed.lines().collect::<Vec<_>>(), words);
    }
}
