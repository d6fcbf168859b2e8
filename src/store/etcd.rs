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

/// A connected etcd client.
#[derive(Clone)]
pub struct EtcdKv {
    client: Client,
    endpoints: String,
    timeout: Duration,
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
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some((user, password)) = &config.credentials {
            options = options.with_user(user.clone(), password.clone());
        }
        let connect = Client::connect(config.endpoints.clone(), Some(options));
        let client = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| unavailable(format!("no answer within {}s", timeout.as_secs())))?
            .map_err(|e| unavailable(e.to_string()))?;
        let kv = EtcdKv {
            client,
            endpoints: endpoints.clone(),
            timeout,
        };
        // A cheap read proves the endpoint answers (and that auth, if any, works).
        kv.get("/kargo-probe").await?;
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
                ) =>
            {
                KvError::Rejected(status.message().to_string())
            }
            other => KvError::Unavailable {
                endpoints: self.endpoints.clone(),
                message: other.to_string(),
            },
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
        let mut client = self.client.kv_client();
        let resp = self.timed(client.txn(txn)).await?;
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
        let mut client = self.client.kv_client();
        let resp = self.timed(client.get(key, None)).await?;
        Ok(resp.kvs().first().map(entry))
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KvEntry>, i64), KvError> {
        let mut client = self.client.kv_client();
        let resp = self
            .timed(client.get(prefix, Some(GetOptions::new().with_prefix())))
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
        let mut client = self.client.watch_client();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start_revision)
            .with_progress_notify();
        let stream = self.timed(client.watch(prefix, Some(options))).await?;
        let endpoints = self.endpoints.clone();
        let events = futures::stream::unfold(Some(stream), move |state| {
            let endpoints = endpoints.clone();
            async move {
                let mut stream = state?;
                match stream.message().await {
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
                        Some((out, Some(stream)))
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
