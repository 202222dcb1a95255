//! `autoid aws credential-process`: what the AWS CLI and SDKs run from a profile's
//! `credential_process` setting. It proves the caller's entropy to the gateway's AWS API (an
//! API definition with `aws_role`), which checks the proof and the API's groups and has the
//! agent assume the role for this subject; it prints the short-lived credentials as the JSON the
//! setting expects (`Version` 1, `AccessKeyId`, `SecretAccessKey`, `SessionToken`,
//! `Expiration`) and nothing else. The SDKs call it again when `Expiration` nears. Nothing is
//! written to disk.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use autoid_protocol::header::DEFAULT_HEADER;
use clap::{Args, Subcommand};
use serde_json::Value;
use ureq::http::HeaderValue;

use crate::Outcome;
use crate::binding::Target;
use crate::prove::{ClientArgs, Prover};
use crate::request::http_agent;

/// `autoid aws …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AwsCommand {
    /// Print short-lived AWS credentials from the gateway (for `credential_process`)
    #[command(after_help = "Example ~/.aws/config profile:\n  \
        [profile autoid-alice]\n  \
        credential_process = autoid aws credential-process --public-key /etc/autoid/gw-1.pub.pem \
        --entropy /etc/autoid/alice.entropy --subject alice https://gateway.example/aws/\n\n\
        Exits 0 with the credentials JSON on stdout; 1 when the gateway refuses (the status and \
        error code on stderr: the AWS CLI reports it as a credential error); 3 on a network error.")]
    CredentialProcess(CredentialProcessArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CredentialProcessArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Trust only the CA certificates in this PEM file (like curl --cacert)
    #[arg(long, value_name = "PEM")]
    cacert: Option<PathBuf>,
    /// The name of the proof header the gateway reads
    #[arg(long, value_name = "NAME", default_value = DEFAULT_HEADER)]
    header_name: String,
    /// Give up after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
    /// The gateway URL of the AWS API (its listen_path)
    #[arg(value_name = "URL")]
    url: String,
}

pub(crate) fn run(cmd: &AwsCommand) -> Result<Outcome> {
    match cmd {
        AwsCommand::CredentialProcess(args) => credential_process(args),
    }
}

fn credential_process(args: &CredentialProcessArgs) -> Result<Outcome> {
    let target = Target::new("GET", &args.url)?;
    let agent = http_agent(args.cacert.as_deref(), args.timeout)?;
    let mut prover = Prover::new(&args.client)?;
    // One request per call: the form every gateway holding the key accepts.
    let proof = prover.prove(prover.full_form(), &target, None)?;
    let request = ureq::http::Request::builder()
        .method("GET")
        .uri(target.url.as_str())
        .header(
            ureq::http::header::HOST,
            HeaderValue::from_str(&target.authority).context("the URL's authority")?,
        )
        .header(
            args.header_name.as_str(),
            HeaderValue::from_str(&proof).context("the proof is not a valid header value")?,
        )
        .body(())
        .context("building the request")?;
    let mut response = agent
        .run(request)
        .map_err(|e| anyhow!("GET {}: {e}", target.url))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_vec()
        .map_err(|e| anyhow!("GET {}: reading the response: {e}", target.url))?;
    if status != 200 {
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "no error code".to_owned());
        eprintln!("autoid: the gateway refused AWS credentials: HTTP {status} {code}");
        return Ok(Outcome::Rejected);
    }
    let doc: Value = serde_json::from_slice(&body).context("the gateway's reply is not JSON")?;
    let fields = [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    ];
    if doc["Version"] != 1 || fields.iter().any(|f| !doc[f].is_string()) {
        bail!("the gateway's reply is not credential_process JSON (Version 1 and {fields:?})");
    }
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &doc)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    Ok(Outcome::Success)
}
