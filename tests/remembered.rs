//! Remembered second factors (`remember_second_factor_secs`) end to end: the real radmfa
//! binary and slapd, pyrad as the NAS (with and without Calling-Station-Id), oathtool's
//! codes, and the provider stand-in placing RD Gateway's calls.

mod common;

use std::cell::Cell;
use std::time::{Duration, Instant};

use common::oob_env::{
    cli_ok, client, directory, rd_gateway_request, start, ALICE_PW, DIRECTORY_MOBILE,
};
use common::peers::{assert_same_reply, pyrad, FreshCodes};
use common::provider_standin::{Script, Standin};
use common::radmfa::{Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};

const STATION_A: &str = "203.0.113.5";
const STATION_B: &str = "198.51.100.7";

fn code_of(v: &serde_json::Value) -> &str {
    v["code"].as_str().unwrap()
}

/// One Access-Request from the NAS at `bind`, from `station` if given.
fn send(
    srv: &Server,
    bind: &str,
    station: Option<&str>,
    password: &str,
    state: Option<&str>,
) -> serde_json::Value {
    let mut args = vec!["--bind", bind, "--user", "alice", "--password", password];
    if let Some(s) = station {
        args.extend(["--calling-station-id", s]);
    }
    if let Some(s) = state {
        args.extend(["--state", s]);
    }
    pyrad(srv.port(), SECRET, &args)
}

fn newest(srv: &Server) -> serde_json::Value {
    srv.audit_json("alice").into_iter().next().unwrap()
}

