//! The command-line contract other tools depend on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_wufb-graph-emulator");

#[test]
fn first_stdout_line_announces_the_bound_address() {
    let mut child = Command::new(BIN)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--no-auth",
            "--page-size",
            "5",
            "--seed",
            "9",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("emulator starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let _ = child.kill();
    let _ = child.wait();
    let url = line
        .trim()
        .strip_prefix("listening on http://127.0.0.1:")
        .expect(&line);
    let port: u16 = url.parse().expect("a port");
    assert!(port > 0);
}

#[test]
fn bad_flags_fail_with_a_clear_message() {
    for (args, needle) in [
        (vec!["--throttle-rate", "1.5"], "probability"),
        (vec!["--page-size", "0"], "page-size"),
        (vec!["--retry-after-form", "soon"], "Retry-After form"),
        (vec!["--device-error", "x=bogus"], "registration error"),
        (vec!["--app", "only-two:parts"], "TENANT:CLIENT_ID:SECRET"),
        (vec!["--addr", "256.0.0.1:0"], "cannot bind"),
        (vec!["--frobnicate"], "unexpected argument"),
    ] {
        let out = Command::new(BIN).args(&args).output().expect("runs");
        assert!(!out.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
