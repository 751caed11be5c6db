//! Downloading the names dataset when it is missing, as microgpt.py does, with an integrity check
//! so that a truncated or altered file is never written.

use std::fmt;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::atomic_file::{Durability, write_atomically};

/// Where names.txt is downloaded from: Karpathy's makemore repository at a fixed commit, so that
/// the content (and hence [`NAMES_SHA256`]) never changes.
pub const NAMES_URL: &str = "https://raw.githubusercontent.com/karpathy/makemore/988aa59/names.txt";

/// SHA-256 of names.txt (lowercase hex), from `sha256sum names.txt`.
pub const NAMES_SHA256: &str = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d";

/// Number of names (non-blank lines) in names.txt. The file has no final newline, so `wc -l`
/// says 32,032.
pub const NAMES_LINES: usize = 32_033;

/// The integrity of names.txt: [`NAMES_SHA256`] and [`NAMES_LINES`].
pub const NAMES_INTEGRITY: Integrity<'static> = Integrity {
    sha256: NAMES_SHA256,
    lines: NAMES_LINES,
};

/// A download larger than this cannot be a names file; stop instead of filling memory.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What a downloaded file must be: both its hash and its number of documents must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Integrity<'a> {
    /// SHA-256 of the whole file, hex (compared case-insensitively).
    pub sha256: &'a str,
    /// Number of non-blank lines, i.e. documents (blank lines are skipped when loading a dataset).
    pub lines: usize,
}

/// Why a download failed. `Display` is one line naming the problem and what to do about it.
#[derive(Debug)]
pub enum DownloadError {
    /// The server could not be reached (offline, unknown host, refused, timed out) or the transfer
    /// broke off.
    Network {
        /// The URL requested.
        url: String,
        /// Where the file was to be written.
        destination: PathBuf,
        /// What went wrong, as reported by the HTTP client.
        reason: String,
    },
    /// The server answered with a status other than 200 OK.
    Status {
        /// The URL requested.
        url: String,
        /// Where the file was to be written.
        destination: PathBuf,
        /// The HTTP status code.
        status: u16,
    },
    /// The server sent more than any names file could hold; nothing was written.
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The downloaded bytes are not the expected file; nothing was written.
    Integrity {
        /// The URL requested.
        url: String,
        /// The expected SHA-256 (hex).
        expected_sha256: String,
        /// The SHA-256 of what was received (lowercase hex).
        actual_sha256: String,
        /// The expected number of non-blank lines.
        expected_lines: usize,
        /// The number of non-blank lines received.
        actual_lines: usize,
    },
    /// The file was downloaded and verified but could not be saved.
    /// The error's message starts with the path it concerns (the destination or its directory).
    Write(io::Error),
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network {
                url,
                destination,
                reason,
            } => write!(
                f,
                "could not download {url}: {reason}. If you are offline, download the file \
                 yourself to {} or pass --data FILE",
                destination.display()
            ),
            Self::Status {
                url,
                destination,
                status,
            } => write!(
                f,
                "could not download {url}: the server answered HTTP {status}{}. Download the file \
                 yourself to {} or pass --data FILE",
                ureq::http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|code| code.canonical_reason())
                    .map(|reason| format!(" {reason}"))
                    .unwrap_or_default(),
                destination.display()
            ),
            Self::TooLarge { url, limit } => write!(
                f,
                "{url} sent more than {limit} bytes, which cannot be the names dataset; nothing \
                 was written. Check the URL or pass --data FILE"
            ),
            Self::Integrity {
                url,
                expected_sha256,
                actual_sha256,
                expected_lines,
                actual_lines,
            } => {
                write!(
                    f,
                    "the file downloaded from {url} is not the expected one (sha256 {actual_sha256}, \
                     expected {expected_sha256}; {actual_lines} names, expected {expected_lines}); \
                     nothing was written. Check the URL or pass --data FILE"
                )
            }
            Self::Write(source) => {
                write!(
                    f,
                    "could not save the downloaded file: {source}. Pass --data FILE instead"
                )
            }
        }
    }
}

/// The message already includes the underlying I/O error, so there is no separate `source`.
impl std::error::Error for DownloadError {}

/// Downloads names.txt from `url` to `destination`, checking it against [`NAMES_INTEGRITY`].
///
/// See [`download_verified`]; `url` is normally [`NAMES_URL`].
pub fn download_names(
    url: &str,
    destination: &Path,
    show_progress: bool,
) -> Result<(), DownloadError> {
    download_verified(url, destination, &NAMES_INTEGRITY, show_progress)
}