/// On a prompting client: the code once, then the password alone from the same station
/// until the period ends; never from another station, another client, with a wrong password,
/// past a lockout, or after a login that came with no station; `user forget`, `user reset`
/// and disabling her token end it.
#[test]
fn a_passed_second_factor_spares_the_code_from_the_same_station_only() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [
        client("vpn", "127.0.0.1", "remember_second_factor_secs = 600"),
        client(
            "inline-vpn",
            "127.0.0.2",
            "otp_mode = \"inline\"\nremember_second_factor_secs = 600",
        ),
        client("plain", "127.0.0.3", ""),
        client("short", "127.0.0.4", "remember_second_factor_secs = 4"),
    ];
    // A wide window: the test logs in with 19 codes, six a step at window 3 (a minute
    // of waiting for new steps).
    let extra = "\n[totp]\nwindow = 10\n\n[lockout]\nthreshold = 2\n";
    let srv = start(&slapd, &standin, "", extra, &clients);
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), 10);
    let full_login = |bind: &str, station: Option<&str>| {
        // A login verified in the second of an admin's forget (below) is not remembered:
        // the store cannot tell it from one that passed before the forget.
        common::peers::into_next_second();
        let r1 = send(&srv, bind, station, ALICE_PW, None);
        assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
        // The answer comes without Calling-Station-Id: the first round's is carried.
        let state = r1["state"].as_str().unwrap().to_string();
        let r2 = send(&srv, bind, None, &codes.next(), Some(&state));
        assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    };

    // Nothing remembered yet: the password alone gets the prompt.
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    full_login("127.0.0.1", Some(STATION_A));
    assert_eq!(newest(&srv)["mode"], "totp");

    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Accept", "remembered: {r}");
    let rec = newest(&srv);
    assert_eq!(
        (rec["mode"].as_str(), rec["result"].as_str()),
        (Some("remembered"), Some("accept")),
        "{rec}"
    );
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("totp passed in a login begun at "),
        "{reason}"
    );
    assert_eq!(rec["client_ip"], STATION_A);
    // And the box the request came from, beside the user's station.
    assert_eq!(rec["nas_ip"], "127.0.0.1", "{rec}");

    // The password is still checked, and the same reply as for anyone with a wrong one.
    let r = send(&srv, "127.0.0.1", Some(STATION_A), "wrong-password", None);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let unremembered = send(&srv, "127.0.0.1", Some(STATION_B), "wrong-password", None);
    assert_same_reply(&r, &unremembered);
    // Another station, no station, another client: the prompt.
    for (bind, station) in [
        ("127.0.0.1", Some(STATION_B)),
        ("127.0.0.1", None),
        ("127.0.0.3", Some(STATION_A)),
    ] {
        let r = send(&srv, bind, station, ALICE_PW, None);
        assert_eq!(code_of(&r), "Access-Challenge", "{bind} {station:?}: {r}");
    }
    // A login from no station is not remembered on a VPN client: it would hold from anywhere.
    full_login("127.0.0.1", None);
    let r = send(&srv, "127.0.0.1", None, ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "no station: {r}");
    // Nor one whose Calling-Station-Id is blank: that names no station either (it was
    // remembered, and `user show` listed it "from   until").
    full_login("127.0.0.1", Some(" "));
    let r = send(&srv, "127.0.0.1", Some(" "), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "blank station: {r}");
    let show = cli_ok(&srv, &["user", "show", "alice"]);
    assert!(
        show.contains(&format!("remembered: totp on vpn from {STATION_A} until")),
        "{show}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert_eq!(json["remembered"][0]["calling_station_id"], STATION_A);
    // The login from no station stored nothing (the Challenge above would come either way:
    // a request without a station finds no row whatever is stored).
    assert_eq!(
        json["remembered"].as_array().map(Vec::len),
        Some(1),
        "{json}"
    );

    // Inline: password,code once; then the password alone (otherwise refused for want of a
    // code) from that station; from another it is still refused.
    let inline = |station: &str, field: &str| send(&srv, "127.0.0.2", Some(station), field, None);
    assert_eq!(code_of(&inline(STATION_A, ALICE_PW)), "Access-Reject");
    let field = format!("{ALICE_PW},{}", codes.next());
    assert_eq!(code_of(&inline(STATION_A, &field)), "Access-Accept");
    assert_eq!(code_of(&inline(STATION_A, ALICE_PW)), "Access-Accept");
    assert_eq!(newest(&srv)["mode"], "remembered");
    assert_eq!(code_of(&inline(STATION_B, ALICE_PW)), "Access-Reject");
    // A code typed with the password at the remembered station is used up all the same:
    // the same field from another station is refused. It logged in there as a full second
    // factor, and that station was remembered in turn.
    let typed = format!("{ALICE_PW},{}", codes.next());
    assert_eq!(code_of(&inline(STATION_A, &typed)), "Access-Accept");
    assert_eq!(newest(&srv)["mode"], "remembered");
    assert_eq!(code_of(&inline(STATION_B, &typed)), "Access-Reject");
    assert_eq!(newest(&srv)["reason"], "code already used");

    // The period ends when it says, and a remembered login does not renew it.
    // The period is kept in whole seconds, so it has 3-4 s left for the pyrad run below (2 s
    // left as little as 1, and a loaded machine could miss it). Expiry is waited for from
    // the login, not from the remembered one: a renewal into a later second would
    // outlast the wait.
    full_login("127.0.0.4", Some(STATION_A));
    let logged_in = Instant::now();
    let r = send(&srv, "127.0.0.4", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    std::thread::sleep(
        (logged_in + Duration::from_millis(4200)).saturating_duration_since(Instant::now()),
    );
    let r = send(&srv, "127.0.0.4", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "expired: {r}");

    // A locked second factor is not opened by a remembered one.
    for _ in 0..2 {
        let r1 = send(&srv, "127.0.0.1", Some(STATION_B), ALICE_PW, None);
        let state = r1["state"].as_str().unwrap().to_string();
        let r2 = send(&srv, "127.0.0.1", None, "000000", Some(&state));
        assert_eq!(code_of(&r2), "Access-Reject", "{r2}");
    }
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Reject", "locked: {r}");
    assert_eq!(newest(&srv)["reason"], "second factor locked");
    cli_ok(&srv, &["user", "unlock", "alice"]);
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Accept", "unlocked: {r}");

    // `user forget`: every client asks again.
    let said = cli_ok(&srv, &["user", "forget", "alice"]);
    assert!(said.contains("3 remembered login(s) forgotten"), "{said}");
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "forgotten: {r}");
    assert_eq!(code_of(&inline(STATION_A, ALICE_PW)), "Access-Reject");
    let forget = srv
        .audit_json("alice")
        .into_iter()
        .find(|r| r["result"] == "forget")
        .expect("the admin action is audited");
    assert_eq!(forget["reason"], "3 remembered login(s) forgotten");

    // A token taken from her (disabled: reported lost) is not remembered either.
    full_login("127.0.0.1", Some(STATION_A));
    let tokens: serde_json::Value = serde_json::from_str(&cli_ok(
        &srv,
        &["token", "list", "--user", "alice", "--json"],
    ))
    .unwrap();
    let serial = tokens[0]["serial"].as_str().unwrap().to_string();
    let said = cli_ok(&srv, &["token", "disable", &serial]);
    assert!(
        said.contains("1 remembered login(s) of alice forgotten"),
        "{said}"
    );
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "token disabled: {r}");
    let said = cli_ok(&srv, &["token", "enable", &serial]);
    assert!(!said.contains("forgotten"), "{said}");

    // A new phone number (the old phone lost): nothing sent to the old one stays remembered.
    full_login("127.0.0.1", Some(STATION_A));
    let said = cli_ok(&srv, &["user", "set-phone", "alice", "+4915112345670"]);
    assert!(said.contains("1 remembered login(s) forgotten"), "{said}");
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "phone changed: {r}");
    let set = srv
        .audit_json("alice")
        .into_iter()
        .find(|r| r["result"] == "set-phone")
        .expect("the admin action is audited");
    assert!(
        set["reason"]
            .as_str()
            .unwrap()
            .contains("; 1 remembered login(s) forgotten"),
        "{set}"
    );
    assert!(
        !set["reason"].as_str().unwrap().contains("12345670"),
        "masked: {set}"
    );

    // `user forget` between the prompt and the code: the login goes through, its code
    // being good, but is not remembered, even when the code comes in a later second than
    // the forget's mark. (`set-phone` would end the prompt itself.)
    common::peers::into_next_second();
    let r1 = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    cli_ok(&srv, &["user", "forget", "alice"]);
    common::peers::into_next_second();
    let state = r1["state"].as_str().unwrap().to_string();
    let r2 = send(&srv, "127.0.0.1", None, &codes.next(), Some(&state));
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(
        code_of(&r),
        "Access-Challenge",
        "remembered past a forget made during its login: {r}"
    );

    // `user reset`: a factor the user no longer has is not remembered either.
    full_login("127.0.0.1", Some(STATION_A));
    let said = cli_ok(&srv, &["user", "reset", "alice"]);
    assert!(said.contains("1 remembered login(s) forgotten"), "{said}");
    // Her token is gone; the directory's mobile is left, so the prompt is for an SMS code.
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "not remembered: {r}");
    assert_eq!(newest(&srv)["mode"], "sms");
}

