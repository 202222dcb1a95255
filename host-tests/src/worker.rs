//! One worker VM: its `Store` and instance, and the proxy-wasm lifecycle calls into it.

use std::sync::Arc;

use wasmtime::{Engine, InstancePre, Store, TypedFunc, Val, WasmParams, WasmResults};

use crate::abi::action;
use crate::error::HostError;
use crate::exports::{self, Exports, StreamCallback};
use crate::http_call;
use crate::log::flush_output;
use crate::outcome::{Outcome, StreamInput, payload_too_large};
use crate::state::{CalloutResponse, CalloutResult, HeaderMap, HostState, Shared, StreamState};
use crate::sync::lock;

/// The root context id on every worker.
pub(crate) const ROOT_ID: u32 = 1;

/// How many callouts one guest call may chain before the harness calls it a loop.
const MAX_CALLOUTS_PER_CALL: usize = 1000;

/// How a stream callback ended.
enum Phase {
    /// The filter returned `Continue`, or resumed the stream before the callback's callouts
    /// were answered.
    Continue,
    /// The filter paused and neither resumed nor replied: the stream stays where it is.
    Paused,
    /// The filter replied or reset the stream.
    Stop(Outcome),
}

/// The fuel a worker of a metered engine starts with: more than any run can spend.
pub(crate) const FUEL: u64 = u64::MAX / 2;

/// One worker VM.
#[derive(Debug)]
pub(crate) struct Worker {
    pub index: usize,
    pub store: Store<HostState>,
    instance: wasmtime::Instance,
    exports: Arc<Exports>,
    /// Why the VM died (a trap), if it did.
    pub dead: Option<String>,
    next_context: u32,
}

