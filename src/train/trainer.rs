//! The trainer: runs one sweep run (all its stages) on its own thread, driven by [`Command`]s and
//! reporting [`Event`]s. The console and headless runs use it the same way.
//!
//! Stages: stage 1 fine-tunes on the source (the dev split selects the best update); its best
//! weights are scored on the extra source evaluations and on the target test split (column `0%`).
//! Each target fraction f > 0 then restarts from those weights with a fresh optimizer and schedule,
//! fine-tunes on its subset of the target pool and is scored on the same test split.
use std::collections::HashMap;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};

use super::checkpoint::{self, Best, TrainState};
use super::evaluate::evaluate;
use super::events::{Command, DownloadEvents, Event};
use super::optim::AdamW;
use super::prepare::{prepare, LabeledSet, Prepared};
use super::schedule::LinearSchedule;
use super::update::{Outcome, Updater};
use crate::data::{collate, EpochSampler};
use crate::download::Cancelled;
use crate::experiment::assets::{self, Sources};
use crate::experiment::results::{ColumnResult, RunResults};
use crate::experiment::rundir::RunDir;
use crate::experiment::sweep::RunSpec;
use crate::method::{self, Method, Progress};
use crate::metrics::{EvalMetrics, MetricsLine, Scores, Split, StepMetrics};
use crate::model::kernels::on_kernel_pool;
use crate::model::tokenizer::TextTokenizer;
use crate::model::{kernel_path, select_device, Classifier, ModelFiles};
use crate::rng;

/// The channels of a running trainer.
pub struct TrainerHandle {
    pub commands: Sender<Command>,
    pub events: Receiver<Event>,
    pub thread: JoinHandle<()>,
}

/// Capacity of the event channel. Step events are dropped rather than block training when a slow
/// consumer lets it fill (metrics.jsonl has every step regardless); other events always arrive.
const EVENT_CAPACITY: usize = 4096;

/// Starts a run (or resumes it from its newest checkpoint) on a new thread.
pub fn spawn(spec: RunSpec, run_dir: RunDir, resume: bool) -> TrainerHandle {
    let (command_tx, command_rx) = bounded(64);
    let (event_tx, event_rx) = bounded(EVENT_CAPACITY);
    let thread = std::thread::Builder::new()
        .name(format!("trainer {}", spec.run_id))
        .spawn(move || {
            let events = event_tx.clone();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // The run builds its graphs on a thread of the kernels' pool, which this thread waits on.
                on_kernel_pool(move || {
                    Trainer::start(spec, run_dir, resume, command_rx, event_tx).and_then(|mut t| t.run())
                })
                .map_err(anyhow::Error::from)
                .and_then(|run| run)
            }));
            let failure = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(e)) if e.is::<Cancelled>() => {
                    let _ = events.send(Event::Stopped { checkpoint: None });
                    return;
                }
                Ok(Err(e)) => crate::report::report(&e),
                Err(panic) => format!("the trainer panicked: {}", panic_message(&panic)),
            };
            let _ = events.send(Event::Failed(failure));
        })
        .expect("spawning the trainer thread");
    TrainerHandle { commands: command_tx, events: event_rx, thread }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into())
}

/// One training stage of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Source,
    Target { fraction: f64 },
}

impl Stage {
    fn name(self) -> String {
        match self {
            Self::Source => "source".into(),
            Self::Target { fraction } => format!("target-{}", Split::Fraction(fraction)),
        }
    }
}

/// What a stage loop ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StageEnd {
    Completed,
    Stopped,
}

struct Trainer {
    spec: RunSpec,
    run_dir: RunDir,
    commands: Receiver<Command>,
    events: Sender<Event>,
    device: Device,
    pad_id: u32,
    data: Prepared,
    model: Classifier,
    stages: Vec<Stage>,
    state: TrainState,
    /// Tensors of the checkpoint being resumed, consumed when its stage starts.
    resumed: Option<HashMap<String, Tensor>>,
    /// The selected stage-1 weights.
    best_weights: Option<HashMap<String, Tensor>>,
    /// The method of the stage that just ended, for its evaluation passes (SiFT keeps LN0).
    finished_method: Option<Box<dyn Method>>,
    last_checkpoint: Option<PathBuf>,
    clock: Instant,
    elapsed_before: f64,
}

