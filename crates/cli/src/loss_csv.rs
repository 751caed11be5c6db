//! A run's losses: one row per training step in the CSV, written as the steps complete so that a
//! long run does not hold its whole history in memory, and the bounded [`LossLog`] the chart is
//! drawn from, fed by the same push.
//!
//! The rows go to the temporary file `.NAME.tmp-PID` beside the CSV (through [`AtomicFile`],
//! on the same disk as the CSV, never in `$TMPDIR`), which replaces the CSV only when the run
//! saves (at its end, and at each `--save-every` save): a failed run leaves the CSV of its last
//! save as it was, and removes the temporary file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::atomic_file::{AtomicFile, Durability, Staged};

use crate::loss_log::{LossLog, LossPoint};

/// Commits replace the CSV atomically without flushing it to disk: a crash of the machine can
/// cost rows, which a resumed run notes, but never the checkpoint saved beside them.
const DURABILITY: Durability = Durability::Unsynced;

/// The CSV's first line.
const HEADER: &str = "step,train_loss,val_loss";

/// A CSV with the header `step,train_loss,val_loss`, being written row by row; `val_loss` is empty
/// when not evaluated. Every row also goes into the chart's [`LossLog`].
#[derive(Debug)]
pub struct LossCsv {
    rows: AtomicFile,
    path: PathBuf,
    log: LossLog,
}

impl LossCsv {
    /// Starts the CSV that will replace `path`, with its header.
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut rows = AtomicFile::create(path)?;
        writeln!(rows, "{HEADER}")?;
        Ok(Self {
            rows,
            path: path.to_path_buf(),
            log: LossLog::default(),
        })
    }

    /// Appends the row of `point`, and adds it to the chart's log.
    pub fn push(&mut self, point: &LossPoint) -> io::Result<()> {
        self.log.push(point);
        // Rust's `{}` for f64 is the shortest text that reads back as the same number.
        write!(self.rows, "{},{},", point.step, point.train_loss)?;
        if let Some(val_loss) = point.val_loss {
            write!(self.rows, "{val_loss}")?;
        }
        writeln!(self.rows)
    }

    /// Copies the rows of steps up to `last_step` from the CSV of the run being resumed (to the
    /// chart's log too), so that a resumed run's curve starts at step 1. Returns the last step
    /// copied (0 when `earlier` is missing or holds no such row).
    pub fn carry_over(&mut self, earlier: &Path, last_step: usize) -> io::Result<usize> {
        let file = match File::open(earlier) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(error),
        };
        let mut copied = 0;
        for line in BufReader::new(file).lines().skip(1) {
            let Some(point) = parse_row(&line?) else {
                break;
            };
            if point.step > last_step || point.step <= copied {
                break;
            }
            self.push(&point)?;
            copied = point.step;
        }
        Ok(copied)
    }

    /// The complete CSV, ready to be put in place with the run's other files
    /// ([`crate::atomic_file::put_in_place`]), and the chart's log of its rows.
    pub fn stage(self) -> io::Result<(Staged, LossLog)> {
        Ok((self.rows.stage(DURABILITY)?, self.log))
    }

    /// Puts the rows so far in place of the old CSV, atomically, and goes on writing
    /// after them: what a periodic save does, so that a run killed later resumes with every row up
    /// to its last checkpoint. A new temporary file starts with a copy of the committed rows, as
    /// the file the rows were written to is now the CSV itself; the copy costs a read of the CSV,
    /// small beside the checkpoint saved with it.
    pub fn save(self) -> io::Result<Self> {
        let Self { rows, path, log } = self;
        rows.commit(DURABILITY)?;
        let mut rows = AtomicFile::create(&path)?;
        io::copy(&mut File::open(&path)?, &mut rows)?;
        Ok(Self { rows, path, log })
    }
}

/// A row as [`LossCsv::push`] writes it.
fn parse_row(row: &str) -> Option<LossPoint> {
    let mut fields = row.split(',');
    let step = fields.next()?.parse().ok()?;
    let train_loss = fields.next()?.parse().ok()?;
    let val_loss = match fields.next()? {
        "" => None,
        value => Some(value.parse().ok()?),
    };
    Some(LossPoint {
        step,
        train_loss,
        val_loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::point;
    use std::fs;

    fn scratch_dir(name: &str) -> testdata::Scratch {
        crate::test_support::scratch_dir("loss-csv", name)
    }

    /// Puts the CSV in place of the old one and returns the chart's log of its rows.
    fn commit(csv: LossCsv) -> LossLog {
        let (rows, log) = csv.stage().unwrap();
        crate::atomic_file::put_in_place([rows]).unwrap();
        log
    }

    fn write_csv(path: &Path, points: &[LossPoint]) {
        let mut csv = LossCsv::create(path).unwrap();
        for point in points {
            csv.push(point).unwrap();
        }
        commit(csv);
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

    #[test]
    fn a_save_puts_the_rows_so_far_in_place_and_writing_goes_on_after_them() {
        let dir = scratch_dir("save");
        let path = dir.join("loss.csv");
        fs::write(&path, "old").unwrap();
        let mut csv = LossCsv::create(&path).unwrap();
        csv.push(&point(1, 3.0, None)).unwrap();
        let mut csv = csv.save().unwrap();
        let saved = "step,train_loss,val_loss\n1,3,\n";
        assert_eq!(fs::read_to_string(&path).unwrap(), saved);
        csv.push(&point(2, 2.5, Some(2.75))).unwrap();
        // Rows after the save wait for the next one, as the checkpoint's steps do.
        drop(csv);
        assert_eq!(fs::read_to_string(&path).unwrap(), saved);
        let entries: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(entries.len(), 1, "a temporary file was left: {entries:?}");

        let mut csv = LossCsv::create(&path).unwrap();
        csv.push(&point(1, 3.0, None)).unwrap();
        let mut csv = csv.save().unwrap().save().unwrap();
        csv.push(&point(2, 2.5, Some(2.75))).unwrap();
        commit(csv);
        let expected = "step,train_loss,val_loss\n1,3,\n2,2.5,2.75\n";
        assert_eq!(fs::read_to_string(&path).unwrap(), expected);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_resumed_csv_keeps_the_earlier_rows_up_to_the_resumed_step() {
        let dir = scratch_dir("carry-over");
        let path = dir.join("loss.csv");
        let points: Vec<LossPoint> = (1..=5)
            .map(|step| point(step, 2.0 + step as f64, None))
            .collect();
        write_csv(&path, &points);
        let mut csv = LossCsv::create(&path).unwrap();
        // The checkpoint was saved at step 3; rows 4 and 5 were of a later, lost part of the run.
        assert_eq!(csv.carry_over(&path, 3).unwrap(), 3);
        csv.push(&point(4, 9.0, Some(8.5))).unwrap();
        let log = commit(csv);
        let expected = "step,train_loss,val_loss\n1,3,\n2,4,\n3,5,\n4,9,8.5\n";
        assert_eq!(fs::read_to_string(&path).unwrap(), expected);
        // The chart gets the same rows: the three carried over and the new one.
        let train: Vec<(usize, f64)> = log.train().collect();
        assert_eq!(train, [(1, 3.0), (2, 4.0), (3, 5.0), (4, 9.0)]);
        assert_eq!(log.val().collect::<Vec<_>>(), [(4, 8.5)]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
