//! A secret file whose secret ends (or begins) in whitespace: kept as it is, as a secret
//! may hold one, and said by `config check` and the start-up log, naming the entry and the
//! file. The drop log then said only that the secrets differ, with nothing to show why.

use super::run;
use crate::common::radmfa::{write_config, Options, Server, SECRET};

#[test]
fn a_secret_file_ending_in_a_space_is_warned_of_not_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &Options::new("ldap://127.0.0.1:1"));
    let file = dir.path().join("local.secret");
    std::fs::write(&file, format!("{SECRET} \nrotated 2026-11\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = std::fs::read_to_string(&cfg).unwrap();
    let inline = format!("secret = \"{SECRET}\"");
    assert!(text.contains(&inline), "{text}");
    std::fs::write(
        &cfg,
        text.replace(&inline, "secret_file = \"local.secret\""),
    )
    .unwrap();
    let said = format!(
        "client \"local\": secret_file {} ends in a space: the NAS's shared secret must end \
         in it too",
        file.display()
    );
    let (ok, out, err) = run(&cfg, &["config", "check"]);
    assert!(
        ok && out.contains(&format!("warning: {said}")),
        "{out}{err}"
    );
    let mut srv = Server::start_with(tempfile::tempdir().unwrap(), cfg.clone());
    assert!(srv.log_shows(&said), "{}", srv.log());
    // Kept: a NAS whose secret ends in the space is answered.
    let r = crate::common::peers::pyrad(
        srv.port(),
        &format!("{SECRET} "),
        &["--user", "nobody", "--password", "pw", "--timeout", "3"],
    );
    assert_eq!(r["code"], "Access-Reject", "{r}\n{}", srv.log());
    assert!(srv.stop().success());
    // A secret without one: nothing said.
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let (ok, out, err) = run(&cfg, &["config", "check"]);
    assert!(ok && !out.contains("ends in"), "{out}{err}");
}
