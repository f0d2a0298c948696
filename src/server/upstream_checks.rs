//! `[upstream] status_check`: between logins, a server that stopped answering is asked
//! every `check_interval_secs` whether it is back (FreeRADIUS's `status_check` for home
//! servers). While it stays silent each check renews its dead time, so no login waits for
//! it as long as another server of its group answers; when it answers, it takes its place
//! again and `/metrics` and the log say so, without a login having to find out. A
//! Status-Server answer does so only a dead time after a login it left unanswered: it
//! shows the server's process is there, not its back end (`Health::status_server_answered`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::app::AppState;
use crate::auth::upstream;

/// How often the loop looks for a server due for a check; `check_interval_secs` is whole
/// seconds, so a check is at most this late.
const TICK: Duration = Duration::from_millis(500);

/// (group, server name).
type Key = (String, String);

/// Runs until `stop`. Takes the groups from the configuration in use at each tick, so a
/// reload that turns checks on or off, or changes the servers, applies without a restart.
pub async fn run(app: Arc<AppState>, stop: CancellationToken) {
    let mut last: HashMap<Key, Instant> = HashMap::new();
    let mut running: HashSet<Key> = HashSet::new();
    let mut checks: JoinSet<()> = JoinSet::new();
    // By task id, so a check that panicked frees its server for the next one too.
    let mut keys: HashMap<tokio::task::Id, Key> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        while let Some(done) = checks.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => {
                    tracing::error!(error = %e, "an upstream status check failed");
                    e.id()
                }
            };
            if let Some(key) = keys.remove(&id) {
                running.remove(&key);
            }
        }
        let cfg = app.config();
        // Servers a reload removed are not remembered.
        last.retain(|(group, name), _| {
            cfg.upstream_group(group)
                .is_some_and(|g| g.servers.iter().any(|s| &s.name == name))
        });
        let now = Instant::now();
        for group in cfg.upstreams.iter().filter(|g| g.status_check.is_some()) {
            for server in &group.servers {
                if app.upstream_health.answering(&group.group, server) {
                    continue;
                }
                let key = (group.group.clone(), server.name.clone());
                let due = last
                    .get(&key)
                    .is_none_or(|t| now.duration_since(*t) >= group.check_interval);
                // One check at a time per server: a timeout longer than the interval must
                // not pile them up.
                if !due || running.contains(&key) {
                    continue;
                }
                last.insert(key.clone(), now);
                running.insert(key.clone());
                let (app, cfg, group, server) =
                    (app.clone(), cfg.clone(), group.clone(), server.clone());
                let check = checks.spawn(async move {
                    let nas_id = &cfg.server.name;
                    if upstream::status_check(&group, &app.upstream_health, &server, nas_id).await {
                        info!(
                            group = %group.group,
                            %server,
                            "upstream RADIUS server answers again (status check)"
                        );
                    }
                });
                keys.insert(check.id(), key);
            }
        }
    }
}
