//! The proxy-wasm contexts: a thin adapter that hands each callback to the plain-Rust logic with
//! [`Envoy`] as its host — the root context to [`Worker`], each HTTP context to [`Flow`].

use std::cell::RefCell;
use std::rc::Rc;

use autoid_filter::host::Verdict;
use autoid_filter::{Flow, TICK, Worker};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::wasm_host::Envoy;

/// The root context: one per worker.
pub struct Root {
    worker: Worker,
}

impl Root {
    /// The root context `id`.
    pub fn new(id: u32) -> Self {
        Root {
            worker: Worker::new(id),
        }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        self.worker.on_callout(&Envoy, token, body_size);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        if !self.worker.configure(&Envoy, &bytes) {
            return false;
        }
        self.set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        self.worker.tick(&Envoy);
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        self.worker.on_queue_ready(&Envoy, queue_id);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let flow = Rc::new(RefCell::new(Flow::new(self.worker.state())));
        Flow::attach(&flow, context_id);
        Some(Box::new(Http { flow }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP context: one request. Its flow is shared with the worker's fleet batcher, which
/// holds it weakly to decide the request when its claim is answered (never during one of these
/// callbacks: both run on the worker's one thread, one callback at a time).
struct Http {
    flow: Rc<RefCell<Flow>>,
}

/// The proxy's action for a verdict.
fn action(verdict: Verdict) -> Action {
    match verdict {
        Verdict::Continue => Action::Continue,
        Verdict::Pause => Action::Pause,
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Ok(mut flow) = self.flow.try_borrow_mut() else {
            return;
        };
        if let Verdict::Continue = flow.on_callout(&Envoy, body_size) {
            self.resume_http_request();
        }
    }
}

impl Http {
    /// Runs a callback on the flow: `Pause` (fail closed) if it is somehow in use.
    fn with_flow(&self, f: impl FnOnce(&mut Flow) -> Verdict) -> Action {
        match self.flow.try_borrow_mut() {
            Ok(mut flow) => action(f(&mut flow)),
            Err(_) => Action::Pause,
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.with_flow(|flow| flow.on_request_headers(&Envoy, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with_flow(|flow| flow.on_request_body(&Envoy, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.with_flow(|flow| flow.on_request_trailers(&Envoy))
    }
}
