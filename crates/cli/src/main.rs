//! The `microgpt` command line.

fn main() {}