impl Trainer {
    fn start(
        spec: RunSpec,
        run_dir: RunDir,
        resume: bool,
        commands: Receiver<Command>,
        events: Sender<Event>,
    ) -> anyhow::Result<Self> {
        let train = &spec.preset.train;
        let device = select_device(&train.device)?;
        let path = kernel_path(&device, train.kernels, train.dtype);
        // This thread builds every graph of the run: its kernel choice is the run's.
        crate::model::kernels::use_kernels(path.kernels);
        if let Some(note) = path.note {
            let _ = events.send(Event::Warning(note));
        }
        // The first phase: whatever the run lacks is downloaded, and `Stop` cancels it.
        let downloads = &mut DownloadEvents { events: &events, commands: &commands };
        let dir = assets::ensure(&spec.preset, &spec.model, &Sources::from_env(), downloads)?;
        let files = ModelFiles::in_dir(&dir)?;
        let tokenizer = TextTokenizer::from_dir(&dir, train.max_len)?;
        let data = prepare(&spec.preset, &tokenizer)?;
        for warning in &data.warnings {
            let _ = events.send(Event::Warning(warning.clone()));
        }
        // f32 master weights whatever the compute precision.
        let model =
            Classifier::load(&files, data.num_labels, &device, DType::F32, spec.seed)?.with_precision(train.dtype);
        tokenizer.check_vocab(model.config.vocab_size(), &dir)?;
        model.config.check_max_len(train.max_len, "train.max_len", &files.config)?;

        let mut stages = vec![Stage::Source];
        if let Some(target) = &data.target {
            stages
                .extend(target.train.iter().filter(|(f, _)| *f > 0.0).map(|&(fraction, _)| Stage::Target { fraction }));
        }
        let fresh = TrainState {
            stage_index: 0,
            stage_started: false,
            step: 0,
            optimizer_steps: 0,
            sampler: EpochSampler::new(0, 1, 0, false),
            rng: rng::stream(spec.seed, 1),
            best: None,
            bad_in_row: 0,
            loss_scale: None,
            columns: Vec::new(),
            elapsed_secs: 0.0,
        };
        let mut trainer = Self {
            pad_id: tokenizer.pad_id(),
            spec,
            run_dir,
            commands,
            events,
            device,
            data,
            model,
            stages,
            state: fresh,
            resumed: None,
            best_weights: None,
            finished_method: None,
            last_checkpoint: None,
            clock: Instant::now(),
            elapsed_before: 0.0,
        };
        if resume {
            trainer.restore()?;
        }
        Ok(trainer)
    }

    /// Loads the newest valid checkpoint and drops the metrics lines written after it.
    fn restore(&mut self) -> anyhow::Result<()> {
        let dir = self.run_dir.checkpoints_dir();
        let events = self.events.clone();
        let mut warn = |w: String| {
            let _ = events.send(Event::Warning(w));
        };
        let Some(checkpoint) = checkpoint::load_latest(&dir, &self.device, &mut warn)? else {
            warn(format!("{}: no checkpoint yet, starting from the beginning", dir.display()));
            self.run_dir.truncate_metrics_after(0, 0)?.into_iter().for_each(warn);
            return Ok(());
        };
        let position = (checkpoint.state.stage_index, checkpoint.state.step);
        self.run_dir.truncate_metrics_after(position.0, position.1)?.into_iter().for_each(&mut warn);
        let best = self.run_dir.best_weights_path();
        if best.is_file() {
            self.best_weights = Some(crate::atomic::read_safetensors(&best, &self.device)?);
        }
        self.elapsed_before = checkpoint.state.elapsed_secs;
        self.state = checkpoint.state;
        self.resumed = Some(checkpoint.tensors);
        self.last_checkpoint = Some(checkpoint.path);
        Ok(())
    }

    fn run(&mut self) -> anyhow::Result<()> {
        for index in self.state.stage_index..self.stages.len() {
            let stage = self.stages[index];
            if self.run_stage(index, stage)? == StageEnd::Stopped {
                self.emit(Event::Stopped { checkpoint: self.last_checkpoint.clone() });
                return Ok(());
            }
            self.finish_stage(stage)?;
            if index + 1 < self.stages.len() {
                // A checkpoint at the stage boundary: a crash in a later stage resumes from here.
                self.state.stage_index = index + 1;
                self.state.stage_started = false;
                self.state.step = 0;
                self.write_checkpoint(None, None)?;
            }
        }
        let results = self.results();
        self.run_dir.write_results(&results)?;
        self.emit(Event::Finished { results: self.run_dir.results_path() });
        Ok(())
    }