/// A NAS that reports the station as `ip:port` sends a new port with each connection, and
/// NAS boxes write a MAC address in several forms: a login is remembered for the address
/// or the MAC, not for its spelling, and `user show` and the audit name it so.
/// Inline, a password that ends in the delimiter and digits ("Pass,2024", for a user whose
/// token has 6-digit codes) is the password alone where the field may be one: it was split
/// off as a code, "Pass" went to the directory ("bad password", counted by its lockout),
/// and the remembered station never let the user in. Where a code is needed, the field
/// still gets "no code" (no bind), and the password with a code still works.
/// The code answered from another station than the password (its own Calling-Station-Id
/// on the State round): remembered for neither. It was remembered for the code's station,
/// a device that never typed the password.
#[test]
fn a_code_from_another_station_than_the_password_is_not_remembered() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "remember_second_factor_secs = 600",
    )];
    let srv = start(&slapd, &standin, "", "", &clients);
    let seed = srv.enroll("alice", &[]);
    let r1 = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let state = r1["state"].as_str().unwrap().to_string();
    let code = common::peers::totp(&seed, common::peers::now(), &[]);
    let r2 = send(&srv, "127.0.0.1", Some(STATION_B), &code, Some(&state));
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    for station in [STATION_A, STATION_B] {
        let r = send(&srv, "127.0.0.1", Some(station), ALICE_PW, None);
        assert_eq!(code_of(&r), "Access-Challenge", "{station}: {r}");
    }
    let shown = String::from_utf8_lossy(&srv.cli(&["user", "show", "alice"]).stdout).to_string();
    assert!(!shown.contains("remembered"), "{shown}");
    // The password round with no station and the code round with one: remembered for
    // neither. The code round's station alone would bind the period to a device that never
    // typed the password (a reviewer's NAS sent Calling-Station-Id only with the code).
    let r1 = send(&srv, "127.0.0.1", None, ALICE_PW, None);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let state = r1["state"].as_str().unwrap().to_string();
    let code = common::peers::totp(&seed, common::peers::now() + 30, &[]);
    let r2 = send(&srv, "127.0.0.1", Some(STATION_B), &code, Some(&state));
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    let r = send(&srv, "127.0.0.1", Some(STATION_B), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "code round's station: {r}");
    let shown = String::from_utf8_lossy(&srv.cli(&["user", "show", "alice"]).stdout).to_string();
    assert!(!shown.contains("remembered"), "{shown}");
}

