//! The steps of a run: each trains on a batch, then evaluates, samples and saves when due.

use std::ops::{ControlFlow, Range};
use std::path::Path;
use std::time::Instant;

use gpt::{Adam, Dropout, Model, NllSum, Params, Sampler, Schedule, StreamPerName};
use tape::Float;

use crate::args::TrainArgs;
use crate::defaults;
use crate::divergence::{Guard, Healthy};
use crate::error::{CliError, Result};
use crate::loss_csv::LossCsv;
use crate::loss_log::LossPoint;
use crate::progress::Progress;
use crate::rng::name_stream;
use crate::signals::{Interrupts, Signal};
use crate::stream::{escaped, note};

use super::finish::Trained;
use super::paths::cannot_write;
use super::plan::Plan;
use super::sampling_failure;
use super::validation::{Validation, add_nll};

/// The state the steps carry from one to the next.
pub struct Session<'a, F: Float> {
    args: &'a TrainArgs,
    plan: &'a Plan,
    model: Model<F>,
    adam: Adam<F>,
    /// The state before the last healthy update, saved if a step diverges.
    healthy: Healthy<F>,
    guard: Guard,
    /// The parameters' names, for the guard's message.
    names: Vec<String>,
    interrupts: Interrupts,
    csv: LossCsv,
    progress: Progress,
    validation: Validation,
    /// Whether the last step also scores the whole held-out split (see [`Session::begin`]).
    whole_is_cheap: bool,
    /// The batch's documents, tokenized into buffers reused from step to step.
    batch: Vec<Vec<usize>>,
    schedule: Schedule,
    best_val_loss: Option<f64>,
    final_val_loss: Option<f64>,
}

impl<'a, F: Float> Session<'a, F> {
    /// Listens for signals and opens the loss CSV (with the resumed run's rows) before step 1.
    pub fn begin(
        args: &'a TrainArgs,
        plan: &'a Plan,
        params: Params<F>,
        adam: Adam<F>,
    ) -> Result<Self> {
        let (settings, paths) = (&plan.settings, &plan.paths);
        // Listening from before the first temporary file is created, so that none can outlive a
        // signal.
        let interrupts = Interrupts::install(paths.temporaries())?;
        // Every step's row goes to the CSV's temporary file beside it as training goes, the chart
        // gets a bounded summary: memory stays the same however many steps are run.
        let mut csv =
            LossCsv::create(&paths.csv).map_err(|error| cannot_write(&paths.csv, error))?;
        if let Some(resumed_from) = &plan.resumed_from {
            carry_over(&mut csv, resumed_from, plan)?;
        }
        let guard = Guard::new(plan.config.vocab_size);
        let names = params.names().to_vec();
        let healthy = Healthy::new(params.clone(), adam.state());
        let model = Model::new(params).with_batch_mean(settings.batch_mean);
        let batch = vec![Vec::new(); settings.batch_size];
        let progress = Progress::new(plan.steps.start, plan.steps.end, settings.num_steps);
        let validation = plan.data.validation(settings.eval_docs);
        // Scoring a document without a backward pass costs about half a training step's
        // document, so a run that trains on at least as many documents as the split holds spends
        // at most a third of its time on the whole split. A shorter run (the default one: 500
        // names against 3,203) keeps the subset's loss; `--eval-docs 0` scores the whole split
        // every time.
        let whole_is_cheap = plan.steps.len() * settings.batch_size >= validation.whole.len();
        Ok(Session {
            args,
            plan,
            model,
            adam,
            healthy,
            guard,
            names,
            interrupts,
            csv,
            progress,
            validation,
            whole_is_cheap,
            batch,
            schedule: settings.schedule(),
            best_val_loss: settings.best_val_loss,
            final_val_loss: None,
        })
    }

