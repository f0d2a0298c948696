//! FreeRADIUS (Debian's `freeradius` package) as the upstream RADIUS server of
//! `primary = "upstream"` clients: a foreground `freeradius -X` from a temp directory with a
//! `users` file, on three loopback ports:
//!
//! - `signed`: signs every reply with a Message-Authenticator (3.2.1 does that only when
//!   told to, with `update reply { &Message-Authenticator := 0x00 }`: what radmfa's docs
//!   tell admins of a FreeRADIUS before 3.2.5 to add);
//! - `unsigned`: the same users, replies without a Message-Authenticator (3.2.1's default);
//! - `other_secret`: signed replies, but with another shared secret than radmfa's;
//! - `signed_v6`: as `signed`, on ::1.
//!
//! The system service and /etc/freeradius are not used.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::require;
use super::slapd::free_port;

pub const UPSTREAM_SECRET: &str = "upstream-shared-secret";

/// A user of the `users` file: name, password, reply attributes in FreeRADIUS's syntax.
pub struct UpstreamUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub reply: &'a str,
}

pub struct FreeRadius {
    child: Child,
    dir: tempfile::TempDir,
    pub signed: u16,
    pub unsigned: u16,
    pub other_secret: u16,
    pub signed_v6: u16,
}

impl FreeRadius {
    pub fn start(users: &[UpstreamUser]) -> FreeRadius {
        Self::start_with_reject_delay(users, 0)
    }

    /// As [`FreeRadius::start`], holding each Access-Reject for `secs` (its
    /// `security.reject_delay`; a stock install says 1).
    pub fn start_with_reject_delay(users: &[UpstreamUser], secs: u32) -> FreeRadius {
        // A port free when chosen can be taken before FreeRADIUS binds it (by any test's
        // outgoing socket): then it exits saying so, and starts again on other ports.
        for _ in 0..3 {
            match Self::try_start(users, secs) {
                Ok(fr) => return fr,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("freeradius did not start:\n{log}"),
            }
        }
        panic!("freeradius found its ports taken three times in a row")
    }

    /// Started and ready, or everything it printed.
    fn try_start(users: &[UpstreamUser], reject_delay: u32) -> Result<FreeRadius, String> {
        let bin = require("freeradius", "freeradius");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        for sub in ["log", "run"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let mut text = String::new();
        for u in users {
            text.push_str(&format!(
                "{}\tCleartext-Password := \"{}\"\n",
                u.name, u.password
            ));
            if !u.reply.is_empty() {
                text.push_str(&format!("\t{}\n", u.reply));
            }
        }
        std::fs::write(dir.path().join("users"), text).unwrap();
        let (signed, unsigned, other_secret) = (free_port(), free_port(), free_port());
        let signed_v6 = free_port();
        std::fs::write(
            dir.path().join("radiusd.conf"),
            config(
                &d,
                [signed, unsigned, other_secret, signed_v6],
                reject_delay,
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("log/stdout")).unwrap();
        let child = Command::new(bin)
            .args(["-X", "-d", &d])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting freeradius");
        let mut fr = FreeRadius {
            child,
            dir,
            signed,
            unsigned,
            other_secret,
            signed_v6,
        };
        fr.wait_ready()?;
        Ok(fr)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if self.log().contains("Ready to process requests") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}):\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("freeradius did not become ready:\n{}", self.log());
    }

    /// Everything FreeRADIUS printed (`-X`: each request's attributes and its reply).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log/stdout")
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(
    dir: &str,
    [signed, unsigned, other_secret, signed_v6]: [u16; 4],
    reject_delay: u32,
) -> String {
    let listen = |port: u16, clients: &str| {
        let addr = if clients.ends_with("v6") {
            "ipv6addr = ::1"
        } else {
            "ipaddr = 127.0.0.1"
        };
        format!(
            "\tlisten {{\n\t\ttype = auth\n\t\t{addr}\n\t\tport = {port}\n\
             \t\tclients = {clients}\n\t}}\n"
        )
    };
    let server = |name: &str, port: u16, clients: &str, sign: bool| {
        let sign = if sign {
            "\t\tupdate reply {\n\t\t\t&Message-Authenticator := 0x00\n\t\t}\n"
        } else {
            ""
        };
        format!(
            "server {name} {{\n{}\tauthorize {{\n{sign}\t\tfiles\n\t\tpap\n\t}}\n\
             \tauthenticate {{\n\t\tAuth-Type PAP {{\n\t\t\tpap\n\t\t}}\n\t}}\n}}\n",
            listen(port, clients)
        )
    };
    format!(
        r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = ${{exec_prefix}}/sbin
logdir = {dir}/log
raddbdir = {dir}
radacctdir = {dir}/log
name = freeradius
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
run_dir = {dir}/run
db_dir = {dir}
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/${{name}}.pid
correct_escapes = true
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
	destination = stdout
	auth = yes
}}
security {{
	max_attributes = 200
	reject_delay = {reject_delay}
	status_server = yes
}}
clients radmfa {{
	client local {{
		ipaddr = 127.0.0.1
		secret = {UPSTREAM_SECRET}
		require_message_authenticator = yes
	}}
}}
clients radmfa_v6 {{
	client local {{
		ipv6addr = ::1
		secret = {UPSTREAM_SECRET}
		require_message_authenticator = yes
	}}
}}
clients elsewhere {{
	client local {{
		ipaddr = 127.0.0.1
		secret = not-the-secret-radmfa-has
	}}
}}
modules {{
	files {{
		filename = {dir}/users
	}}
	pap {{
	}}
}}
{}{}{}{}"#,
        server("signed", signed, "radmfa", true),
        server("unsigned", unsigned, "radmfa", false),
        server("other_secret", other_secret, "elsewhere", true),
        server("signed_v6", signed_v6, "radmfa_v6", true),
    )
}
