//! Data parallelism: a batch's chunks recorded on several tapes over the same parameter values,
//! on rayon's threads, with their gradients added in chunk order.
//!
//! A tape is a single-threaded recording, so a batch is spread over the cores by giving each
//! thread its own tape (a replica), which records one chunk per round. The replicas read the main
//! tape's parameter values, shared rather than copied. The chunks are cut from the batch by a
//! fixed chunk size, never by the number of threads, and their losses and gradients are added in
//! chunk order; every chunk is recorded the same way whichever thread takes it, so the results are
//! the same bits on one thread or on many. A replica costs its recording and the gradients of the
//! parameters, so there are as many as threads, not as chunks: a batch of 32 documents in chunks
//! of 8 on one thread is recorded on the main tape alone.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::parameters::Parameters;
use crate::tape::Slot;
use crate::{Float, Gradients, Tape, TapeError, Tensor, Var};

/// A model's parameters on a main tape, plus replica tapes that record a batch's chunks in
/// parallel (with rayon) and add their gradients in a fixed order.
///
/// The main tape is replica 0: it records the first chunk of each round, and its parameters are
/// the model's. The other replicas (one per further thread) are created the first time a batch
/// needs them and kept; they read the main tape's parameter values, not copies of them. Tapes
/// change shared parameters copy-on-write, so while the main tape is borrowed mutably
/// ([`DataParallel::tape_mut`], [`DataParallel::tape_and_gradients_mut`],
/// [`DataParallel::record_on_main`]) the replicas let go of its values, which then change in place,
/// and they take them again before their next chunk: owning the main tape is how the library keeps
/// the replicas' values current without a copy, with nothing for the caller to remember.
///
/// Every tape gets per-replica state `S` from the `setup` closure given to [`DataParallel::new`]:
/// the parameters' handles on that tape, the custom ops registered on it (an op's id belongs to the
/// tape that registered it), reusable buffers. `setup` runs once per tape, the main one included.
/// The state is `Send + Sync`, as the tapes are: replicas are handed to rayon's threads.
///
/// [`DataParallel::record_batch`] returns the batch's loss and gradients: the sums over the chunks,
/// in chunk order, of each chunk's loss and gradients. For the batch mean, the recording closure
/// scales each chunk's loss by the chunk's share of the batch, as below. Once every replica has
/// seen a chunk as big as the current ones, a batch allocates nothing.
///
/// Fitting `y = w x` to eight points, in chunks of three, on however many threads rayon has:
///
/// ```
/// use ndarray::arr1;
/// use tape::{DataParallel, Tape, Var};
///
/// let points: Vec<(f64, f64)> = (0..8).map(|i| (i as f64, 3.0 * i as f64)).collect();
/// let mut tape = Tape::<f64>::new();
/// tape.parameter(arr1(&[0.0]));
/// // Each replica's state: the handle of `w` on that replica's tape.
/// let mut parallel = DataParallel::new(tape, |tape| tape.parameters().next().unwrap());
/// for _ in 0..100 {
///     let batch = points.len() as f64;
///     let (loss, _) = parallel.record_batch(&points, 3, |tape, &mut w: &mut Var, chunk| {
///         let x = tape.constant(arr1(&chunk.iter().map(|p| p.0).collect::<Vec<_>>()));
///         let y = tape.constant(arr1(&chunk.iter().map(|p| p.1).collect::<Vec<_>>()));
///         let prediction = tape.mul(x, w)?;
///         let error = tape.sub(prediction, y)?;
///         let squared = tape.dot(error, error)?;
///         // The chunk's sum of squares over the batch size: the chunks add up to the batch mean.
///         tape.scale(squared, 1.0 / batch)
///     })?;
///     assert!(loss.is_finite());
///     let (tape, gradients) = parallel.tape_and_gradients_mut();
///     for (var, value) in tape.parameters_mut() {
///         value.view_mut().scaled_add(-0.01, &gradients.parameter(var).view());
///     }
/// }
/// let w = parallel.tape().parameters().next().unwrap();
/// assert!((parallel.tape().value(w).as_slice()[0] - 3.0).abs() < 1e-9);
/// # Ok::<(), tape::TapeError>(())
/// ```
pub struct DataParallel<F: Float, S> {
    /// `replicas[0]` holds the main tape; the others share its parameter values while recording.
    replicas: Vec<Replica<F, S>>,
    setup: Box<Setup<F, S>>,
    /// The gradients of the last batch when it took more than one chunk, in parameter order.
    summed: Vec<Tensor<F>>,
    /// The number of chunks of the last batch (0 before any, or after one that failed).
    chunks: usize,
    /// No parameters: what the replicas hold while the main tape is borrowed mutably.
    detached: Parameters<F>,
}