/// A reload that takes the remembered login's method off the client: the remembered login
/// no longer spares the second factor (an app code remembered, then codes dropped for SMS
/// only). It held for the rest of its period, by a method the client no longer takes.
#[test]
fn a_method_taken_off_the_client_ends_what_it_remembered() {
    let slapd = directory();
    let standin = Standin::start();
    let both = "remember_second_factor_secs = 600\nmethods = [\"totp\", \"sms\"]";
    let clients = [client("vpn", "127.0.0.1", both)];
    let srv = start(&slapd, &standin, "", "", &clients);
    let seed = srv.enroll("alice", &[]);
    let r1 = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    let state = r1["state"].as_str().unwrap().to_string();
    let code = common::peers::totp(&seed, common::peers::now(), &[]);
    let r2 = send(&srv, "127.0.0.1", Some(STATION_A), &code, Some(&state));
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Accept", "remembered: {r}");
    assert_eq!(newest(&srv)["mode"], "remembered");

    let text = std::fs::read_to_string(&srv.config).unwrap();
    std::fs::write(
        &srv.config,
        text.replace("methods = [\"totp\", \"sms\"]", "methods = [\"sms\"]"),
    )
    .unwrap();
    assert_eq!(srv.reload(1), 1, "{}", srv.log());
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    assert_ne!(newest(&srv)["mode"], "remembered");
}

#[test]
fn a_password_ending_in_the_delimiter_and_digits_is_remembered_whole() {
    const PW: &str = "Pass,2024";
    let slapd = Slapd::start(&[LdapUser::new("alice", PW)]);
    let standin = Standin::start();
    let clients = [client(
        "inline-vpn",
        "127.0.0.2",
        "otp_mode = \"inline\"\nremember_second_factor_secs = 600",
    )];
    let srv = start(&slapd, &standin, "", "\n[totp]\nwindow = 3\n", &clients);
    let codes = FreshCodes::with_window(srv.enroll("alice", &[]), 3);
    // Not remembered yet: the code is needed, and the field without one has none.
    let r = send(&srv, "127.0.0.2", Some(STATION_A), PW, None);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(
        newest(&srv)["reason"],
        "no code found in the password field"
    );
    let r = send(
        &srv,
        "127.0.0.2",
        Some(STATION_A),
        &format!("{PW},{}", codes.next()),
        None,
    );
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    let r = send(&srv, "127.0.0.2", Some(STATION_A), PW, None);
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(newest(&srv)["mode"], "remembered");
    // A wrong password ending so is refused, and the audit says how the field was read.
    let r = send(&srv, "127.0.0.2", Some(STATION_A), "Wrong,2024", None);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let reason = newest(&srv)["reason"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with("bad password")
            && reason.contains("no token of this user's has codes that long"),
        "{reason}"
    );
}

