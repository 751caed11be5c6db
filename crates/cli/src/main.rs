//! The `microgpt` command line: see `microgpt --help`.

fn main() -> std::process::ExitCode {
    cli::run(std::env::args_os())
}
