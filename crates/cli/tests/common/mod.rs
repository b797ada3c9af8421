//! What every end-to-end test of the binary needs: running it and reading its output.
// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `tokenbench` binary with `args` (without a key password from the environment).
pub fn tokenbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenbench"))
        .args(args)
        .env_remove("TOKENBENCH_KEY_PASSWORD")
        .output()
        .unwrap()
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
