//! A store whose file system is frozen (`fsfreeze`, as a VM's quiesced snapshot does, or a
//! disk that stalls): the server goes on answering what it can.

use std::path::PathBuf;
use std::process::Command;

use super::*;

/// An ext4 file system on a loop device (mounted as root), frozen and thawed on demand;
/// thawed and unmounted when dropped, whatever the test did.
struct LoopDisk {
    _dir: tempfile::TempDir,
    mount: PathBuf,
    frozen: bool,
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: {e} (this test needs mkfs.ext4, mount and fsfreeze, as root)")
    });
    assert!(
        out.status.success(),
        "{what} (this test mounts an ext4 loop file system, as root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl LoopDisk {
    fn mount() -> LoopDisk {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let f = std::fs::File::create(&image).unwrap();
        f.set_len(32 << 20).unwrap();
        drop(f);
        run(
            Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image),
            "mkfs.ext4",
        );
        run(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&mount),
            "mount -o loop",
        );
        LoopDisk {
            _dir: dir,
            mount,
            frozen: false,
        }
    }

    fn freeze(&mut self) {
        run(
            Command::new("fsfreeze").arg("-f").arg(&self.mount),
            "fsfreeze -f",
        );
        self.frozen = true;
    }

    fn thaw(&mut self) {
        if self.frozen {
            run(
                Command::new("fsfreeze").arg("-u").arg(&self.mount),
                "fsfreeze -u",
            );
            self.frozen = false;
        }
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        if self.frozen {
            let _ = Command::new("fsfreeze").arg("-u").arg(&self.mount).status();
        }
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// With the store's file system frozen just after a write, a login's store read waits in
/// the kernel until the thaw (its mark in the WAL index is a write to a mapped file), past
/// any busy timeout. Such reads ran on tokio's workers: two of them, and no thread was left
/// to answer Status-Server, refuse a request at its deadline, or stop (red team: dead for a
/// 10-minute freeze). Now the reads leave a worker free: Status-Server is answered, the
/// requests behind the stuck read are refused by their deadline, and after the thaw logins
/// work again.
#[test]
fn a_frozen_store_holds_one_read_not_the_server() {
    frozen_store_with_workers(2);
}

/// The same with one worker (a 1-core host, `TOKIO_WORKER_THREADS=1`), where no worker can
/// be left free: the stuck read hands the worker's duties to another thread. Before, the
/// server was held until the thaw.
#[test]
fn a_frozen_store_holds_one_read_not_a_one_worker_server() {
    frozen_store_with_workers(1);
}

fn frozen_store_with_workers(workers: u32) {
    let slapd = Slapd::start(&[LdapUser::new("alice", PW)]);
    let mut disk = LoopDisk::mount();
    let mut o = Options::new(&slapd.url);
    o.ldap_timeout_ms = 10_000;
    let config = write_config(&disk.mount, &o);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("request_deadline_ms = 4000", "request_deadline_ms = 1500");
    std::fs::write(&config, text).unwrap();
    // As many workers as asked, whatever cores this machine has.
    let mut cmd = Command::new(common::radmfa::bin());
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env("TOKIO_WORKER_THREADS", workers.to_string());
    let srv = Server::spawn(tempfile::tempdir().unwrap(), config.clone(), cmd);
    let seed = srv.enroll("alice", &[]);
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    assert!(
        full_login(&sock, "alice", PW, &seed, 0),
        "a login before the freeze"
    );

    disk.freeze();
    // Right passwords, each read alice's tokens from the store: the first read waits in
    // the kernel; the rest must not take the last worker with it.
    let socks: Vec<UdpSocket> = (0..4)
        .map(|_| socket_from("127.0.0.1", srv.addr, 4000))
        .collect();
    let sent_at = Instant::now();
    for (i, s) in socks.iter().enumerate() {
        let (raw, _) = AccessRequestBuilder::new(i as u8, "alice")
            .password(PW.as_bytes())
            .build(SECRET.as_bytes());
        s.send(&raw).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = socket_from("127.0.0.1", srv.addr, 1000);
    status.send(&status_server(7, SECRET.as_bytes()).0).unwrap();
    let mut buf = [0u8; 4096];
    let answered = status.recv(&mut buf).is_ok();
    // Read before the thaw: every answer that comes must come while the disk is frozen.
    let mut refused = 0;
    for s in &socks {
        if let Ok(n) = s.recv(&mut buf) {
            assert_eq!(
                parse_reply(&buf[..n]).unwrap().code,
                3,
                "only refusals while frozen"
            );
            refused += 1;
        }
    }
    let waited = sent_at.elapsed();
    disk.thaw();
    assert!(answered, "no answer to Status-Server with the store frozen");
    // One request may be the one whose read is stuck until the thaw; the others are
    // refused at their deadline (1.5 s), while the disk is still frozen.
    assert!(
        refused >= socks.len() - 1,
        "{refused} of {} requests refused within {waited:?} of a frozen store",
        socks.len()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !full_login(&sock, "alice", PW, &seed, 1) {
        assert!(Instant::now() < deadline, "no login after the thaw");
        std::thread::sleep(Duration::from_millis(300));
    }
}
