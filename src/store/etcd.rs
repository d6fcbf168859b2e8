//! The etcd backend of [`Kv`], over etcd-client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures::StreamExt;

use super::kv::{Fence, Kv, KvEntry, KvError, KvEvent, KvWatch, Precondition, TxnResult};

/// How to reach etcd: what every command's etcd options resolve to.
#[derive(Clone, Debug, Default)]
pub struct EtcdConfig {
    /// `host:port` or URLs; several for a cluster.
    pub endpoints: Vec<String>,
    /// User name and password when etcd has auth enabled.
    pub credentials: Option<(String, String)>,
    /// How long a single request may take before the store counts as unreachable.
    pub request_timeout: Option<Duration>,
    /// TLS: the CA to trust and the client certificate, when etcd serves HTTPS.
    pub tls: Option<EtcdTls>,
}

/// TLS material for etcd, as PEM bytes (the caller reads the files).
///
/// With TLS, endpoints given as `host:port` are reached over `https://`.
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    /// The CA certificate(s) that signed etcd's server certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate and its private key, for etcd's `--client-cert-auth`.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl EtcdConfig {
    /// A config for these endpoints with default timeouts and no auth.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            ..EtcdConfig::default()
        }
    }

    fn endpoints_display(&self) -> String {
        self.endpoints.join(",")
    }
}

/// What etcd answers for an expired or unknown auth token.
const INVALID_TOKEN: &str = "invalid auth token";

/// What etcd answers for a read at a revision compaction removed.
const COMPACTED: &str = "required revision has been compacted";

/// What tonic answers for a response past the client's decoding limit.
const TOO_LARGE: &str = "decoded message length too large";

/// etcd's answers while an election is under way, or for a request that outlived one:
/// worth sending again, to another member or a moment later.
const ELECTION: [&str; 3] = [
    "etcdserver: leader changed",
    "etcdserver: no leader",
    "etcdserver: request timed out",
];

/// Keys in the first page of a range read: even at 1.5 MiB each they fit [`MAX_MESSAGE`].
const FIRST_PAGE_KEYS: i64 = 16;

/// The most keys in one page of a range read.
const PAGE_KEYS: i64 = 500;

/// The size a range page aims at: well under tonic's default 4 MiB message.
const PAGE_BYTES: usize = 2 << 20;

/// The largest response the client decodes. One object is at most 1.5 MiB (etcd's
/// default request limit), so a page of one object always fits; a page that does not
/// is read again with fewer keys.
const MAX_MESSAGE: usize = 32 << 20;

/// Times a list starts over when compaction removes its revision while paging.
const LIST_RESTARTS: u32 = 3;

/// Rounds over every member a request makes before it gives up (within the timeout).
const ROUNDS: u32 = 8;

/// Rounds when no member answers at all: they are down, not electing.
const DEAD_ROUNDS: u32 = 3;

/// One endpoint and its client, connected on first use: with auth, connecting
/// authenticates, which needs a live member.
struct Member {
    endpoint: String,
    client: tokio::sync::OnceCell<Client>,
}

/// A connected etcd client.
///
/// Each endpoint has a client of its own. etcd-client balances one channel over all
/// endpoints and keeps sending requests to a dead one (a failed connection counts as
/// ready), so failing over is done here: a request that meets a dead member or an
/// election goes on to the next member, which then serves the following requests.
#[derive(Clone)]
pub struct EtcdKv {
    members: Arc<[Member]>,
    current: Arc<AtomicUsize>,
    options: ConnectOptions,
    endpoints: String,
    timeout: Duration,
}

