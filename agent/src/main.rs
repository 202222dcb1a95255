//! `autoid-agent`: the binary that serves the agent's HTTP API (see docs/AGENT.md).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use autoid_agent::check::{Checker, load_filter_config};
use autoid_agent::{
    AppState, Config, Credentials, Directory, FleetReplay, Listen, Secrets, Sessions, Streams, env,
    router, transport,
};
use clap::{CommandFactory, Parser, ValueEnum};
use tracing::{error, info, warn};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The autoid agent: holds the gateway's secrets and answers the filter's callouts (sessions,
/// streams, directory, credentials, fleet claims).
///
/// Secrets are never command-line values: the bearer token and the service-account password come
/// from files (config or flags) or from AUTOID_AGENT_TOKEN / AUTOID_AGENT_BIND_PASSWORD. The old
/// names (AUTOID_BRIDGE_*) are still read, with a warning.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The JSON configuration file (required).
    #[arg(long, env = "AUTOID_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, `unix:<path>` or `ip:port` (overrides `listen` in the config; default
    /// unix:autoid-agent.sock, relative to the current directory). TCP needs `tls` in the config.
    #[arg(long)]
    listen: Option<String>,
    /// File holding the bearer token (overrides `token_file`).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// File holding the service-account password (overrides `ldap.bind_password_file`).
    #[arg(long)]
    bind_password_file: Option<PathBuf>,
    /// Log format [default: text].
    #[arg(long, value_enum, env = "AUTOID_AGENT_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Validate the configuration and the secrets, then exit.
    #[arg(long)]
    check_config: bool,
}

fn init_logging(format: LogFormat) {
    let filter = env::LOG
        .get()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received, shutting down"),
        () = term => info!("SIGTERM received, shutting down"),
    }
}

