//! pam_radius_auth (Debian's libpam-radius-auth) through pamtester: a real legacy client that
//! sends no Message-Authenticator and answers an Access-Challenge by showing Reply-Message as
//! a prompt. It works only on a client entry with `require_message_authenticator = false`.
//!
//! PAM reads services from /etc/pam.d only, so the test writes a uniquely named service file
//! there (CI runs as root) and removes it when done.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::peers::{now, totp};
use common::radmfa::{Nas, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

struct PamService {
    name: String,
    path: PathBuf,
}

impl PamService {
    /// `tag` keeps tests running in parallel threads of one process from sharing a file.
    fn new(tag: &str, conf: &std::path::Path) -> Self {
        Self::with_auth(
            tag,
            &format!("auth required pam_radius_auth.so conf={}", conf.display()),
        )
    }

    /// A service whose auth stack is `auth` (lines as in /etc/pam.d).
    fn with_auth(tag: &str, auth: &str) -> Self {
        let name = format!("radmfa-test-{}-{tag}", std::process::id());
        let path = PathBuf::from("/etc/pam.d").join(&name);
        std::fs::write(&path, format!("{auth}\naccount required pam_permit.so\n"))
            .unwrap_or_else(|e| panic!("writing {} (tests run as root): {e}", path.display()));
        PamService { name, path }
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pamtester_bin() -> &'static str {
    ["/usr/bin/pamtester", "/usr/sbin/pamtester"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("pamtester missing: run scripts/install-deps.sh (package pamtester)")
}

fn pamtester(service: &str, user: &str, answers: &str) -> (bool, String) {
    let bin = pamtester_bin();
    // Debian's multiarch directories: x86_64-linux-gnu, aarch64-linux-gnu, …
    let installed = ["/lib", "/usr/lib"].iter().any(|root| {
        std::fs::read_dir(root).is_ok_and(|dirs| {
            dirs.flatten()
                .any(|d| d.path().join("security/pam_radius_auth.so").exists())
        })
    });
    assert!(
        installed,
        "pam_radius_auth.so missing: run scripts/install-deps.sh (package libpam-radius-auth)"
    );
    let out = common::peers::with_input(
        Command::new(bin).args([service, user, "authenticate"]),
        answers.as_bytes(),
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn pam_radius_auth_answers_the_challenge() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-Secret-pw")]);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        require_ma: false,
        ..Nas::challenge("pam", "127.0.0.1")
    }];
    let srv = Server::start(&o);
    let seed = srv.enroll("alice", &[]);
    let conf = srv.dir.path().join("pam_radius_auth.conf");
    std::fs::write(&conf, format!("127.0.0.1:{} {SECRET} 3\n", srv.port())).unwrap();
    let svc = PamService::new("challenge", &conf);

    let code = totp(&seed, now(), &[]);
    let (ok, out) = pamtester(&svc.name, "alice", &format!("alice-Secret-pw\n{code}\n"));
    assert!(ok, "pam login failed:\n{out}");
    // With its ": ", or the code typed is glued to the prompt's last word.
    assert!(
        out.contains("Enter the code from your authenticator app or token: "),
        "challenge prompt shown, ending in \": \": {out}"
    );

    // Refused by radmfa, not left unanswered (pam_radius_auth fails on silence too): the
    // audit says why each was.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (ok, out) = pamtester(&svc.name, "alice", &format!("alice-Secret-pw\n{wrong}\n"));
    assert!(!ok, "wrong code accepted:\n{out}");
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["reason"], "wrong code");
    // Her one token: the record names it, so an admin sees which token keeps failing.
    assert!(
        rec["token_serial"]
            .as_str()
            .is_some_and(|s| s.starts_with("TOTP-")),
        "{rec}"
    );
    let (ok, out) = pamtester(&svc.name, "alice", "wrong\n");
    assert!(!ok, "wrong password accepted:\n{out}");
    assert_eq!(srv.audit_json("alice")[0]["reason"], "bad password");
}

#[test]
fn pam_radius_auth_is_dropped_where_message_authenticator_is_required() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-Secret-pw")]);
    let srv = Server::start(&Options::new(&slapd.url));
    srv.enroll("alice", &[]);
    let conf = srv.dir.path().join("pam_radius_auth.conf");
    std::fs::write(&conf, format!("127.0.0.1:{} {SECRET} 1\n", srv.port())).unwrap();
    let svc = PamService::new("required", &conf);
    let (ok, _) = pamtester(&svc.name, "alice", "alice-Secret-pw\n");
    assert!(!ok);
    assert_eq!(
        srv.audit_json("alice")
            .iter()
            .filter(|r| r["result"] != "enroll")
            .count(),
        0,
        "a request without Message-Authenticator must not even be audited"
    );
    // It arrived, and was dropped for that reason (not lost on the way).
    assert!(
        srv.log_shows(
            "no Message-Authenticator, and this client has require_message_authenticator"
        ),
        "{}",
        srv.log()
    );
}