#[test]
fn a_station_is_remembered_whatever_form_its_nas_writes_it_in() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "remember_second_factor_secs = 600",
    )];
    let srv = start(&slapd, &standin, "", "\n[totp]\nwindow = 3\n", &clients);
    let codes = FreshCodes::new(srv.enroll("alice", &[]));
    let full_login = |station: &str| {
        let r1 = send(&srv, "127.0.0.1", Some(station), ALICE_PW, None);
        assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
        let state = r1["state"].as_str().unwrap().to_string();
        let r2 = send(&srv, "127.0.0.1", None, &codes.next(), Some(&state));
        assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    };
    let password_alone = |station: &str| send(&srv, "127.0.0.1", Some(station), ALICE_PW, None);

    full_login("198.51.100.7:51234");
    for station in ["198.51.100.7:51999", "198.51.100.7", "::ffff:198.51.100.7"] {
        let r = password_alone(station);
        assert_eq!(code_of(&r), "Access-Accept", "{station}: {r}");
        let rec = newest(&srv);
        assert_eq!(rec["mode"], "remembered", "{station}: {rec}");
        // The record keeps what the NAS sent; its reason names the station remembered.
        assert_eq!(rec["client_ip"], station, "{rec}");
        let reason = rec["reason"].as_str().unwrap();
        assert!(reason.contains("from station 198.51.100.7;"), "{reason}");
    }
    let r = password_alone("198.51.100.8:51234");
    assert_eq!(code_of(&r), "Access-Challenge", "another address: {r}");

    full_login("00-11-22-33-44-6A");
    for station in ["00:11:22:33:44:6a", "00-11-22-33-44-6a", "0011.2233.446A"] {
        let r = password_alone(station);
        assert_eq!(code_of(&r), "Access-Accept", "{station}: {r}");
    }
    let r = password_alone("00:11:22:33:44:6b");
    assert_eq!(code_of(&r), "Access-Challenge", "another MAC: {r}");

    let show = cli_ok(&srv, &["user", "show", "alice"]);
    for station in ["198.51.100.7", "00:11:22:33:44:6a"] {
        assert!(
            show.contains(&format!("remembered: totp on vpn from {station} until")),
            "{show}"
        );
    }
}

