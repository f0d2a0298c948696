//! `serve` checks `[ldap]` at start as a reload checks new settings (connect, service
//! bind, base_dn), in the background, and warns naming the server and the cause. Before,
//! it started quietly with a wrong bind_password, nothing listening or a wrong CA file, and
//! the first hint came with the first login.

use crate::common::pki::Pki;
use crate::common::radmfa::{write_config, Options, Server};
use crate::common::slapd::{free_port, LdapUser, Slapd, SlapdOptions};

/// A server on `o` with `edit` made to its config text; it must start listening.
fn serve(o: &Options, edit: impl FnOnce(String) -> String) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), o);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, edit(text)).unwrap();
    Server::start_with(dir, cfg)
}

#[test]
fn serve_warns_at_start_of_a_directory_it_cannot_use() {
    let slapd = Slapd::start_with(
        &[LdapUser::new("alice", "pw")],
        SlapdOptions {
            tls: true,
            ..Default::default()
        },
    );
    let still = "serving anyway: the directory may come up later";
    // A wrong bind_password: refused by the directory.
    let srv = serve(&Options::new(&slapd.url), |t| {
        t.replace("bind_password = \"adminpw\"", "bind_password = \"wrong\"")
    });
    let refused = format!(
        "ldap {}: service bind as cn=admin,dc=example,dc=org: rc=49 (invalidCredentials)",
        slapd.url
    );
    assert!(
        srv.log_shows(&refused) && srv.log_shows(still),
        "{}",
        srv.log()
    );
    // Nothing listening.
    let nobody = format!("ldap://127.0.0.1:{}", free_port());
    let srv = serve(&Options::new(&nobody), |t| t);
    assert!(
        srv.log_shows(&format!("ldap {nobody}: ")) && srv.log_shows("Connection refused"),
        "{}",
        srv.log()
    );
    // A CA file that is not the server's CA.
    let other = tempfile::tempdir().unwrap();
    let other_ca = Pki::make(other.path(), "other").ca;
    let ldaps = slapd.ldaps_url.clone().unwrap();
    let mut o = Options::new(&ldaps);
    o.ldap_extra = format!("ca_file = {:?}", other_ca.to_str().unwrap());
    let srv = serve(&o, |t| t);
    assert!(
        srv.log_shows(&format!(
            "ldap {ldaps}: TLS: invalid peer certificate: UnknownIssuer (the server's \
             certificate is not from a CA in [ldap] ca_file {}",
            other_ca.display()
        )),
        "{}",
        srv.log()
    );
    // ldaps:// to the plain port: asked about.
    let crossed = format!("ldaps://127.0.0.1:{}", slapd.port);
    let srv = serve(&Options::new(&crossed), |t| t);
    assert!(
        srv.log_shows("(is this port plain LDAP? ldaps:// is usually port 636)"),
        "{}",
        srv.log()
    );
    // A base_dn that is not there.
    let srv = serve(&Options::new(&slapd.url), |t| {
        t.replace("ou=people,dc=example", "ou=users,dc=example")
    });
    assert!(
        srv.log_shows(&format!(
            "ldap {}: connected and bound, but [ldap] base_dn",
            slapd.url
        )) && srv.log_shows("(a typo?)"),
        "{}",
        srv.log()
    );
    // A ca_file with no TLS to use it: the start says so, as config check does.
    let mut o = Options::new(&slapd.url);
    o.ldap_extra = format!("ca_file = {:?}", other_ca.to_str().unwrap());
    let srv = serve(&o, |t| t);
    assert!(
        srv.log_shows(&format!(
            "ldap: ca_file {} is set, but no connection uses TLS",
            other_ca.display()
        )),
        "{}",
        srv.log()
    );
    // And nothing of the kind where all is well: one line says the check was made.
    let mut srv = serve(&Options::new(&slapd.url), |t| t);
    assert!(
        srv.log_shows(
            "ldap: start-up check done: 1 of 1 server(s) connected, bound and read base_dn"
        ),
        "{}",
        srv.log()
    );
    let warned = srv
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("ldap ldap://"))
        .count();
    assert_eq!(warned, 0, "{}", srv.log());
    assert!(srv.stop().success());
}
