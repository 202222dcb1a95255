//! `autoid keygen`, and loading gateway keys from PEM files named after their key id.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use autoid_protocol::keys::{GatewayKey, PublicKey};
use autoid_protocol::policy::DEFAULT_RSA_BITS;
use clap::Args;

use crate::files::{
    self, PRIVATE_KEY_SUFFIX, PUBLIC_KEY_SUFFIX, PUBLIC_MODE, SECRET_MODE, kid_for,
};
use crate::{Outcome, usage};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    autoid keygen --out keys\n  \
    autoid keygen --out keys --kid gw-2 --bits 4096\n\n\
    Writes keys/<kid>.key.pem (PKCS#8, mode 0600: keep it on the gateway) and keys/<kid>.pub.pem \
    (SPKI: give it to clients) and prints both paths. Other commands infer the key id from these \
    file names, so keep the names. Existing files are never replaced without --force.")]
pub(crate) struct KeygenArgs {
    /// Directory to write the key files into (created if missing)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// RSA modulus size in bits: 2048, 3072 or 4096 (3072 takes a few seconds)
    #[arg(long, default_value_t = DEFAULT_RSA_BITS, value_parser = parse_bits)]
    bits: usize,
    /// Key id (1-32 of A-Z a-z 0-9 _ -), carried in every proof [default: gw-YYYYMMDD, today UTC]
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
    /// Replace existing key files
    #[arg(long)]
    force: bool,
}

pub(crate) fn parse_bits(s: &str) -> Result<usize, String> {
    let bits: usize = s.parse().map_err(|_| format!("not a number: {s}"))?;
    if autoid_protocol::keys::ALLOWED_BITS.contains(&bits) {
        Ok(bits)
    } else {
        Err("must be 2048, 3072 or 4096".to_owned())
    }
}

/// Rejects an id the protocol would refuse, as a usage error.
pub(crate) fn check_id(flag: &str, id: &str) -> Result<()> {
    if !autoid_protocol::valid_id(id) {
        usage!("{flag} {id:?}: an id is 1 to 32 characters of A-Z a-z 0-9 _ -");
    }
    Ok(())
}

pub(crate) fn keygen(args: &KeygenArgs) -> Result<Outcome> {
    let kid = match &args.kid {
        Some(kid) => kid.clone(),
        None => default_kid()?,
    };
    let (private_path, public_path) = generate_files(&args.out, &kid, args.bits, args.force)?;
    println!("{}", private_path.display());
    println!("{}", public_path.display());
    Ok(Outcome::Success)
}

/// `gw-YYYYMMDD`, today (UTC).
pub(crate) fn default_kid() -> Result<String> {
    Ok(format!("gw-{}", crate::today_yyyymmdd()?))
}

/// Generates a key pair and writes `<dir>/<kid>.key.pem` (mode 0600) and `<kid>.pub.pem`.
pub(crate) fn generate_files(
    dir: &Path,
    kid: &str,
    bits: usize,
    force: bool,
) -> Result<(PathBuf, PathBuf)> {
    check_id("--kid", kid)?;
    let private_path = files::key_path(dir, kid, PRIVATE_KEY_SUFFIX);
    let public_path = files::key_path(dir, kid, PUBLIC_KEY_SUFFIX);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create directory", dir.display()))?;
    files::check_absent(&private_path, force)?;
    files::check_absent(&public_path, force)?;

    let mut rng = crate::os_rng()?;
    let key = GatewayKey::generate(kid, bits, &mut rng).context("generating the key")?;
    let private_pem = key.to_pem().context("encoding the private key")?;
    let public_pem = key.public().to_pem().context("encoding the public key")?;
    files::write_file(&private_path, private_pem.as_bytes(), SECRET_MODE, force)?;
    files::write_file(&public_path, public_pem.as_bytes(), PUBLIC_MODE, force)?;
    Ok((private_path, public_path))
}

/// Loads a public key; the key id comes from `--kid` or the file name.
pub(crate) fn load_public(path: &Path, kid: Option<&str>) -> Result<PublicKey> {
    let kid = kid_for(path, kid, PUBLIC_KEY_SUFFIX)?;
    check_id("--kid", &kid)?;
    let pem = files::read_text(path, "the public key")?;
    PublicKey::from_pem(&kid, &pem)
        .with_context(|| format!("{}: not a usable public key (SPKI PEM)", path.display()))
}

/// Loads the gateway's private key; the key id comes from `--kid` or the file name.
pub(crate) fn load_private(path: &Path, kid: Option<&str>) -> Result<GatewayKey> {
    let kid = kid_for(path, kid, PRIVATE_KEY_SUFFIX)?;
    check_id("--kid", &kid)?;
    let pem = files::read_secret_text(path, "the private key")?;
    // The protocol's error names the format problem; it never echoes key material.
    GatewayKey::from_pem(&kid, &pem)
        .with_context(|| format!("{}: not a usable private key (PKCS#8 PEM)", path.display()))
}