/// RD Gateway asks again for every new connection or RemoteApp, and each ask would be a
/// phone call: with a remembered call, one call per period. It sends no Calling-Station-Id,
/// so the call is remembered for the user on that gateway.
#[test]
fn rd_gateway_calls_once_per_remembered_period() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(500)),
    );
    let rdg_keys = "second_factor_only = true\nmethods = [\"voice\"]\nvoice_mode = \"hold\"\n\
                    voice_budget_secs = 30";
    let clients = [
        client(
            "rd-gateway",
            "127.0.0.1",
            &format!("{rdg_keys}\nremember_second_factor_secs = 600"),
        ),
        client("rd-gateway-2", "127.0.0.2", rdg_keys),
    ];
    let srv = start(&slapd, &standin, "", "", &clients);
    let rdg = |bind: &str| rd_gateway_request(&srv, bind);
    for n in 1..=3 {
        let r = rdg("127.0.0.1");
        assert_eq!(code_of(&r), "Access-Accept", "connection {n}: {r}");
    }
    assert_eq!(standin.calls().len(), 1, "one call for three connections");
    let modes: Vec<String> = srv
        .audit_json("alice")
        .iter()
        .map(|r| r["mode"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(modes, ["remembered", "remembered", "voice"]);
    // A request of another shape (no NAS-Port-Type Virtual, no UserAuthType:, no station:
    // a bare User-Name another NPS policy forwards) does not ride the approval remembered
    // for RD Gateway: it gets its own call. It was let in on nothing.
    let bare = common::peers::pyrad(
        srv.port(),
        common::radmfa::SECRET,
        &["--bind", "127.0.0.1", "--user", "alice", "--timeout", "35"],
    );
    assert_eq!(
        srv.audit_json("alice")[0]["mode"],
        "voice",
        "{bare}: {}",
        srv.audit_json("alice")[0]
    );
    assert_eq!(standin.calls().len(), 2, "{bare}");

    // A gateway without the setting calls every time.
    for _ in 0..2 {
        assert_eq!(code_of(&rdg("127.0.0.2")), "Access-Accept");
    }
    assert_eq!(standin.calls().len(), 4);
}

/// A period lowered by a reload applies to what was remembered before it; turned off, none
/// is honoured.
#[test]
fn a_reload_that_shortens_or_ends_remembering_applies_at_once() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "remember_second_factor_secs = 3600",
    )];
    let srv = start(&slapd, &standin, "", "\n[totp]\nwindow = 3\n", &clients);
    let codes = FreshCodes::new(srv.enroll("alice", &[]));
    let from_a =
        |pw: &str, state: Option<&str>| send(&srv, "127.0.0.1", Some(STATION_A), pw, state);
    let full_login = || {
        let r1 = from_a(ALICE_PW, None);
        let state = r1["state"].as_str().unwrap().to_string();
        let r2 = from_a(&codes.next(), Some(&state));
        assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    };
    let setting = Cell::new(3600);
    let reload_with = |secs: u32| {
        reload_remember(&srv, setting.get(), secs);
        setting.set(secs);
    };
    full_login();
    assert_eq!(code_of(&from_a(ALICE_PW, None)), "Access-Accept");

    // An hour, lowered to 2 s: the login remembered under the hour ends 2 s after its code.
    reload_with(2);
    std::thread::sleep(Duration::from_millis(2000));
    let r = from_a(ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "lowered: {r}");

    // Back to an hour: the lowered period ended that login for good; raising it again does
    // not bring it back.
    reload_with(3600);
    let r = from_a(ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "raised again: {r}");

    // A new login, then off: it is not honoured, nor listed, nor back when turned on again.
    full_login();
    assert_eq!(code_of(&from_a(ALICE_PW, None)), "Access-Accept");
    reload_with(0);
    let r = from_a(ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "turned off: {r}");
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert_eq!(show["remembered"], serde_json::json!([]), "{show}");
    assert!(
        srv.log_shows("1 remembered login(s) of client \"vpn\" forgotten"),
        "{}",
        srv.log()
    );
    reload_with(3600);
    let r = from_a(ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Challenge", "turned on again: {r}");
}