/// Two radmfa nodes in pam_radius_auth's server list, the first one's directory
/// unreachable. With `on_backend_failure = "no_reply"` the first node stays silent, so
/// pam_radius_auth moves on to the second after its timeout and the login succeeds; with
/// the default "reject" the first node's Reject ends the login there.
#[test]
fn pam_radius_auth_fails_over_to_the_next_node_when_a_node_gives_no_reply() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-Secret-pw")]);
    // Password only (alice has no token), so the two nodes need no shared store here.
    let nas = |on_failure: &'static str| Nas {
        require_ma: false,
        no_factor: "allow",
        on_backend_failure: on_failure,
        ..Nas::challenge("pam", "127.0.0.1")
    };
    let healthy = {
        let mut o = Options::new(&slapd.url);
        o.clients = vec![nas("reject")];
        Server::start(&o)
    };
    for (on_failure, logs_in) in [("no_reply", true), ("reject", false)] {
        let dead = format!("ldap://127.0.0.1:{}", common::slapd::free_port());
        let mut o = Options::new(&dead);
        o.clients = vec![nas(on_failure)];
        let broken = Server::start(&o);
        let conf = broken.dir.path().join("pam_radius_auth.conf");
        std::fs::write(
            &conf,
            format!(
                "127.0.0.1:{} {SECRET} 2\n127.0.0.1:{} {SECRET} 2\n",
                broken.port(),
                healthy.port()
            ),
        )
        .unwrap();
        let svc = PamService::new(on_failure, &conf);
        let (ok, out) = pamtester(&svc.name, "alice", "alice-Secret-pw\n");
        assert_eq!(ok, logs_in, "on_backend_failure = {on_failure}:\n{out}");
        let audit = broken.audit_json("alice");
        let reason = audit[0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("directory"), "{audit:#?}");
        assert_eq!(
            reason.contains("not answered"),
            on_failure == "no_reply",
            "{audit:#?}"
        );
    }
}

/// What OpenSSH's PAM code passes on in place of the typed password for a name it refuses
/// whatever PAM says (no local account on the SSH host, root without PermitRootLogin),
/// repeated to the typed password's length: pam_radius_auth sends it as the User-Password.
/// As OpenSSH 9.2 makes it of a 16-character password (`nobody-Secret-pw`), and of a
/// 13-character one.
const SSH_PLACEHOLDERS: [&str; 2] = [
    "\u{8}\n\r\u{7f}INCORRECT\u{8}\n\r",
    "\u{8}\n\r\u{7f}INCORRECT",
];

