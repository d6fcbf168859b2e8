//! The etcd backend of [`Kv`], over etcd-client.

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

/// A connected etcd client.
#[derive(Clone)]
pub struct EtcdKv {
    client: Client,
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

impl EtcdKv {
    /// Connects and probes etcd, so an unreachable store fails here within the timeout
    /// rather than on first use (etcd-client connects lazily).
    ///
    /// Errors: [`KvError::Unavailable`] naming the endpoints.
    pub async fn connect(config: &EtcdConfig) -> Result<Self, KvError> {
        let endpoints = config.endpoints_display();
        let timeout = config.request_timeout.unwrap_or(Duration::from_secs(5));
        let unavailable = |message: String| KvError::Unavailable {
            endpoints: endpoints.clone(),
            message,
        };
        let options = config.connect_options(timeout);
        let connect = Client::connect(config.endpoints.clone(), Some(options));
        let client = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| unavailable(format!("no answer within {}s", timeout.as_secs())))?
            .map_err(|e| match e {
                // Wrong user or password: etcd answered, so it is not unreachable.
                etcd_client::Error::GRpcStatus(s)
                    if matches!(
                        s.code(),
                        tonic::Code::InvalidArgument
                            | tonic::Code::Unauthenticated
                            | tonic::Code::PermissionDenied
                            | tonic::Code::FailedPrecondition
                    ) =>
                {
                    KvError::Rejected(s.message().to_string())
                }
                other => unavailable(other.to_string()),
            })?;
        let kv = EtcdKv {
            client,
            endpoints: endpoints.clone(),
            timeout,
        };
        // A cheap read proves the endpoint answers (and that auth, if any, works).
        // One attempt only: a dead etcd must fail within the timeout, not after retries.
        let mut probe = kv.client.kv_client();
        kv.timed(probe.get("/kargo-probe", None)).await?;
        Ok(kv)
    }

    /// The underlying client, for the election API.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn map_err(&self, e: etcd_client::Error) -> KvError {
        match e {
            etcd_client::Error::GRpcStatus(status)
                if !matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled
                ) && !status.message().contains("transport error") =>
            {
                // ("transport error": no gRPC answer at all, e.g. plain HTTP to a TLS port.)
                KvError::Rejected(status.message().to_string())
            }
            other => KvError::Unavailable {
                endpoints: self.endpoints.clone(),
                message: other.to_string(),
            },
        }
    }

    /// Runs a unary request, retrying transport failures a few times. etcd-client
    /// balances requests over the endpoints and can send one to a member that just died
    /// (its upstream issue 39); a retry goes to a live one. Writes are transactions with
    /// compares, so a retried write that had in fact landed is refused by its compare,
    /// never applied twice (the caller then sees a conflict and re-reads).
    async fn call<T, F, Fut>(&self, mut request: F) -> Result<T, KvError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        const ATTEMPTS: u32 = 4;
        let mut attempt = 1;
        loop {
            match self.timed(request(self.client.clone())).await {
                Err(KvError::Unavailable { .. }) if attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(150 * u64::from(attempt))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, KvError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| self.map_err(e)),
            Err(_) => Err(KvError::Unavailable {
                endpoints: self.endpoints.clone(),
                message: format!("no answer within {}s", self.timeout.as_secs()),
            }),
        }
    }

    /// Opens a watch and reads its first response (etcd's "created", or a cancellation).
    async fn open_watch(
        &self,
        prefix: &str,
        options: WatchOptions,
    ) -> Result<(etcd_client::WatchStream, Option<etcd_client::WatchResponse>), KvError> {
        let mut client = self.client.watch_client();
        let mut stream = self.timed(client.watch(prefix, Some(options))).await?;
        let first = self.timed(stream.message()).await?;
        Ok((stream, first))
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
        let resp = self
            .call(|c| {
                let prefix = prefix.to_string();
                async move {
                    c.kv_client()
                        .get(prefix, Some(GetOptions::new().with_prefix()))
                        .await
                }
            })
            .await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
        Ok((resp.kvs().iter().map(entry).collect(), rev))
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
        // etcd opens a watch stream with an expired token and then cancels the watch in
        // its first response; the client's token refresh does not cover that. So the first
        // response is read here: an auth refusal re-authenticates and opens it once more.
        let (stream, first) = match self.open_watch(prefix, options.clone()).await {
            Err(KvError::Rejected(m)) if m.contains(INVALID_TOKEN) => {
                self.timed(self.client.refresh_token()).await?;
                self.open_watch(prefix, options).await?
            }
            Ok((_, Some(first)))
                if first.canceled() && first.cancel_reason().contains(INVALID_TOKEN) =>
            {
                self.timed(self.client.refresh_token()).await?;
                self.open_watch(prefix, options).await?
            }
            other => other?,
        };
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