/// Rewrites the client's `remember_second_factor_secs` from `from` to `to` and reloads
/// (SIGHUP); returns once the log says the new configuration is in place.
fn reload_remember(srv: &Server, from: u32, to: u32) {
    let text = std::fs::read_to_string(&srv.config).unwrap();
    let old = format!("remember_second_factor_secs = {from}");
    assert!(text.contains(&old));
    let text = text.replace(&old, &format!("remember_second_factor_secs = {to}"));
    std::fs::write(&srv.config, text).unwrap();
    let done = "[[client]] entries from";
    let before = srv.log().matches(done).count();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while srv.log().matches(done).count() == before {
        assert!(
            std::time::Instant::now() < until,
            "no reload: {}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A login under way while a reload turns remembering off is not remembered once it
/// passes: it ran under the old configuration, and wrote its row with the old period after
/// the reload's cut, so the period raised again brought it back.
#[test]
fn a_login_under_way_during_a_reload_is_held_to_the_new_period() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client(
        "inline-vpn",
        "127.0.0.1",
        "otp_mode = \"inline\"\nremember_second_factor_secs = 3600",
    )];
    let srv = start(&slapd, &standin, "", "\n[totp]\nwindow = 3\n", &clients);
    let codes = FreshCodes::new(srv.enroll("alice", &[]));
    let field = format!("{ALICE_PW},{}", codes.next());
    // The directory frozen, so the login waits in its bind while the reload happens.
    slapd.signal("-STOP");
    let port = srv.port();
    let pending = std::thread::spawn(move || {
        let args = [
            "--bind",
            "127.0.0.1",
            "--user",
            "alice",
            "--password",
            &field,
            "--calling-station-id",
            STATION_A,
        ];
        pyrad(port, SECRET, &args)
    });
    slapd.wait_for_unread_request();
    reload_remember(&srv, 3600, 0);
    slapd.signal("-CONT");
    let login = pending.join().unwrap();
    assert_eq!(code_of(&login), "Access-Accept", "{login}");
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert_eq!(show["remembered"], serde_json::json!([]), "{show}");
    reload_remember(&srv, 0, 3600);
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(
        code_of(&r),
        "Access-Reject",
        "the password alone, turned on again: {r}"
    );
}

/// A period lowered while radmfa was stopped applies at start-up as a reload's does: the
/// rows are cut to it, and those of a client taken out of the file are deleted.
#[test]
fn a_restart_with_a_lower_period_cuts_what_was_remembered() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), &Options::new(&slapd.url));
    let db = common::radmfa::migrated(dir.path(), &config);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (nas, station) in [
        ("local", STATION_A),
        ("local", STATION_B),
        ("gone", STATION_A),
    ] {
        db.execute(
            "INSERT INTO remembered_logins (user, nas, station, mode, verified_at, expires_at) \
             VALUES ('alice', ?1, ?2, 'totp', ?3, ?4)",
            rusqlite::params![nas, station, now - 10, now + 3590],
        )
        .unwrap();
    }
    // The client (the file's last entry) now remembers for a minute.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("remember_second_factor_secs = 60\n");
    std::fs::write(&config, text).unwrap();
    let srv = Server::start_with(dir, config);
    let mut q = db
        .prepare("SELECT nas, station, expires_at FROM remembered_logins ORDER BY nas, station")
        .unwrap();
    let rows: Vec<(String, String, i64)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            ("local".to_string(), STATION_B.to_string(), now + 50),
            ("local".to_string(), STATION_A.to_string(), now + 50),
        ],
        "{}",
        srv.log()
    );
    let log = srv.log();
    assert!(
        log.contains(
            "2 remembered login(s) of client \"local\" cut to its remember_second_factor_secs = 60"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "1 remembered login(s) of client \"gone\", no longer in the configuration, forgotten"
        ),
        "{log}"
    );
}

/// A fraud report (0# on the call) forgets the user's remembered second factors, so after
/// `user unblock` even the station that was remembered is called again.
#[test]
fn a_fraud_report_forgets_what_was_remembered() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 20\n\
         remember_second_factor_secs = 3600",
    )];
    let srv = start(&slapd, &standin, "", "", &clients);
    let held = |station: &str| {
        pyrad(
            srv.port(),
            SECRET,
            &[
                "--user",
                "alice",
                "--password",
                ALICE_PW,
                "--calling-station-id",
                station,
                "--timeout",
                "25",
            ],
        )
    };
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(300)),
    );
    assert_eq!(code_of(&held(STATION_A)), "Access-Accept");
    assert_eq!(code_of(&held(STATION_A)), "Access-Accept");
    assert_eq!(standin.calls().len(), 1, "the second login was remembered");

    // From elsewhere, a login alice did not start: she reports fraud.
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("0", Duration::from_millis(300)),
    );
    assert_eq!(code_of(&held(STATION_B)), "Access-Reject");
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert_eq!(show["remembered"], serde_json::json!([]), "{show}");

    cli_ok(&srv, &["user", "unblock", "alice"]);
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(300)),
    );
    assert_eq!(code_of(&held(STATION_A)), "Access-Accept");
    assert_eq!(standin.calls().len(), 3, "station A was called again");
}