impl EtcdConfig {
    /// The client options every connection of kargo uses (the store's and the election's):
    /// auth with token refresh, TLS, keep-alive.
    pub(super) fn connect_options(&self, connect_timeout: Duration) -> ConnectOptions {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some((user, password)) = &self.credentials {
            // The token etcd gives expires (`--auth-token-ttl`): a request refused for
            // an invalid token re-authenticates and is sent again, once.
            options = options
                .with_user(user.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        let https = self.endpoints.iter().any(|e| e.starts_with("https://"));
        if self.tls.is_some() || https {
            let tls = self.tls.clone().unwrap_or_default();
            let mut t = etcd_client::TlsOptions::new();
            if let Some(ca) = tls.ca_pem {
                t = t.ca_certificate(etcd_client::Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = tls.identity {
                t = t.identity(etcd_client::Identity::from_pem(cert, key));
            }
            options = options.with_tls(t);
        }
        options
    }
}

/// True when the failure says nothing about the request itself, so another member (or
/// the same one a moment later) may serve it.
fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => transient_status(status),
        _ => false,
    }
}

/// ("transport error": no gRPC answer at all, e.g. plain HTTP to a TLS port.)
fn transient_status(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    ) || status.message().contains("transport error")
        || ELECTION.iter().any(|m| status.message().contains(m))
}

/// The first key after every key that starts with `prefix` (etcd's range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|b| *b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        // Only 0xff bytes (or none): every key from the prefix on.
        None => vec![0],
    }
}

impl EtcdKv {
    /// Connects and probes etcd with a read of a key inside the installation `prefix`
    /// (so an etcd role limited to the prefix is enough), so an unreachable store fails
    /// here within the timeout rather than on first use (etcd-client connects lazily).
    ///
    /// Errors: [`KvError::Unavailable`] naming the endpoints; [`KvError::Rejected`] when
    /// etcd refuses the credentials or the read.
    pub async fn connect(config: &EtcdConfig, prefix: &str) -> Result<Self, KvError> {
        let endpoints = config.endpoints_display();
        let timeout = config.request_timeout.unwrap_or(Duration::from_secs(5));
        if config.endpoints.is_empty() {
            return Err(KvError::Unavailable {
                endpoints,
                message: "no endpoint given".to_string(),
            });
        }
        // A dead member must leave time to try the others within the timeout.
        let count = u32::try_from(config.endpoints.len()).unwrap_or(u32::MAX);
        let connect_timeout = (timeout / count).max(Duration::from_secs(1)).min(timeout);
        let members: Vec<Member> = config
            .endpoints
            .iter()
            .map(|e| Member {
                endpoint: e.clone(),
                client: tokio::sync::OnceCell::new(),
            })
            .collect();
        let kv = EtcdKv {
            members: members.into(),
            current: Arc::new(AtomicUsize::new(0)),
            options: config.connect_options(connect_timeout),
            endpoints,
            timeout,
        };
        // A cheap read proves a member answers (and that auth, if any, works); like
        // every request it goes on to another member when one is dead.
        kv.get(&format!("{}/probe", prefix.trim_end_matches('/')))
            .await?;
        Ok(kv)
    }

    fn map_err(&self, e: etcd_client::Error) -> KvError {
        match e {
            etcd_client::Error::GRpcStatus(status) if !transient_status(&status) => {
                KvError::Rejected(status.message().to_string())
            }
            other => KvError::Unavailable {
                endpoints: self.endpoints.clone(),
                message: other.to_string(),
            },
        }
    }

    fn no_answer(&self) -> KvError {
        KvError::Unavailable {
            endpoints: self.endpoints.clone(),
            message: format!("no answer within {}s", self.timeout.as_secs()),
        }
    }

    /// The client of member `index`, connecting it first if needed.
    async fn member(&self, index: usize) -> Result<Client, etcd_client::Error> {
        let member = &self.members[index % self.members.len()];
        member
            .client
            .get_or_try_init(|| {
                Client::connect([member.endpoint.as_str()], Some(self.options.clone()))
            })
            .await
            .cloned()
    }

