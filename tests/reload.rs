//! SIGHUP reloads the `[[client]]` table: a shared secret rotated and the entry renamed
//! without a restart, checked with FreeRADIUS's radclient; a file that does not validate
//! changes nothing, and a change outside `[[client]]` is reported as needing a restart.

mod common;

use std::process::Command;

use common::peers::radclient;
use common::radmfa::{Options, Server, SECRET};

const NEW_SECRET: &str = "rotated-shared-secret-4567";

fn hup(srv: &Server) {
    let ok = Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// An Access-Request for an unknown user: any reply (a Reject) shows the secret was taken.
fn ask(srv: &Server, secret: &str) -> String {
    radclient(
        &srv.addr.to_string(),
        secret,
        "User-Name = nobody, User-Password = pw, Message-Authenticator = 0x00",
    )
    .code
}

#[test]
fn sighup_swaps_the_client_table_and_keeps_it_when_the_file_is_bad() {
    // No directory is needed: an unknown user is refused whether or not LDAP answers.
    let srv = Server::start(&Options::new("ldap://127.0.0.1:1"));
    assert_eq!(ask(&srv, SECRET), "Access-Reject");
    assert_eq!(ask(&srv, NEW_SECRET), "none", "a wrong secret is dropped");

    // Rotate the secret and rename the entry.
    let original = std::fs::read_to_string(&srv.config).unwrap();
    let entry =
        format!("[[client]]\nname = \"local\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"");
    assert!(
        original.contains(&entry),
        "the harness's client entry changed:\n{original}"
    );
    let rotated = original.replace(
        &entry,
        &format!("[[client]]\nname = \"local-rotated\"\naddress = \"127.0.0.1\"\nsecret = \"{NEW_SECRET}\""),
    );
    std::fs::write(&srv.config, &rotated).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: 1 [[client]] entries from"),
        "{}",
        srv.log()
    );
    assert_eq!(ask(&srv, NEW_SECRET), "Access-Reject", "{}", srv.log());
    assert_eq!(ask(&srv, SECRET), "none", "the old secret still works");
    let audit = srv.audit_json("nobody");
    assert_eq!(audit[0]["nas_name"], "local-rotated", "{:?}", audit[0]);

    // A file that does not validate: the error names the key, the running table stays.
    std::fs::write(
        &srv.config,
        rotated.replace(&format!("secret = \"{NEW_SECRET}\""), "secret = \"short\""),
    )
    .unwrap();
    hup(&srv);
    assert!(srv.log_shows("client[0].secret"), "{}", srv.log());
    assert!(srv.log().contains("the running configuration is unchanged"));
    assert_eq!(
        ask(&srv, NEW_SECRET),
        "Access-Reject",
        "the table was dropped"
    );

    // A change outside [[client]] is reported, not applied; the clients are reloaded.
    let server_changed = rotated.replace("[server]\n", "[server]\nmax_in_flight = 7\n");
    assert_ne!(server_changed, rotated);
    std::fs::write(&srv.config, server_changed).unwrap();
    hup(&srv);
    assert!(
        srv.log_shows("reload: [server] changed in"),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains("takes effect after a restart"));
    assert_eq!(ask(&srv, NEW_SECRET), "Access-Reject");
}