/// What makes a tape's state: run once on every tape.
type Setup<F, S> = dyn Fn(&mut Tape<F>) -> S + Send + Sync;

/// One tape and what belongs to it: the unit of work of one thread.
struct Replica<F: Float, S> {
    tape: Tape<F>,
    state: S,
    gradients: Gradients<F>,
    /// This tape's parameter handles, in the main tape's order.
    parameters: Vec<Var>,
    /// The loss of the chunk this replica recorded last, or why recording it failed.
    outcome: Result<F, TapeError>,
}

impl<F: Float, S> Replica<F, S> {
    fn new(mut tape: Tape<F>, setup: &Setup<F, S>) -> Self {
        let state = setup(&mut tape);
        let parameters = tape.parameters().collect();
        Replica {
            tape,
            state,
            gradients: Gradients::new(),
            parameters,
            outcome: Ok(F::zero()),
        }
    }

    /// Clears the tape and records `chunk`'s loss with `record`, then its gradients.
    fn record<T>(
        &mut self,
        chunk: &[T],
        record: &(impl Fn(&mut Tape<F>, &mut S, &[T]) -> Result<Var, TapeError> + Sync),
    ) {
        self.tape.clear();
        self.outcome = record(&mut self.tape, &mut self.state, chunk).and_then(|loss| {
            self.tape
                .backward_parameters_into(loss, &mut self.gradients)?;
            Ok(self.tape.scalar(loss))
        });
    }

    /// The gradient of parameter `index` (in the main tape's order) from this replica's last chunk.
    fn parameter_gradient(&self, index: usize) -> &Tensor<F> {
        self.gradients.parameter(self.parameters[index])
    }

    /// Makes this replica read `main`'s parameter values (and know their handles on this tape,
    /// parameters added to `main` since included).
    fn attach(&mut self, main: &Tape<F>) {
        self.tape.parameters.share(&main.parameters);
        let known = self.parameters.len();
        self.parameters.extend(self.tape.parameters().skip(known));
    }
}

impl<F: Float, S: Send + Sync> DataParallel<F, S> {
    /// Takes over `tape`, whose parameters are the model's, and runs `setup` on it; `setup` will
    /// run on each replica tape too, when one is created, and returns what recording a chunk on
    /// that tape needs (see [`DataParallel`]). A replica's parameters are added in the main tape's
    /// order, so `tape.parameters()` inside `setup` gives the same parameters on every tape.
    ///
    /// ```
    /// use ndarray::arr2;
    /// use tape::{DataParallel, Tape, Var};
    ///
    /// let mut tape = Tape::<f32>::new();
    /// tape.parameter(arr2(&[[1.0, 2.0], [3.0, 4.0]]));
    /// let parallel = DataParallel::new(tape, |tape| tape.parameters().collect::<Vec<Var>>());
    /// assert_eq!(parallel.state().len(), 1);
    /// assert_eq!(parallel.replicas(), 1);
    /// ```
    pub fn new(tape: Tape<F>, setup: impl Fn(&mut Tape<F>) -> S + Send + Sync + 'static) -> Self {
        let setup: Box<Setup<F, S>> = Box::new(setup);
        DataParallel {
            replicas: vec![Replica::new(tape, &*setup)],
            setup,
            summed: Vec::new(),
            chunks: 0,
            detached: Parameters::new(),
        }
    }