/// SIGHUP: reads the configuration file again and applies what can change live — the gateway keys
/// (`session_keys`) and the epochs (`epoch_files`), with their `not_after`. Everything is loaded
/// before anything is replaced: an invalid file, an unreadable key or epoch leaves both running
/// sets as they were, with an error logged. The listener, the directory settings, the secrets and
/// `stream_ttl_secs` need a restart (docs/AGENT.md). With `check`, the filter configuration
/// file is read again and applied to the check workers too (their number needs a restart).
#[cfg(unix)]
async fn reload_on_hangup(
    config_file: std::path::PathBuf,
    sessions: Arc<Sessions>,
    streams: Arc<Streams>,
    checker: Option<Arc<Checker>>,
) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot listen for SIGHUP: no live reload");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let reloaded = Config::from_file(&config_file)
            .map_err(anyhow::Error::from)
            .and_then(|c| {
                // The epochs load first and are served only once the keys loaded too.
                let epochs = Streams::prepare(&c.epoch_files)?;
                sessions.reload(&c.session_keys)?;
                streams.swap(epochs);
                Ok(())
            });
        match reloaded {
            Ok(()) => {
                info!(kids = ?sessions.kids(), epochs = ?streams.ids(), "SIGHUP: reloaded the gateway keys and epochs (id, not_after)")
            }
            Err(e) => {
                error!(error = %format!("{e:#}"), "SIGHUP: reload failed; the running keys and epochs stay as they were")
            }
        }
        if let Some(checker) = &checker {
            let file = Config::from_file(&config_file)
                .ok()
                .and_then(|c| c.check)
                .map(|c| c.filter_config);
            match file {
                Some(file) => match checker.reload(&file).await {
                    Ok(()) => {
                        info!(file = %file.display(), "SIGHUP: reloaded the check's filter configuration")
                    }
                    Err(e) => {
                        error!(error = %e, "SIGHUP: the check's filter configuration stays as it was")
                    }
                },
                None => error!(
                    "SIGHUP: no valid `check` section; the check's filter configuration stays as it was"
                ),
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The old names of --config's and --log-format's variables, which clap does not read.
    let log_format = match args.log_format {
        Some(f) => f,
        None => match env::LOG_FORMAT.get_old() {
            Some(v) => LogFormat::from_str(&v, true).unwrap_or_else(|e| {
                Args::command()
                    .error(
                        clap::error::ErrorKind::InvalidValue,
                        format!("{}: {e}", env::LOG_FORMAT.old),
                    )
                    .exit()
            }),
            None => LogFormat::Text,
        },
    };
    let Some(config_file) = args
        .config
        .clone()
        .or_else(|| env::CONFIG.get_old().map(PathBuf::from))
    else {
        Args::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "the following required arguments were not provided:\n  --config <CONFIG>",
            )
            .exit()
    };
    init_logging(log_format);
    for warning in env::old_name_warnings() {
        warn!("{warning}");
    }

    let config = Config::from_file_with_listen(&config_file, args.listen.as_deref())
        .context("invalid configuration")?;
    let secrets = Secrets::load(
        &config,
        args.token_file.as_deref(),
        args.bind_password_file.as_deref(),
    )
    .context("cannot load secrets")?;

    let l = &config.ldap;
    if l.tls_insecure_skip_verify {
        warn!(
            "!!! ldap.tls_insecure_skip_verify is ON: the directory's certificate is NOT verified; anyone on the path can impersonate it and read passwords !!!"
        );
    }
    if !l.ldaps && !l.starttls && !matches!(l.host.as_str(), "127.0.0.1" | "localhost" | "::1") {
        warn!(url = %l.url, "LDAP without TLS to a non-loopback host: passwords cross the network in clear (set ldap.starttls or use ldaps://)");
    }
    if let Listen::PlainTcp(addr) = &config.listen {
        warn!(listen = %addr, "!!! insecure_plain_tcp is ON: the bearer token and every answer cross TCP in clear; for development only (use the unix socket, or tls) !!!");
    }
    if config.listen_is_public() {
        warn!(listen = %config.listen, "!!! listening on a NON-LOOPBACK address: the agent answers anyone who can reach this port and holds the token; keep it behind the gateway !!!");
    }
    if let Listen::Tls {
        cert_file,
        key_file,
        ..
    } = &config.listen
    {
        transport::server_config(cert_file, key_file).context("cannot load the TLS identity")?;
    }

    let config = Arc::new(config);
    let directory = Arc::new(
        Directory::new(config.clone(), secrets.bind_password)
            .context("cannot set up the directory client")?,
    );
    // Epochs load before `--check-config` answers, so it checks them too.
    let streams = Arc::new(
        Streams::load(&config.epoch_files, config.stream_ttl_secs).context("cannot load epochs")?,
    );
    let credentials = match &config.credentials_file {
        Some(f) => Some(Arc::new(
            Credentials::from_file(f).context("invalid credentials file")?,
        )),
        None => None,
    };
    if let Some(check) = &config.check {
        load_filter_config(&check.filter_config).context("invalid check configuration")?;
    }
    if args.check_config {
        println!("configuration OK");
        return Ok(());
    }

    let bound = transport::bind(&config.listen)
        .await
        .context("cannot listen")?;
    let _keepalive = directory.spawn_keepalive();
    let ready = match directory.warm_up().await {
        Ok(()) => directory.check_ready().await,
        Err(e) => Err(e),
    };
    match ready {
        Ok(()) => info!("directory reachable"),
        Err(e) => warn!(error = %e, "directory not reachable yet; /readyz answers 503 until it is"),
    }
    if secrets.token.is_none() {
        info!("no bearer token configured: the socket's file permissions authenticate callers");
    }
    let sessions =
        Arc::new(Sessions::load(&config.session_keys).context("cannot load session keys")?);
    info!(kids = ?sessions.kids(), "unwrapping sessions for these gateway keys (kid, not_after)");
    let mut state =
        AppState::new(directory, secrets.token.as_deref()).with_sessions(sessions.clone());
    info!(epochs = ?streams.ids(), ttl_secs = config.stream_ttl_secs, "handing out per-subject keys of these epochs (id, not_after)");
    state = state.with_streams(streams.clone());
    if let Some(credentials) = credentials {
        credentials.refresh_all().await;
        let _refreshers = credentials.spawn_refreshers();
        // Envoy signs `aws_service` APIs' requests with the credentials these keep fresh.
        credentials.signing().refresh_all().await;
        let _signers = credentials.signing().spawn_refreshers();
        info!(apis = ?credentials.apis().collect::<Vec<_>>(), "serving upstream credentials for these APIs");
        state = state.with_credentials(credentials);
    }
    if let Some(replay) = &config.replay {
        let store = FleetReplay::new(replay).context("invalid replay configuration")?;
        info!(redis = %store.endpoint(), timeout_ms = replay.timeout.as_millis() as u64, "claiming nonces for the fleet in Redis");
        state = state.with_replay(Arc::new(store));
    }
    let mut checker = None;
    if let Some(check) = &config.check {
        // The filter's callouts are served by the same routes, in-process.
        let c = Arc::new(
            Checker::start(check, router(state.clone()))
                .await
                .context("cannot start the check workers")?,
        );
        info!(file = %check.filter_config.display(), workers = check.workers, "answering /v1/check as the wasm filter with this configuration");
        state = state.with_check(c.clone());
        checker = Some(c);
    }
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(
        config_file.clone(),
        sessions,
        streams,
        checker,
    ));
    let app = router(state);
    info!(addr = %bound.address(), transport = bound.transport(), url = %config.ldap.url, "autoid-agent listening");
    bound
        .serve(app, shutdown_signal())
        .await
        .context("server error")?;
    info!("stopped");
    Ok(())
}
