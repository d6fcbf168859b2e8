//! Leader election on etcd's election API, with a lease kept alive in the background.
//!
//! Only one replica reconciles. Its etcd writes carry a [`Fence`] (the create revision
//! of its leader key), so a deposed leader's writes are refused by etcd itself. Docker
//! writes cannot be fenced: [`Leadership::is_valid`] tells, by the replica's own clock
//! with a safety margin, whether its lease may have expired.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, LeaderKey, ResignOptions};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{EtcdConfig, Fence, KvError};

/// Runs elections for one installation: the election's name is `<prefix>/leader`.
#[derive(Clone)]
pub struct Election {
    client: Client,
    name: String,
    identity: String,
    ttl: Duration,
    endpoints: String,
}

/// Being the leader, until the lease is lost or given up.
pub struct Leadership {
    /// The compare every leader write carries.
    pub fence: Fence,
    client: Client,
    leader: LeaderKey,
    lease_id: i64,
    valid_until: Arc<Mutex<Instant>>,
    margin: Duration,
    lost: watch::Receiver<bool>,
    lost_tx: Arc<watch::Sender<bool>>,
    keeper: tokio::task::JoinHandle<()>,
}

/// Ends a leadership from outside (a worker whose write the fence refused): the Docker
/// write guard fails from that instant and [`Leadership::lost`] resolves.
#[derive(Clone)]
pub struct Deposer(Arc<watch::Sender<bool>>);

impl Deposer {
    /// Gives the leadership up now.
    pub fn depose(&self) {
        self.0.send_replace(true);
    }
}

impl Election {
    /// Connects for elections (a connection of its own, with no request timeout, since
    /// a campaign blocks until this replica wins).
    pub async fn connect(
        config: &EtcdConfig,
        prefix: &str,
        identity: &str,
        ttl: Duration,
    ) -> Result<Self, KvError> {
        let endpoints = config.endpoints.join(",");
        let options = config.connect_options(Duration::from_secs(5));
        let client = Client::connect(config.endpoints.clone(), Some(options))
            .await
            .map_err(|e| KvError::Unavailable {
                endpoints: endpoints.clone(),
                message: e.to_string(),
            })?;
        Ok(Election {
            client,
            name: format!("{}/leader", prefix.trim_end_matches('/')),
            identity: identity.to_string(),
            ttl,
            endpoints,
        })
    }

    fn unavailable(&self, e: etcd_client::Error) -> KvError {
        KvError::Unavailable {
            endpoints: self.endpoints.clone(),
            message: e.to_string(),
        }
    }

    /// The election key prefix (`<prefix>/leader`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Campaigns until this replica leads. Cancel-safe: dropping the future before it
    /// returns leaves a lease that expires within the TTL.
    pub async fn campaign(&self) -> Result<Leadership, KvError> {
        let ttl_secs = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(10);
        let mut lease_client = self.client.lease_client();
        let granted_at = Instant::now();
        let lease = lease_client
            .grant(ttl_secs, None)
            .await
            .map_err(|e| self.unavailable(e))?;
        let lease_id = lease.id();
        let valid_until = Arc::new(Mutex::new(granted_at + self.ttl));
        let (lost_tx, lost) = watch::channel(false);
        let lost_tx = Arc::new(lost_tx);
        // The lease is kept alive while the campaign waits; the leader key is checked
        // once it is known.
        let won: Arc<Mutex<Option<Fence>>> = Arc::default();
        let keeper = tokio::spawn(keep_alive(
            self.client.clone(),
            lease_id,
            self.ttl,
            valid_until.clone(),
            lost_tx.clone(),
            won.clone(),
        ));
        let mut election = self.client.election_client();
        let campaign = election.campaign(self.name.clone(), self.identity.clone(), lease_id);
        let resp = match campaign.await {
            Ok(r) => r,
            Err(e) => {
                keeper.abort();
                let _ = lease_client.revoke(lease_id).await;
                return Err(self.unavailable(e));
            }
        };
        let Some(leader) = resp.leader().cloned() else {
            keeper.abort();
            return Err(KvError::Rejected("campaign returned no leader key".into()));
        };
        let key = String::from_utf8_lossy(leader.key()).into_owned();
        info!(identity = %self.identity, key = %key, revision = leader.rev(), "elected leader");
        *won.lock().unwrap_or_else(|e| e.into_inner()) = Some(Fence {
            key: key.clone(),
            create_revision: leader.rev(),
        });
        Ok(Leadership {
            fence: Fence {
                key,
                create_revision: leader.rev(),
            },
            client: self.client.clone(),
            leader,
            lease_id,
            valid_until,
            // A third of the TTL, at least a second: time for clock drift and a late keep-alive.
            margin: (self.ttl / 3).max(Duration::from_secs(1)),
            lost,
            lost_tx,
            keeper,
        })
    }