    /// Optimizer updates of a stage: `(per epoch, total)`, epochs × updates per epoch capped by
    /// `max_steps`.
    fn plan(&self, stage: Stage, examples: usize) -> (usize, usize) {
        let train = &self.spec.preset.train;
        let per_epoch = examples.div_ceil(train.batch_size).div_ceil(train.accumulate).max(1);
        let epochs = match (stage, &self.spec.preset.target) {
            (Stage::Target { .. }, Some(t)) => t.epochs.unwrap_or(train.epochs),
            _ => train.epochs,
        };
        let mut total = ((epochs * per_epoch as f64).ceil() as usize).max(1);
        if train.max_steps > 0 {
            total = total.min(train.max_steps);
        }
        (per_epoch, total)
    }

    fn run_stage(&mut self, index: usize, stage: Stage) -> anyhow::Result<StageEnd> {
        let train = self.spec.preset.train.clone();
        let set_len = stage_set(&self.data, stage).len();
        let (per_epoch, total_steps) = self.plan(stage, set_len);
        let resumed = self.resumed.take().filter(|_| self.state.stage_started);
        if resumed.is_none() {
            // A fresh stage: target stages restart from the selected source weights.
            if stage != Stage::Source {
                self.load_best_weights()?;
            }
            self.state.stage_index = index;
            self.state.stage_started = true;
            self.state.step = 0;
            self.state.optimizer_steps = 0;
            self.state.bad_in_row = 0;
            let sampler_seed = self.spec.seed.wrapping_add(index as u64);
            self.state.sampler = EpochSampler::new(set_len, train.batch_size, sampler_seed, false);
        }
        if train.group_by_length {
            // Fresh or restored from a checkpoint alike: the lengths are not part of the saved state.
            let lengths = stage_set(&self.data, stage).encoded.iter().map(|e| e.ids.len()).collect();
            self.state.sampler.group_by_length(lengths);
        }
        let mut updater = Updater::new(&self.model, train.optimizer.clone(), train.grad_clip)?;
        let mut method = method::build(self.spec.method, &self.spec.preset.methods, &self.model)?;
        if let Some(tensors) = &resumed {
            self.load_model_tensors(&strip(tensors, "model."))?;
            updater.optimizer_mut().load_state(&strip(tensors, "optim."), self.state.optimizer_steps)?;
            method.load_state(&strip(tensors, "method."))?;
            updater.set_loss_scale(self.state.loss_scale);
        }
        self.state.loss_scale = updater.loss_scale();
        let schedule = LinearSchedule::with_warmup_ratio(train.lr, train.warmup_ratio, total_steps);
        self.emit(Event::Stage { name: stage.name(), index, count: self.stages.len(), total_steps });
        let eval_every = if train.eval_every > 0 { train.eval_every } else { per_epoch };

        while self.state.step < total_steps {
            if self.poll_commands(updater.optimizer(), method.as_ref())? == StageEnd::Stopped {
                self.write_checkpoint(Some(updater.optimizer()), Some(method.as_ref()))?;
                return Ok(StageEnd::Stopped);
            }
            let progress = Progress { step: self.state.step, total_steps };
            let started = Instant::now();
            let lr = schedule.lr(self.state.step);
            let (set, pad_id, device) = (stage_set(&self.data, stage), self.pad_id, &self.device);
            let sampler = &mut self.state.sampler;
            let next_batch = || {
                let rows: Vec<_> = sampler.next_batch().iter().map(|&i| (&set.encoded[i], set.labels[i])).collect();
                Ok(collate(&rows, pad_id, None, device)?)
            };
            let outcome = updater.update(
                method.as_mut(),
                &self.model,
                train.accumulate,
                next_batch,
                &mut self.state.rng,
                lr,
                progress,
            )?;
            self.state.step += 1;
            self.state.loss_scale = updater.loss_scale();
            match outcome {
                Outcome::Applied(applied) => {
                    self.state.bad_in_row = 0;
                    self.state.optimizer_steps = updater.optimizer().steps();
                    let samples = (train.batch_size * train.accumulate) as f64;
                    self.record_step(StepMetrics {
                        stage: stage.name(),
                        step: self.state.step,
                        epoch: self.state.step.div_ceil(per_epoch),
                        loss: applied.loss,
                        task_loss: applied.task_loss,
                        adv_kl: applied.adv_kl,
                        lr,
                        grad_norm: applied.grad_norm,
                        samples_per_sec: samples / started.elapsed().as_secs_f64().max(1e-9),
                    })?;
                }
                // A skipped update still reaches the scheduled evaluation below: the weights of the
                // last good update are scored and may be selected.
                Outcome::NonFinite => self.skip_bad_update(stage)?,
                // f16 loss scaling at work (GradScaler skips these silently): recorded, not counted
                // towards `max_bad_steps`.
                Outcome::Overflow { .. } => self.record_skipped(stage)?,
            }
            let last = self.state.step == total_steps;
            // A target stage's final weights are scored once, by `finish_stage`, for its curve and its
            // column alike (the same weights on the same split).
            let scored_at_end = last && matches!(stage, Stage::Target { .. });
            if (self.state.step.is_multiple_of(eval_every) || last) && !scored_at_end {
                self.evaluate_during(stage, method.as_ref())?;
            }
            if train.checkpoint_every > 0 && self.state.step.is_multiple_of(train.checkpoint_every) && !last {
                self.write_checkpoint(Some(updater.optimizer()), Some(method.as_ref()))?;
            }
        }
        self.finished_method = Some(method);
        Ok(StageEnd::Completed)
    }