/// Sent as pam_radius_auth sends it behind sshd: refused as a wrong password is, for a
/// known name and an unknown one alike, and the directory is not asked (a bind with it
/// counts toward the account's lockout in AD or ppolicy, for a login sshd would refuse
/// anyway).
#[test]
fn sshds_placeholder_password_is_refused_without_a_bind() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-Secret-pw")]);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        require_ma: false,
        ..Nas::challenge("pam", "127.0.0.1")
    }];
    let srv = Server::start(&o);
    srv.enroll("alice", &[]);
    let send = |user: &str, password: &str| {
        common::peers::pyrad(
            srv.port(),
            SECRET,
            &["--user", user, "--password", password],
        )
    };
    let settled_binds = || {
        // slapd logs a bind from its own thread, a moment after it answers it.
        std::thread::sleep(std::time::Duration::from_millis(300));
        slapd.binds_but_the_service_accounts()
    };
    let before = settled_binds();
    let wrong = send("alice", "not-her-password");
    assert_eq!(wrong["code"], "Access-Reject", "{wrong}");
    let after_wrong = settled_binds();
    assert!(
        after_wrong > before,
        "a wrong password is a bind: the count can tell"
    );

    for (user, placeholder) in ["alice", "nobody"].into_iter().zip(SSH_PLACEHOLDERS) {
        let r = send(user, placeholder);
        // What a wrong password gets: nothing tells the name or the placeholder apart.
        common::peers::assert_same_reply(&r, &wrong);
        let rec = &srv.audit_json(user)[0];
        let reason = rec["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("placeholder password") && reason.contains("not asked"),
            "{rec}"
        );
    }
    assert_eq!(
        settled_binds(),
        after_wrong,
        "the placeholder reached the directory:\n{}",
        slapd.log_tail()
    );
}

/// pamtester on a terminal (a pty), typing `answers` at its prompts as a person would: what
/// the terminal showed, echoed input included, and whether the login succeeded.
fn pamtester_on_a_terminal(service: &str, user: &str, answers: &[&str]) -> (bool, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pty_answer.py");
    let out = Command::new(common::peers::python())
        .arg(script)
        .args(answers)
        .args(["--", pamtester_bin(), service, user, "authenticate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pty_answer.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["status"] == 0, v["screen"].as_str().unwrap().to_string())
}

/// `challenge_echo = false` puts Prompt = No-Echo on the entry's Access-Challenges, and
/// pam_radius_auth with `prompt_attribute` then hides the code as it is typed; an entry
/// without the key sends no Prompt, and the code shows on the screen. Also the entry's
/// `max_attempts = 3`: a mistyped code is asked again (pam_radius_auth shows no Reject's
/// Reply-Message, so a refusal there reads as a wrong password), under the global 1.
#[test]
fn challenge_echo_false_hides_the_code_at_pam_radius_auths_prompt() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-Secret-pw")]);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![
        Nas {
            require_ma: false,
            keys: "challenge_echo = false\nmax_attempts = 3",
            ..Nas::challenge("ssh", "127.0.0.1")
        },
        Nas {
            require_ma: false,
            ..Nas::challenge("other", "127.0.0.2")
        },
    ];
    let srv = Server::start(&o);
    let seed = srv.enroll("alice", &[]);
    // On the wire: the Prompt only from the entry that asks for it.
    let prompt_from = |bind: &str| {
        let r = common::peers::pyrad(
            srv.port(),
            SECRET,
            &[
                "--user",
                "alice",
                "--password",
                "alice-Secret-pw",
                "--bind",
                bind,
            ],
        );
        assert_eq!(r["code"], "Access-Challenge", "{r}");
        r["attributes"]["Prompt"].clone()
    };
    assert_eq!(prompt_from("127.0.0.1"), serde_json::json!(["No-Echo"]));
    assert_eq!(prompt_from("127.0.0.2"), serde_json::Value::Null);

    let conf = srv.dir.path().join("pam_radius_auth.conf");
    std::fs::write(&conf, format!("127.0.0.1:{} {SECRET} 3\n", srv.port())).unwrap();
    let svc = PamService::with_auth(
        "echo",
        &format!(
            "auth required pam_radius_auth.so conf={} prompt_attribute",
            conf.display()
        ),
    );
    let code = totp(&seed, now(), &[]);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (ok, screen) =
        pamtester_on_a_terminal(&svc.name, "alice", &["alice-Secret-pw", wrong, &code]);
    assert!(ok, "login failed:\n{screen}");
    assert!(
        screen.contains("Wrong code. 2 attempt(s) left."),
        "the entry's max_attempts = 3 asks again:\n{screen}"
    );
    assert!(
        !screen.contains(&code) && !screen.contains(wrong),
        "a code was shown as it was typed:\n{screen}"
    );
    assert!(!screen.contains("alice-Secret-pw"), "{screen}");

    // The same prompt through the entry without challenge_echo (pam_radius_auth sending
    // from its address, the conf line's source_ip): the code typed shows, as it always did.
    let conf = srv.dir.path().join("pam_radius_auth_other.conf");
    std::fs::write(
        &conf,
        format!("127.0.0.1:{} {SECRET} 3 127.0.0.2\n", srv.port()),
    )
    .unwrap();
    let other = PamService::with_auth(
        "echo-other",
        &format!(
            "auth required pam_radius_auth.so conf={} prompt_attribute",
            conf.display()
        ),
    );
    // The next time step's code ([totp] window = 1): the current one's is used.
    let code = totp(&seed, now() + 30, &[]);
    let (ok, screen) = pamtester_on_a_terminal(&other.name, "alice", &["alice-Secret-pw", &code]);
    assert!(ok, "login failed:\n{screen}");
    assert!(screen.contains(&code), "{screen}");
}

