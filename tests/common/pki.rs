//! A throwaway PKI made with the `openssl` CLI: a CA, a server certificate for 127.0.0.1 and
//! a client certificate, for RadSec's mutual TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl ARGS` in `dir`; a failure fails the test with openssl's own words.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("`openssl` not found; install the openssl package");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Pki {
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// Files named `<name>-*.pem` in `dir`.
    pub fn make(dir: &Path, name: &str) -> Pki {
        Self::make_with_client_san(dir, name, "DNS:nas.example.org")
    }

    /// [`Pki::make`] with the client certificate's subjectAltName `san`.
    pub fn make_with_client_san(dir: &Path, name: &str, san: &str) -> Pki {
        Self::make_with_sans(dir, name, "IP:127.0.0.1,DNS:localhost", san)
    }

    /// [`Pki::make`] with the server certificate's subjectAltName `server_san` and the
    /// client certificate's `client_san` (openssl syntax: `DNS:host,IP:addr`).
    pub fn make_with_sans(dir: &Path, name: &str, server_san: &str, client_san: &str) -> Pki {
        Self::make_with(dir, name, server_san, client_san, 2)
    }

    /// [`Pki::make`] with a server certificate valid for `server_days` days from now (the
    /// CA for as long, at least 2), for the expiry warnings.
    #[allow(dead_code)] // not every test binary needs other dates
    pub fn make_with_server_days(dir: &Path, name: &str, server_days: u32) -> Pki {
        Self::make_with(
            dir,
            name,
            "IP:127.0.0.1,DNS:localhost",
            "DNS:nas.example.org",
            server_days,
        )
    }

    fn make_with(
        dir: &Path,
        name: &str,
        server_san: &str,
        client_san: &str,
        server_days: u32,
    ) -> Pki {
        let ca_days = server_days.max(2).to_string();
        let server_ext = format!("subjectAltName={server_san}\nextendedKeyUsage=serverAuth\n");
        let client_ext = format!("subjectAltName={client_san}\nextendedKeyUsage=clientAuth\n");
        let run = |args: &[&str]| openssl(dir, args);
        let f = |what: &str| format!("{name}-{what}.pem");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        let (ca_key, ca_pem) = (f("ca-key"), f("ca"));
        let subj = format!("/CN={name} test CA");
        ca.extend([
            "-keyout",
            &ca_key,
            "-out",
            &ca_pem,
            "-days",
            &ca_days,
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca);
        for (who, ext) in [
            ("server", server_ext.as_str()),
            ("client", client_ext.as_str()),
        ] {
            let (key, csr, pem, extfile) = (
                f(&format!("{who}-key")),
                f(&format!("{who}-csr")),
                f(who),
                format!("{name}-{who}.ext"),
            );
            let subj = format!("/CN={name} {who}");
            let days = if who == "server" { server_days } else { 2 }.to_string();
            let mut req = vec!["req"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            run(&req);
            std::fs::write(
                dir.join(&extfile),
                format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}"),
            )
            .unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                &days,
                "-extfile",
                &extfile,
            ]);
        }
        Pki {
            ca: dir.join(f("ca")),
            ca_key: dir.join(f("ca-key")),
            server_cert: dir.join(f("server")),
            server_key: dir.join(f("server-key")),
            client_cert: dir.join(f("client")),
            client_key: dir.join(f("client-key")),
        }
    }
}

impl Pki {
    /// Writes a CRL from this PKI's CA revoking `revoked` (PEM certificates) to `out`, by a
    /// rename, as an admin's tooling replaces the file.
    #[allow(dead_code)] // not every test binary revokes
    pub fn write_crl(&self, out: &Path, revoked: &[&Path]) {
        self.write_crl_dated(out, revoked, &[]);
    }

    /// [`Pki::write_crl`] with `dates` added to `openssl ca -gencrl`: `-crl_lastupdate`,
    /// `-crl_nextupdate` and their times, say, for a CRL already out of date.
    #[allow(dead_code)] // not every test binary revokes
    pub fn write_crl_dated(&self, out: &Path, revoked: &[&Path], dates: &[&str]) {
        let db = tempfile::tempdir().unwrap();
        std::fs::write(db.path().join("index.txt"), "").unwrap();
        std::fs::write(db.path().join("crlnumber"), "01\n").unwrap();
        let cnf = db.path().join("ca.cnf");
        std::fs::write(
            &cnf,
            format!(
                "[ca]\ndefault_ca = test\n[test]\ndatabase = {db}/index.txt\n\
                 crlnumber = {db}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n\
                 certificate = {ca}\nprivate_key = {key}\n",
                db = db.path().display(),
                ca = self.ca.display(),
                key = self.ca_key.display(),
            ),
        )
        .unwrap();
        let run = |args: &[&std::ffi::OsStr]| {
            let out = Command::new("openssl").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for cert in revoked {
            run(&[
                "ca".as_ref(),
                "-config".as_ref(),
                cnf.as_os_str(),
                "-revoke".as_ref(),
                cert.as_os_str(),
            ]);
        }
        let tmp = out.with_extension("new");
        let mut gencrl: Vec<&std::ffi::OsStr> = vec![
            "ca".as_ref(),
            "-config".as_ref(),
            cnf.as_os_str(),
            "-gencrl".as_ref(),
            "-out".as_ref(),
            tmp.as_os_str(),
        ];
        gencrl.extend(dates.iter().map(std::ffi::OsStr::new));
        run(&gencrl);
        std::fs::rename(&tmp, out).unwrap();
    }

    /// An issuing CA `<name>` under this PKI's CA, with a client certificate for
    /// DNS:nas.example.org under it (files `<name>-*.pem` in `dir`): as a Pki whose CA is
    /// the issuing one, whose server certificate is this one's.
    #[allow(dead_code)] // not every test binary needs an intermediate CA
    pub fn issuing_ca(&self, dir: &Path, name: &str) -> Pki {
        let run = |args: &[&str]| openssl(dir, args);
        let f = |what: &str| dir.join(format!("{name}-{what}.pem"));
        let (ca, ca_key) = (f("ca"), f("ca-key"));
        let (client, client_key) = (f("client"), f("client-key"));
        for (pem, key, subj, ext, issuer, issuer_key) in [
            (
                &ca,
                &ca_key,
                format!("/CN={name} issuing CA"),
                "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
                &self.ca,
                &self.ca_key,
            ),
            (
                &client,
                &client_key,
                format!("/CN={name} client"),
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 subjectAltName=DNS:nas.example.org\nextendedKeyUsage=clientAuth\n",
                &ca,
                &ca_key,
            ),
        ] {
            let (csr, extfile) = (pem.with_extension("csr"), pem.with_extension("ext"));
            let p = |p: &Path| p.to_str().unwrap().to_string();
            run(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &p(key),
                "-out",
                &p(&csr),
                "-subj",
                &subj,
            ]);
            std::fs::write(&extfile, ext).unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                &p(&csr),
                "-CA",
                &p(issuer),
                "-CAkey",
                &p(issuer_key),
                "-CAcreateserial",
                "-out",
                &p(pem),
                "-days",
                "2",
                "-extfile",
                &p(&extfile),
            ]);
        }
        Pki {
            ca,
            ca_key,
            server_cert: self.server_cert.clone(),
            server_key: self.server_key.clone(),
            client_cert: client,
            client_key,
        }
    }
}
