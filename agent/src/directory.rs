//! The LDAP side: a small pool of service-account-bound connections, user and group lookups, and
//! password checks on a separate set of connections (a user bind changes a connection's identity,
//! so it never happens on the service account's connections).
//!
//! `ldap3` connections are multiplexed, so each pool slot holds one `Ldap` handle that many
//! requests share. A connection error drops the slot's handle; the next request reconnects. An
//! operation that fails on a reused handle is retried once on a fresh one, so the first request
//! after a directory restart usually succeeds; while the directory is down, requests fail fast.

use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ldap3::exop::WhoAmI;
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, SearchEntry, SearchOptions, SearchResult,
};
use tokio::sync::{Mutex, Semaphore};
use tracing::{debug, info, warn};

use crate::config::{Config, GroupSource};
use crate::error::Error;
use crate::groups::{self, User};

/// One matched user entry, as the reply reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The entry's own identifier (its `users.uid_attribute` value, as stored): LDAP matches
    /// ignoring case, so it may differ from the subject asked.
    pub entry_subject: String,
    /// Its groups, sorted and deduplicated, each a valid group name
    /// ([`autoid_protocol::valid_group_name`]); invalid names are dropped and logged.
    pub groups: Vec<String>,
}

/// The outcome of a subject lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Exactly one user entry matched.
    Found(Found),
    /// No entry matched.
    NotFound,
    /// More than one entry matched: treated as not found.
    Ambiguous,
}

/// Why a password check failed (for the log; the HTTP answer is just `authenticated: false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    EmptyPassword,
    UnknownUser,
    AmbiguousUser,
    /// The bind's LDAP result code (49 invalid credentials, 10 referral, ...).
    BindFailed(u32),
}

/// The outcome of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Accepted(Found),
    Rejected(Rejection),
}

/// One pooled handle, tagged so a failure discards only the handle that failed.
struct Conn {
    id: u64,
    ldap: Ldap,
}

struct Lease {
    slot: usize,
    id: u64,
    ldap: Ldap,
    fresh: bool,
}