    /// The main tape: its parameters are the model's.
    pub fn tape(&self) -> &Tape<F> {
        &self.replicas[0].tape
    }

    /// The main tape, to change its parameters (an optimizer step, loading weights, adding a
    /// parameter): the replicas get the new values before the next batch that needs them.
    pub fn tape_mut(&mut self) -> &mut Tape<F> {
        &mut self.main_mut().tape
    }

    /// The main replica, for a change of the parameters: the other replicas let go of the values
    /// first, so the change happens in place rather than on a copy.
    fn main_mut(&mut self) -> &mut Replica<F, S> {
        let (main, others) = self.replicas.split_first_mut().expect("the main tape");
        for replica in others {
            replica.tape.parameters.share(&self.detached);
        }
        main
    }

    /// The main tape's state, as `setup` made it.
    pub fn state(&self) -> &S {
        &self.replicas[0].state
    }

    /// The number of tapes, the main one included: one per rayon thread that the widest batch or
    /// evaluation so far had chunks for.
    pub fn replicas(&self) -> usize {
        self.replicas.len()
    }

    /// Runs `record` on the main tape and its state, for work on one example (evaluating it,
    /// sampling). The tape is not cleared first; the replicas see any change of the parameters.
    ///
    /// ```
    /// use ndarray::arr1;
    /// use tape::{DataParallel, Tape, Var};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// tape.parameter(arr1(&[2.0]));
    /// let mut parallel = DataParallel::new(tape, |tape| tape.parameters().next().unwrap());
    /// let doubled = parallel.record_on_main(|tape, &mut w: &mut Var| {
    ///     tape.clear();
    ///     let twice = tape.scale(w, 2.0)?;
    ///     Ok::<f64, tape::TapeError>(tape.scalar(twice))
    /// })?;
    /// assert_eq!(doubled, 4.0);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn record_on_main<R>(&mut self, record: impl FnOnce(&mut Tape<F>, &mut S) -> R) -> R {
        let main = self.main_mut();
        record(&mut main.tape, &mut main.state)
    }

    /// Splits `items` into chunks of `chunk_size` (the last one shorter if need be), records each
    /// chunk's loss with `record`, in rounds of one chunk per replica (per rayon thread) in
    /// parallel, runs each chunk's backward pass and returns the batch's loss and gradients: the
    /// chunks' losses and gradients added in chunk order, the same bits for any number of threads.
    ///
    /// `record(tape, state, chunk)` receives a cleared tape whose parameters have the main tape's
    /// values, that tape's state (see [`DataParallel::new`]) and the chunk, and returns the chunk's
    /// one-element loss. It must not change the parameters, and it reads them through the handles
    /// in the state: each tape has its own, and the main tape's are foreign on a replica
    /// ([`TapeError::ForeignVar`]). The gradients are also available afterwards through
    /// [`DataParallel::gradients`].
    ///
    /// A batch of one chunk is recorded on the main tape, on the calling thread, and its gradients
    /// are returned without a copy.
    ///
    /// # Errors
    /// A [`TapeError::Argument`] for an empty batch or a zero `chunk_size`; otherwise the error of
    /// the first chunk (in chunk order) whose recording or backward pass failed, after which there
    /// are no gradients.
    pub fn record_batch<T: Sync>(
        &mut self,
        items: &[T],
        chunk_size: usize,
        record: impl Fn(&mut Tape<F>, &mut S, &[T]) -> Result<Var, TapeError> + Sync,
    ) -> Result<(F, BatchGradients<'_, F>), TapeError> {
        let chunks = chunk_count("record_batch", items, chunk_size)?;
        self.chunks = 0;
        if chunks == 1 {
            let main = &mut self.replicas[0];
            main.record(items, &record);
            let loss = main.outcome.clone()?;
            self.chunks = 1;
            return Ok((loss, self.gradients()));
        }
        let width = round_width(chunks);
        self.prepare(width);
        let mut total = F::zero();
        for (round, group) in items.chunks(chunk_size * width).enumerate() {
            let used = group.len().div_ceil(chunk_size);
            let replicas = &mut self.replicas[..used];
            if let [main] = replicas {
                main.record(group, &record);
            } else {
                replicas
                    .par_iter_mut()
                    .zip(group.par_chunks(chunk_size))
                    .for_each(|(replica, chunk)| replica.record(chunk, &record));
            }
            for replica in replicas.iter_mut() {
                total += std::mem::replace(&mut replica.outcome, Ok(F::zero()))?;
            }
            self.add_gradients(used, round == 0);
        }
        self.chunks = chunks;
        Ok((total, self.gradients()))
    }

    /// Runs `run(tape, state, chunk)` on every chunk of `chunk_size` items, in parallel over up to
    /// one replica per rayon thread, and hands each chunk's replica state to `collect`, in chunk
    /// order: for evaluation, where `run` records without gradients
    /// ([`Tape::without_grad`]) and leaves its results in the state. `run` receives a cleared tape
    /// with the main tape's parameter values and must not change them. The gradients of the last
    /// [`DataParallel::record_batch`] are left as they were.
    ///
    /// ```
    /// use ndarray::arr1;
    /// use tape::{DataParallel, Tape, Var};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// tape.parameter(arr1(&[0.5]));
    /// // Each replica's state: the handle of `w` and the predictions of its last chunk.
    /// let mut parallel =
    ///     DataParallel::new(tape, |tape| (tape.parameters().next().unwrap(), Vec::new()));
    /// let inputs: Vec<f64> = (0..10).map(f64::from).collect();
    /// let mut predictions = Vec::new();
    /// parallel.evaluate(
    ///     &inputs,
    ///     4,
    ///     |tape, (w, out): &mut (Var, Vec<f64>), chunk| {
    ///         let x = tape.constant(arr1(chunk));
    ///         let y = tape.without_grad(|tape| tape.mul(x, *w))?;
    ///         out.clear();
    ///         out.extend_from_slice(tape.value(y).as_slice());
    ///         Ok(())
    ///     },
    ///     |(_, out)| predictions.extend_from_slice(out),
    /// )?;
    /// assert_eq!(predictions, inputs.iter().map(|x| 0.5 * x).collect::<Vec<_>>());
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    ///
    /// # Errors
    /// A [`TapeError::Argument`] for a zero `chunk_size`, or the first error (in chunk order) that
    /// `run` returned; the chunks after it are not collected.
    pub fn evaluate<T: Sync>(
        &mut self,
        items: &[T],
        chunk_size: usize,
        run: impl Fn(&mut Tape<F>, &mut S, &[T]) -> Result<(), TapeError> + Sync,
        mut collect: impl FnMut(&S),
    ) -> Result<(), TapeError> {
        if items.is_empty() && chunk_size > 0 {
            return Ok(());
        }
        let chunks = chunk_count("evaluate", items, chunk_size)?;
        let run_one = |replica: &mut Replica<F, S>, chunk: &[T]| {
            replica.tape.clear();
            replica.outcome = run(&mut replica.tape, &mut replica.state, chunk).map(|()| F::zero());
        };
        if chunks == 1 {
            let main = &mut self.replicas[0];
            run_one(main, items);
            main.outcome.clone()?;
            collect(&main.state);
            return Ok(());
        }
        let width = round_width(chunks);
        self.prepare(width);
        for group in items.chunks(chunk_size * width) {
            let used = group.len().div_ceil(chunk_size);
            let replicas = &mut self.replicas[..used];
            if let [main] = replicas {
                run_one(main, group);
            } else {
                replicas
                    .par_iter_mut()
                    .zip(group.par_chunks(chunk_size))
                    .for_each(|(replica, chunk)| run_one(replica, chunk));
            }
            for replica in replicas.iter_mut() {
                std::mem::replace(&mut replica.outcome, Ok(F::zero()))?;
                collect(&replica.state);
            }
        }
        Ok(())
    }

    /// The gradients of the last [`DataParallel::record_batch`] (none before the first, or after
    /// one that failed).
    pub fn gradients(&self) -> BatchGradients<'_, F> {
        let main = &self.replicas[0];
        let source = match self.chunks {
            0 => Source::Nothing,
            1 => Source::Tape(&main.gradients),
            _ => Source::Summed(&self.summed),
        };
        BatchGradients {
            source,
            parameters: &main.parameters,
        }
    }

    /// The main tape, to change its parameters, and the last batch's gradients, to change them
    /// by: an optimizer step. The replicas get the new values before the next batch that needs
    /// them.
    ///
    /// ```
    /// use ndarray::arr1;
    /// use tape::{DataParallel, Tape};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// tape.parameter(arr1(&[1.0, -1.0]));
    /// let mut parallel = DataParallel::new(tape, |tape| tape.parameters().next().unwrap());
    /// let items = [1.0, 2.0, 3.0];
    /// // The loss sum(w) * x summed over the items: its gradient is 6 for each weight.
    /// parallel.record_batch(&items, 2, |tape, w, chunk| {
    ///     let total = tape.sum(*w)?;
    ///     tape.scale(total, chunk.iter().sum::<f64>())
    /// })?;
    /// let (tape, gradients) = parallel.tape_and_gradients_mut();
    /// for (var, value) in tape.parameters_mut() {
    ///     value.view_mut().scaled_add(-0.5, &gradients.parameter(var).view());
    /// }
    /// let w = parallel.tape().parameters().next().unwrap();
    /// assert_eq!(parallel.tape().value(w).as_slice(), [-2.0, -4.0]);
    /// # Ok::<(), tape::TapeError>(())
    /// ```
    pub fn tape_and_gradients_mut(&mut self) -> (&mut Tape<F>, BatchGradients<'_, F>) {
        self.main_mut();
        let (main, _) = self.replicas.split_first_mut().expect("the main tape");
        let source = match self.chunks {
            0 => Source::Nothing,
            1 => Source::Tape(&main.gradients),
            _ => Source::Summed(&self.summed),
        };
        let gradients = BatchGradients {
            source,
            parameters: &main.parameters,
        };
        (&mut main.tape, gradients)
    }

    /// Makes sure there are at least `count` tapes, all reading the main tape's parameter values.
    fn prepare(&mut self, count: usize) {
        let (main, others) = self.replicas.split_first_mut().expect("the main tape");
        for replica in others {
            replica.attach(&main.tape);
        }
        while self.replicas.len() < count {
            let mut tape = Tape::new();
            tape.parameters.share(&self.replicas[0].tape.parameters);
            let replica = Replica::new(tape, &*self.setup);
            self.replicas.push(replica);
        }
    }

    /// Adds the gradients of the first `used` replicas (a round's chunks, in chunk order) into
    /// `summed`, which the first round overwrites: one parameter per task, so the order of the
    /// additions, and the result, does not depend on the number of threads.
    fn add_gradients(&mut self, used: usize, first_round: bool) {
        let replicas = &self.replicas[..used];
        if first_round {
            self.summed
                .resize_with(replicas[0].parameters.len(), Tensor::empty);
        }
        let add = |(index, sum): (usize, &mut Tensor<F>)| {
            let mut replicas = replicas.iter();
            if first_round {
                let first = replicas.next().expect("a round has a chunk");
                let gradient = first.parameter_gradient(index);
                sum.resize(gradient.shape())
                    .copy_from_slice(gradient.as_slice());
            }
            let sum = sum.as_mut_slice();
            for replica in replicas {
                let gradient = replica.parameter_gradient(index).as_slice();
                for (sum, &x) in sum.iter_mut().zip(gradient) {
                    *sum += x;
                }
            }
        };
        // One round's chunk is added on this thread, without waking the pool for so little.
        if let [_] = replicas {
            self.summed.iter_mut().enumerate().for_each(add);
        } else {
            self.summed.par_iter_mut().enumerate().for_each(add);
        }
    }
}