    /// A non-finite loss or gradient: the update is skipped (as the SiFT reference skips its ascent
    /// step), reported, and the run fails after `max_bad_steps` in a row.
    fn skip_bad_update(&mut self, stage: Stage) -> anyhow::Result<()> {
        self.state.bad_in_row += 1;
        let (step, in_row) = (self.state.step, self.state.bad_in_row);
        let limit = self.spec.preset.train.max_bad_steps;
        self.record_skipped(stage)?;
        anyhow::ensure!(
            in_row < limit,
            "{}: {in_row} non-finite updates in a row (loss or gradient NaN/inf) at update {step}; stopping \
             (train.max_bad_steps = {limit}). Try a lower learning rate.",
            stage.name()
        );
        self.emit(Event::Warning(format!(
            "{}: non-finite loss or gradient at update {step}, update skipped ({in_row} in a row)",
            stage.name()
        )));
        Ok(())
    }

    /// A skipped update in metrics.jsonl.
    fn record_skipped(&mut self, stage: Stage) -> anyhow::Result<()> {
        let (stage_index, step) = (self.state.stage_index, self.state.step);
        self.run_dir.append_metrics(&MetricsLine::Skipped { stage: stage.name(), stage_index, step })
    }

    /// Handles queued commands; blocks while paused. Returns `Stopped` on a stop request.
    fn poll_commands(&mut self, optimizer: &AdamW, method: &dyn Method) -> anyhow::Result<StageEnd> {
        let mut paused = false;
        loop {
            let command = if paused {
                match self.commands.recv() {
                    Ok(c) => c,
                    Err(_) => return Ok(StageEnd::Stopped),
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => c,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(StageEnd::Completed),
                }
            };
            match command {
                Command::Pause if !paused => {
                    paused = true;
                    self.emit(Event::Paused);
                }
                Command::Resume if paused => {
                    paused = false;
                    self.emit(Event::Resumed);
                }
                Command::Checkpoint => {
                    self.write_checkpoint(Some(optimizer), Some(method))?;
                }
                Command::Stop => return Ok(StageEnd::Stopped),
                Command::Pause | Command::Resume => {}
            }
        }
    }

    fn evaluate_during(&mut self, stage: Stage, method: &dyn Method) -> anyhow::Result<()> {
        match stage {
            Stage::Source => {
                let (scores, _) = self.score(&self.data.dev, method)?;
                let value = scores.value(self.spec.preset.source.metric);
                self.record_eval(stage, Split::SourceDev, scores.clone())?;
                if self.state.best.as_ref().is_none_or(|b| value > b.value) {
                    self.state.best = Some(Best { value, step: self.state.step, scores });
                    let weights: HashMap<String, Tensor> = self.model.named_tensors()?.into_iter().collect();
                    crate::atomic::write_safetensors(&self.run_dir.best_weights_path(), &weights)?;
                    self.best_weights = Some(weights);
                }
            }
            Stage::Target { .. } => {
                // Shown live, never used for selection: target stages keep their final weights.
                if let Some(target) = &self.data.target {
                    let (scores, _) = self.score(&target.test, method)?;
                    self.record_eval(stage, Split::TargetTest, scores)?;
                }
            }
        }
        Ok(())
    }

