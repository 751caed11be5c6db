//! A tape's parameter values, shareable between tapes without a copy.

use std::ops::Deref;
use std::sync::Arc;

use crate::Tensor;

/// The parameter values of a tape, behind an [`Arc`] so that other tapes can read the same ones:
/// the replicas of a [`DataParallel`](crate::DataParallel) share the main tape's instead of
/// holding copies.
///
/// Changing them is copy-on-write ([`Parameters::make_mut`]): values shared with another tape are
/// copied first, so one tape never changes another's. `DataParallel` keeps that copy from happening
/// by having its replicas let go of the main tape's values whenever the main tape is borrowed
/// mutably, and take them again before they record.
pub(crate) struct Parameters<F>(Arc<Vec<Tensor<F>>>);

impl<F: Clone> Parameters<F> {
    /// No parameters.
    pub(crate) fn new() -> Self {
        Parameters(Arc::new(Vec::new()))
    }

    /// The values to change: this tape's own, copied first if another tape shares them.
    pub(crate) fn make_mut(&mut self) -> &mut Vec<Tensor<F>> {
        Arc::make_mut(&mut self.0)
    }

    /// Makes these the same values as `other`'s, shared rather than copied (and lets go of the
    /// values held before).
    pub(crate) fn share(&mut self, other: &Parameters<F>) {
        if !Arc::ptr_eq(&self.0, &other.0) {
            self.0 = Arc::clone(&other.0);
        }
    }
}

impl<F> Deref for Parameters<F> {
    type Target = [Tensor<F>];

    fn deref(&self) -> &[Tensor<F>] {
        &self.0
    }
}

impl<'a, F> IntoIterator for &'a Parameters<F> {
    type Item = &'a Tensor<F>;
    type IntoIter = std::slice::Iter<'a, Tensor<F>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_values_are_read_in_place_and_copied_before_a_change() {
        let mut main = Parameters::<f64>::new();
        main.make_mut().push(Tensor::zeros(&[2]));
        let mut replica = Parameters::new();
        replica.share(&main);
        assert_eq!(
            replica[0].as_slice().as_ptr(),
            main[0].as_slice().as_ptr(),
            "a replica reads the main values, not a copy"
        );
        main.make_mut()[0].as_mut_slice()[0] = 1.0;
        assert_eq!(main[0].as_slice(), [1.0, 0.0]);
        assert_eq!(
            replica[0].as_slice(),
            [0.0, 0.0],
            "a change never reaches a sharer"
        );
    }

    #[test]
    fn values_no_one_else_holds_change_in_place() {
        let mut main = Parameters::<f32>::new();
        main.make_mut().push(Tensor::zeros(&[3]));
        let mut replica = Parameters::new();
        replica.share(&main);
        let detached = Parameters::new();
        replica.share(&detached);
        let before = main[0].as_slice().as_ptr();
        main.make_mut()[0].as_mut_slice()[2] = 4.0;
        assert_eq!(main[0].as_slice().as_ptr(), before, "no copy once unshared");
        assert_eq!(main[0].as_slice(), [0.0, 0.0, 4.0]);
    }
}
