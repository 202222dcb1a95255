//! `keys`, `epochs` and `limits`: the key ids and epochs the filter verifies under (their
//! secrets are the agent's), and the session's time limits.

use super::callout::Agent;
use super::error::{ConfigError, err};
use super::raw::{RawEpoch, RawKey, RawLimits};
use crate::entropy::EpochParams;
use crate::policy;
use crate::verify::{Keyring, Limits};

/// `keys` and `epochs`: the key ids and epochs the agent holds, by id and public parameters
/// (the filter holds no long-term secret: a `private_key_pem` or an epoch `secret` is refused),
/// and the largest entropy file among the epochs (which bounds the entropy cache).
pub(super) fn keyring(
    keys_raw: &[RawKey],
    epochs_raw: &[RawEpoch],
    any_agent_key: bool,
    agent: Option<&Agent>,
) -> Result<(Keyring, u64), ConfigError> {
    let mut agent_kids: Vec<String> = Vec::with_capacity(keys_raw.len());
    for (i, k) in keys_raw.iter().enumerate() {
        if k.private_key_pem.is_some() {
            return Err(err(
                format!("keys[{i}].private_key_pem"),
                "not accepted: the agent holds the gateway's private keys (its `session_keys`); \
                 list the key id only",
            ));
        }
        if !crate::valid_id(&k.kid) {
            return Err(err(
                format!("keys[{i}].kid"),
                format!("invalid key id {:?}", k.kid),
            ));
        }
        if agent_kids.contains(&k.kid) {
            return Err(err(
                format!("keys[{i}].kid"),
                format!("duplicate key id {:?}", k.kid),
            ));
        }
        agent_kids.push(k.kid.clone());
    }

    let any_agent_epoch = agent.as_ref().is_some_and(|a| a.any_epoch);
    if epochs_raw.is_empty() && !any_agent_epoch {
        return Err(err(
            "epochs",
            "at least one epoch is required (or `agent.any_epoch: true`)",
        ));
    }
    let mut agent_epochs: Vec<EpochParams> = Vec::with_capacity(epochs_raw.len());
    for (i, e) in epochs_raw.iter().enumerate() {
        if e.secret.is_some() {
            return Err(err(
                format!("epochs[{i}].secret"),
                "not accepted: the agent holds the epochs' secrets (its `epoch_files`); list \
                 the epoch's id, file_size and interval_count only",
            ));
        }
        if e.autoid_epoch.is_some_and(|v| v != 1) {
            return Err(err(
                format!("epochs[{i}].autoid_epoch"),
                "unsupported version",
            ));
        }
        if agent_epochs.iter().any(|have| have.id() == e.id) {
            return Err(err(
                format!("epochs[{i}].id"),
                format!("duplicate epoch id {:?}", e.id),
            ));
        }
        let file_size = e.file_size.unwrap_or(policy::DEFAULT_FILE_SIZE);
        let interval_count = e.interval_count.unwrap_or(policy::DEFAULT_INTERVAL_COUNT);
        agent_epochs.push(
            EpochParams::new(&e.id, file_size, interval_count)
                .map_err(|e| err(format!("epochs[{i}]"), e.to_string()))?,
        );
    }
    if agent.is_none() {
        return Err(err(
            "agent",
            "required: the agent holds the gateway's private keys and epoch secrets (the \
             filter's configuration lists their ids only)",
        ));
    }

    let largest = agent_epochs
        .iter()
        .map(EpochParams::file_size)
        .max()
        .unwrap_or(0);
    let keyring = Keyring::new(Vec::new(), Vec::new())
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