    /// The identity of the current leader, if any.
    pub async fn leader(&self) -> Result<Option<String>, KvError> {
        let mut election = self.client.election_client();
        match election.leader(self.name.clone()).await {
            Ok(r) => Ok(r
                .kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())),
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("no leader") => Ok(None),
            Err(e) => Err(self.unavailable(e)),
        }
    }
}

impl Leadership {
    /// A handle that ends this leadership from elsewhere.
    pub fn deposer(&self) -> Deposer {
        Deposer(self.lost_tx.clone())
    }

    /// True while the lease is certainly alive by this replica's own clock (minus a margin).
    /// Checked before every Docker write; the leader gauge follows it.
    pub fn is_valid(&self) -> bool {
        let until = *self.valid_until.lock().unwrap_or_else(|e| e.into_inner());
        !*self.lost.borrow() && Instant::now() + self.margin < until
    }

    /// A check to hand to the Docker client's write guard.
    pub fn guard(&self) -> impl Fn() -> Result<(), String> + Send + Sync + 'static {
        let valid_until = self.valid_until.clone();
        let lost = self.lost.clone();
        let margin = self.margin;
        move || {
            let until = *valid_until.lock().unwrap_or_else(|e| e.into_inner());
            if *lost.borrow() || Instant::now() + margin >= until {
                Err("this replica's leader lease may have expired".to_string())
            } else {
                Ok(())
            }
        }
    }

    /// Resolves when the lease is lost (keep-alive refused or failing past the TTL).
    pub async fn lost(&mut self) {
        while !*self.lost.borrow() {
            if self.lost.changed().await.is_err() {
                return;
            }
        }
    }

    /// Gives leadership up at once, so another replica takes over without waiting for the TTL.
    pub async fn resign(self) {
        self.keeper.abort();
        let mut election = self.client.election_client();
        if let Err(e) = election
            .resign(Some(ResignOptions::new().with_leader(self.leader.clone())))
            .await
        {
            warn!(error = %e, "resigning failed; the lease will expire instead");
        }
        let _ = self.client.lease_client().revoke(self.lease_id).await;
        info!("resigned leadership");
    }
}

/// Keeps the lease alive every TTL/3; records how long it is surely valid (from the
/// time each keep-alive was SENT plus the TTL etcd granted). Signals loss when etcd
/// says the lease is gone or when the lease must have expired by our clock.
async fn keep_alive(
    client: Client,
    lease_id: i64,
    ttl: Duration,
    valid_until: Arc<Mutex<Instant>>,
    lost: Arc<watch::Sender<bool>>,
    won: Arc<Mutex<Option<Fence>>>,
) {
    let period = (ttl / 3).max(Duration::from_millis(300));
    let mut lease = client.lease_client();
    let mut stream_pair = None;
    loop {
        let sent = Instant::now();
        if stream_pair.is_none() {
            stream_pair = lease.keep_alive(lease_id).await.ok();
        }
        let mut renewed = None;
        if let Some((keeper, stream)) = stream_pair.as_mut() {
            let attempt = async {
                keeper.keep_alive().await?;
                stream.message().await
            };
            match tokio::time::timeout(period, attempt).await {
                Ok(Ok(Some(resp))) => renewed = Some(resp.ttl()),
                _ => stream_pair = None,
            }
        }
        let fence = won.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(fence) = fence
            && renewed.is_some_and(|g| g > 0)
            && !holds_key(&client, &fence).await
        {
            warn!(key = %fence.key, "the leader key was deleted or replaced; stepping down");
            lost.send_replace(true);
            return;
        }
        match renewed {
            Some(granted) if granted > 0 => {
                let granted = Duration::from_secs(u64::try_from(granted).unwrap_or(0));
                *valid_until.lock().unwrap_or_else(|e| e.into_inner()) = sent + granted;
            }
            Some(_) => {
                warn!(lease = lease_id, "etcd says the leader lease is gone");
                lost.send_replace(true);
                return;
            }
            None => {
                let until = *valid_until.lock().unwrap_or_else(|e| e.into_inner());
                if Instant::now() >= until {
                    warn!(
                        lease = lease_id,
                        "leader lease expired while etcd was unreachable"
                    );
                    lost.send_replace(true);
                    return;
                }
            }
        }
        tokio::time::sleep_until(sent + period).await;
    }
}

/// False when etcd answers that the leader key is gone or is not the one this replica
/// created (deleted by hand while the lease lives: another replica may lead now). An
/// unanswered read is not proof of anything: the lease's own clock covers that case.
async fn holds_key(client: &Client, fence: &Fence) -> bool {
    let mut kv = client.kv_client();
    match tokio::time::timeout(Duration::from_secs(2), kv.get(fence.key.as_str(), None)).await {
        Ok(Ok(resp)) => resp
            .kvs()
            .first()
            .is_some_and(|k| k.create_revision() == fence.create_revision),
        _ => true,
    }
}
