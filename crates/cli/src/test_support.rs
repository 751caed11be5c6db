//! Helpers shared by the unit tests of this crate.

use std::fs;
use std::path::PathBuf;

use crate::loss_log::LossPoint;

/// An empty directory of its own for one test: `microgpt-<module>-<name>-<pid>` in the system's
/// temporary directory (emptied first if an earlier run left it behind).
pub fn scratch_dir(module: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("microgpt-{module}-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The losses of one step.
pub fn point(step: usize, train_loss: f64, val_loss: Option<f64>) -> LossPoint {
    LossPoint {
        step,
        train_loss,
        val_loss,
    }
}
