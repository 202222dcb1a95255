//! The high-level API: build a gateway of worker VMs over one `.wasm`, send requests, look at outcomes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use wasmtime::{Engine, InstancePre, Module};

use crate::abi::LogLevel;
use crate::callout::{CalloutReply, CalloutRequest};
use crate::error::HostError;
use crate::headers::lower;
use crate::linker::{check_imports, linker};
use crate::outcome::{Outcome, StreamInput};
use crate::properties::owned_path;
use crate::state::{
    CalloutHandler, CalloutRecord, Cluster, HeaderMap, HostState, LogLine, Metrics, Properties,
    Shared, SharedData, SharedQueues, VirtualClock,
};
use crate::sync::lock;
use crate::virtual_time::Clock;
use crate::worker::Worker;

/// A compiled filter module. Compiling is the slow part; clone this to build many gateways.
#[derive(Debug, Clone)]
pub struct FilterModule {
    engine: Engine,
    module: Module,
}

impl FilterModule {
    /// Reads and compiles a `.wasm` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, HostError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| HostError::ReadModule {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Compiles a module from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HostError> {
        Self::compile(&Engine::default(), bytes)
    }

    /// Reads and compiles a `.wasm` file with fuel metering on: every worker counts the wasm
    /// instructions it runs ([`Gateway::wasm_instructions`]), deterministically, for benches
    /// that compare builds or inputs (the code is slower, so nothing here is a time).
    pub fn load_metered(path: impl AsRef<Path>) -> Result<Self, HostError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| HostError::ReadModule {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| HostError::wasmtime(&e))?;
        Self::compile(&engine, &bytes)
    }

    fn compile(engine: &Engine, bytes: &[u8]) -> Result<Self, HostError> {
        let module = Module::new(engine, bytes).map_err(|e| HostError::wasmtime(&e))?;
        Ok(Self {
            engine: engine.clone(),
            module,
        })
    }

    /// The module's imports, as `module::name`.
    pub fn imports(&self) -> Vec<String> {
        self.module
            .imports()
            .map(|i| format!("{}::{}", i.module(), i.name()))
            .collect()
    }

    /// A gateway builder over this module.
    pub fn gateway(&self) -> GatewayBuilder {
        GatewayBuilder::new(Source::Module(self.clone()))
    }
}

#[derive(Debug)]
enum Source {
    Path(PathBuf),
    Module(FilterModule),
}

/// Configures a [`Gateway`].
#[derive(Debug)]
pub struct GatewayBuilder {
    source: Source,
    plugin_config: Vec<u8>,
    vm_config: Vec<u8>,
    workers: usize,
    clusters: HashMap<String, Cluster>,
    properties: Properties,
    log_level: LogLevel,
    environment: Vec<(String, String)>,
    start: SystemTime,
    allow_on_headers_stop_iteration: bool,
    buffer_limit: usize,
}

/// Envoy's default `per_connection_buffer_limit_bytes`.
pub const ENVOY_DEFAULT_BUFFER_LIMIT: usize = 1 << 20;

