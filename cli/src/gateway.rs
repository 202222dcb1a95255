//! `autoid gateway render|validate`: per-API definitions and a gateway file compiled into a
//! complete Envoy v3 bootstrap (`docs/GATEWAY.md`), and `autoid config validate`.

mod admin;
mod apply;
mod defs;
mod envoy;
mod filter;
mod nginx;
mod overlap;
mod xds;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};

use crate::Outcome;
use crate::files::{self, SECRET_MODE};
use defs::Definitions;
use envoy::{Authz, ExtAuthz, PathStyle};

/// What `render` and `validate` produce: which gateway, deployed how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Target {
    /// Envoy with the autoid wasm filter (the filter configuration inside the bootstrap)
    #[default]
    EnvoyWasm,
    /// Envoy with ext_authz to the agent's /v1/check (the filter configuration goes to the
    /// agent: --filter-config FILE)
    EnvoyExtAuthz,
    /// nginx with auth_request to the agent's /v1/check (an nginx configuration; the filter
    /// configuration goes to the agent: --filter-config FILE; docs/GATEWAYS.md)
    Nginx,
}

impl Target {
    /// Its name on the command line.
    fn name(self) -> &'static str {
        match self {
            Target::EnvoyWasm => "envoy-wasm",
            Target::EnvoyExtAuthz => "envoy-ext-authz",
            Target::Nginx => "nginx",
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum GatewayCommand {
    /// Compile gateway.json and apis/*.json into an Envoy bootstrap (secrets inline: mode 0600)
    Render(RenderArgs),
    /// Check the definitions, render them, and run `envoy --mode validate` (or `nginx -t`) when
    /// the gateway is found
    Validate(ValidateArgs),
    /// Change a running Envoy's routes, filter configuration and upstreams to the definitions as
    /// they are now (the files `render --xds-dir` set up), validated by Envoy first
    Apply(apply::ApplyArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a filter configuration (JSON) offline, as the filter's on_configure does
    Validate(ConfigValidateArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    autoid gateway render --config gateway-config --out run/envoy.json\n  \
    autoid gateway render --config gateway-config/examples --relative-to . \\\n    \
    --out gateway-config/examples/envoy.json\n  \
    autoid gateway render --target nginx --config gateway-config --out run/nginx.conf\n\n\
    Reads DIR/gateway.json and DIR/apis/*.json (relative paths in them are relative to DIR), \
    the private keys in plugin.keys_dir and the epoch files, and writes one Envoy bootstrap \
    (JSON). The filter configuration inside is checked with the filter's own parser first. \
    The output holds secrets (private keys when the filter holds them, epoch secrets, values \
    baked in with credentials.resolve \"render\", the agent token): it is written with mode \
    0600. Injected env, file and aws_secretsmanager sources are resolved by the agent by \
    default: the bootstrap names their headers only, and --agent-credentials FILE writes what \
    the agent resolves. Envoy's admin interface listens on a unix socket \
    (mode 0600) beside the output unless listeners.admin says otherwise. With --target nginx: \
    an nginx configuration (nginx -p PREFIX -c FILE) whose every API location asks the agent's \
    /v1/check with auth_request; it holds no secret (docs/GATEWAYS.md).")]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Write here (mode 0600) instead of stdout
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the agent's credentials file here (per API: header → source; names sources, never
    /// values); the agent's config names it in `credentials_file`
    #[arg(long, value_name = "FILE")]
    agent_credentials: Option<PathBuf>,
    /// envoy-ext-authz: write the filter configuration the agent decides with here (mode 0600;
    /// the agent's config names it in `check.filter_config`)
    #[arg(long, value_name = "FILE")]
    filter_config: Option<PathBuf>,
    /// Envoy targets: put the routes, the filter's configuration and the upstream clusters in
    /// files in DIR that Envoy watches (its filesystem xDS), the bootstrap pointing at them;
    /// rendering again into DIR changes them live (docs/OPERATIONS.md)
    #[arg(long, value_name = "DIR")]
    xds_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// The config directory (gateway.json and apis/)
    #[arg(long, value_name = "DIR")]
    config: PathBuf,
    /// Write the paths Envoy opens (the .wasm, TLS files) relative to DIR, the directory Envoy
    /// runs in, instead of absolute
    #[arg(long, value_name = "DIR")]
    relative_to: Option<PathBuf>,
    /// The deployment rendered
    #[arg(long, value_enum, default_value_t = Target::EnvoyWasm)]
    target: Target,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    autoid gateway validate --config gateway-config\n  \
    autoid gateway validate --config gateway-config --envoy .venv/bin/envoy\n  \
    autoid gateway validate --target nginx --config gateway-config\n\n\
    Exit 0 when the definitions are valid and Envoy (if found) accepts the rendered bootstrap; \
    1 when Envoy rejects it; 3 when a definition is invalid. Envoy is --envoy, else \
    .venv/bin/envoy, else `envoy` on PATH; without one only the definitions are checked \
    (said on stderr).")]
pub(crate) struct ValidateArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The Envoy binary
    #[arg(long, value_name = "PATH")]
    envoy: Option<PathBuf>,
    /// The nginx binary (--target nginx; default /usr/sbin/nginx, else `nginx` on PATH)
    #[arg(long, value_name = "PATH")]
    nginx: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  autoid config validate filter.json\n\n\
    Prints `ok: N api(s), directory` (or `static groups`) and exits 0, or prints the field path and what \
    is wrong (`apis.payments.require.any_of[0]: empty group name`) and exits 1.")]
pub(crate) struct ConfigValidateArgs {
    /// The filter configuration (JSON)
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub(crate) fn run_gateway(cmd: &GatewayCommand) -> Result<Outcome> {
    match cmd {
        GatewayCommand::Render(args) => render_cmd(args),
        GatewayCommand::Validate(args) => validate_cmd(args),
        GatewayCommand::Apply(args) => apply::apply_cmd(args),
    }
}

pub(crate) fn run_config(cmd: &ConfigCommand) -> Result<Outcome> {
    match cmd {
        ConfigCommand::Validate(args) => {
            let bytes = files::read_secret(&args.file, "a filter configuration")?;
            match autoid_protocol::config::Config::from_json(&bytes) {
                Ok(c) => {
                    let groups = match c.groups {
                        autoid_protocol::config::Groups::Directory(_) => "directory",
                        autoid_protocol::config::Groups::Static(_) => "static groups",
                    };
                    println!("ok: {} api(s), {groups}", c.apis.len());
                    Ok(Outcome::Success)
                }
                Err(e) => {
                    println!("invalid: {}: {e}", args.file.display());
                    Ok(Outcome::Rejected)
                }
            }
        }
    }
}

/// The rendered bootstrap, pretty JSON with a final newline.
/// The admin socket's file name when the definitions name none: beside the rendered bootstrap.
const ADMIN_SOCKET: &str = "envoy-admin.sock";

/// What render writes: the gateway's configuration, and for the agent-checked targets the
/// filter configuration the agent decides with.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The Envoy bootstrap (pretty JSON) or the nginx configuration.
    pub gateway: String,
    /// For the agent-checked targets: the filter configuration the agent decides with (JSON).
    pub filter_config: Option<String>,
    /// With `--xds-dir`: the files Envoy watches there (the bootstrap then points at them).
    pub(crate) xds_files: Vec<xds::XdsFile>,
}

/// `autoid gateway render --config CONFIG --target TARGET [--out OUT]`, as a library call for
/// programs that must run what users deploy (the bench): the definitions in `config` rendered
/// for `target` (warnings on stderr, as the command prints them); `out` is where the output
/// will be written (Envoy's admin socket goes beside it). Nothing is written.
pub fn render_definitions(config: &Path, target: Target, out: Option<&Path>) -> Result<Rendered> {
    let common = CommonArgs {
        config: config.to_owned(),
        relative_to: None,
        target,
    };
    render(&common, out, None)
}

/// The agent-checked targets need the agent on a unix socket: the check carries the client's own
/// `authorization`, so the agent's bearer token cannot travel with it.
fn require_agent_socket(defs: &Definitions, target: Target) -> Result<()> {
    let file = defs.dir.join("gateway.json");
    match defs
        .gateway
        .directory
        .as_ref()
        .map(|d| (d, d.agent_address()))
    {
        Some((_, Some(defs::AgentAddress::Unix(_)))) => Ok(()),
        Some((d, _)) => bail!(
            "{}: directory.address: {:?}: --target {} needs the agent on a unix socket \
             (unix:PATH)",
            file.display(),
            d.address,
            target.name()
        ),
        None => bail!(
            "{}: directory: --target {} needs the agent (directory.address unix:PATH)",
            file.display(),
            target.name()
        ),
    }
}

/// Renders `common.target`; `out` is where it will be written (the admin socket goes beside it);
/// with `xds_dir`, what changes with the definitions goes to files Envoy watches there.
fn render(common: &CommonArgs, out: Option<&Path>, xds_dir: Option<&Path>) -> Result<Rendered> {
    let defs = Definitions::load(&common.config)?;
    for w in overlap::warnings(&defs) {
        eprintln!("autoid: WARNING: {w}");
    }
    let config = filter::build(&defs)?;
    let configuration = filter::to_string(&config)?;
    if common.target == Target::Nginx {
        require_agent_socket(&defs, common.target)?;
        if common.relative_to.is_some() {
            eprintln!(
                "autoid: warning: --relative-to: the nginx configuration names certificates and \
                 the agent's socket by absolute paths (its logs and pid are relative to nginx -p)"
            );
        }
        let mut text = serde_json::to_string_pretty(&config)?;
        text.push('\n');
        if xds_dir.is_some() {
            bail!("--xds-dir: Envoy's watched files; nginx reloads its configuration instead");
        }
        return Ok(Rendered {
            gateway: render_nginx(&defs, &config)?,
            filter_config: Some(text),
            xds_files: Vec::new(),
        });
    }
    let style = match &common.relative_to {
        Some(dir) => PathStyle::RelativeTo(dir.clone()),
        None => PathStyle::Absolute,
    };
    let admin_socket = out
        .and_then(Path::parent)
        .unwrap_or(Path::new(""))
        .join(ADMIN_SOCKET);
    if let defs::Admin::Tcp(address, port) = defs.gateway.listeners.admin() {
        eprintln!(
            "autoid: WARNING: {}: listeners.admin puts Envoy's admin interface on TCP \
             {address}:{port}. Anyone who can reach it (any local user, an SSRF in any service \
             on this host) can read /config_dump, change /runtime_modify and stop Envoy with \
             /quitquitquit, without credentials. Remove `address` and `port` to get the default, \
             a unix socket with mode 0600.",
            common.config.join("gateway.json").display()
        );
    }
    for (file, api, _) in &defs.apis {
        match api.auth.plain_http() {
            Some("allow") if api.auth.ldap_basic() => eprintln!(
                "autoid: WARNING: {}: auth.basic.plain_http \"allow\" accepts directory \
                 passwords on connections without TLS, from anywhere: anyone on the path reads \
                 them. For development only; use \"loopback\" or TLS (listeners.https).",
                file.display()
            ),
            Some("loopback") if api.auth.ldap_basic() => eprintln!(
                "autoid: warning: {}: auth.basic.plain_http \"loopback\" accepts directory \
                 passwords without TLS from this host's own clients (127.0.0.0/8, ::1); remote \
                 clients need TLS.",
                file.display()
            ),
            _ => {}
        }
    }
    let (authz, filter_config) = match common.target {
        // Nginx returned above.
        Target::EnvoyWasm | Target::Nginx => (
            Authz::Wasm {
                configuration: &configuration,
            },
            None,
        ),
        Target::EnvoyExtAuthz => {
            require_agent_socket(&defs, common.target)?;
            let parsed = autoid_protocol::config::Config::from_json(configuration.as_bytes())
                .map_err(|e| anyhow::anyhow!("the filter configuration: {e}"))?;
            let mut text = serde_json::to_string_pretty(&config)?;
            text.push('\n');
            (
                Authz::ExtAuthz(ExtAuthz {
                    proof_header: parsed.proof_header.clone(),
                    managed: parsed.all_managed_headers(),
                }),
                Some(text),
            )
        }
    };
    let mut bootstrap = envoy::bootstrap(&defs, &authz, &style, &admin_socket)?;
    let mut xds_files = Vec::new();
    if let Some(dir) = xds_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let absolute = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let dynamic = xds::split(bootstrap, Path::new(&style.render(&absolute)?))?;
        bootstrap = dynamic.bootstrap;
        xds_files = dynamic.files;
    }
    let wasm = defs.resolve(&defs.gateway.plugin.wasm_file);
    if common.target == Target::EnvoyWasm && !wasm.is_file() {
        eprintln!(
            "autoid: warning: {}: plugin.wasm_file {} does not exist (yet); run `make build`",
            common.config.join("gateway.json").display(),
            wasm.display()
        );
    }
    let mut text = serde_json::to_string_pretty(&bootstrap)?;
    text.push('\n');
    Ok(Rendered {
        gateway: text,
        filter_config,
        xds_files,
    })
}

/// The nginx configuration; its warnings on stderr.
fn render_nginx(defs: &Definitions, config: &serde_json::Value) -> Result<String> {
    let config = autoid_protocol::config::Config::from_json(&serde_json::to_vec(config)?)
        .map_err(|e| anyhow::anyhow!("the filter configuration: {e}"))?;
    let rendered = nginx::render(defs, &config)?;
    for w in &rendered.warnings {
        eprintln!("autoid: warning: {w}");
    }
    Ok(rendered.text)
}

/// Names a file written: on stdout beside `--out`'s, on stderr when stdout is the bootstrap.
fn report_written(args: &RenderArgs, file: &Path) {
    if args.out.is_some() {
        println!("{}", file.display());
    } else {
        eprintln!("autoid: wrote {}", file.display());
    }
}

fn render_cmd(args: &RenderArgs) -> Result<Outcome> {
    let rendered = render(&args.common, args.out.as_deref(), args.xds_dir.as_deref())?;
    let text = rendered.gateway;
    match (&rendered.filter_config, &args.filter_config) {
        (Some(config), Some(file)) => {
            // Private keys and epoch secrets when the definitions give them to the filter.
            files::write_file(file, config.as_bytes(), SECRET_MODE, true)?;
            report_written(args, file);
        }
        (Some(_), None) => bail!(
            "--target {}: name where the agent's filter configuration goes with \
             --filter-config FILE (the agent's `check.filter_config`)",
            args.common.target.name()
        ),
        (None, Some(_)) => bail!(
            "--filter-config: only the agent-checked targets (envoy-ext-authz, nginx) write one; \
             the envoy-wasm bootstrap carries the filter configuration itself"
        ),
        (None, None) => {}
    }
    let defs = Definitions::load(&args.common.config)?;
    match (filter::agent_credentials(&defs)?, &args.agent_credentials) {
        (Some(creds), Some(file)) => {
            let mut text = serde_json::to_string_pretty(&creds)?;
            text.push('\n');
            files::write_file(file, text.as_bytes(), files::PUBLIC_MODE, true)?;
            report_written(args, file);
        }
        (Some(_), None) => eprintln!(
            "autoid: warning: some injected headers are resolved by the agent: write its \
             credentials file with --agent-credentials FILE and name it in the agent's \
             `credentials_file`"
        ),
        (None, Some(file)) => {
            files::write_file(file, b"{\"apis\": {}}\n", files::PUBLIC_MODE, true)?;
            eprintln!(
                "autoid: agent credentials: {} (no API needs the agent)",
                file.display()
            );
        }
        (None, None) => {}
    }
    if let Some(dir) = &args.xds_dir {
        for path in xds::write_all(dir, &rendered.xds_files)? {
            report_written(args, &path);
        }
    }
    match &args.out {
        Some(out) => {
            files::write_file(out, text.as_bytes(), SECRET_MODE, true)?;
            println!("{}", out.display());
        }
        None => print!("{text}"),
    }
    Ok(Outcome::Success)
}

/// `nginx -t` on the rendered configuration, from a temporary prefix (its logs and pid go
/// there): nginx's verdict, its messages when it refuses.
fn validate_nginx(args: &ValidateArgs, text: &str) -> Result<Outcome> {
    let Some(nginx) = nginx::binary(args.nginx.as_deref()) else {
        eprintln!(
            "autoid: warning: nginx not found (--nginx, /usr/sbin/nginx, PATH): only the \
             definitions were checked; install it with `make deps-nginx`"
        );
        return Ok(Outcome::Success);
    };
    let dir = tempfile::Builder::new()
        .prefix("autoid-validate-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let rendered = dir.path().join("nginx.conf");
    files::write_file(&rendered, text.as_bytes(), SECRET_MODE, true)?;
    let out = Command::new(&nginx)
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&rendered)
        .output()
        .with_context(|| format!("{}: cannot run nginx", nginx.display()))?;
    if out.status.success() {
        println!("nginx -t ({}): ok", nginx.display());
        return Ok(Outcome::Success);
    }
    if out.status.code().is_none() {
        bail!("{}: killed by a signal", nginx.display());
    }
    println!("nginx -t ({}): rejected ({})", nginx.display(), out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines().chain(stderr.lines()) {
        println!("  {line}");
    }
    Ok(Outcome::Rejected)
}

/// `--envoy`, else `.venv/bin/envoy`, else `envoy` on PATH.
fn find_envoy(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_owned());
    }
    let venv = PathBuf::from(".venv/bin/envoy");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("envoy"))
            .find(|p| p.is_file())
    })
}

fn validate_cmd(args: &ValidateArgs) -> Result<Outcome> {
    let text = render(&args.common, None, None)?.gateway;
    println!("definitions: ok");
    if args.common.target == Target::Nginx {
        return validate_nginx(args, &text);
    }
    let Some(envoy) = find_envoy(args.envoy.as_deref()) else {
        eprintln!(
            "autoid: warning: Envoy not found (--envoy, .venv/bin/envoy, PATH): only the \
             definitions were checked; install it with `make deps-envoy`"
        );
        return Ok(Outcome::Success);
    };
    match envoy_validate(&envoy, &text)? {
        None => {
            println!("envoy --mode validate ({}): ok", envoy.display());
            Ok(Outcome::Success)
        }
        Some(rejected) => {
            print!("{rejected}");
            Ok(Outcome::Rejected)
        }
    }
}

/// `envoy --mode validate` on the bootstrap `text`: `None` when Envoy accepts it, else Envoy's
/// verdict and messages, ready to print.
fn envoy_validate(envoy: &Path, text: &str) -> Result<Option<String>> {
    let dir = tempfile::Builder::new()
        .prefix("autoid-validate-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let rendered = dir.path().join("envoy.json");
    files::write_file(&rendered, text.as_bytes(), SECRET_MODE, true)?;
    let out = Command::new(envoy)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&rendered)
        .arg("--log-level")
        .arg("error")
        .output()
        .with_context(|| format!("{}: cannot run Envoy", envoy.display()))?;
    if out.status.success() {
        return Ok(None);
    }
    if out.status.code().is_none() {
        bail!("{}: killed by a signal", envoy.display());
    }
    let mut report = format!(
        "envoy --mode validate ({}): rejected ({})\n",
        envoy.display(),
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines().chain(stderr.lines()) {
        report.push_str(&format!("  {line}\n"));
    }
    Ok(Some(report))
}
