//! Named row-major matrices: how weights go into and gradients come out of a [`crate::ScalarGpt`].

/// One parameter tensor (or its gradient): a name from DESIGN.md (`wte`, `layer0.attn_wq`, ...), a
/// shape `[out, in]`, and `out * in` numbers in row-major order.
///
/// ```
/// let tensor = scalar::NamedTensor { name: "wte".into(), shape: [2, 3], data: vec![0.0; 6] };
/// assert_eq!(tensor.row(1), [0.0; 3]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The parameter's name.
    pub name: String,
    /// `[out, in]`: rows, then columns.
    pub shape: [usize; 2],
    /// Row-major numbers, `shape[0] * shape[1]` of them.
    pub data: Vec<f64>,
}

impl NamedTensor {
    /// Row `index` of the matrix.
    ///
    /// # Panics
    /// If `index >= shape[0]` or the data is shorter than the shape says.
    ///
    /// ```
    /// let tensor = scalar::NamedTensor { name: "w".into(), shape: [2, 2], data: vec![1.0, 2.0, 3.0, 4.0] };
    /// assert_eq!(tensor.row(1), [3.0, 4.0]);
    /// ```
    pub fn row(&self, index: usize) -> &[f64] {
        assert!(index < self.shape[0], "row {index} of {:?}", self.shape);
        let cols = self.shape[1];
        &self.data[index * cols..(index + 1) * cols]
    }
}