impl GatewayBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            plugin_config: Vec::new(),
            vm_config: Vec::new(),
            workers: 1,
            clusters: HashMap::new(),
            properties: Properties::new(),
            log_level: LogLevel::Trace,
            environment: Vec::new(),
            start: SystemTime::now(),
            allow_on_headers_stop_iteration: false,
            buffer_limit: ENVOY_DEFAULT_BUFFER_LIMIT,
        }
    }

    /// The plugin config's `allow_on_headers_stop_iteration` (default false, as in Envoy): when
    /// false, a filter that pauses the headers of a request with a body gets no body callback
    /// until it resumes the request, and the request stalls ([`crate::Outcome::Stalled`]).
    pub fn allow_on_headers_stop_iteration(mut self, allow: bool) -> Self {
        self.allow_on_headers_stop_iteration = allow;
        self
    }

    /// How many request bytes the filter may have the host buffer before the host answers 413
    /// itself (Envoy's `per_connection_buffer_limit_bytes`; default 1 MiB, as in Envoy).
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// The plugin configuration, read by `proxy_on_configure` (default: empty).
    pub fn plugin_config(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.plugin_config = config.into();
        self
    }

    /// The VM configuration, read by `proxy_on_vm_start` (default: empty).
    pub fn vm_config(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.vm_config = config.into();
        self
    }

    /// How many worker VMs (default 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// How callouts to `name` are answered. Callouts to a cluster not declared fail with
    /// `BadArgument`, as in Envoy.
    pub fn cluster(mut self, name: &str, cluster: Cluster) -> Self {
        self.clusters.insert(name.to_owned(), cluster);
        self
    }

    /// Callouts to `name` are answered by `handler`.
    pub fn cluster_handler(
        self,
        name: &str,
        handler: impl Fn(&CalloutRequest) -> CalloutReply + Send + Sync + 'static,
    ) -> Self {
        let handler: CalloutHandler = Arc::new(handler);
        self.cluster(name, Cluster::Scripted(handler))
    }

    /// Callouts to `name` go to a real HTTP/1.1 server.
    pub fn cluster_http(self, name: &str, address: SocketAddr) -> Self {
        self.cluster(name, Cluster::Http(address))
    }

    /// Callouts to `name` go to a real HTTP/1.1 server on the unix socket `path`.
    pub fn cluster_unix(self, name: &str, path: impl Into<std::path::PathBuf>) -> Self {
        self.cluster(name, Cluster::Unix(path.into()))
    }

    /// Callouts to `name` time out.
    pub fn cluster_timeout(self, name: &str) -> Self {
        self.cluster(name, Cluster::Timeout)
    }

    /// A gateway-wide property (Envoy serializes a string property as its raw bytes).
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.properties.insert(owned_path(path), value.into());
        self
    }

    /// The level `proxy_get_log_level` reports; lower `proxy_log` lines are dropped (default: trace).
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// A WASI environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.environment.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The virtual clock's wall time at start (default: the real time now).
    pub fn start_time(mut self, start: SystemTime) -> Self {
        self.start = start;
        self
    }

    /// Compiles (unless given a [`FilterModule`]), instantiates every worker and runs
    /// `proxy_on_vm_start` and `proxy_on_configure` on each.
    pub fn build(self) -> Result<Gateway, HostError> {
        let filter = match self.source {
            Source::Path(path) => FilterModule::load(path)?,
            Source::Module(filter) => filter,
        };
        let shared = Arc::new(Shared {
            clock: VirtualClock::new(self.start),
            shared_data: SharedData::new(),
            queues: SharedQueues::default(),
            metrics: Metrics::default(),
            logs: Mutex::new(Vec::new()),
            callouts: Mutex::new(Vec::new()),
            clusters: Mutex::new(self.clusters),
            properties: Mutex::new(self.properties),
            log_level: self.log_level,
            plugin_config: self.plugin_config,
            vm_config: self.vm_config,
            environment: self.environment,
            allow_on_headers_stop_iteration: self.allow_on_headers_stop_iteration,
            buffer_limit: self.buffer_limit,
        });
        let linker = linker(&filter.engine).map_err(|e| HostError::wasmtime(&e))?;
        check_imports(&filter.engine, &filter.module, &linker, &shared)?;
        let pre = linker
            .instantiate_pre(&filter.module)
            .map_err(|e| HostError::wasmtime(&e))?;
        let mut workers = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            let worker = Worker::start(&filter.engine, &pre, Arc::clone(&shared), index)?;
            workers.push(Mutex::new(worker));
        }
        Ok(Gateway {
            engine: filter.engine,
            pre,
            shared,
            workers,
            next_worker: AtomicUsize::new(0),
        })
    }
}

/// Several worker VMs of one filter over one shared-data store, clock and metrics: an Envoy
/// listener with the filter, minus the network.
pub struct Gateway {
    engine: Engine,
    pre: InstancePre<HostState>,
    shared: Arc<Shared>,
    workers: Vec<Mutex<Worker>>,
    next_worker: AtomicUsize,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// The wasm instructions (wasmtime fuel) every worker has run so far: `None` unless the
    /// module was loaded with [`FilterModule::load_metered`].
    pub fn wasm_instructions(&self) -> Option<u64> {
        let mut total = 0u64;
        for worker in &self.workers {
            let worker = worker.lock().ok()?;
            let left = worker.store.get_fuel().ok()?;
            total = total.saturating_add(crate::worker::FUEL.saturating_sub(left));
        }
        Some(total)
    }

