//! What a run decided before its first step, and the checkpoints it writes from it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use gpt::{AdamState, Checkpoint, Config, Params, Request, SamplingOptions};
use tape::Float;

use crate::atomic_file::Staged;
use crate::error::Result;
use crate::settings::RunSettings;
use crate::{save_checkpoint, stage_checkpoint};

use super::fingerprint;
use super::paths::Paths;
use super::training_data::TrainingData;

/// Everything the steps read and none changes.
pub struct Plan {
    pub settings: RunSettings,
    /// The options of every name the run samples.
    pub sampling: SamplingOptions,
    pub paths: Paths,
    pub data: TrainingData,
    pub config: Config,
    /// The steps this invocation runs: from the checkpoint's (or 0) to `--stop-after` or the end.
    pub steps: Range<usize>,
    /// Names generated at once after training.
    pub sample_batch: usize,
    /// The checkpoint of `--resume`, whose loss rows the run's CSV carries over.
    pub resumed_from: Option<PathBuf>,
}

impl Plan {
    /// A checkpoint of the run: its weights and optimizer state with everything else it records.
    pub fn checkpoint<F: Float>(
        &self,
        params: Params<F>,
        adam: Option<AdamState<F>>,
        best_val_loss: Option<f64>,
    ) -> Checkpoint<F> {
        let mut metadata = self.settings.metadata();
        if let Some(best) = best_val_loss {
            metadata.insert("best_val_loss".to_string(), best.to_string());
        }
        fingerprint::record(&mut metadata, self.data.corpus.fingerprint());
        Checkpoint {
            params,
            tokenizer: self.data.tokenizer.clone(),
            adam,
            metadata,
        }
    }

    /// `count` names of the run's vocabulary, drawn with its sampling options.
    pub fn names(&self, count: usize) -> Request<'_> {
        Request {
            options: self.sampling,
            ..Request::new(&self.data.tokenizer, count)
        }
    }

    /// Saves `checkpoint` in the run's precision.
    pub fn save<F: Float>(&self, checkpoint: &Checkpoint<F>, path: &Path) -> Result<()> {
        save_checkpoint(checkpoint, path, self.settings.dtype)
    }

    /// Writes `checkpoint` in the run's precision to its temporary file, flushed to disk, ready to
    /// be put in place with the files saved beside it.
    pub fn stage<F: Float>(&self, checkpoint: &Checkpoint<F>, path: &Path) -> Result<Staged> {
        stage_checkpoint(checkpoint, path, self.settings.dtype)
    }
}
