//! The loss log as CSV, one row per training step, written as the steps complete so that a long run
//! does not hold its whole history in memory.
//!
//! The rows wait in an unnamed temporary file, which the operating system deletes however the
//! process ends (an error, Ctrl-C, a kill), and are copied over the CSV only when the run succeeds,
//! through [`gpt::AtomicFile`]: a failed or interrupted run leaves the old CSV as it was and no file
//! behind.

use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use gpt::AtomicFile;

use crate::plot::LossPoint;

/// A CSV with the header `step,train_loss,val_loss`, being written row by row; `val_loss` is empty
/// when not evaluated.
#[derive(Debug)]
pub struct LossCsv {
    path: PathBuf,
    rows: BufWriter<std::fs::File>,
}

impl LossCsv {
    /// Starts the CSV that will replace `path`, with its header.
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut rows = BufWriter::new(tempfile::tempfile()?);
        rows.write_all(b"step,train_loss,val_loss\n")?;
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// Appends the row of `point`.
    pub fn push(&mut self, point: &LossPoint) -> io::Result<()> {
        // Rust's `{}` for f64 is the shortest text that reads back as the same number.
        write!(self.rows, "{},{},", point.step, point.train_loss)?;
        if let Some(val_loss) = point.val_loss {
            write!(self.rows, "{val_loss}")?;
        }
        writeln!(self.rows)
    }

    /// Puts the CSV in place of the old one, atomically.
    pub fn commit(self) -> io::Result<()> {
        let mut rows = self.rows.into_inner().map_err(|error| error.into_error())?;
        rows.rewind()?;
        let mut file = AtomicFile::create(&self.path)?;
        io::copy(&mut rows, &mut file)?;
        file.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::point;
    use std::fs;
    use std::path::PathBuf;

    fn scratch_dir(name: &str) -> PathBuf {
        crate::test_support::scratch_dir("loss-csv", name)
    }

    fn write_csv(path: &Path, points: &[LossPoint]) {
        let mut csv = LossCsv::create(path).unwrap();
        for point in points {
            csv.push(point).unwrap();
        }
        csv.commit().unwrap();
    }

    #[test]
    fn csv_is_exactly_the_expected_text() {
        let dir = scratch_dir("text");
        let path = dir.join("loss.csv");
        let points = [
            point(0, 3.3, Some(3.25)),
            point(1, 2.5, None),
            point(2, 0.125, Some(f64::NAN)),
        ];
        write_csv(&path, &points);
        // The text the CSV had when it was built in memory with `format!("{},{},{val_loss}\n")`.
        let expected = "step,train_loss,val_loss\n0,3.3,3.25\n1,2.5,\n2,0.125,NaN\n";
        assert_eq!(fs::read_to_string(&path).unwrap(), expected);
        write_csv(&path, &[]);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "step,train_loss,val_loss\n"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unfinished_csv_leaves_the_old_one_byte_identical_and_no_temporary_file() {
        // As when training diverges half-way: rows were written, then the run gives up.
        let dir = scratch_dir("unfinished");
        let path = dir.join("loss.csv");
        let old = "step,train_loss,val_loss\n1,3.5,\n";
        fs::write(&path, old).unwrap();
        let mut csv = LossCsv::create(&path).unwrap();
        for step in 1..=10_000 {
            csv.push(&point(step, 2.0, None)).unwrap();
        }
        drop(csv);
        assert_eq!(fs::read_to_string(&path).unwrap(), old);
        let entries: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(entries.len(), 1, "a temporary file was left: {entries:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