    /// A builder over the `.wasm` at `path`.
    pub fn builder(path: impl Into<PathBuf>) -> GatewayBuilder {
        GatewayBuilder::new(Source::Path(path.into()))
    }

    /// A request to send; pick a worker with [`RequestBuilder::worker`] (default: round robin).
    pub fn request(&self, method: &str, authority: &str, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            gateway: self,
            method: method.to_owned(),
            authority: authority.to_owned(),
            path: path.to_owned(),
            scheme: "https".to_owned(),
            headers: HeaderMap::new(),
            pseudo: HeaderMap::new(),
            body: Vec::new(),
            trailers: HeaderMap::new(),
            properties: Properties::new(),
            worker: None,
            response_status: 200,
            response_headers: HeaderMap::new(),
            response_body: None,
        }
    }

    /// How many workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Everything the VMs logged, in order.
    pub fn logs(&self) -> Vec<LogLine> {
        lock(&self.shared.logs).clone()
    }

    /// Forgets the logs so far.
    pub fn clear_logs(&self) {
        lock(&self.shared.logs).clear();
    }

    /// A counter's or gauge's value (a histogram's sample count), if the filter defined it.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.shared.metrics.value(name)
    }

    /// All metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Every callout the filter made, in order.
    pub fn callouts(&self) -> Vec<CalloutRecord> {
        lock(&self.shared.callouts).clone()
    }

    /// The shared-data store all workers see.
    pub fn shared_data(&self) -> &SharedData {
        &self.shared.shared_data
    }

    /// The virtual clock.
    pub fn clock(&self) -> Clock<'_> {
        Clock::new(&self.shared, &self.workers)
    }

    /// Sets a gateway-wide property.
    pub fn set_property(&self, path: &[&str], value: impl Into<Vec<u8>>) {
        lock(&self.shared.properties).insert(owned_path(path), value.into());
    }

    /// Changes how callouts to `name` are answered from now on.
    pub fn set_cluster(&self, name: &str, cluster: Cluster) {
        lock(&self.shared.clusters).insert(name.to_owned(), cluster);
    }

    /// Why a worker's VM died, if it did.
    pub fn worker_fault(&self, worker: usize) -> Option<String> {
        self.workers.get(worker).and_then(|w| lock(w).dead.clone())
    }

    /// Delivers `proxy_on_tick` to every live worker now, as Envoy's timer would, without moving
    /// the clock (the next ticks stay due when they were).
    pub fn tick(&self) {
        for slot in &self.workers {
            lock(slot).tick();
        }
    }

    /// Replaces a worker's VM with a fresh one (start and configure again); shared state stays.
    pub fn restart_worker(&self, worker: usize) -> Result<(), HostError> {
        let slot = self.workers.get(worker).ok_or(HostError::NoSuchWorker {
            worker,
            workers: self.workers.len(),
        })?;
        let fresh = Worker::start(&self.engine, &self.pre, Arc::clone(&self.shared), worker)?;
        *lock(slot) = fresh;
        Ok(())
    }

    /// Calls any guest export with i32 arguments on one worker, then answers the callouts it
    /// made: for tests of malformed calls. A trap kills that worker's VM and is the error.
    pub fn call_export(&self, worker: usize, name: &str, args: &[i32]) -> Result<Vec<i32>, String> {
        let slot = self
            .workers
            .get(worker)
            .ok_or_else(|| format!("no worker {worker}: the gateway has {}", self.workers.len()))?;
        lock(slot).call_export(name, args)
    }

    fn send(&self, request: RequestBuilder<'_>) -> Outcome {
        let index = request.worker.unwrap_or_else(|| {
            self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len()
        });
        let Some(slot) = self.workers.get(index) else {
            return Outcome::FailClosed {
                reason: format!(
                    "harness: no worker {index}, the gateway has {}",
                    self.workers.len()
                ),
            };
        };
        let mut headers: HeaderMap = vec![
            (":authority".into(), request.authority.clone().into_bytes()),
            (":path".into(), request.path.clone().into_bytes()),
            (":method".into(), request.method.clone().into_bytes()),
            (":scheme".into(), request.scheme.clone().into_bytes()),
        ];
        for (name, value) in request.pseudo {
            match headers.iter_mut().find(|(k, _)| *k == name) {
                Some(pseudo) => pseudo.1 = value,
                None => headers.push((name, value)),
            }
        }
        headers.extend(request.headers);
        let mut properties = request.properties;
        for (name, value) in [
            ("path", request.path),
            ("method", request.method),
            ("host", request.authority),
            ("scheme", request.scheme),
        ] {
            properties
                .entry(vec!["request".into(), name.into()])
                .or_insert_with(|| value.into_bytes());
        }
        let mut response_headers: HeaderMap = vec![(
            ":status".into(),
            request.response_status.to_string().into_bytes(),
        )];
        response_headers.extend(request.response_headers);
        lock(slot).handle(StreamInput {
            headers,
            body: request.body,
            trailers: request.trailers,
            properties,
            response_headers,
            response_body: request.response_body,
        })
    }
}

