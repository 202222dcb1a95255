//! `keys`, `epochs` and `limits`: the keyring the filter verifies with, and the session's time
//! limits.

use super::callout::Agent;
use super::error::{ConfigError, err};
use super::raw::{RawEpoch, RawKey, RawLimits};
use crate::entropy::{Epoch, EpochParams, decode_secret};
use crate::keys::GatewayKey;
use crate::policy;
use crate::verify::{Keyring, Limits};

/// `keys` and `epochs`, checked against what the agent holds: the keyring, and the largest
/// entropy file among its epochs (which bounds the entropy cache).
pub(super) fn keyring(
    keys_raw: &[RawKey],
    epochs_raw: &[RawEpoch],
    any_agent_key: bool,
    agent: Option<&Agent>,
) -> Result<(Keyring, u64), ConfigError> {
    let mut keys: Vec<GatewayKey> = Vec::with_capacity(keys_raw.len());
    let mut agent_kids: Vec<String> = Vec::new();
    for (i, k) in keys_raw.iter().enumerate() {
        if keys.iter().any(|have| have.kid() == k.kid) || agent_kids.contains(&k.kid) {
            return Err(err(
                format!("keys[{i}].kid"),
                format!("duplicate key id {:?}", k.kid),
            ));
        }
        match &k.private_key_pem {
            Some(pem) => keys.push(
                GatewayKey::from_pem(&k.kid, pem)
                    .map_err(|e| err(format!("keys[{i}]"), e.to_string()))?,
            ),
            None if agent.is_none() => {
                return Err(err(
                    format!("keys[{i}].private_key_pem"),
                    "required unless an `agent` section names the agent that holds the key",
                ));
            }
            None => {
                if !crate::valid_id(&k.kid) {
                    return Err(err(
                        format!("keys[{i}].kid"),
                        format!("invalid key id {:?}", k.kid),
                    ));
                }
                agent_kids.push(k.kid.clone());
            }
        }
    }

    let any_agent_epoch = agent.as_ref().is_some_and(|a| a.any_epoch);
    if epochs_raw.is_empty() && !any_agent_epoch {
        return Err(err(
            "epochs",
            "at least one epoch is required (or `agent.any_epoch: true`)",
        ));
    }
    let mut epochs: Vec<Epoch> = Vec::with_capacity(epochs_raw.len());
    let mut agent_epochs: Vec<EpochParams> = Vec::new();
    for (i, e) in epochs_raw.iter().enumerate() {
        if e.autoid_epoch.is_some_and(|v| v != 1) {
            return Err(err(
                format!("epochs[{i}].autoid_epoch"),
                "unsupported version",
            ));
        }
        if epochs.iter().any(|have| have.id() == e.id)
            || agent_epochs.iter().any(|have| have.id() == e.id)
        {
            return Err(err(
                format!("epochs[{i}].id"),
                format!("duplicate epoch id {:?}", e.id),
            ));
        }
        let file_size = e.file_size.unwrap_or(policy::DEFAULT_FILE_SIZE);
        let interval_count = e.interval_count.unwrap_or(policy::DEFAULT_INTERVAL_COUNT);
        let Some(secret) = &e.secret else {
            if agent.is_none() {
                return Err(err(
                    format!("epochs[{i}].secret"),
                    "required unless an `agent` section names the agent that holds the epoch",
                ));
            }
            agent_epochs.push(
                EpochParams::new(&e.id, file_size, interval_count)
                    .map_err(|e| err(format!("epochs[{i}]"), e.to_string()))?,
            );
            continue;
        };
        let secret = decode_secret(secret).map_err(|_| {
            err(
                format!("epochs[{i}].secret"),
                "expected 32 bytes in base64url",
            )
        })?;
        let epoch = Epoch::new(&e.id, secret, file_size, interval_count)
            .map_err(|e| err(format!("epochs[{i}]"), e.to_string()))?;
        epochs.push(epoch);
    }

    let largest = epochs
        .iter()
        .map(Epoch::params)
        .chain(&agent_epochs)
        .map(EpochParams::file_size)
        .max()
        .unwrap_or(0);
    let keyring = Keyring::new(keys, epochs)
        .with_agent_keys(agent_kids)
        .with_any_agent_key(any_agent_key)
        .with_agent_epochs(agent_epochs)
        .with_any_agent_epoch(any_agent_epoch);
    Ok((keyring, largest))
}

/// `limits`: the accepted skew and the session lifetime.
pub(super) fn limits(raw: &RawLimits) -> Result<Limits, ConfigError> {
    let limits = Limits {
        max_skew_secs: raw.max_skew_secs.unwrap_or(policy::DEFAULT_MAX_SKEW_SECS),
        session_lifetime_secs: raw
            .session_lifetime_secs
            .unwrap_or(policy::DEFAULT_SESSION_LIFETIME_SECS),
    };
    if !(1..=600).contains(&limits.max_skew_secs) {
        return Err(err(
            "limits.max_skew_secs",
            format!("{} is out of range (1 to 600)", limits.max_skew_secs),
        ));
    }
    if !(60..=7 * 86400).contains(&limits.session_lifetime_secs) {
        return Err(err(
            "limits.session_lifetime_secs",
            format!(
                "{} is out of range (60 to 604800)",
                limits.session_lifetime_secs
            ),
        ));
    }

    Ok(limits)
}
