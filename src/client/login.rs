//! `radmfa client login`: one login the way a VPN box would make it, for an admin checking a
//! deployment. Sends the password, shows the server's prompt at an Access-Challenge, reads the
//! code, and answers with the State, repeating while the server keeps challenging.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::net::UdpSocket;

use super::verify::{check, Failure, Verify};
use crate::radius::client::{parse_reply, status_server, AccessRequestBuilder};
use crate::secret::Secret;

pub struct LoginSpec {
    pub server: SocketAddr,
    /// Over RadSec (TLS) instead of UDP.
    pub radsec: Option<super::radsec::RadsecArgs>,
    pub secret: Secret,
    pub user: String,
    pub nas_identifier: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub verify: Verify,
}

/// How a login ended; the CLI maps it to the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Accepted,
    Rejected,
}

/// Asks the user for the next answer (password, then codes). `prompt` is what to show.
pub trait Answerer {
    fn password(&mut self, user: &str) -> anyhow::Result<Secret>;
    fn code(&mut self, prompt: &str) -> anyhow::Result<Secret>;
}

/// Reads from the terminal: the password without echo, codes as a visible line.
pub struct Terminal {
    pub password: Option<Secret>,
    /// Codes given on the command line, used before asking.
    pub codes: Vec<Secret>,
}

impl Answerer for Terminal {
    fn password(&mut self, user: &str) -> anyhow::Result<Secret> {
        if let Some(p) = self.password.take() {
            return Ok(p);
        }
        // rpassword asks on /dev/tty; with no controlling terminal (cron, setsid, a service)
        // opening it fails with ENXIO, which read "reading the password: No such device or
        // address" and named no way out.
        if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_err()
        {
            bail!(
                "no terminal to ask for the password: give it in RADMFA_PASSWORD (or \
                 --password, which other users can see while it runs)"
            );
        }
        let p = rpassword::prompt_password(format!("Password for {user}: "))
            .context("reading the password")?;
        Ok(Secret::from(p))
    }

    fn code(&mut self, prompt: &str) -> anyhow::Result<Secret> {
        if !self.codes.is_empty() {
            eprintln!("{prompt} (answered from --code)");
            return Ok(self.codes.remove(0));
        }
        eprint!("{}", with_colon(prompt));
        std::io::stderr().flush().ok();
        let mut line = String::new();
        let n = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the code")?;
        if n == 0 {
            bail!("no code given (end of input)");
        }
        Ok(Secret::from(line.trim()))
    }
}

pub async fn login(spec: &LoginSpec, answers: &mut dyn Answerer) -> anyhow::Result<LoginResult> {
    // Before the password is asked for: typing one only to hear the name cannot be sent.
    anyhow::ensure!(
        !spec.user.is_empty() && spec.user.len() <= 253,
        "the user name must be 1 to 253 octets"
    );
    let mut link = open(spec).await?;
    let mut password = answers.password(&spec.user)?;
    let mut state: Option<Vec<u8>> = None;
    // Each round gets a new identifier (RFC 2865 §3); a dozen rounds means a server loop.
    for round in 1u8..=12 {
        // RFC 2865 §5.2: User-Password carries at most 128 octets.
        anyhow::ensure!(
            password.expose().len() <= 128,
            "the password or code is longer than the 128 octets RADIUS can carry"
        );
        let mut b = AccessRequestBuilder::new(round, &spec.user).password(password.expose());
        if let Some(s) = &state {
            b = b.state(s);
        }
        if let Some(nas) = &spec.nas_identifier {
            b = b.attribute(32, nas.as_bytes());
        }
        let (raw, auth) = b.build(spec.secret.expose());
        let t0 = Instant::now();
        let reply = send_and_wait(spec, &mut link, &raw, &auth).await?;
        let parsed = parse_reply(&reply).context("reply does not parse")?;
        let messages: Vec<String> = parsed
            .attributes
            .iter()
            .filter(|(t, _)| *t == 18)
            .map(|(_, v)| shown(v))
            .collect();
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        match parsed.code {
            2 => {
                eprintln!("Access-Accept ({ms:.1} ms) {}", messages.join(" "));
                // What the NAS would act on (Class, Filter-Id, a vendor's group name): an
                // admin checking `accept_attributes` and `group_attributes` needed radclient.
                // Reply-Message is on the line above; Message-Authenticator was checked.
                for (typ, value) in &parsed.attributes {
                    if ![18, 80].contains(typ) {
                        eprintln!("  {}", crate::radius::reply_attr::shown(*typ, value));
                    }
                }
                return Ok(LoginResult::Accepted);
            }
            3 => {
                eprintln!("Access-Reject ({ms:.1} ms) {}", messages.join(" "));
                if messages.is_empty() && state.is_none() {
                    eprintln!("{}", bare_reject_hint(&spec.user));
                }
                return Ok(LoginResult::Rejected);
            }
            11 => {
                let s = parsed
                    .attributes
                    .iter()
                    .find(|(t, _)| *t == 24)
                    .map(|(_, v)| v.clone())
                    .context("Access-Challenge without State")?;
                state = Some(s);
                let prompt = if messages.is_empty() {
                    "Code".to_string()
                } else {
                    messages.join(" ")
                };
                eprintln!("Access-Challenge ({ms:.1} ms)");
                password = answers.code(&prompt)?;
            }
            c => bail!("unexpected reply code {c}"),
        }
    }
    bail!("the server kept challenging; giving up after 12 rounds")
}