/// An expired remembered login (it says where a user logged in from) is deleted on a site
/// without SMS or calls too. The purge ran only with a provider configured, and such rows
/// stayed forever where TOTP was the only factor.
#[test]
fn expired_remembered_logins_are_purged_without_sms_or_calls() {
    let slapd = Slapd::start(&[LdapUser::new("alice", "alice-pw")]);
    let dir = tempfile::tempdir().unwrap();
    let config = common::radmfa::write_config(dir.path(), &Options::new(&slapd.url));
    let db = common::radmfa::migrated(dir.path(), &config);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (station, expires) in [(STATION_A, now - 3600), (STATION_B, now + 3600)] {
        db.execute(
            "INSERT INTO remembered_logins (user, nas, station, mode, verified_at, expires_at) \
             VALUES ('alice', 'local', ?1, 'totp', ?2, ?3)",
            rusqlite::params![station, expires - 900, expires],
        )
        .unwrap();
    }
    // The client remembers (start-up deletes the rows of one that does not).
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("remember_second_factor_secs = 3600\n");
    std::fs::write(&config, text).unwrap();
    let srv = Server::start_with(dir, config);
    let stations = || -> Vec<String> {
        let mut q = db
            .prepare("SELECT station FROM remembered_logins ORDER BY station")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while stations().len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stations(), [STATION_B], "{}", srv.log());
}

/// A remembered code stands on the token that made it: once the user's only token has
/// expired (PSKC ExpiryDate), the password alone from the remembered station is refused as
/// a new login would be ("Your second factor has expired"). Disabling, deleting or
/// reassigning the token ended it; its expiry did not, and let her in for the rest of the
/// period.
#[test]
fn a_remembered_code_ends_when_the_users_token_expires() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "methods = [\"totp\"]\nremember_second_factor_secs = 600",
    )];
    let srv = start(&slapd, &standin, "", "\n[totp]\nwindow = 3\n", &clients);
    let seed = b"remembered-expiring-";
    // Long enough for the import and two logins on a slow machine (checked below).
    let expiry = common::peers::now() + 12;
    let file = srv.dir.path().join("expiring.pskcxml");
    let tokens = serde_json::json!([
        {"serial": "PX0001", "secret_hex": hex::encode(seed), "type": "totp", "digits": 6,
         "period": 30, "user": "alice", "expiry_date": expiry},
    ]);
    common::peers::make_pskc(&file, &tokens, &[]);
    cli_ok(&srv, &["token", "import", file.to_str().unwrap()]);
    let codes = FreshCodes::new(data_encoding::BASE32_NOPAD.encode(seed));

    let r1 = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let state = r1["state"].as_str().unwrap().to_string();
    let r2 = send(&srv, "127.0.0.1", None, &codes.next(), Some(&state));
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert!(
        common::peers::now() < expiry,
        "the machine was too slow: the token expired before the remembered login"
    );
    assert_eq!(code_of(&r), "Access-Accept", "remembered: {r}");
    assert_eq!(newest(&srv)["mode"], "remembered");

    while common::peers::now() <= expiry {
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = send(&srv, "127.0.0.1", Some(STATION_A), ALICE_PW, None);
    assert_eq!(code_of(&r), "Access-Reject", "remembered past expiry: {r}");
    assert_eq!(
        r["messages"][0], "Your second factor has expired. Contact your administrator.",
        "{r}"
    );
    assert_ne!(newest(&srv)["mode"], "remembered");
}
