//! Where the draws of each name come from: one generator for every name, or one per name.

use crate::random::Randomness;

/// How a [`Sampler`](super::Sampler) finds the generator of the name in each slot.
///
/// [`SharedStream`] and [`StreamPerName`] are the two the crate provides; the trait lets
/// [`Sampler::generate_each`](super::Sampler::generate_each) take either.
pub trait Draws {
    /// The generator type.
    type Rng: Randomness;
    /// Slot `slot` starts name `index` (names are numbered from 0 in the order they start).
    fn begin(&mut self, slot: usize, index: usize);
    /// The generator of the name in `slot`.
    fn rng(&mut self, slot: usize) -> &mut Self::Rng;
}

/// One generator for every name, drawn in decode order: with a batch of one, microgpt.py's order.
pub struct SharedStream<'a, R>(pub &'a mut R);

impl<R: Randomness> Draws for SharedStream<'_, R> {
    type Rng = R;
    fn begin(&mut self, _: usize, _: usize) {}
    fn rng(&mut self, _: usize) -> &mut R {
        self.0
    }
}

/// Name `i` draws from a generator of its own, `stream(i)`, so that it is the same name for any
/// count and any batch size: the i-th name of a seed is that seed's i-th name however many are
/// asked for and however many are generated at a time.
pub struct StreamPerName<R, S> {
    stream: S,
    slots: Vec<Option<R>>,
}

impl<R, S: FnMut(usize) -> R> StreamPerName<R, S> {
    /// Draws in which name `i` uses `stream(i)`.
    pub fn new(stream: S) -> Self {
        StreamPerName {
            stream,
            slots: Vec::new(),
        }
    }
}

impl<R: Randomness, S: FnMut(usize) -> R> Draws for StreamPerName<R, S> {
    type Rng = R;
    fn begin(&mut self, slot: usize, index: usize) {
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, || None);
        }
        self.slots[slot] = Some((self.stream)(index));
    }
    fn rng(&mut self, slot: usize) -> &mut R {
        self.slots[slot]
            .as_mut()
            .expect("a busy slot has begun a name")
    }
}