/// The prompt as the terminal shows it, the cursor after ": ". radmfa's own prompts end in
/// one already (written for pam_radius_auth, which shows them as they are), and a second
/// made "…or type sms or call: : ".
fn with_colon(prompt: &str) -> String {
    let body = prompt.trim_end();
    if body.ends_with(':') {
        format!("{body} ")
    } else {
        format!("{body}: ")
    }
}

/// Said under a bare Access-Reject to the password: an inline client (`otp_mode =
/// "inline"`) refuses a password sent alone so, and every refusal it makes looks like a
/// wrong password's (docs/nas.md), so an admin testing one saw only "Access-Reject".
fn bare_reject_hint(user: &str) -> String {
    format!(
        "  (no Reply-Message: a wrong password, or a refusal only the audit explains: radmfa \
         audit --user {}. If this client is otp_mode = \"inline\", send password,code as the \
         password: --password 'PASSWORD,CODE', or type it at the prompt; see --help)",
        crate::admin::printable(user)
    )
}

/// A Reply-Message as the terminal shows it: the reply is verified, but its text may come
/// from an upstream server or a configuration someone else wrote, and control characters
/// in it (ESC sequences, CR) could rewrite the admin's screen or fake a prompt, and
/// bidirectional overrides reorder the line. Escaped as the admin commands escape what came
/// from the network ([`crate::admin::printable`]).
fn shown(v: &[u8]) -> String {
    crate::admin::printable(&String::from_utf8_lossy(v)).into_owned()
}

/// One Status-Server probe; returns the round-trip time.
pub async fn probe(spec: &LoginSpec) -> anyhow::Result<Duration> {
    let mut link = open(spec).await?;
    let (raw, auth) = status_server(1, spec.secret.expose());
    let t0 = Instant::now();
    let reply = send_and_wait(spec, &mut link, &raw, &auth).await?;
    anyhow::ensure!(
        reply[0] == 2,
        "Status-Server answered with code {}",
        reply[0]
    );
    Ok(t0.elapsed())
}

/// A UDP socket, or a RadSec connection.
enum Link {
    Udp(UdpSocket),
    Tls(Box<super::radsec::Link>),
}

async fn open(spec: &LoginSpec) -> anyhow::Result<Link> {
    Ok(match &spec.radsec {
        Some(r) => Link::Tls(Box::new(
            super::radsec::connect(spec.server, r, spec.timeout).await?,
        )),
        None => Link::Udp(bind_for(spec.server).await?),
    })
}

async fn bind_for(server: SocketAddr) -> anyhow::Result<UdpSocket> {
    let local = if server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(server).await?;
    Ok(sock)
}