    /// Runs the plan's steps, or those up to a signal, after which the run saves and stops.
    pub fn train(mut self) -> Result<Trained<F>> {
        let mut last_loss = 0.0;
        for step in self.plan.steps.clone() {
            let train_loss = match self.step(step)? {
                ControlFlow::Continue(loss) => loss,
                ControlFlow::Break(problem) => return Err(self.diverged(step, &problem)),
            };
            last_loss = train_loss;
            let val_loss = self.evaluate(step)?;
            self.print_samples(step)?;
            let point = LossPoint {
                step: step + 1,
                train_loss,
                val_loss,
            };
            let csv_path = &self.plan.paths.csv;
            self.csv
                .push(&point)
                .map_err(|error| cannot_write(csv_path, error))?;
            if let Some(signal) = self.interrupts.received() {
                return Ok(self.stop(step + 1, last_loss, Some(signal)));
            }
            self = self.save_periodically(step + 1)?;
        }
        let done = self.plan.steps.end;
        Ok(self.stop(done, last_loss, None))
    }

    /// Trains on batch `step` (from 0): its loss, or the problem of a step that diverged, whose
    /// update is not applied.
    fn step(&mut self, step: usize) -> Result<ControlFlow<String, f64>> {
        let settings = &self.plan.settings;
        for (b, tokens) in self.batch.iter_mut().enumerate() {
            self.plan
                .data
                .train_item_into(step * settings.batch_size + b, tokens);
        }
        // Each step's masks from a seed of its own (gpt adds the chunk's index, below 2^20).
        let dropout = (settings.dropout > 0.0).then(|| Dropout {
            p: settings.dropout,
            seed: settings.seed.wrapping_add((step as u64 + 1) << 20),
        });
        let computed = self.model.batch_loss_with_dropout(&self.batch, dropout)?;
        let loss = computed.loss().to_f64();
        if let Some(problem) = self.guard.problem(loss, &computed, &self.names) {
            return Ok(ControlFlow::Break(problem));
        }
        self.healthy.record(computed.model(), &self.adam);
        let lr = self.schedule.learning_rate(step, settings.num_steps);
        computed.apply_at(&mut self.adam, lr);
        let config = &self.plan.config;
        let predicted: usize = self
            .batch
            .iter()
            .map(|document| config.predicted_positions(document.len()))
            .sum();
        self.progress.step(step + 1, loss, lr, predicted);
        Ok(ControlFlow::Continue(loss))
    }

    /// Saves the last healthy state beside `--out` (which keeps its contents) and says how to go on.
    fn diverged(self, step: usize, problem: &str) -> CliError {
        self.progress.finish();
        let paths = &self.plan.paths;
        let state = self.plan.checkpoint(
            self.healthy.params,
            Some(self.healthy.adam),
            self.best_val_loss,
        );
        if let Err(error) = self.plan.save(&state, &paths.healthy) {
            return error;
        }
        CliError::input(format!(
            "training diverged at step {}: {problem}; {} is unchanged and the last healthy state (step {step}) is in {}: lower --lr and continue from it with --init",
            step + 1,
            paths.out.display(),
            paths.healthy.display()
        ))
    }

    /// The validation loss after step `step` (from 0), when one is due: every `--eval-every`
    /// steps and at the run's end, which also scores the whole split when that is cheap.
    fn evaluate(&mut self, step: usize) -> Result<Option<f64>> {
        let settings = &self.plan.settings;
        let last = step + 1 == settings.num_steps;
        let due = settings.eval_every > 0 && (step + 1).is_multiple_of(settings.eval_every) || last;
        if !due || self.validation.whole.is_empty() {
            return Ok(None);
        }
        let started = Instant::now();
        let (subset, whole) = (
            self.validation.subset.clone(),
            self.validation.whole.clone(),
        );
        let mut sum = NllSum::default();
        self.add_held_out(subset.clone(), &mut sum)?;
        let val_loss = sum.mean();
        let mut line = format!("step {} | val loss {val_loss:.4}", step + 1);
        if last && subset != whole && self.whole_is_cheap {
            // The subset is the split's first documents: the rest are added to its sum.
            debug_assert_eq!(subset.start, whole.start);
            self.add_held_out(subset.end..whole.end, &mut sum)?;
            let whole_loss = sum.mean();
            line += &format!(" | all {} held-out documents {whole_loss:.4}", whole.len());
            self.final_val_loss = Some(whole_loss);
        } else if last {
            self.final_val_loss = Some(val_loss);
        }
        if self.best_val_loss.is_none_or(|best| val_loss < best) {
            self.best_val_loss = Some(val_loss);
            if self.args.keep_best {
                self.save_best(step)?;
                line += &format!(" | best so far, saved {}", self.plan.paths.best.display());
            }
        }
        self.progress.note(&line);
        self.progress.exclude(started.elapsed());
        Ok(Some(val_loss))
    }

