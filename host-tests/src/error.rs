//! The one error type of the harness.

use std::path::PathBuf;

/// What can go wrong building or driving a [`crate::Gateway`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The `.wasm` file could not be read.
    #[error("cannot read wasm module {path}: {source}")]
    ReadModule {
        /// The path given to the builder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Wasmtime refused the module or failed to set up the engine.
    #[error("wasmtime: {message}")]
    Wasmtime {
        /// The wasmtime error, with its causes.
        message: String,
    },
    /// The module imports functions this host does not provide.
    #[error("the module imports functions this host does not provide: {}", names.join(", "))]
    MissingImports {
        /// `module::name` of each missing import.
        names: Vec<String>,
    },
    /// The module lacks an export the ABI requires.
    #[error("the module does not export `{name}` (is it a proxy-wasm 0.2.1 filter?)")]
    MissingExport {
        /// The export's name.
        name: String,
    },
    /// The VM trapped while starting or configuring.
    #[error("worker {worker} trapped in {phase}: {reason}")]
    Trap {
        /// The worker index.
        worker: usize,
        /// The callback that trapped.
        phase: &'static str,
        /// The trap, with the guest's stderr if it printed a panic.
        reason: String,
    },
    /// `proxy_on_vm_start` returned false.
    #[error("worker {worker}: proxy_on_vm_start returned false")]
    VmStartRejected {
        /// The worker index.
        worker: usize,
        /// Everything logged up to the rejection.
        logs: Vec<crate::LogLine>,
    },
    /// `proxy_on_configure` returned false: the plugin rejected its configuration.
    #[error("worker {worker}: proxy_on_configure returned false")]
    ConfigureRejected {
        /// The worker index.
        worker: usize,
        /// Everything logged up to the rejection (the plugin logs why).
        logs: Vec<crate::LogLine>,
    },
    /// A worker index out of range.
    #[error("no worker {worker}: the gateway has {workers}")]
    NoSuchWorker {
        /// The index asked for.
        worker: usize,
        /// How many workers there are.
        workers: usize,
    },
    /// A worker's lock was poisoned by a panic in another thread.
    #[error("worker {worker} is poisoned by a panic in another thread")]
    Poisoned {
        /// The worker index.
        worker: usize,
    },
}

impl HostError {
    pub(crate) fn wasmtime(error: &wasmtime::Error) -> Self {
        Self::Wasmtime {
            message: format!("{error:?}"),
        }
    }
}