    /// Scores the stage's final model on its table columns.
    fn finish_stage(&mut self, stage: Stage) -> anyhow::Result<()> {
        let method = self.finished_method.take().context("a finished stage has its method")?;
        let mut sets: Vec<(Split, &LabeledSet)> = Vec::new();
        match stage {
            Stage::Source => {
                self.load_best_weights()?;
                let data = &self.data;
                if let Some(warning) = self.state.best.as_ref().and_then(|best| learned_nothing(best, data)) {
                    self.emit(Event::Warning(warning));
                }
                sets.extend(self.data.evaluations.iter().map(|s| (Split::Named(s.name.clone()), s)));
                if let Some(target) = self.data.target.as_ref().filter(|t| t.train.iter().any(|(f, _)| *f <= 0.0)) {
                    sets.push((Split::Fraction(0.0), &target.test));
                }
            }
            Stage::Target { fraction } => {
                let target = self.data.target.as_ref().context("target stage without target data")?;
                sets.push((Split::Fraction(fraction), &target.test));
            }
        }
        let mut columns = Vec::new();
        for (name, set) in sets {
            let (scores, predicted) = self.score(set, method.as_ref())?;
            columns.push((name, scores, set.labels.clone(), predicted));
        }
        for (name, scores, gold, predicted) in columns {
            if matches!((stage, &name), (Stage::Target { .. }, Split::Fraction(_))) {
                // The curve's last point, which the stage's loop left to this scoring.
                self.record_eval(stage, Split::TargetTest, scores.clone())?;
            }
            self.record_eval(stage, name.clone(), scores.clone())?;
            self.state.columns.push(ColumnResult { name, scores, gold, predicted });
        }
        Ok(())
    }

    fn score(&self, set: &LabeledSet, method: &dyn Method) -> anyhow::Result<(Scores, Vec<u32>)> {
        let batch = self.spec.preset.train.eval_batch_size;
        evaluate(&self.model, method, set, batch, self.pad_id, &self.device)
    }

    fn load_best_weights(&mut self) -> anyhow::Result<()> {
        match self.best_weights.take() {
            Some(best) => {
                let result = self.load_model_tensors(&best);
                self.best_weights = Some(best);
                result
            }
            // No dev evaluation happened (e.g. an empty dev split): keep the current weights.
            None => Ok(()),
        }
    }

