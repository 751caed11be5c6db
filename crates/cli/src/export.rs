//! `microgpt export`: a checkpoint's weights alone, for PyTorch's `load_state_dict`.
//!
//! The file keeps DESIGN.md's tensor names and `[out, in]` shapes and the metadata a model needs
//! (`format`, `vocab`, the configuration), so that `microgpt sample` still reads it; the optimizer
//! moments (`adam.*`, twice the weights) and the run's settings are left out.

use std::collections::BTreeMap;

use gpt::Checkpoint;

use crate::args::ExportArgs;
use crate::error::Result;
use crate::outputs::{self, Input, Planned};
use crate::stream::note;
use crate::{checkpoint_error, save_checkpoint};

/// Runs `export`.
pub fn run(args: ExportArgs) -> Result<()> {
    outputs::check(
        &[Planned {
            what: "the exported weights (--out)",
            path: &args.out,
            may_replace: None,
        }],
        &[Input {
            what: "the checkpoint (--model)",
            path: &args.model,
        }],
    )?;
    let checkpoint =
        gpt::load::<f64>(&args.model).map_err(|error| checkpoint_error(&args.model, error))?;
    let weights = Checkpoint {
        params: checkpoint.params,
        tokenizer: checkpoint.tokenizer,
        adam: None,
        metadata: BTreeMap::from([("dtype".to_string(), args.dtype.to_string())]),
    };
    save_checkpoint(&weights, &args.out, args.dtype)?;
    note!(
        "saved the {} weights of {} to {} ({})",
        weights.params.num_params(),
        args.model.display(),
        args.out.display(),
        args.dtype
    );
    Ok(())
}
