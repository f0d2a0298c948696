//! A radmfa with SMS and calls wired to the provider stand-in, a real slapd, and NAS entries
//! written out in full (so each test states the per-client factor keys it relies on).
#![allow(dead_code)]

use super::peers::pyrad;
use super::provider_standin::Standin;
use super::radmfa::{Options, Server, SECRET};
use super::slapd::{free_port, LdapUser, Slapd};

pub const ALICE_PW: &str = "alice-Secret-pw";
pub const BOB_PW: &str = "bob-Secret-pw";
/// The `mobile` every LdapUser gets.
pub const DIRECTORY_MOBILE: &str = "+15550100";
pub const CALLER_ID: &str = "+15550009999";

pub fn directory() -> Slapd {
    Slapd::start(&[
        LdapUser::new("alice", ALICE_PW),
        LdapUser::new("bob", BOB_PW),
    ])
}

/// [`directory`]'s alice, and one entry with two names (`uid: jdoe`, `uid: john.doe`,
/// password `jdoe-Secret-pw`) whose `mobile` is [`DIRECTORY_MOBILE`].
pub fn directory_with_two_named_entry() -> Slapd {
    Slapd::start_with(
        &[LdapUser::new("alice", ALICE_PW)],
        crate::common::slapd::SlapdOptions {
            extra_ldif: format!(
                "dn: uid=jdoe,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n\
                 uid: jdoe\nuid: john.doe\ncn: John Doe\nsn: Doe\n\
                 mobile: {DIRECTORY_MOBILE}\nuserPassword: jdoe-Secret-pw\n\n"
            ),
            ..Default::default()
        },
    )
}

/// One `[[client]]` with extra keys (e.g. `voice_mode = "hold"`).
pub fn client(name: &str, address: &str, keys: &str) -> String {
    format!(
        "\n[[client]]\nname = \"{name}\"\naddress = \"{address}\"\nsecret = \"{SECRET}\"\n{keys}\n"
    )
}

/// `[sms]`, `[voice]`, `[twilio]`, `[callbacks]` for `standin`; `sms_keys` go into `[sms]`.
pub fn delivery(standin: &Standin, sms_keys: &str) -> String {
    let port = free_port();
    // `sms_keys` may name another provider (e.g. "http" with an [http_sms] in `extra`).
    let provider = if sms_keys.contains("provider") {
        ""
    } else {
        "provider = \"twilio\""
    };
    // The test directory's users carry their numbers in `mobile`.
    format!(
        "\n[phone]\nsources = [\"store\", \"mobile\", \"telephone\"]\n\
         \n[sms]\n{provider}\n{sms_keys}\n\n[voice]\nprovider = \"twilio\"\n\
         caller_id = \"{CALLER_ID}\"\n{}\n[callbacks]\nlisten = \"127.0.0.1:{port}\"\n\
         public_url = \"http://127.0.0.1:{port}\"\n",
        standin.twilio_toml()
    )
}

/// Starts radmfa with the delivery sections, `extra` (more sections) and `clients`.
pub fn start(
    slapd: &Slapd,
    standin: &Standin,
    sms_keys: &str,
    extra: &str,
    clients: &[String],
) -> Server {
    start_logged(slapd, standin, sms_keys, extra, clients, "info")
}

pub fn start_logged(
    slapd: &Slapd,
    standin: &Standin,
    sms_keys: &str,
    extra: &str,
    clients: &[String],
    level: &'static str,
) -> Server {
    start_tuned(slapd, standin, sms_keys, extra, clients, level, "")
}

/// [`start_logged`] with extra `[server]` keys.
pub fn start_tuned(
    slapd: &Slapd,
    standin: &Standin,
    sms_keys: &str,
    extra: &str,
    clients: &[String],
    level: &'static str,
    server_keys: &str,
) -> Server {
    let mut o = Options::new(&slapd.url);
    o.log_level = level;
    o.server_extra = server_keys.to_string();
    o.clients = Vec::new();
    o.extra = format!("{}{extra}{}", delivery(standin, sms_keys), clients.concat());
    Server::start(&o)
}

/// Runs a CLI command that must succeed; returns stdout.
pub fn cli_ok(srv: &Server, args: &[&str]) -> String {
    let out = srv.cli(args);
    assert!(
        out.status.success(),
        "radmfa {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// RD Gateway's NPS shape, from the NAS at `bind`: alice, no User-Password, NAS-Port-Type
/// Virtual, UserAuthType:PW; pyrad waits long enough for a held call.
pub fn rd_gateway_request(srv: &Server, bind: &str) -> serde_json::Value {
    rd_gateway_request_for(srv, bind, "alice")
}

/// [`rd_gateway_request`] for `user`.
pub fn rd_gateway_request_for(srv: &Server, bind: &str, user: &str) -> serde_json::Value {
    pyrad(
        srv.port(),
        SECRET,
        &[
            "--bind",
            bind,
            "--user",
            user,
            "--nas-port-type",
            "5",
            "--called-station-id",
            "UserAuthType:PW",
            "--timeout",
            "35",
        ],
    )
}