    fn load_model_tensors(&self, tensors: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        for (name, var) in self.model.named_vars() {
            let tensor = tensors.get(&name).with_context(|| format!("checkpoint lacks weight `{name}`"))?;
            var.set(&tensor.to_device(var.device())?.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// Writes a resumable checkpoint. Without an optimizer (a stage boundary) only the position is
    /// needed: the next stage starts from the selected weights with a fresh optimizer.
    fn write_checkpoint(&mut self, optimizer: Option<&AdamW>, method: Option<&dyn Method>) -> anyhow::Result<PathBuf> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        if let Some(optimizer) = optimizer {
            tensors.extend(self.model.named_tensors()?.into_iter().map(|(k, v)| (format!("model.{k}"), v)));
            tensors.extend(optimizer.state()?.into_iter().map(|(k, v)| (format!("optim.{k}"), v)));
        }
        if let Some(method) = method {
            tensors.extend(method.state().into_iter().map(|(k, v)| (format!("method.{k}"), v)));
        }
        self.state.elapsed_secs = self.elapsed();
        let path = checkpoint::save(&self.run_dir.checkpoints_dir(), &self.state, &tensors)?;
        self.emit(Event::Checkpoint { path: path.clone(), step: self.state.step });
        self.last_checkpoint = Some(path.clone());
        Ok(path)
    }

    fn record_step(&mut self, metrics: StepMetrics) -> anyhow::Result<()> {
        let stage_index = self.state.stage_index;
        self.run_dir.append_metrics(&MetricsLine::Step { stage_index, metrics: metrics.clone() })?;
        // Step events may be dropped when the consumer lags; metrics.jsonl has every one.
        let _ = self.events.try_send(Event::Step(metrics));
        Ok(())
    }

    fn record_eval(&mut self, stage: Stage, split: Split, scores: Scores) -> anyhow::Result<()> {
        let eval = EvalMetrics { stage: stage.name(), step: self.state.step, split, scores };
        let stage_index = self.state.stage_index;
        self.run_dir.append_metrics(&MetricsLine::Eval { stage_index, metrics: eval.clone() })?;
        self.emit(Event::Eval(eval));
        Ok(())
    }

    fn results(&self) -> RunResults {
        let preset = &self.spec.preset;
        RunResults {
            run_id: self.spec.run_id.clone(),
            preset: preset.name.clone(),
            model: self.spec.model.clone(),
            method: self.spec.method,
            seed: self.spec.seed,
            metric: preset.source.metric,
            best_step: self.state.best.as_ref().map_or(0, |b| b.step),
            dev: self.state.best.as_ref().map(|b| b.scores.clone()).unwrap_or_default(),
            columns: self.state.columns.clone(),
            elapsed_secs: self.elapsed(),
        }
    }

    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.clock.elapsed().as_secs_f64()
    }

    fn emit(&self, event: Event) {
        // A consumer that went away (a closed console) must not stop the run.
        let _ = self.events.send(event);
    }
}

fn stage_set(data: &Prepared, stage: Stage) -> &LabeledSet {
    match stage {
        Stage::Source => &data.train,
        Stage::Target { fraction } => {
            let target = data.target.as_ref().expect("target stages exist only with a target");
            &target.train.iter().find(|(f, _)| *f == fraction).expect("every target stage has its subset").1
        }
    }
}

/// A warning when the selected stage-1 weights put (nearly) all of the dev split into one class, by
/// the rule that flags a table cell: the run learned (almost) nothing from the source, and every
/// later column inherits that.
fn learned_nothing(best: &Best, data: &Prepared) -> Option<String> {
    let class = best.scores.one_class()?;
    let name = |label: usize| data.label_names.get(label).cloned().unwrap_or_else(|| label.to_string());
    let labels = &data.train.labels;
    let balance: Vec<String> = (0..data.num_labels)
        .map(|c| {
            let share = labels.iter().filter(|&&l| l as usize == c).count() as f64 / labels.len().max(1) as f64;
            format!("`{}` {:.1} %", name(c), 100.0 * share)
        })
        .collect();
    let counts = &best.scores.predicted_counts;
    let total: u64 = counts.iter().sum();
    let share = if counts[class] == total { "all".to_string() } else { format!("{} of", counts[class]) };
    Some(format!(
        "source: the selected weights (update {}) predict `{}` for {share} {total} dev examples (MCC {:.3}): the \
         model learned (almost) nothing from the source; the {} training examples are {}. Try more epochs, \
         another learning rate or seed.",
        best.step,
        name(class),
        best.scores.mcc,
        labels.len(),
        balance.join(", ")
    ))
}

fn strip(tensors: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    tensors.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, labels: Vec<u32>) -> LabeledSet {
        LabeledSet { name: name.into(), encoded: Vec::new(), labels }
    }

    #[test]
    fn a_single_class_dev_prediction_is_reported_with_the_class_balance() {
        let data = Prepared {
            num_labels: 2,
            label_names: vec!["not hateful".into(), "hateful".into()],
            train: set("source-train", vec![0, 0, 0, 1]),
            dev: set("source-dev", vec![0, 1]),
            evaluations: Vec::new(),
            target: None,
            warnings: Vec::new(),
        };
        let scores = |counts: Vec<u64>, mcc: f64| Scores { predicted_counts: counts, mcc, ..Scores::default() };
        let best = Best { value: 0.0, step: 40, scores: scores(vec![2, 0], 0.0) };
        let warning = learned_nothing(&best, &data).expect("a warning");
        assert!(warning.contains("update 40) predict `not hateful` for all 2 dev examples (MCC 0.000)"), "{warning}");
        assert!(warning.contains("the 4 training examples are `not hateful` 75.0 %, `hateful` 25.0 %"), "{warning}");
        // The table's rule: 96 of 100 is one class too, 94 of 100 is not.
        let nearly = learned_nothing(&Best { scores: scores(vec![4, 96], 0.1), ..best.clone() }, &data);
        assert!(nearly.expect("a warning").contains("predict `hateful` for 96 of 100 dev examples (MCC 0.100)"));
        assert_eq!(learned_nothing(&Best { scores: scores(vec![6, 94], 0.2), ..best.clone() }, &data), None);
        assert_eq!(learned_nothing(&Best { scores: scores(Vec::new(), 0.0), ..best }, &data), None);
    }
}