    /// Runs a request on the current member; on a dead member or an election it goes on
    /// to the next, round after round with a growing pause, within the timeout: a few
    /// rounds when no member answers, more while members answer that an election is
    /// under way. Writes are transactions with compares, so a retried write that had in
    /// fact landed is refused by its compare, never applied twice (the store then reads
    /// it back).
    async fn call<T, F, Fut>(&self, mut request: F) -> Result<T, KvError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let count = self.members.len();
        let deadline = tokio::time::Instant::now() + self.timeout;
        // One member may not take the whole time: the others need their turn.
        let per_attempt =
            (self.timeout / u32::try_from(count).unwrap_or(u32::MAX)).max(Duration::from_secs(1));
        let mut pause = Duration::from_millis(50);
        let mut electing = false;
        let mut last = None;
        'rounds: for round in 1..=ROUNDS {
            for _ in 0..count {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                if remaining.is_zero() {
                    break 'rounds;
                }
                let index = self.current.load(Ordering::Relaxed);
                let sent = async { request(self.member(index).await?).await };
                let error = match tokio::time::timeout(per_attempt.min(remaining), sent).await {
                    Ok(Ok(answer)) => return Ok(answer),
                    Ok(Err(e)) if !transient(&e) => return Err(self.map_err(e)),
                    Ok(Err(e)) => {
                        electing |= matches!(&e, etcd_client::Error::GRpcStatus(s)
                            if ELECTION.iter().any(|m| s.message().contains(m)));
                        self.map_err(e)
                    }
                    Err(_) => self.no_answer(),
                };
                tracing::debug!(
                    endpoint = %self.members[index].endpoint,
                    error = %error,
                    "etcd request failed; trying the next member"
                );
                last = Some(error);
                // Unless another request already moved on from this member.
                let _ = self.current.compare_exchange(
                    index,
                    (index + 1) % count,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            if round == ROUNDS || (round >= DEAD_ROUNDS && !electing) {
                break;
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(pause.min(remaining)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
        Err(last.unwrap_or_else(|| self.no_answer()))
    }

    /// One consistent read of every key under `prefix`, page after page.
    async fn range_pages(&self, prefix: &str) -> Result<(Vec<KvEntry>, i64), KvError> {
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        // 0 reads the newest revision: the first page's, which every later page reads.
        let mut revision = 0;
        let mut limit = FIRST_PAGE_KEYS;
        let mut entries = Vec::new();
        loop {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(limit)
                .with_revision(revision);
            let page = self
                .call(|c| {
                    let (from, options) = (from.clone(), options.clone());
                    async move {
                        c.kv_client()
                            .max_decoding_message_size(MAX_MESSAGE)
                            .get(from, Some(options))
                            .await
                    }
                })
                .await;
            let resp = match page {
                Err(KvError::Rejected(m)) if m.contains(TOO_LARGE) && limit > 1 => {
                    limit /= 2;
                    continue;
                }
                other => other?,
            };
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or_default();
            }
            let kvs = resp.kvs();
            entries.extend(kvs.iter().map(entry));
            match kvs.last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                    // The next page's size follows this one's mean entry size, growing
                    // at most fourfold, so a run of larger objects costs little.
                    let bytes: usize = kvs.iter().map(|kv| kv.key().len() + kv.value().len()).sum();
                    let mean = (bytes / kvs.len()).max(1);
                    limit = i64::try_from(PAGE_BYTES / mean)
                        .unwrap_or(PAGE_KEYS)
                        .clamp(1, (limit * 4).min(PAGE_KEYS));
                }
                _ => return Ok((entries, revision)),
            }
        }
    }

    /// Opens a watch and reads its first response (etcd's "created", or a cancellation).
    ///
    /// etcd opens a watch stream with an expired token and then cancels the watch in its
    /// first response; the client's token refresh does not cover that. So the first
    /// response is read here: an auth refusal re-authenticates and opens it once more.
    async fn open_watch(
        &self,
        prefix: &str,
        options: WatchOptions,
    ) -> Result<(etcd_client::WatchStream, Option<etcd_client::WatchResponse>), KvError> {
        self.call(|c| {
            let (prefix, options) = (prefix.to_string(), options.clone());
            async move {
                let open = || async {
                    let mut stream = c
                        .watch_client()
                        .max_decoding_message_size(MAX_MESSAGE)
                        .watch(prefix.clone(), Some(options.clone()))
                        .await?;
                    let first = stream.message().await?;
                    Ok::<_, etcd_client::Error>((stream, first))
                };
                match open().await {
                    Err(etcd_client::Error::GRpcStatus(s))
                        if s.message().contains(INVALID_TOKEN) => {}
                    Ok((_, Some(first)))
                        if first.canceled() && first.cancel_reason().contains(INVALID_TOKEN) => {}
                    other => return other,
                }
                c.refresh_token().await?;
                open().await
            }
        })
        .await
    }

