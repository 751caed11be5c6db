//! The files a run writes, all beside `--out`, and their check against each other and the inputs.

use std::path::{Path, PathBuf};

use crate::atomic_file::temporary_path;
use crate::error::{CliError, Result};
use crate::outputs::{self, Input, Planned};

use super::start::Loaded;

/// The files a run writes, all beside `--out`.
pub struct Paths {
    pub out: PathBuf,
    pub csv: PathBuf,
    pub svg: PathBuf,
    /// Where the last healthy state goes when training diverges (`--out` keeps its contents).
    pub healthy: PathBuf,
    /// The checkpoint of the lowest validation loss (`--keep-best`).
    pub best: PathBuf,
}

impl Paths {
    pub fn new(out: PathBuf) -> Self {
        Paths {
            csv: out.with_extension("csv"),
            svg: out.with_extension("svg"),
            healthy: out.with_extension("last-healthy.safetensors"),
            best: out.with_extension("best.safetensors"),
            out,
        }
    }

    /// The temporary files a save of each may be writing, for the second Ctrl-C to remove.
    pub fn temporaries(&self) -> Vec<PathBuf> {
        [&self.out, &self.csv, &self.svg, &self.healthy, &self.best]
            .into_iter()
            .filter_map(|path| temporary_path(path))
            .collect()
    }
}

/// Every file the run will write, checked against each other and the inputs before step 1.
pub fn check_outputs(
    paths: &Paths,
    data: &Path,
    checkpoint: Option<&Loaded>,
    keep_best: bool,
) -> Result<()> {
    let resumed_from = checkpoint.map(|loaded| loaded.path.as_path());
    let mut planned = vec![
        Planned {
            what: "the checkpoint (--out)",
            path: &paths.out,
            may_replace: resumed_from,
        },
        Planned {
            what: "the loss CSV (beside --out)",
            path: &paths.csv,
            may_replace: None,
        },
        Planned {
            what: "the loss chart (beside --out)",
            path: &paths.svg,
            may_replace: None,
        },
        Planned {
            what: "the last healthy state (beside --out)",
            path: &paths.healthy,
            may_replace: None,
        },
    ];
    if keep_best {
        planned.push(Planned {
            what: "the best checkpoint (--keep-best, beside --out)",
            path: &paths.best,
            // Resuming a run whose best checkpoint is the one resumed from replaces it.
            may_replace: resumed_from,
        });
    }
    let mut inputs = vec![Input {
        what: "the data (--data)",
        path: data,
    }];
    if let Some(loaded) = checkpoint {
        inputs.push(Input {
            what: if loaded.resumed {
                "the checkpoint (--resume)"
            } else {
                "the checkpoint (--init)"
            },
            path: &loaded.path,
        });
    }
    outputs::check(&planned, &inputs)
}

/// A write that fails after the outputs were checked is the environment's failure (a full disk).
pub fn cannot_write(path: &Path, error: std::io::Error) -> CliError {
    CliError::failure(format!("cannot write {}: {error}", path.display()))
}