async fn send_and_wait(
    spec: &LoginSpec,
    link: &mut Link,
    raw: &[u8],
    auth: &[u8; 16],
) -> anyhow::Result<Vec<u8>> {
    let sock = match link {
        Link::Udp(sock) => sock,
        Link::Tls(tls) => {
            // TCP delivers or fails: no retransmits (RFC 6614 §2.5), one reply to check. It
            // waits as long as UDP's attempts would (timeout × (retries + 1)), as `load`
            // does: a client holding a phone call answers only when the call is decided.
            let wait = spec.timeout * (spec.retries + 1);
            let reply = tokio::time::timeout(wait, super::radsec::exchange(tls, raw))
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no reply over RadSec within {wait:?} (a client that holds calls \
                         answers when the call is decided: raise --timeout)"
                    )
                })??;
            anyhow::ensure!(
                reply[1] == raw[1],
                "a reply to another request (ID {})",
                reply[1]
            );
            check(spec.verify, &reply, auth, spec.secret.expose())
                .map_err(|why| anyhow::anyhow!("the reply failed verification: {why}"))?;
            return Ok(reply);
        }
    };
    let mut buf = vec![0u8; 4096];
    // Replies that came but were not believed: the last word then says so, rather than
    // suggesting the server may be down.
    let mut refused: Option<(u32, Failure)> = None;
    // Replies to another request (their identifier is not this one's): late answers to an
    // earlier try, or a server that does not echo the identifier. Named at the end, so
    // "no valid reply" does not read as silence.
    let mut other_ids = 0u32;
    for attempt in 0..=spec.retries {
        if attempt > 0 {
            // A reply did come but was not believed: "no reply" would contradict the line
            // above it.
            let what = if refused.is_some() || other_ids > 0 {
                "no valid reply"
            } else {
                "no reply"
            };
            eprintln!("{what} after {:?}; retransmitting", spec.timeout);
        }
        sock.send(raw)
            .await
            .map_err(|e| unreachable(spec.server, e, "sending"))?;
        let until = tokio::time::Instant::now() + spec.timeout;
        while let Ok(r) = tokio::time::timeout_at(until, sock.recv(&mut buf)).await {
            let len = r.map_err(|e| unreachable(spec.server, e, "receiving"))?;
            let reply = &buf[..len];
            if len < 20 || reply[1] != raw[1] {
                other_ids += 1;
                continue;
            }
            match check(spec.verify, reply, auth, spec.secret.expose()) {
                Ok(()) => return Ok(reply.to_vec()),
                // A forged or mis-keyed reply is ignored, as a NAS would; report it, though,
                // since a wrong shared secret looks exactly like this.
                Err(why) => {
                    eprintln!("ignored a reply that failed verification: {why}");
                    let n = refused.as_ref().map_or(0, |r| r.0);
                    refused = Some((n + 1, why));
                }
            }
        }
    }
    if let Some((n, why)) = refused {
        // Only a wrong authenticator points at the secret: a reply of another code (an
        // Accounting-Response, say) or a broken packet is checked before the secret is used.
        let hint = match why {
            Failure::Bad("bad Response Authenticator" | "bad Message-Authenticator") => {
                " (a wrong shared secret looks like this)"
            }
            _ => "",
        };
        bail!(
            "no valid reply from {} after {} attempt(s): {n} reply(ies) arrived but failed \
             verification, the last: {why}{hint}",
            spec.server,
            spec.retries + 1
        )
    }
    if other_ids > 0 {
        bail!(
            "no valid reply from {} after {} attempt(s): {other_ids} datagram(s) arrived, \
             none a reply to this request (too short, or another Identifier)",
            spec.server,
            spec.retries + 1
        )
    }
    bail!(
        "no valid reply from {} after {} attempt(s) (wrong secret, unknown client, or server \
         down? a client that holds calls answers when the call is decided: raise --timeout)",
        spec.server,
        spec.retries + 1
    )
}

/// A socket error, said as what it means for a one-off check: a connected UDP socket
/// reports the ICMP port-unreachable of a closed port as ECONNREFUSED ("receiving:
/// Connection refused (os error 111)" named no address and read like TCP).
fn unreachable(server: SocketAddr, e: std::io::Error, doing: &str) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        anyhow::anyhow!("nothing listening on {server} (ICMP port unreachable)")
    } else {
        anyhow::Error::new(e).context(format!("{doing} ({server})"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reply_messages_cannot_drive_the_terminal() {
        assert_eq!(super::shown(b"Enter code"), "Enter code");
        assert_eq!(
            super::shown(b"\x1b[2J\rAccess-Accept"),
            "\\u{1b}[2J\\rAccess-Accept"
        );
        // A right-to-left override would show "tpeccA" as "Accept".
        assert_eq!(super::shown("\u{202e}tpeccA".as_bytes()), "\\u{202e}tpeccA");
        assert_eq!(super::shown("Code (\u{fc})".as_bytes()), "Code (\u{fc})");
    }

    #[test]
    fn a_prompt_gets_one_colon() {
        assert_eq!(super::with_colon("Code"), "Code: ");
        assert_eq!(
            super::with_colon("Enter the code, or type sms or call: "),
            "Enter the code, or type sms or call: "
        );
        assert_eq!(super::with_colon("Code:"), "Code: ");
    }
}
