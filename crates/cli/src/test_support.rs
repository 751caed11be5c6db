//! Helpers shared by the unit tests of this crate.

use crate::loss_log::LossPoint;

/// An empty directory of its own for one test, removed when the returned value is dropped.
pub fn scratch_dir(module: &str, name: &str) -> testdata::Scratch {
    testdata::Scratch::new(&format!("{module}-{name}"))
}

/// The losses of one step.
pub fn point(step: usize, train_loss: f64, val_loss: Option<f64>) -> LossPoint {
    LossPoint {
        step,
        train_loss,
        val_loss,
    }
}