/// Downloads `url` (HTTP or HTTPS; proxies from `HTTPS_PROXY` etc. are honoured) and, only if it
/// matches `expected`, writes it atomically to `destination`, creating its parent directory.
///
/// With `show_progress`, a progress bar (or a spinner when the size is unknown) is drawn on stderr
/// if stderr is a terminal. If the download fails or does not match, nothing is written and an
/// existing `destination` is left as it was.
pub fn download_verified(
    url: &str,
    destination: &Path,
    expected: &Integrity<'_>,
    show_progress: bool,
) -> Result<(), DownloadError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    download_with(&agent, url, destination, expected, show_progress)
}

/// [`download_verified`] with a given HTTP agent (the tests use one that ignores proxies).
fn download_with(
    agent: &ureq::Agent,
    url: &str,
    destination: &Path,
    expected: &Integrity<'_>,
    show_progress: bool,
) -> Result<(), DownloadError> {
    let network_error = |reason: String| DownloadError::Network {
        url: url.to_owned(),
        destination: destination.to_owned(),
        reason,
    };
    let mut response = agent.get(url).call().map_err(|error| match error {
        // ureq would prefix "io: ", which says nothing to a user.
        ureq::Error::Io(error) => network_error(error.to_string()),
        error => network_error(error.to_string()),
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(DownloadError::Status {
            url: url.to_owned(),
            destination: destination.to_owned(),
            status,
        });
    }

    let body = response.body_mut();
    let progress = progress_bar(body.content_length(), destination, show_progress);
    let mut reader = body.as_reader();
    let mut content = Vec::new();
    let mut hasher = Sha256::new();
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                progress.finish_and_clear();
                return Err(network_error(error.to_string()));
            }
        };
        if content.len() as u64 + read as u64 > MAX_BYTES {
            progress.finish_and_clear();
            return Err(DownloadError::TooLarge {
                url: url.to_owned(),
                limit: MAX_BYTES,
            });
        }
        content.extend_from_slice(&buffer[..read]);
        hasher.update(&buffer[..read]);
        progress.inc(read as u64);
    }
    progress.finish_and_clear();

    let actual_sha256: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let actual_lines = count_documents(&content);
    if !actual_sha256.eq_ignore_ascii_case(expected.sha256) || actual_lines != expected.lines {
        return Err(DownloadError::Integrity {
            url: url.to_owned(),
            expected_sha256: expected.sha256.to_owned(),
            actual_sha256,
            expected_lines: expected.lines,
            actual_lines,
        });
    }

    if let Some(parent) = destination
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|error| {
            DownloadError::Write(io::Error::new(
                error.kind(),
                format!("{}: {error}", parent.display()),
            ))
        })?;
    }
    write_atomically(destination, &content, Durability::Synced).map_err(DownloadError::Write)
}

/// The number of documents as the dataset loader sees them: non-blank lines.
fn count_documents(content: &[u8]) -> usize {
    String::from_utf8_lossy(content)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count()
}

