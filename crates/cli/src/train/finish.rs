//! The end of a run: the final checkpoint and loss curve, then the report and the new names.

use std::ops::ControlFlow;

use gpt::{Adam, Checkpoint, Model, Sampler};
use tape::Float;

use crate::args::TrainArgs;
use crate::atomic_file::{Staged, put_in_place};
use crate::error::{CliError, Kind, Result};
use crate::loss_csv::LossCsv;
use crate::plot;
use crate::progress::Progress;
use crate::rng::Generator;
use crate::sample::generate_names;
use crate::signals::{Interrupts, Signal};
use crate::stream::{escaped, note};

use super::paths::cannot_write;
use super::plan::Plan;
use super::report::Report;
use super::sampling_failure;

/// What the steps leave: the trained state, and the loss CSV still being written.
pub struct Trained<F: Float> {
    pub model: Model<F>,
    pub adam: Adam<F>,
    pub csv: LossCsv,
    pub progress: Progress,
    pub interrupts: Interrupts,
    pub best_val_loss: Option<f64>,
    /// The validation loss of the run's last step, recorded in the final checkpoint.
    pub final_val_loss: Option<f64>,
    pub last_loss: f64,
    /// The steps of the run done so far.
    pub done: usize,
    /// The signal that stopped the steps early.
    pub stopped_by: Option<Signal>,
}

/// Saves everything before anything is reported, so that a closed stdout loses nothing; a run
/// stopped by a signal then ends with the signal's status, any other prints its last loss and
/// its names.
pub fn finish<F: Float>(
    args: &TrainArgs,
    plan: &Plan,
    trained: Trained<F>,
    rng: &mut Generator,
    report: &mut Report,
) -> Result<()> {
    let Trained {
        model,
        adam,
        csv,
        progress,
        interrupts,
        best_val_loss,
        final_val_loss,
        last_loss,
        done,
        stopped_by,
    } = trained;
    note_throughput(progress, plan.steps.start, done);
    let mut checkpoint = plan.checkpoint(model.params(), Some(adam.state()), best_val_loss);
    if let Some(loss) = final_val_loss {
        checkpoint
            .metadata
            .insert("val_loss".to_string(), loss.to_string());
    }
    let paths = &plan.paths;
    save_outputs(plan, &checkpoint, csv)?;
    if args.keep_best
        && let Some(best) = best_val_loss
    {
        note!(
            "best validation loss {best:.4}: its checkpoint is {}",
            paths.best.display()
        );
    }
    if let Some(signal) = stopped_by.or(interrupts.received()) {
        return Err(interrupted(signal, done, plan));
    }
    let (last_step, num_steps) = (plan.steps.end, plan.settings.num_steps);
    report.line(format_args!(
        "step {last_step:4} / {num_steps:4} | loss {last_loss:.4}"
    ))?;
    print_names(args, plan, &checkpoint, rng, report)
}

/// Removes the progress bar and says how fast steps `first_step + 1..=done` ran.
fn note_throughput(progress: Progress, first_step: usize, done: usize) {
    let (training_time, throughput) = progress.throughput();
    progress.finish();
    note!(
        "trained steps {}..{done} in {:.2}s, {:.0} tokens/s (validation excluded)",
        first_step + 1,
        training_time.as_secs_f64(),
        throughput
    );
}

/// Puts the checkpoint, the loss CSV and its chart in place together: each is written in full to
/// its temporary file first, and only when all three are complete are they renamed over the old
/// ones, so that a failure (a full disk) leaves the previous run's three files as they were.
fn save_outputs<F: Float>(plan: &Plan, checkpoint: &Checkpoint<F>, csv: LossCsv) -> Result<()> {
    let paths = &plan.paths;
    // An error drops the files staged before it, which removes their temporary files.
    let checkpoint = plan.stage(checkpoint, &paths.out)?;
    let (csv, svg) = stage_loss_curve(plan, csv)?;
    put_in_place([checkpoint, csv, svg]).map_err(|error| {
        CliError::failure(format!(
            "cannot save the checkpoint and its loss curve: {error}"
        ))
    })?;
    note!(
        "saved {} (loss curve: {} and {})",
        paths.out.display(),
        paths.csv.display(),
        paths.svg.display()
    );
    Ok(())
}

/// The loss CSV, complete, and its chart drawn beside it, both ready to be put in place.
fn stage_loss_curve(plan: &Plan, csv: LossCsv) -> Result<(Staged, Staged)> {
    let paths = &plan.paths;
    let (csv, loss_log) = csv
        .stage()
        .map_err(|error| cannot_write(&paths.csv, error))?;
    let svg = plot::stage_svg(&paths.svg, &loss_log, &chart_title(plan))
        .map_err(|error| cannot_write(&paths.svg, error))?;
    Ok((csv, svg))
}

fn chart_title(plan: &Plan) -> String {
    format!(
        "microgpt loss ({} steps, lr {})",
        plan.settings.num_steps, plan.settings.lr
    )
}

/// A run stopped by `signal` after `done` steps, saved: its status is the signal's.
fn interrupted(signal: Signal, done: usize, plan: &Plan) -> CliError {
    let out = plan.paths.out.display();
    CliError {
        message: format!(
            "{}: stopped after step {done} of {} and saved {out}; continue with --resume {out}",
            signal.name(),
            plan.settings.num_steps,
        ),
        kind: Kind::Interrupted(signal.exit_status()),
    }
}

/// The `--num-samples` names sampled from the final checkpoint, on stdout; a model of running
/// text is continued by `microgpt sample` instead, which the note says how to call.
fn print_names<F: Float>(
    args: &TrainArgs,
    plan: &Plan,
    checkpoint: &Checkpoint<F>,
    rng: &mut Generator,
    report: &mut Report,
) -> Result<()> {
    let text_mode = plan.data.text.is_some();
    if text_mode && args.num_samples > 0 {
        note!(
            "continue text with: microgpt sample --model {} --length 200 --prompt TEXT",
            plan.paths.out.display()
        );
    }
    if args.num_samples == 0 || report.closed || text_mode {
        return Ok(());
    }
    report.line(format_args!("--- inference (new, hallucinated names) ---"))?;
    let mut index = 0;
    let mut written = Ok(());
    let on_name = |name: &str| {
        index += 1;
        written = report.line(format_args!("sample {index:2}: {}", escaped(name)));
        if written.is_ok() && !report.closed {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    };
    let mut sampler = Sampler::<F>::new(plan.config, plan.sample_batch);
    let request = plan.names(args.num_samples);
    // With --rng python, microgpt.py's names: its one stream, after the initial weights' draws;
    // otherwise the names `microgpt sample --seed SEED` prints from this checkpoint.
    let seed = plan.settings.seed;
    generate_names(
        &mut sampler,
        &checkpoint.params,
        &request,
        seed,
        rng,
        on_name,
    )
    .map_err(sampling_failure)?;
    written
}