/// How many replicas record a round of a batch (or evaluation) of `chunks` chunks: one per rayon
/// thread, except on a single CPU, where threads could only take turns, so the main tape records
/// every chunk and rayon's pool is not even started (a pool the caller installed is used as is).
/// Only the speed depends on it: the chunks and the order of their sums do not. The CPUs are
/// counted once (counting reads files and allocates).
fn round_width(chunks: usize) -> usize {
    static ONE_CPU: OnceLock<bool> = OnceLock::new();
    let one_cpu = *ONE_CPU
        .get_or_init(|| std::thread::available_parallelism().is_ok_and(|cpus| cpus.get() == 1));
    if one_cpu && rayon::current_thread_index().is_none() {
        1
    } else {
        rayon::current_num_threads().clamp(1, chunks)
    }
}

/// The number of chunks of `chunk_size` that `items` makes, or an argument error of `op`.
fn chunk_count<T>(op: &'static str, items: &[T], chunk_size: usize) -> Result<usize, TapeError> {
    if chunk_size == 0 {
        return Err(TapeError::argument(op, "chunk_size must be at least 1"));
    }
    if items.is_empty() {
        return Err(TapeError::argument(op, "a batch needs at least one item"));
    }
    Ok(items.len().div_ceil(chunk_size))
}