impl Worker {
    /// Instantiates the module, then runs `_initialize`, the root context's creation,
    /// `proxy_on_vm_start` and `proxy_on_configure`.
    pub fn start(
        engine: &Engine,
        pre: &InstancePre<HostState>,
        shared: Arc<Shared>,
        index: usize,
    ) -> Result<Self, HostError> {
        let mut store = Store::new(engine, HostState::new(index, shared, ROOT_ID));
        // Only a metered engine (`FilterModule::load_metered`) has fuel; elsewhere this fails.
        let _ = store.set_fuel(FUEL);
        let trap = |phase, e: wasmtime::Error| HostError::Trap {
            worker: index,
            phase,
            reason: format!("{e:?}"),
        };
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| trap("instantiation", e))?;
        store.data_mut().guest = Some(exports::guest_memory(&mut store, &instance)?);
        let exports = Exports::find(&mut store, &instance)?;
        let mut worker = Worker {
            index,
            store,
            instance,
            exports: Arc::new(exports),
            dead: None,
            next_context: ROOT_ID + 1,
        };
        worker.boot().map_err(|(phase, reason)| match reason {
            Boot::Trap(reason) => HostError::Trap {
                worker: index,
                phase,
                reason,
            },
            Boot::Rejected => {
                let logs = lock(&worker.store.data().shared.logs).clone();
                if phase == "proxy_on_vm_start" {
                    HostError::VmStartRejected {
                        worker: index,
                        logs,
                    }
                } else {
                    HostError::ConfigureRejected {
                        worker: index,
                        logs,
                    }
                }
            }
        })?;
        Ok(worker)
    }

    fn boot(&mut self) -> Result<(), (&'static str, Boot)> {
        let e = Arc::clone(&self.exports);
        if let Some(initialize) = &e.initialize {
            self.call(initialize, ())
                .map_err(|r| ("_initialize", Boot::Trap(r)))?;
        }
        self.call(&e.abi_version, ())
            .map_err(|r| ("proxy_abi_version_0_2_1", Boot::Trap(r)))?;
        self.call(&e.on_context_create, (ROOT_ID, 0))
            .map_err(|r| ("proxy_on_context_create", Boot::Trap(r)))?;
        let shared = Arc::clone(&self.store.data().shared);
        for (phase, callback, size) in [
            ("proxy_on_vm_start", &e.on_vm_start, shared.vm_config.len()),
            (
                "proxy_on_configure",
                &e.on_configure,
                shared.plugin_config.len(),
            ),
        ] {
            if let Some(callback) = callback {
                let accepted = self
                    .call(callback, (ROOT_ID, size as u32))
                    .map_err(|r| (phase, Boot::Trap(r)))?;
                self.drain_callouts().map_err(|r| (phase, Boot::Trap(r)))?;
                if accepted == 0 {
                    return Err((phase, Boot::Rejected));
                }
            }
        }
        Ok(())
    }

    /// Calls a guest export; a trap kills the VM and becomes the error.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        f: &TypedFunc<P, R>,
        args: P,
    ) -> Result<R, String> {
        let result = f.call(&mut self.store, args);
        flush_output(self.store.data_mut());
        result.map_err(|e| self.kill(&e))
    }

    fn kill(&mut self, error: &wasmtime::Error) -> String {
        let reason = format!("{error:?}");
        self.dead = Some(reason.clone());
        reason
    }

    /// Delivers the root's queue wake-ups, and answers every pending callout through
    /// `proxy_on_http_call_response`, until neither is left. As in Envoy, both go to the root
    /// context (proxy-wasm-cpp-host dispatches every `proxy_http_call` on the root context, and
    /// answers it there): the effective context is the root's until the guest enters a stream's.
    fn drain_callouts(&mut self) -> Result<(), String> {
        let mut answered = 0;
        loop {
            let shared = Arc::clone(&self.store.data().shared);
            if let Some(queue) = shared.queues.next_ready(self.index) {
                let exports = Arc::clone(&self.exports);
                if let Some(f) = &exports.on_queue_ready {
                    self.store.data_mut().effective_context = ROOT_ID;
                    self.call(f, (ROOT_ID, queue))?;
                }
                continue;
            }
            let Some(pending) = self.store.data_mut().pending_callouts.pop_front() else {
                return Ok(());
            };
            answered += 1;
            if answered > MAX_CALLOUTS_PER_CALL {
                return Err(format!(
                    "more than {MAX_CALLOUTS_PER_CALL} chained callouts: a loop?"
                ));
            }
            let answer = http_call::answer(&pending.cluster, &pending.request);
            let shared = Arc::clone(&self.store.data().shared);
            let response = match answer {
                Ok(reply) => {
                    if let Some(record) = lock(&shared.callouts).get_mut(pending.record) {
                        record.result = Some(CalloutResult::Replied {
                            status: reply.status,
                        });
                    }
                    let mut headers: HeaderMap =
                        vec![(":status".into(), reply.status.to_string().into_bytes())];
                    headers.extend(
                        reply
                            .headers
                            .into_iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v)),
                    );
                    CalloutResponse {
                        headers,
                        body: reply.body,
                        trailers: HeaderMap::new(),
                    }
                }
                Err(reason) => {
                    if let Some(record) = lock(&shared.callouts).get_mut(pending.record) {
                        record.result = Some(CalloutResult::Failed { reason });
                    }
                    // As Envoy on a failure or timeout: no headers, no body, no trailers.
                    CalloutResponse::default()
                }
            };
            let (headers, body) = (response.headers.len() as u32, response.body.len() as u32);
            self.store.data_mut().callout_response = Some(response);
            self.store.data_mut().effective_context = ROOT_ID;
            let exports = Arc::clone(&self.exports);
            let result = match &exports.on_http_call_response {
                Some(f) => self.call(f, (ROOT_ID, pending.token, headers, body, 0)),
                None => Ok(()),
            };
            self.store.data_mut().callout_response = None;
            result?;
        }
    }

    /// Runs one stream callback (`call` makes it), answers the callouts it made, and says how
    /// the stream stands.
    fn phase(
        &mut self,
        context: u32,
        call: impl FnOnce(&mut Self) -> Result<u32, String>,
    ) -> Result<Phase, String> {
        if let Some(stream) = self.store.data_mut().stream.as_mut() {
            stream.resumed_request = false;
            stream.resumed_response = false;
        }
        self.store.data_mut().effective_context = context;
        let action = call(self)?;
        self.drain_callouts()?;
        let stream = self.stream_mut()?;
        if let Some(reply) = stream.local_reply.take() {
            return Ok(Phase::Stop(Outcome::LocalReply {
                status: reply.status,
                headers: http_call::lossy(reply.headers),
                body: reply.body,
                details: reply.details,
            }));
        }
        if stream.closed {
            return Ok(Phase::Stop(Outcome::Reset));
        }
        if action == action::CONTINUE || stream.resumed_request || stream.resumed_response {
            return Ok(Phase::Continue);
        }
        Ok(Phase::Paused)
    }

    /// A stream callback with `(context, size, end_of_stream)`.
    fn stream_phase(
        &mut self,
        callback: Option<&StreamCallback>,
        args: (u32, u32, u32),
    ) -> Result<Phase, String> {
        match callback {
            Some(f) => self.phase(args.0, |w| w.call(f, args)),
            None => Ok(Phase::Continue),
        }
    }

    /// Whether a headers-phase pause with more of the stream to come still lets the body and
    /// trailers through (`allow_on_headers_stop_iteration`); otherwise Envoy's wasm host turns
    /// it into StopAllIterationAndWatermark and the stream hangs until the filter resumes it.
    fn headers_pause(&self, name: &str, end_of_stream: bool) -> Option<Outcome> {
        let allowed = self.store.data().shared.allow_on_headers_stop_iteration;
        (!end_of_stream && !allowed).then(|| Outcome::Stalled {
            reason: format!(
                "the filter paused in {name} with more of the stream to come; without \
                 allow_on_headers_stop_iteration Envoy delivers nothing more until it resumes"
            ),
        })
    }

    /// Runs one request through the filter.
    pub fn handle(&mut self, input: StreamInput) -> Outcome {
        if let Some(reason) = &self.dead {
            return Outcome::FailClosed {
                reason: format!("worker {} is dead: {reason}", self.index),
            };
        }
        let outcome = match self.stream(input) {
            Ok(outcome) => outcome,
            Err(reason) => Outcome::FailClosed { reason },
        };
        let state = self.store.data_mut();
        state.stream = None;
        state.effective_context = ROOT_ID;
        outcome
    }

    fn stream(&mut self, input: StreamInput) -> Result<Outcome, String> {
        let context = self.next_context;
        self.next_context = self.next_context.wrapping_add(1).max(ROOT_ID + 1);
        let header_count = input.headers.len() as u32;
        self.store.data_mut().stream = Some(StreamState {
            context_id: context,
            request_headers: input.headers,
            request_trailers: input.trailers,
            properties: input.properties,
            ..StreamState::default()
        });
        let e = Arc::clone(&self.exports);
        self.call(&e.on_context_create, (context, ROOT_ID))?;
        let outcome = match self.request_phases(context, header_count, input.body)? {
            Ok(body) => {
                self.response_phases(context, body, input.response_headers, input.response_body)?
            }
            Err(outcome) => outcome,
        };
        if let Some(on_log) = &e.on_log {
            self.call(on_log, context)?;
        }
        if let Some(on_done) = &e.on_done {
            self.call(on_done, context)?;
        }
        if let Some(on_delete) = &e.on_delete {
            self.call(on_delete, context)?;
        }
        Ok(outcome)
    }

    /// The request's headers, body chunks and trailers, as Envoy's wasm host drives them:
    /// the body that went upstream, or how the request ended here.
    fn request_phases(
        &mut self,
        context: u32,
        header_count: u32,
        chunks: Vec<Vec<u8>>,
    ) -> Result<Result<Vec<u8>, Outcome>, String> {
        let e = Arc::clone(&self.exports);
        let trailer_count = self
            .store
            .data()
            .stream
            .as_ref()
            .map_or(0, |s| s.request_trailers.len() as u32);
        let limit = self.store.data().shared.buffer_limit;
        let end = chunks.is_empty() && trailer_count == 0;
        // Whether the request is stopped at this filter.
        let mut held = false;
        let mut last = "proxy_on_request_headers";
        match self.stream_phase(
            e.on_request_headers.as_ref(),
            (context, header_count, u32::from(end)),
        )? {
            Phase::Stop(outcome) => return Ok(Err(outcome)),
            Phase::Continue => {}
            Phase::Paused => {
                if let Some(stalled) = self.headers_pause(last, end) {
                    return Ok(Err(stalled));
                }
                held = true;
            }
        }
        let mut forwarded = Vec::new();
        // Data the filter asked Envoy to buffer (StopIterationAndBuffer), not yet released.
        let mut buffered: Option<Vec<u8>> = None;
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let end = i + 1 == count && trailer_count == 0;
            // Envoy adds new data to what the filter buffered, then hands over the whole buffer.
            let data = match buffered.take() {
                Some(mut b) => {
                    b.extend_from_slice(&chunk);
                    if b.len() > limit {
                        return Ok(Err(payload_too_large()));
                    }
                    b
                }
                None => chunk,
            };
            let len = data.len() as u32;
            self.set_request_body(data)?;
            last = "proxy_on_request_body";
            let step =
                self.stream_phase(e.on_request_body.as_ref(), (context, len, u32::from(end)))?;
            let data = self.take_request_body()?;
            match step {
                Phase::Stop(outcome) => return Ok(Err(outcome)),
                Phase::Continue => {
                    held = false;
                    forwarded.extend_from_slice(&data);
                }
                Phase::Paused => {
                    if data.len() > limit {
                        return Ok(Err(payload_too_large()));
                    }
                    held = true;
                    buffered = Some(data);
                }
            }
        }
        if trailer_count > 0 {
            // The trailers callback sees the buffered body, as Envoy's does.
            self.set_request_body(buffered.take().unwrap_or_default())?;
            last = "proxy_on_request_trailers";
            let step = match &e.on_request_trailers {
                Some(f) => self.phase(context, |w| w.call(f, (context, trailer_count)))?,
                None => Phase::Continue,
            };
            let data = self.take_request_body()?;
            match step {
                Phase::Stop(outcome) => return Ok(Err(outcome)),
                Phase::Continue => held = false,
                Phase::Paused => held = true,
            }
            if !held {
                forwarded.extend_from_slice(&data);
            }
        } else if let Some(data) = buffered.take()
            && !held
        {
            forwarded.extend_from_slice(&data);
        }
        if held {
            return Ok(Err(Outcome::FailClosed {
                reason: format!("the filter paused in {last} and neither continued nor replied"),
            }));
        }
        Ok(Ok(forwarded))
    }

    /// The stream in flight; its absence is a harness bug.
    fn stream_mut(&mut self) -> Result<&mut StreamState, String> {
        self.store
            .data_mut()
            .stream
            .as_mut()
            .ok_or_else(|| "harness bug: the stream vanished".to_owned())
    }

    fn set_request_body(&mut self, body: Vec<u8>) -> Result<(), String> {
        self.stream_mut()?.request_body = body;
        Ok(())
    }

    fn take_request_body(&mut self) -> Result<Vec<u8>, String> {
        Ok(std::mem::take(&mut self.stream_mut()?.request_body))
    }

    /// The upstream answered: the response's headers and body through the filter.
    fn response_phases(
        &mut self,
        context: u32,
        body: Vec<u8>,
        response_headers: HeaderMap,
        response_body: Option<Vec<u8>>,
    ) -> Result<Outcome, String> {
        let e = Arc::clone(&self.exports);
        let response_len = response_body.as_ref().map(|b| b.len() as u32);
        let headers = {
            let stream = self.stream_mut()?;
            let sent = stream.request_headers.clone();
            stream.response_headers = Some(response_headers.clone());
            stream.response_body = response_body.unwrap_or_default();
            sent
        };
        let end = response_len.is_none();
        let count = response_headers.len() as u32;
        match self.stream_phase(
            e.on_response_headers.as_ref(),
            (context, count, u32::from(end)),
        )? {
            Phase::Stop(outcome) => return Ok(outcome),
            Phase::Continue => {}
            Phase::Paused => {
                if let Some(stalled) = self.headers_pause("proxy_on_response_headers", end) {
                    return Ok(stalled);
                }
                if end {
                    return Ok(Outcome::FailClosed {
                        reason: "the filter paused in proxy_on_response_headers and neither \
                                 continued nor replied"
                            .into(),
                    });
                }
            }
        }
        if let Some(len) = response_len {
            match self.stream_phase(e.on_response_body.as_ref(), (context, len, 1))? {
                Phase::Stop(outcome) => return Ok(outcome),
                Phase::Continue => {}
                Phase::Paused => {
                    return Ok(Outcome::FailClosed {
                        reason: "the filter paused in proxy_on_response_body and neither \
                                 continued nor replied"
                            .into(),
                    });
                }
            }
        }
        let response_headers = self
            .store
            .data()
            .stream
            .as_ref()
            .and_then(|s| s.response_headers.clone())
            .unwrap_or_default();
        Ok(Outcome::Upstream {
            headers: http_call::lossy(headers),
            body,
            response_headers: http_call::lossy(response_headers),
        })
    }

    /// Delivers `proxy_on_tick` to the root context and answers the callouts it made.
    pub fn tick(&mut self) {
        if self.dead.is_some() {
            return;
        }
        let exports = Arc::clone(&self.exports);
        if let Some(on_tick) = &exports.on_tick {
            self.store.data_mut().effective_context = ROOT_ID;
            if self.call(on_tick, ROOT_ID).is_ok() {
                // A non-trap failure (a callout loop) is logged by nobody: the VM stays up.
                let _ = self.drain_callouts();
            }
        }
    }

    /// Calls any export with i32 arguments; a trap kills the VM.
    pub fn call_export(&mut self, name: &str, args: &[i32]) -> Result<Vec<i32>, String> {
        if let Some(reason) = &self.dead {
            return Err(format!("worker {} is dead: {reason}", self.index));
        }
        let func = self
            .instance
            .get_func(&mut self.store, name)
            .ok_or_else(|| format!("the module does not export `{name}`"))?;
        let params: Vec<Val> = args.iter().map(|&a| Val::I32(a)).collect();
        let mut results = vec![Val::I32(0); func.ty(&self.store).results().len()];
        let result = func.call(&mut self.store, &params, &mut results);
        flush_output(self.store.data_mut());
        result.map_err(|e| self.kill(&e))?;
        self.drain_callouts()?;
        Ok(results
            .iter()
            .map(|v| v.i32().unwrap_or_default())
            .collect())
    }
}

/// Why booting a VM failed.
enum Boot {
    Trap(String),
    Rejected,
}