/// A byte progress bar on stderr, a spinner when the length is unknown, hidden when not wanted or
/// when stderr is not a terminal (a log file should not fill with redraws).
fn progress_bar(length: Option<u64>, destination: &Path, show_progress: bool) -> ProgressBar {
    if !show_progress || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let name = destination
        .file_name()
        .unwrap_or(destination.as_os_str())
        .to_string_lossy()
        .into_owned();
    let (bar, template) = match length {
        Some(length) => (
            ProgressBar::new(length),
            "downloading {msg} [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec})",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} downloading {msg} {bytes} ({bytes_per_sec})",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = bar.with_style(style).with_message(name);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Mutex, PoisonError};
    use std::thread::{self, JoinHandle};

    /// Three names, the last without a final newline, like names.txt, plus a blank line that
    /// does not count.
    const SMALL: &[u8] = b"emma\nolivia\n\nava";
    /// From `printf 'emma\nolivia\n\nava' | sha256sum` (an oracle independent of this module).
    const SMALL_SHA256: &str = "0345d0820a6b1ea795ad693a41f31bec2f9095b7e40c46fc74a5893aecbb5285";
    const SMALL_INTEGRITY: Integrity<'static> = Integrity {
        sha256: SMALL_SHA256,
        lines: 3,
    };

    /// Held while binding a port, and by the test that needs a port nobody listens on: otherwise
    /// a server of a concurrent test could be given that port between its release and its use.
    static PORTS: Mutex<()> = Mutex::new(());

    /// An HTTP/1.1 server on 127.0.0.1 that answers exactly `responses.len()` connections, in
    /// order, with the given raw responses, then exits. Every socket operation has a timeout, so a
    /// failing test cannot hang. Returns the base URL and the thread (join it to see its errors).
    fn serve(responses: Vec<Vec<u8>>) -> (String, JoinHandle<()>) {
        let listener = {
            let _guard = PORTS.lock().unwrap_or_else(PoisonError::into_inner);
            TcpListener::bind("127.0.0.1:0").unwrap()
        };
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = thread::spawn(move || {
            listener.set_nonblocking(false).unwrap();
            for response in responses {
                let (stream, _) = accept_with_timeout(&listener, Duration::from_secs(10));
                answer(stream, &response);
            }
        });
        (url, handle)
    }

    fn accept_with_timeout(
        listener: &TcpListener,
        timeout: Duration,
    ) -> (TcpStream, std::net::SocketAddr) {
        listener.set_nonblocking(true).unwrap();
        let start = std::time::Instant::now();
        loop {
            match listener.accept() {
                Ok((stream, address)) => {
                    stream.set_nonblocking(false).unwrap();
                    return (stream, address);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    assert!(
                        start.elapsed() < timeout,
                        "test server: no connection within {timeout:?}"
                    );
                    thread::sleep(Duration::from_millis(10));
                }
                Err(error) => panic!("test server: accept failed: {error}"),
            }
        }
    }

    /// Reads the request head (up to the blank line), then writes `response` and closes.
    fn answer(stream: TcpStream, response: &[u8]) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        assert!(
            request_line.starts_with("GET /names.txt "),
            "unexpected request: {request_line:?}"
        );
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            line.clear();
        }
        let mut stream = reader.into_inner();
        stream.write_all(response).unwrap();
        stream.flush().unwrap();
    }

    fn ok_response(body: &[u8], with_length: bool) -> Vec<u8> {
        let length = if with_length {
            format!("Content-Length: {}\r\n", body.len())
        } else {
            String::new()
        };
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{length}Connection: close\r\n\r\n"
        )
        .into_bytes();
        response.extend_from_slice(body);
        response
    }

    /// An agent like the real one but ignoring proxy variables, which must not apply to loopback.
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into()
    }

    fn scratch_dir(name: &str) -> testdata::Scratch {
        crate::test_support::scratch_dir("download", name)
    }

    #[test]
    fn good_data_is_written_exactly_creating_the_directory() {
        let dir = scratch_dir("good");
        // Once with Content-Length (progress bar), once close-delimited (spinner).
        let (url, server) = serve(vec![ok_response(SMALL, true), ok_response(SMALL, false)]);
        for attempt in ["first", "second"] {
            let destination = dir.join(attempt).join("names.txt");
            download_with(
                &agent(),
                &format!("{url}/names.txt"),
                &destination,
                &SMALL_INTEGRITY,
                true,
            )
            .unwrap();
            assert_eq!(fs::read(&destination).unwrap(), SMALL);
        }
        server.join().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupted_data_is_an_integrity_error_and_writes_nothing() {
        let dir = scratch_dir("corrupted");
        let existing = dir.join("names.txt");
        fs::write(&existing, b"previous content").unwrap();
        let missing = dir.join("new").join("names.txt");
        // One byte changed ("emma" -> "emmb"): same line count, different hash.
        let corrupted = b"emmb\nolivia\n\nava";
        let (url, server) = serve(vec![
            ok_response(corrupted, true),
            ok_response(corrupted, true),
        ]);
        let url = format!("{url}/names.txt");
        for destination in [&existing, &missing] {
            let error =
                download_with(&agent(), &url, destination, &SMALL_INTEGRITY, false).unwrap_err();
            assert!(
                matches!(
                    error,
                    DownloadError::Integrity {
                        actual_lines: 3,
                        ..
                    }
                ),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains(SMALL_SHA256) && message.contains("--data"),
                "{message}"
            );
        }
        server.join().unwrap();
        assert_eq!(fs::read(&existing).unwrap(), b"previous content");
        assert!(
            !dir.join("new").exists(),
            "the directory was created for a rejected download"
        );
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["names.txt"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_wrong_line_count_is_an_integrity_error_even_if_the_hash_matches() {
        let dir = scratch_dir("lines");
        let (url, server) = serve(vec![ok_response(SMALL, true)]);
        let expected = Integrity {
            sha256: SMALL_SHA256,
            lines: 4,
        };
        let destination = dir.join("names.txt");
        let error = download_with(
            &agent(),
            &format!("{url}/names.txt"),
            &destination,
            &expected,
            false,
        )
        .unwrap_err();
        assert!(matches!(
            error,
            DownloadError::Integrity {
                actual_lines: 3,
                expected_lines: 4,
                ..
            }
        ));
        server.join().unwrap();
        assert!(!destination.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Serves `responses`, downloads from them expecting a failure, checks that nothing was
    /// written, and returns the error.
    fn failed_download(name: &str, responses: Vec<Vec<u8>>) -> DownloadError {
        let dir = scratch_dir(name);
        let (url, server) = serve(responses);
        let destination = dir.join("names.txt");
        let url = format!("{url}/names.txt");
        let error =
            download_with(&agent(), &url, &destination, &SMALL_INTEGRITY, false).unwrap_err();
        server.join().unwrap();
        assert!(
            !destination.exists(),
            "a failed download wrote {}",
            destination.display()
        );
        fs::remove_dir_all(&dir).unwrap();
        error
    }

    #[test]
    fn a_404_is_a_status_error() {
        let response =
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
                .to_vec();
        let error = failed_download("status", vec![response]);
        assert!(
            matches!(error, DownloadError::Status { status: 404, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("HTTP 404 Not Found"), "{error}");
    }

    #[test]
    fn a_closed_port_is_a_network_error_suggesting_data() {
        // Bind then drop a listener: nothing listens on that port any more, so connecting is
        // refused (no other test can bind it meanwhile: they wait for the guard).
        let _guard = PORTS.lock().unwrap_or_else(PoisonError::into_inner);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/names.txt");
        let destination = Path::new("data/names.txt");
        let error =
            download_with(&agent(), &url, destination, &SMALL_INTEGRITY, false).unwrap_err();
        assert!(matches!(error, DownloadError::Network { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&url), "{message}");
        assert!(
            message.contains("offline") && message.contains("data/names.txt"),
            "{message}"
        );
        assert!(
            message.contains("--data FILE") && !message.contains('\n'),
            "{message}"
        );
    }

    #[test]
    fn a_connection_closed_without_an_answer_is_a_network_error() {
        let (url, server) = serve(vec![Vec::new()]);
        let destination = Path::new("data/names.txt");
        let error = download_with(
            &agent(),
            &format!("{url}/names.txt"),
            destination,
            &SMALL_INTEGRITY,
            false,
        )
        .unwrap_err();
        assert!(matches!(error, DownloadError::Network { .. }), "{error:?}");
        assert!(error.to_string().contains("--data FILE"), "{error}");
        server.join().unwrap();
    }

    #[test]
    fn a_body_cut_short_is_a_network_error() {
        // Announces 100 bytes, sends 16, closes.
        let mut response =
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n".to_vec();
        response.extend_from_slice(SMALL);
        let error = failed_download("short", vec![response]);
        assert!(matches!(error, DownloadError::Network { .. }), "{error:?}");
    }

    #[test]
    fn an_unwritable_destination_is_a_write_error_naming_the_path() {
        let dir = scratch_dir("unwritable");
        // The parent "directory" is a regular file, so it can be neither created nor written into.
        let blocker = dir.join("blocker");
        fs::write(&blocker, b"").unwrap();
        let destination = blocker.join("names.txt");
        let (url, server) = serve(vec![ok_response(SMALL, true)]);
        let error = download_with(
            &agent(),
            &format!("{url}/names.txt"),
            &destination,
            &SMALL_INTEGRITY,
            false,
        )
        .unwrap_err();
        assert!(matches!(error, DownloadError::Write(_)), "{error:?}");
        assert!(
            error.to_string().contains(&blocker.display().to_string()),
            "{error}"
        );
        server.join().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_names_constants_match_the_real_file_when_it_is_present() {
        // The constants were taken from `sha256sum names.txt` and `grep -c . names.txt`; this
        // rechecks them against a local copy when there is one (it is not committed).
        let test = "the_names_constants_match_the_real_file_when_it_is_present";
        let Some(path) = testdata::names_txt(test) else {
            return;
        };
        let content = fs::read(path).unwrap();
        let sha256: String = Sha256::digest(&content)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(sha256, NAMES_SHA256);
        assert_eq!(count_documents(&content), NAMES_LINES);
    }
}