    async fn txn(
        &self,
        key: &str,
        op: TxnOp,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError> {
        let mut compares = Vec::new();
        match precondition {
            Precondition::Any => {}
            Precondition::Absent => {
                compares.push(Compare::create_revision(key, CompareOp::Equal, 0))
            }
            Precondition::ModRevision(r) => {
                compares.push(Compare::mod_revision(key, CompareOp::Equal, r))
            }
        }
        let mut otherwise = Vec::new();
        if let Some(f) = fence {
            compares.push(Compare::create_revision(
                f.key.as_str(),
                CompareOp::Equal,
                f.create_revision,
            ));
            otherwise.push(TxnOp::get(f.key.as_str(), None));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![op])
            .or_else(otherwise);
        let resp = self
            .call(|c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
            return Ok(TxnResult::Written(rev));
        }
        if let Some(f) = fence {
            let holder = resp.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g.kvs().first().map(|kv| kv.create_revision())),
                _ => None,
            });
            if holder.flatten() != Some(f.create_revision) {
                return Ok(TxnResult::Fenced);
            }
        }
        Ok(TxnResult::PreconditionFailed)
    }
}

fn entry(kv: &etcd_client::KeyValue) -> KvEntry {
    KvEntry {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

#[async_trait]
impl Kv for EtcdKv {
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        let resp = self
            .call(|c| {
                let key = key.to_string();
                async move { c.kv_client().get(key, None).await }
            })
            .await?;
        Ok(resp.kvs().first().map(entry))
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KvEntry>, i64), KvError> {
        let mut restarts = 0;
        loop {
            match self.range_pages(prefix).await {
                // The first page's revision was compacted away while paging: start over
                // at a newer one.
                Err(KvError::Rejected(m)) if m.contains(COMPACTED) && restarts < LIST_RESTARTS => {
                    tracing::debug!(prefix, "revision compacted while paging; listing again");
                    restarts += 1;
                }
                other => return other,
            }
        }
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError> {
        self.txn(key, TxnOp::put(key, value, None), precondition, fence)
            .await
    }

    async fn put_with_ttl(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_seconds: i64,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError> {
        let granted = self
            .call(|c| async move { c.lease_client().grant(ttl_seconds, None).await })
            .await?;
        let options = etcd_client::PutOptions::new().with_lease(granted.id());
        self.txn(
            key,
            TxnOp::put(key, value, Some(options)),
            precondition,
            fence,
        )
        .await
    }

    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError> {
        self.txn(key, TxnOp::delete(key, None), precondition, fence)
            .await
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<KvWatch, KvError> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start_revision)
            .with_progress_notify();
        let (stream, first) = self.open_watch(prefix, options).await?;
        let endpoints = self.endpoints.clone();
        let events = futures::stream::unfold(Some((stream, first)), move |state| {
            let endpoints = endpoints.clone();
            async move {
                let (mut stream, pending) = state?;
                let next = match pending {
                    Some(resp) => Ok(Some(resp)),
                    None => stream.message().await,
                };
                match next {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            let out: Vec<Result<KvEvent, KvError>> = if resp.compact_revision() > 0
                            {
                                vec![Ok(KvEvent::Compacted(resp.compact_revision()))]
                            } else {
                                vec![Err(KvError::Rejected(format!(
                                    "watch canceled: {}",
                                    resp.cancel_reason()
                                )))]
                            };
                            return Some((out, None));
                        }
                        let out = resp
                            .events()
                            .iter()
                            .filter_map(|ev| {
                                let kv = ev.kv()?;
                                Some(Ok(match ev.event_type() {
                                    etcd_client::EventType::Put => KvEvent::Put(entry(kv)),
                                    etcd_client::EventType::Delete => KvEvent::Delete {
                                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                                        mod_revision: kv.mod_revision(),
                                    },
                                }))
                            })
                            .collect();
                        Some((out, Some((stream, None))))
                    }
                    Ok(None) => None,
                    Err(e) => Some((
                        vec![Err(KvError::Unavailable {
                            endpoints,
                            message: format!("watch lost: {e}"),
                        })],
                        None,
                    )),
                }
            }
        })
        .flat_map(futures::stream::iter);
        Ok(events.boxed())
    }
}