    /// Adds the losses of the held-out documents `range` to `sum`.
    fn add_held_out(&mut self, range: Range<usize>, sum: &mut NllSum) -> Result<()> {
        let data = &self.plan.data;
        let encode = |index, tokens: &mut Vec<usize>| data.held_out_into(index, tokens);
        add_nll(&mut self.model, range, encode, sum)
    }

    /// Saves the model of the lowest validation loss so far (`--keep-best`), after step `step`.
    fn save_best(&self, step: usize) -> Result<()> {
        let mut state = self.plan.checkpoint(
            self.model.params(),
            Some(self.adam.state()),
            self.best_val_loss,
        );
        state
            .metadata
            .insert("best_step".to_string(), (step + 1).to_string());
        self.plan.save(&state, &self.plan.paths.best)
    }

    /// Prints `--sample-count` names on stderr after step `step` (from 0), every `--sample-every`.
    fn print_samples(&mut self, step: usize) -> Result<()> {
        let (args, plan) = (self.args, self.plan);
        let every = args.sample_every;
        if every == 0 || !(step + 1).is_multiple_of(every) {
            return Ok(());
        }
        let started = Instant::now();
        let params = self.model.params();
        // A generator of its own, so that the run's draws (and its final names) stay those of a
        // run without samples.
        let seed = plan.settings.seed ^ (step as u64 + 1);
        let mut names = Vec::new();
        let batch = args.sample_count.clamp(1, defaults::SAMPLE_BATCH);
        let request = plan.names(args.sample_count);
        let stream = StreamPerName::new(|index| name_stream(seed, index));
        Sampler::<F>::new(plan.config, batch)
            .generate_each(&params, &request, stream, |name| {
                names.push(escaped(name).into_owned());
                ControlFlow::Continue(())
            })
            .map_err(sampling_failure)?;
        let line = format!("step {} | samples: {}", step + 1, names.join(" "));
        self.progress.note(&line);
        self.progress.exclude(started.elapsed());
        Ok(())
    }

    /// After `done` steps of the run, saves the checkpoint and the loss CSV every `--save-every`
    /// steps, except at the end, which saves anyway.
    fn save_periodically(mut self, done: usize) -> Result<Self> {
        let due = self
            .args
            .save_every
            .is_some_and(|every| every > 0 && done.is_multiple_of(every))
            && done < self.plan.steps.end;
        if !due {
            return Ok(self);
        }
        // The rows first: if the run dies between the two, the CSV holds rows past the
        // checkpoint, which a resumed run ignores, rather than too few.
        let paths = &self.plan.paths;
        self.csv = self
            .csv
            .save()
            .map_err(|error| cannot_write(&paths.csv, error))?;
        let state = self.plan.checkpoint(
            self.model.params(),
            Some(self.adam.state()),
            self.best_val_loss,
        );
        self.plan.save(&state, &paths.out)?;
        Ok(self)
    }

    /// What the steps leave after `done` steps of the run, the last with loss `last_loss`.
    fn stop(self, done: usize, last_loss: f64, stopped_by: Option<Signal>) -> Trained<F> {
        Trained {
            model: self.model,
            adam: self.adam,
            csv: self.csv,
            progress: self.progress,
            interrupts: self.interrupts,
            best_val_loss: self.best_val_loss,
            final_val_loss: self.final_val_loss,
            last_loss,
            done,
            stopped_by,
        }
    }
}

/// Copies the loss rows of the run being resumed into the new CSV, so that its curve starts at
/// step 1, with a note when the earlier CSV falls short of the checkpoint.
fn carry_over(csv: &mut LossCsv, resumed_from: &Path, plan: &Plan) -> Result<()> {
    let first_step = plan.steps.start;
    let earlier = resumed_from.with_extension("csv");
    let copied = csv
        .carry_over(&earlier, first_step)
        .map_err(|error| cannot_write(&plan.paths.csv, error))?;
    if copied < first_step {
        note!(
            "note: {} has loss rows up to step {copied} only; the new {} starts there",
            earlier.display(),
            plan.paths.csv.display()
        );
    }
    Ok(())
}
