//! The RADIUS clients and OATH tool nobody on this project wrote: radclient, pyrad, oathtool.
//! A missing peer is a test failure with the install command, never a silent skip.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn require(cmd: &str, package: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = format!("{dir}/{cmd}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{cmd} is not installed: run scripts/install-deps.sh (Debian package {package})");
}

pub fn python() -> PathBuf {
    let p = std::env::var("RADMFA_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        p.exists(),
        "{} missing: run scripts/install-deps.sh (creates .venv with pyrad, python-pskc)",
        p.display()
    );
    p
}

/// `oathtool --totp -b SEED` at `at` (Unix seconds), plus extra flags (e.g. `--totp=sha256`).
pub fn totp(seed: &str, at: i64, extra: &[&str]) -> String {
    let bin = require("oathtool", "oathtool");
    let mut cmd = Command::new(bin);
    if !extra.iter().any(|a| a.starts_with("--totp")) {
        cmd.arg("--totp");
    }
    let out = cmd
        .args(extra)
        .args(["-b", seed, "-N", &format!("@{at}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "oathtool: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[derive(Debug)]
pub struct RadclientReply {
    /// "Access-Accept", "Access-Reject", "Access-Challenge" or "none".
    pub code: String,
    /// State as radclient prints it (0x…), ready to send back.
    pub state: Option<String>,
    pub output: String,
}

/// Runs `cmd` with `input` on its standard input; stdout and stderr are captured.
pub fn with_input(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Writes a PSKC file with python-pskc (tests/peers/make_pskc.py): `tokens` as JSON on
/// its standard input.
pub fn make_pskc(out: &Path, tokens: &serde_json::Value, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/make_pskc.py");
    let o = with_input(
        Command::new(python())
            .arg(script)
            .arg("--out")
            .arg(out)
            .args(args),
        tokens.to_string().as_bytes(),
    );
    assert!(
        o.status.success(),
        "make_pskc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Sends one request with FreeRADIUS's radclient. `attrs` is radclient's input syntax.
pub fn radclient(server: &str, secret: &str, attrs: &str) -> RadclientReply {
    let bin = require("radclient", "freeradius-utils");
    // 5 s: past radmfa's default request deadline (4 s), as pyrad_client.py waits, so a slow
    // reply on a loaded machine is not read as none.
    let out = with_input(
        Command::new(bin).args(["-x", "-r", "1", "-t", "5", server, "auth", secret]),
        attrs.as_bytes(),
    );
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = ["Access-Accept", "Access-Reject", "Access-Challenge"]
        .iter()
        .find(|c| output.contains(&format!("Received {c}")))
        .map(|c| c.to_string())
        .unwrap_or_else(|| "none".into());
    // "none" is a request sent and left unanswered, what the tests assert it for; not a
    // radclient that failed before sending (bad input, an attribute its dictionary lacks).
    assert!(
        code != "none" || output.contains("No reply from server"),
        "radclient neither got a reply nor timed out waiting for one:\n{output}"
    );
    // The reply's State: radclient -x prints the request it sent (a State too, on a second
    // round) before the reply.
    let reply = output.find("Received ").map_or("", |at| &output[at..]);
    let state = reply.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("State = ").map(|s| s.trim().to_string())
    });
    RadclientReply {
        code,
        state,
        output,
    }
}

/// One request through pyrad with enforce_ma=True; the script's JSON answer.
pub fn pyrad(port: u16, secret: &str, args: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pyrad_client.py");
    let out = Command::new(python())
        .arg(script)
        .args(["--port", &port.to_string(), "--secret", secret])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyrad failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "pyrad output {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// What a NAS, or anyone watching the wire, could tell two of [`pyrad`]'s replies apart by:
/// the code, the State, which attribute comes first, and every attribute with all its values
/// — a Class or Filter-Id leaking into one Reject shows here, as a Reply-Message of another
/// wording does. All but the Message-Authenticator's value: it signs the whole packet, the
/// Identifier and the request's Authenticator with it, so it differs between any two replies.
pub fn reply_shape(v: &serde_json::Value) -> serde_json::Value {
    let mut attributes = v["attributes"]
        .as_object()
        .unwrap_or_else(|| panic!("no attributes in {v}"))
        .clone();
    attributes.remove("Message-Authenticator");
    serde_json::json!({
        "code": v["code"],
        "state": v["state"],
        "first_attribute": v["first_attribute"],
        "attributes": attributes,
    })
}

/// Two of [`pyrad`]'s replies are the same by [`reply_shape`].
#[track_caller]
pub fn assert_same_reply(a: &serde_json::Value, b: &serde_json::Value) {
    assert_eq!(reply_shape(a), reply_shape(b), "replies differ:\n{a}\n{b}");
}

/// Runs the Python program `script` (`python -c`) with `args`, stdin and stdout piped, and
/// waits for the first line it prints (ready, or its result), trimmed. The child keeps
/// running until its stdin is closed (take and drop `child.stdin`) or it is killed.
pub fn python_first_line<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[S],
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(python())
        .args(["-c", script])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting python");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_string())
}

/// Parses the exposition with prometheus_client's parser: "name{k=v,...}" → value.
pub fn prometheus_parse(body: &str) -> std::collections::BTreeMap<String, f64> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        out["%s{%s}" % (s.name, labels)] = s.value
print(json.dumps(out))
"#;
    let out = with_input(Command::new(python()).args(["-c", SCRIPT]), body.as_bytes());
    assert!(
        out.status.success(),
        "Prometheus's parser refused the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits into the next 30-second time step if fewer than `margin` seconds of this one are
/// left. For a test whose codes sit at the edge of a ±1-step window: a boundary passing
/// between making a code and the server checking it moves the code one step back, which
/// puts the previous step's code out of the window, and which teaches the server a drift
/// of -1 that puts a later "next step" code out of it. A pyrad run alone takes a few
/// hundred milliseconds.
pub fn clear_of_step_boundary(margin: i64) {
    assert!((0..30).contains(&margin), "margin {margin} s");
    let left = 30 - now() % 30;
    if left <= margin {
        std::thread::sleep(std::time::Duration::from_secs(left as u64));
        // Past the boundary, not merely at it: the sleep ends on a whole second.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Writes a file only its owner may read, as radmfa wants a file holding a secret (it
/// refuses one every account can read).
pub fn write_private(path: &std::path::Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Sleeps into the next whole second of the clock (and a little past it), so that what
/// happens next is in a later second than what happened before: the store keeps times in
/// whole seconds.
pub fn into_next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(
        1000 - u64::from(now.subsec_millis()) + 20,
    ));
}

/// TOTP codes for one seed, each from a later time step than the last, for servers with
/// `[totp] window = 3` (90 s either side): none is refused as used. A code is never from
/// more than two steps back, so a step boundary passing between making it and the server
/// checking it (a resend's wait, a loaded CI machine) cannot put it out of the window; a
/// future step only comes closer. Run in a loop, tests/upstream.rs failed now and then on
/// the three-steps-back code this began with, a login waiting 1.5 s for an upstream resend
/// across a boundary.
pub struct FreshCodes {
    seed: String,
    /// The server's `[totp] window`.
    window: i64,
    /// The last step given, or none yet.
    last: std::cell::Cell<Option<i64>>,
}

impl FreshCodes {
    pub fn new(seed: String) -> FreshCodes {
        FreshCodes::with_window(seed, 3)
    }

    /// For a server with `[totp] window = WINDOW`: codes from WINDOW - 1 steps back to
    /// WINDOW ahead, so a test that logs in many times does not wait for new steps.
    pub fn with_window(seed: String, window: i64) -> FreshCodes {
        assert!(window >= 2, "window {window}");
        FreshCodes {
            seed,
            window,
            last: std::cell::Cell::new(None),
        }
    }

    /// 2 × window codes are to be had within one time step (six at window 3); the next
    /// waits for the next step.
    pub fn next(&self) -> String {
        let (back, ahead) = (self.window - 1, self.window);
        let now_step = now() / 30;
        let step = self
            .last
            .get()
            .map_or(now_step - back, |l| (l + 1).max(now_step - back));
        if step > now_step + ahead {
            clear_of_step_boundary(29);
        }
        assert!(
            step <= now() / 30 + ahead,
            "step {step} is out of the window"
        );
        self.last.set(Some(step));
        totp(&self.seed, step * 30, &[])
    }
}

/// Whether `needle` is in `log`. A code (digits only) counts only as a number of its own:
/// six digits turn up by chance inside longer numbers (epoch times in the audit) and as a
/// timestamp's microseconds (`14:30:31.314159Z`), and CI once failed on such a match.
pub fn reveals(log: &str, needle: &str) -> bool {
    if !needle.bytes().all(|b| b.is_ascii_digit()) {
        return log.contains(needle);
    }
    let bytes = log.as_bytes();
    log.match_indices(needle).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + needle.len()).copied();
        !before.is_some_and(|b| b.is_ascii_digit() || b == b'.')
            && !after.is_some_and(|b| b.is_ascii_digit())
    })
}

/// Status-Server as radclient sends it: "Access-Accept", "none" (no reply at all) or
/// "other: …" (any other reply, or one radclient could not verify: a node that answers
/// with a Reject is alive to many proxies, so it is not silence).
pub fn radclient_status(addr: &str, secret: &str) -> String {
    let bin = require("radclient", "freeradius-utils");
    let out = with_input(
        std::process::Command::new(bin).args(["-x", "-r", "1", "-t", "2", addr, "status", secret]),
        b"Message-Authenticator = 0x00",
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("Received Access-Accept") {
        "Access-Accept".into()
    } else if text.contains("Received ") || !text.contains("No reply from server") {
        format!("other: {text}")
    } else {
        "none".into()
    }
}