/// The directory client.
pub struct Directory {
    config: Arc<Config>,
    settings: LdapConnSettings,
    bind_password: String,
    slots: Vec<Mutex<Option<Conn>>>,
    next_slot: AtomicUsize,
    next_id: AtomicU64,
    auth_idle: std::sync::Mutex<Vec<Ldap>>,
    auth_permits: Semaphore,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.config.ldap.url)
            .field("bind_dn", &self.config.ldap.bind_dn)
            .field("pool_size", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// Errors that mean the connection is unusable (as opposed to an LDAP result the server sent).
fn is_connection_error(e: &LdapError) -> bool {
    match e {
        // busy, unavailable: the server is going away
        LdapError::LdapResult { result } => matches!(result.rc, 51 | 52),
        _ => true,
    }
}

fn values(entry: &SearchEntry, attr: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect()
}

/// Splits search results into entries, logging (and ignoring) continuation references: referrals
/// are never followed.
fn entries(op: &str, raw: Vec<ldap3::ResultEntry>) -> Vec<SearchEntry> {
    let mut out = Vec::with_capacity(raw.len());
    for re in raw {
        if re.is_ref() {
            warn!(
                op,
                "ignoring a search continuation reference (referrals are not followed)"
            );
        } else {
            out.push(SearchEntry::construct(re));
        }
    }
    out
}

impl Directory {
    /// Builds the client; no connection is made until the first request (or readiness check).
    pub fn new(config: Arc<Config>, bind_password: String) -> Result<Directory, Error> {
        let l = &config.ldap;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(l.connect_timeout)
            .set_starttls(l.starttls);
        if l.tls_insecure_skip_verify {
            settings = settings.set_no_tls_verify(true);
        } else if let Some(ca) = &l.ca_file {
            settings = settings.set_config(crate::tls::client_config(ca)?);
        }
        let pool_size = l.pool_size;
        Ok(Directory {
            settings,
            bind_password,
            slots: (0..pool_size).map(|_| Mutex::new(None)).collect(),
            next_slot: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            auth_idle: std::sync::Mutex::new(Vec::new()),
            auth_permits: Semaphore::new(pool_size),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn op_timeout(&self) -> Duration {
        self.config.ldap.operation_timeout
    }

    /// Opens a connection (TCP, then StartTLS or the LDAPS handshake) within the connect timeout.
    async fn connect(&self) -> Result<Ldap, Error> {
        let url = &self.config.ldap.url;
        let connect = async {
            let (conn, ldap) = LdapConnAsync::with_settings(self.settings.clone(), url)
                .await
                .map_err(|e| Error::Unavailable(format!("connect to {url}: {e}")))?;
            tokio::spawn(async move {
                if let Err(e) = conn.drive().await {
                    debug!(error = %e, "LDAP connection closed");
                }
            });
            Ok::<_, Error>(ldap)
        };
        // set_conn_timeout bounds the TCP connect; this bounds the TLS handshake as well.
        let limit = self.config.ldap.connect_timeout + self.op_timeout();
        tokio::time::timeout(limit, connect).await.map_err(|_| {
            Error::Unavailable(format!("connect to {url}: timed out after {limit:?}"))
        })?
    }

    async fn connect_service(&self) -> Result<Ldap, Error> {
        let mut ldap = self.connect().await?;
        let dn = &self.config.ldap.bind_dn;
        let result = ldap
            .with_timeout(self.op_timeout())
            .simple_bind(dn, &self.bind_password)
            .await
            .map_err(|e| Error::Unavailable(format!("service-account bind: {e}")))?;
        result
            .success()
            .map_err(|source| Error::ldap("service-account bind", source))?;
        info!(url = %self.config.ldap.url, bind_dn = %dn, "connected to the directory");
        Ok(ldap)
    }

    async fn lease(&self) -> Result<Lease, Error> {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut guard = self.slots[slot].lock().await;
        if let Some(conn) = guard.as_mut() {
            if !conn.ldap.is_closed() {
                return Ok(Lease {
                    slot,
                    id: conn.id,
                    ldap: conn.ldap.clone(),
                    fresh: false,
                });
            }
            debug!(slot, "pooled connection closed, reconnecting");
            *guard = None;
        }
        let ldap = self.connect_service().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        *guard = Some(Conn {
            id,
            ldap: ldap.clone(),
        });
        Ok(Lease {
            slot,
            id,
            ldap,
            fresh: true,
        })
    }

    async fn discard(&self, slot: usize, id: u64) {
        let mut guard = self.slots[slot].lock().await;
        if guard.as_ref().is_some_and(|c| c.id == id) {
            *guard = None;
        }
    }

    /// Searches on a pooled service connection. On a connection error the connection is dropped
    /// and, if it was a reused one, the search is retried once on a fresh connection.
    async fn search(
        &self,
        op: &'static str,
        base: &str,
        scope: ldap3::Scope,
        filter: &str,
        attrs: &[&str],
        sizelimit: i32,
    ) -> Result<SearchResult, Error> {
        let attrs: Vec<String> = attrs.iter().map(|a| (*a).to_owned()).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lease = self.lease().await?;
            let mut ldap = lease.ldap;
            let result = ldap
                .with_timeout(self.op_timeout())
                .with_search_options(SearchOptions::new().sizelimit(sizelimit))
                .search(base, scope, filter, attrs.clone())
                .await;
            let failure = match result {
                Ok(r) if !matches!(r.1.rc, 51 | 52) => return Ok(r),
                Ok(r) => format!("result code {}", r.1.rc),
                Err(e) if is_connection_error(&e) => e.to_string(),
                Err(source) => return Err(Error::ldap(op, source)),
            };
            self.discard(lease.slot, lease.id).await;
            if lease.fresh || attempt >= 2 {
                return Err(Error::Unavailable(format!("{op}: {failure}")));
            }
            debug!(op, error = %failure, "connection failed, retrying on a fresh one");
        }
    }

    /// Finds the single user entry for `subject`.
    async fn find_user(&self, subject: &str) -> Result<Result<User, Rejection>, Error> {
        let c = &self.config;
        let filter = groups::user_filter(&c.users, subject);
        let attrs = groups::user_attributes(&c.users, &c.groups);
        let SearchResult(raw, result) = self
            .search(
                "user search",
                &c.users.base,
                c.users.scope.into(),
                &filter,
                &attrs,
                2,
            )
            .await?;
        let found = entries("user search", raw);
        match result.rc {
            0 => {}
            4 => {} // size limit exceeded: more than one match
            _ => {
                return Err(Error::ldap("user search", LdapError::LdapResult { result }));
            }
        }
        if found.len() > 1 || result.rc == 4 {
            warn!(subject, matches = found.len(), filter = %filter, "subject matches more than one entry: treated as not found");
            return Ok(Err(Rejection::AmbiguousUser));
        }
        let Some(entry) = found.into_iter().next() else {
            return Ok(Err(Rejection::UnknownUser));
        };
        let Some(uid) = groups::pick_uid(&values(&entry, &c.users.uid_attribute), subject) else {
            // Without the entry's own identifier the filter could not tell `Alice` from `alice`.
            warn!(subject, dn = %entry.dn, attribute = %c.users.uid_attribute, "the matched entry shows no value of users.uid_attribute: treated as not found");
            return Ok(Err(Rejection::UnknownUser));
        };
        let member_of = if c.groups.sources.contains(&GroupSource::MemberOf) {
            values(&entry, &c.groups.member_of_attribute)
        } else {
            Vec::new()
        };
        Ok(Ok(User {
            dn: entry.dn,
            uid,
            member_of,
        }))
    }

    /// What the reply says about a found user: its identifier and its valid group names. Names
    /// that break the group-name grammar (a `,` would split one name in two in the filter's
    /// `x-autoid-groups` header) are dropped, with a warning naming the subject and the count.
    async fn found(&self, subject: &str, user: &User) -> Result<Found, Error> {
        let mut groups = self.groups_of(user).await?;
        let before = groups.clone();
        let dropped = autoid_protocol::retain_valid_group_names(&mut groups);
        if dropped > 0 {
            let names: Vec<&String> = before.iter().filter(|g| !groups.contains(g)).collect();
            warn!(
                subject,
                dropped,
                names = ?names,
                "dropped group names that are not valid (empty, too long, a comma, control characters or surrounding whitespace)"
            );
        }
        Ok(Found {
            entry_subject: user.uid.clone(),
            groups,
        })
    }

    /// The groups of a user entry, from every configured source.
    async fn groups_of(&self, user: &User) -> Result<Vec<String>, Error> {
        let g = &self.config.groups;
        let mut names = Vec::new();
        if let Some(filter) = groups::group_filter(g, user) {
            let limit = i32::try_from(g.max_groups).unwrap_or(i32::MAX);
            let SearchResult(raw, result) = self
                .search(
                    "group search",
                    &g.base,
                    g.scope.into(),
                    &filter,
                    &[g.name_attribute.as_str()],
                    limit,
                )
                .await?;
            if result.rc != 0 {
                if result.rc == 4 {
                    warn!(user = %user.dn, max_groups = g.max_groups, "more groups than groups.max_groups");
                }
                return Err(Error::ldap(
                    "group search",
                    LdapError::LdapResult { result },
                ));
            }
            for e in entries("group search", raw) {
                names.extend(groups::names_of_entry(
                    &e.dn,
                    &values(&e, &g.name_attribute),
                    &g.name_attribute,
                ));
            }
        }
        if g.sources.contains(&GroupSource::MemberOf) {
            let (found, skipped) =
                groups::names_from_member_of(&user.member_of, &g.name_attribute, &g.base);
            if !skipped.is_empty() {
                debug!(user = %user.dn, ?skipped, "memberOf values outside groups.base or without a name");
            }
            names.extend(found);
        }
        Ok(groups::finish(names))
    }

    /// Resolves a subject to its groups.
    pub async fn lookup(&self, subject: &str) -> Result<Lookup, Error> {
        match self.find_user(subject).await? {
            Ok(user) => Ok(Lookup::Found(self.found(subject, &user).await?)),
            Err(Rejection::AmbiguousUser) => Ok(Lookup::Ambiguous),
            Err(_) => Ok(Lookup::NotFound),
        }
    }

    /// Checks a password by binding as the user, on a connection that is not the service
    /// account's. An empty password is refused without any bind: to LDAP it would be an
    /// unauthenticated bind, which "succeeds".
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Auth, Error> {
        if password.is_empty() {
            return Ok(Auth::Rejected(Rejection::EmptyPassword));
        }
        let user = match self.find_user(username).await? {
            Ok(u) => u,
            Err(r) => return Ok(Auth::Rejected(r)),
        };
        match self.bind_as(&user.dn, password).await? {
            0 => Ok(Auth::Accepted(self.found(username, &user).await?)),
            rc => {
                if rc == 10 {
                    warn!(user = %user.dn, "bind answered with a referral: denied (referrals are not followed)");
                }
                Ok(Auth::Rejected(Rejection::BindFailed(rc)))
            }
        }
    }

    /// A simple bind on a dedicated connection; returns the LDAP result code.
    async fn bind_as(&self, dn: &str, password: &str) -> Result<u32, Error> {
        if dn.is_empty() || password.is_empty() {
            return Ok(49);
        }
        let _permit = self
            .auth_permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("shutting down".into()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let idle = self.auth_idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            let (mut ldap, fresh) = match idle {
                Some(l) if !l.clone().is_closed() => (l, false),
                _ => (self.connect().await?, true),
            };
            match ldap
                .with_timeout(self.op_timeout())
                .simple_bind(dn, password)
                .await
            {
                Ok(result) => {
                    let rc = result.rc;
                    if matches!(rc, 51 | 52) {
                        return Err(Error::Unavailable(format!("user bind: result code {rc}")));
                    }
                    if let Ok(mut v) = self.auth_idle.lock() {
                        v.push(ldap);
                    }
                    return Ok(match result.success() {
                        Ok(_) => 0,
                        Err(LdapError::LdapResult { result }) => result.rc,
                        Err(_) => 49,
                    });
                }
                Err(e) => {
                    if fresh || attempt >= 2 {
                        return Err(Error::Unavailable(format!("user bind: {e}")));
                    }
                    debug!(error = %e, "idle bind connection failed, retrying on a fresh one");
                }
            }
        }
    }

    /// Opens every pool slot now (best effort) so the first requests do not pay for connecting
    /// and the TLS handshake. Returns the first error; slots that failed connect on demand later.
    pub async fn warm_up(&self) -> Result<(), Error> {
        let mut first_error = None;
        for slot in &self.slots {
            let mut guard = slot.lock().await;
            if guard.is_some() {
                continue;
            }
            match self.connect_service().await {
                Ok(ldap) => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    *guard = Some(Conn { id, ldap });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Readiness: a service-account bind and a base-scope search of `users.base` work.
    pub async fn check_ready(&self) -> Result<(), Error> {
        let base = &self.config.users.base;
        let SearchResult(_, result) = self
            .search(
                "readiness search",
                base,
                ldap3::Scope::Base,
                "(objectClass=*)",
                &["1.1"],
                1,
            )
            .await?;
        result
            .success()
            .map(|_| ())
            .map_err(|source| Error::ldap("readiness search", source))
    }

    /// Pings every pooled connection every `keepalive_interval` (WhoAmI) and drops dead ones, so
    /// idle connections cut by the server or a middlebox are replaced before a request needs them.
    pub fn spawn_keepalive(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Directory> = Arc::downgrade(self);
        let every = self.config.ldap.keepalive_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(dir) = weak.upgrade() else { return };
                dir.ping_all().await;
            }
        })
    }

    async fn ping_all(&self) {
        for slot in 0..self.slots.len() {
            let current = {
                let guard = self.slots[slot].lock().await;
                guard.as_ref().map(|c| (c.id, c.ldap.clone()))
            };
            let Some((id, mut ldap)) = current else {
                continue;
            };
            if let Err(e) = ldap.with_timeout(self.op_timeout()).extended(WhoAmI).await {
                debug!(slot, error = %e, "keepalive failed, dropping the connection");
                self.discard(slot, id).await;
            }
        }
        if let Ok(mut idle) = self.auth_idle.lock() {
            idle.retain(|l| !l.clone().is_closed());
        }
    }
}