/// The auth stack docs/nas.md gives for /etc/pam.d/sshd, pam_radius_auth as its only
/// module: a password and code let in, a wrong code does not, and with radmfa unreachable
/// nothing does, `localifdown` or not. Beside it, the stack Debian's example suggests
/// (`sufficient`, then common-auth; pam_permit stands in here for a local password that
/// pam_unix accepts) lets the login in without radmfa.
#[test]
fn the_documented_pam_stack_lets_in_only_what_radmfa_accepts() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-Secret-pw")]);
    let mut o = Options::new(&slapd.url);
    o.clients = vec![Nas {
        require_ma: false,
        ..Nas::challenge("ssh", "127.0.0.1")
    }];
    let srv = Server::start(&o);
    let seed = srv.enroll("alice", &[]);
    let conf = srv.dir.path().join("pam_radius_auth.conf");
    std::fs::write(&conf, format!("127.0.0.1:{} {SECRET} 3\n", srv.port())).unwrap();
    // Nothing answers there: radmfa down, as pam_radius_auth finds it.
    let down = srv.dir.path().join("pam_radius_auth_down.conf");
    let port = common::slapd::free_port();
    std::fs::write(&down, format!("127.0.0.1:{port} {SECRET} 3\n")).unwrap();
    let documented = |tag: &str, conf: &std::path::Path, options: &str| {
        PamService::with_auth(
            tag,
            &format!(
                "auth [success=1 default=ignore] pam_radius_auth.so conf={} {options}\n\
                 auth requisite pam_deny.so\n\
                 auth required pam_permit.so",
                conf.display()
            ),
        )
    };

    let svc = documented("stack", &conf, "prompt_attribute");
    let code = totp(&seed, now(), &[]);
    let (ok, out) = pamtester(&svc.name, "alice", &format!("alice-Secret-pw\n{code}\n"));
    assert!(ok, "{out}");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (ok, out) = pamtester(&svc.name, "alice", &format!("alice-Secret-pw\n{wrong}\n"));
    assert!(!ok, "{out}");

    let svc = documented("stack-down", &down, "localifdown");
    let (ok, out) = pamtester(&svc.name, "alice", "alice-Secret-pw\n");
    assert!(!ok, "radmfa down let the login in:\n{out}");
    let sufficient = PamService::with_auth(
        "sufficient-down",
        &format!(
            "auth sufficient pam_radius_auth.so conf={} localifdown\n\
             auth required pam_permit.so",
            down.display()
        ),
    );
    let (ok, out) = pamtester(&sufficient.name, "alice", "alice-Secret-pw\n");
    assert!(
        ok,
        "the stand-in for a local password check did not pass:\n{out}"
    );
}