/// The gradients of a batch recorded by [`DataParallel::record_batch`], keyed by the main tape's
/// parameter handles: each the sum, in chunk order, of that parameter's gradients over the chunks.
#[derive(Clone, Copy)]
pub struct BatchGradients<'a, F: Float> {
    source: Source<'a, F>,
    /// The main tape's parameter handles, in order.
    parameters: &'a [Var],
}

/// Where a batch's gradients live.
enum Source<'a, F: Float> {
    /// No batch recorded yet, or the last one failed.
    Nothing,
    /// A batch of one chunk: the main tape's own backward pass.
    Tape(&'a Gradients<F>),
    /// The sums over several chunks, in parameter order.
    Summed(&'a [Tensor<F>]),
}

impl<F: Float> Clone for Source<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: Float> Copy for Source<'_, F> {}

/// What the optimizers step with: the batch's gradient of each parameter of the main tape.
impl<F: Float> crate::optim::ParameterGradients<F> for BatchGradients<'_, F> {
    fn gradient(&self, _index: usize, var: Var) -> Option<&Tensor<F>> {
        self.get(var)
    }
}

impl<'a, F: Float> BatchGradients<'a, F> {
    /// The batch's gradient with respect to `var`, a parameter of the main tape; `None` if `var`
    /// is not one, or no batch has been recorded.
    pub fn get(&self, var: Var) -> Option<&'a Tensor<F>> {
        let first = self.parameters.first()?;
        let Slot::Parameter(index) = var.slot() else {
            return None;
        };
        if !var.same_tape(*first) {
            return None;
        }
        match self.source {
            Source::Nothing => None,
            Source::Tape(gradients) => gradients.get(var),
            Source::Summed(sums) => sums.get(index),
        }
    }

    /// The batch's gradient with respect to `var` (see [`BatchGradients::get`]).
    ///
    /// # Panics
    /// If no batch has been recorded, or `var` is not a parameter of the main tape.
    pub fn parameter(&self, var: Var) -> &'a Tensor<F> {
        assert!(
            !matches!(self.source, Source::Nothing),
            "no gradients: record a batch first (or the last one failed)"
        );
        self.get(var)
            .unwrap_or_else(|| panic!("{var:?} is not a parameter of the main tape"))
    }

    /// Whether there are gradients (a batch was recorded and did not fail).
    pub fn is_empty(&self) -> bool {
        matches!(self.source, Source::Nothing)
    }

    /// Every parameter of the main tape with its gradient, in the order they were added (nothing
    /// if there are no gradients): what an optimizer pairs with [`Tape::parameters_mut`].
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (Var, &'a Tensor<F>)> + 'a {
        let gradients = *self;
        let count = if self.is_empty() {
            0
        } else {
            self.parameters.len()
        };
        self.parameters[..count]
            .iter()
            .map(move |&var| (var, gradients.parameter(var)))
    }
}
