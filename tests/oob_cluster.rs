//! Two radmfa processes sharing one store, as two nodes of a cluster: a NAS that fails over
//! and sends the same Access-Request (same source, Identifier, Request Authenticator) to both
//! gets one call, not two, and both nodes answer with the call's decision — the node that did
//! not place the call learns it from the store.

mod common;

use std::time::Duration;

use common::oob_env::{client, directory, start, ALICE_PW, DIRECTORY_MOBILE};
use common::provider_standin::{Script, Standin};
use common::radmfa::{Server, SECRET};
use common::slapd::free_port;
use radmfa::radius::client::{parse_reply, AccessRequestBuilder};

/// A second node: the first node's config with the same database and key file and its own
/// callback port.
fn second_node(first: &Server) -> Server {
    let text = std::fs::read_to_string(&first.config).unwrap();
    let db = first.dir.path().join("radmfa.db");
    let key = first.dir.path().join("radmfa.key");
    let old_port = text
        .split("listen = \"127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let new_port = free_port().to_string();
    let text = text
        .replace(
            "path = \"radmfa.db\"",
            &format!("path = {:?}", db.display().to_string()),
        )
        .replace(
            "key_file = \"radmfa.key\"",
            &format!("key_file = {:?}", key.display().to_string()),
        )
        .replace(
            &format!("127.0.0.1:{old_port}"),
            &format!("127.0.0.1:{new_port}"),
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.toml");
    std::fs::write(&path, text).unwrap();
    Server::start_with(dir, path)
}

#[test]
fn same_request_on_two_nodes_places_one_call_and_both_accept() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(2500)),
    );
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 20",
    )];
    let a = start(&slapd, &standin, "", "", &clients);
    let b = second_node(&a);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (pkt, _) = AccessRequestBuilder::new(31, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&pkt, a.addr).unwrap();
    // The NAS gives up on node A and fails over to node B with the same packet.
    std::thread::sleep(Duration::from_millis(1000));
    sock.send_to(&pkt, b.addr).unwrap();
    let mut buf = [0u8; 4096];
    let mut from = Vec::new();
    for _ in 0..2 {
        let (n, src) = sock.recv_from(&mut buf).expect("both nodes answer");
        assert_eq!(
            parse_reply(&buf[..n]).unwrap().code,
            2,
            "Access-Accept from {src}"
        );
        from.push(src);
    }
    from.sort();
    let mut want = vec![a.addr, b.addr];
    want.sort();
    assert_eq!(from, want);
    assert_eq!(
        standin.calls().len(),
        1,
        "one call for one request across nodes"
    );
}