/// One request being built; [`RequestBuilder::send`] runs it.
#[derive(Debug)]
pub struct RequestBuilder<'g> {
    gateway: &'g Gateway,
    method: String,
    authority: String,
    path: String,
    scheme: String,
    headers: HeaderMap,
    /// Pseudo-headers whose bytes replace what `method`, `authority`, `path` or `scheme` give.
    pseudo: HeaderMap,
    body: Vec<Vec<u8>>,
    trailers: HeaderMap,
    properties: Properties,
    worker: Option<usize>,
    response_status: u16,
    response_headers: HeaderMap,
    response_body: Option<Vec<u8>>,
}

impl RequestBuilder<'_> {
    /// Adds a request header (the name is lower-cased, as Envoy does).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a request header whose value need not be UTF-8.
    pub fn header_bytes(self, name: &str, value: &[u8]) -> Self {
        self.header_raw(name.as_bytes(), value)
    }

    /// Adds a request header whose name and value are any bytes (NUL, obs-text, invalid UTF-8),
    /// as a client may send them and a codec may let them through.
    pub fn header_raw(mut self, name: &[u8], value: &[u8]) -> Self {
        self.headers.push((lower(name), value.to_vec()));
        self
    }

    /// Sets the bytes of a pseudo-header (`:path`, `:authority`, `:method`, `:scheme`), which
    /// need not be UTF-8 (the `request.*` properties keep the text given to `request`).
    pub fn pseudo_raw(mut self, name: &str, value: &[u8]) -> Self {
        self.pseudo.push((lower(name.as_bytes()), value.to_vec()));
        self
    }

    /// Sets the route name (the `xds.route_name` property) for this request.
    pub fn route(self, name: &str) -> Self {
        self.property(&["xds", "route_name"], name)
    }

    /// Sets a property for this request only.
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.properties.insert(owned_path(path), value.into());
        self
    }

    /// Sends the request on this worker.
    pub fn worker(mut self, worker: usize) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Sets the `:scheme` (default `https`).
    pub fn scheme(mut self, scheme: &str) -> Self {
        self.scheme = scheme.to_owned();
        self
    }

    /// Gives the request a body, delivered in one `proxy_on_request_body`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = vec![body.into()];
        self
    }

    /// Gives the request a body that arrives in these chunks, one `proxy_on_request_body` each
    /// (as Envoy delivers data frames or reads). An empty list: no body at all.
    pub fn body_chunks(mut self, chunks: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.body = chunks.into_iter().collect();
        self
    }

    /// Adds a request trailer (delivered with `proxy_on_request_trailers` after the body).
    pub fn trailer(self, name: &str, value: &str) -> Self {
        self.trailer_raw(name.as_bytes(), value.as_bytes())
    }

    /// Adds a request trailer whose name and value are any bytes.
    pub fn trailer_raw(mut self, name: &[u8], value: &[u8]) -> Self {
        self.trailers.push((lower(name), value.to_vec()));
        self
    }

    /// The upstream's response status (default 200).
    pub fn response_status(mut self, status: u16) -> Self {
        self.response_status = status;
        self
    }

    /// Adds an upstream response header.
    pub fn response_header(mut self, name: &str, value: &str) -> Self {
        self.response_headers
            .push((lower(name.as_bytes()), value.as_bytes().to_vec()));
        self
    }

    /// Gives the upstream response a body (delivered with `proxy_on_response_body`).
    pub fn response_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.response_body = Some(body.into());
        self
    }

    /// Runs the request through the filter, answering its callouts, and says what became of it.
    pub fn send(self) -> Outcome {
        let gateway = self.gateway;
        gateway.send(self)
    }
}
