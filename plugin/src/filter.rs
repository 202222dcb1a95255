//! The proxy-wasm contexts: a thin adapter that hands each callback to the plain-Rust logic with
//! [`Envoy`] as its host — the root context to [`Worker`], each HTTP context to [`Flow`].

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::flow::Flow;
use crate::host::Verdict;
use crate::wasm_host::Envoy;
use crate::worker::{TICK, Worker};

/// The root context: one per worker.
#[derive(Default)]
pub struct Root {
    worker: Worker,
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

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            flow: Flow::new(self.worker.state()),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP context: one request.
struct Http {
    flow: Flow,
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
        if let Verdict::Continue = self.flow.on_callout(&Envoy, body_size) {
            self.resume_http_request();
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.flow.on_request_headers(&Envoy, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.flow.on_request_body(&Envoy, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.flow.on_request_trailers(&Envoy))
    }
}
