//! One head's view of the rows attention reads, with the common head sizes known at compile time.

use tape::Float;

/// One head's slices of a row: `start` is where its columns begin within a `width`-wide block (the
/// query, key and value blocks of a qkv row, or an output row).
///
/// `D` is the head size when it is one of the common ones (see `with_head!`), 0 otherwise: with a
/// size known at compile time every slice below has a constant length, so the dot products and
/// updates of a small head compile to a few straight-line vector instructions instead of loops with
/// a counter, a remainder and bounds checks.
#[derive(Clone, Copy)]
pub(crate) struct Head<const D: usize> {
    pub(crate) width: usize,
    pub(crate) head_dim: usize,
    pub(crate) start: usize,
}

/// Calls `$body` with `$head` bound to the [`Head`] at columns `$start`, its size a compile-time
/// constant for head sizes 4, 8 and 16.
macro_rules! with_head {
    ($width:expr, $head_dim:expr, $start:expr, |$head:ident| $body:expr) => {{
        let (width, head_dim, start) = ($width, $head_dim, $start);
        match head_dim {
            4 => {
                let $head = Head::<4> {
                    width,
                    head_dim,
                    start,
                };
                $body
            }
            8 => {
                let $head = Head::<8> {
                    width,
                    head_dim,
                    start,
                };
                $body
            }
            16 => {
                let $head = Head::<16> {
                    width,
                    head_dim,
                    start,
                };
                $body
            }
            _ => {
                let $head = Head::<0> {
                    width,
                    head_dim,
                    start,
                };
                $body
            }
        }
    }};
}
pub(crate) use with_head;

impl<const D: usize> Head<D> {
    /// The head size: `D` when it is known at compile time.
    pub(crate) fn size(&self) -> usize {
        if D == 0 { self.head_dim } else { D }
    }
    /// The head's columns of a `width`-wide row: a query, an output, or a row of a key-value
    /// cache.
    pub(crate) fn query<'a, F>(&self, row: &'a [F]) -> &'a [F] {
        &row[self.start..][..self.size()]
    }
    pub(crate) fn key<'a, F>(&self, row: &'a [F]) -> &'a [F] {
        &row[self.width + self.start..][..self.size()]
    }
    pub(crate) fn value<'a, F>(&self, row: &'a [F]) -> &'a [F] {
        &row[2 * self.width + self.start..][..self.size()]
    }
    /// The head's slice of an output row (or of a query block): [`Head::query`]'s columns.
    pub(crate) fn output_mut<'a, F>(&self, row: &'a mut [F]) -> &'a mut [F] {
        &mut row[self.start..][..self.size()]
    }
    /// The head's key and value slices of a row's `[2 width]` key-value part.
    pub(crate) fn key_value_mut<'a, F>(
        &self,
        key_value: &'a mut [F],
    ) -> (&'a mut [F], &'a mut [F]) {
        let (key, value) = key_value.split_at_mut(self.width);
        (
            &mut key[self.start..][..self.size()],
            &mut value[self.start..][..self.size()],
        )
    }
}

pub(crate) fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    a.iter().zip(b).fold(F::zero(), |sum, (&x, &y)| sum + x * y)
}

/// `y += alpha * x`.
pub(crate) fn axpy<F: Float>(alpha: F, x: &[F], y: &mut [F]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}
