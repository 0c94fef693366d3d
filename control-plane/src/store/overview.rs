//! Read models for the admin UI: the services overview, the approvals
//! queue, and the change audit log with filters, pages and verification.

use super::audit::AuditEntry;
use super::origins::Origin;
use super::{Store, StoreError};
use crate::domain::OriginStatus;
use chrono::{DateTime, Utc};

/// One line of the services page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSummary {
    /// The service.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `enforce` or `report_only`.
    pub mode: String,
    /// Approved origins (expired ones included until the expiry job runs).
    pub approved: i64,
    /// Pending requests.
    pub pending: i64,
    /// Last change to the service or one of its origins.
    pub last_change: DateTime<Utc>,
    /// The current revision.
    pub revision: i64,
    /// The lowest revision any connected agent serving it has applied, if
    /// any has (agents gone for good must not show as drift forever).
    pub agents_min_revision: Option<i64>,
    /// How many connected agents report a state for it.
    pub agents: i64,
}

/// Filters of the audit page; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact service name.
    pub service: Option<String>,
    /// Actor (case-insensitive substring).
    pub actor: Option<String>,
    /// Exact action, e.g. `origin.approve`.
    pub action: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// The outcome of `audit verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Rows checked.
    pub rows: i64,
    /// One line per broken link or altered row.
    pub problems: Vec<String>,
    /// The newest row's chain position and hash (`None` for an empty log).
    /// The chain alone cannot show that rows were removed from its end:
    /// kept outside the database, this head is what a later
    /// [`ChainReport::check_head`] compares against.
    pub head: Option<ChainHead>,
    /// Every row's chain position and hash, for [`ChainReport::check_head`].
    hashes: Vec<(i64, String)>,
}

/// A point in the audit hash chain: a row's position (`chain_seq`, from 1)
/// and its hash (hex), written `SEQ:HASH` (what `audit verify` prints and
/// `--expect-head` takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// The row's hash (lowercase hex, as stored).
    pub hash: String,
}

impl std::fmt::Display for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for ChainHead {
    type Err = String;

    /// Parses `SEQ:HASH` (e.g. `42:9f86d0…`); errors say what to send.
    fn from_str(s: &str) -> Result<Self, String> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not SEQ:HASH (as `audit verify` prints it)"))?;
        let seq = seq
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("{seq:?} is not a chain position (a whole number from 1)"))?;
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{hash:?} is not a row hash (64 hex digits, SHA-256): copy the whole head line"
            ));
        }
        Ok(ChainHead { seq, hash })
    }
}

impl ChainReport {
    /// Adds a problem unless the chain still holds `expected` (a head
    /// recorded earlier, outside the database) at its place: rows removed
    /// from the end, or the chain rewritten from some point on, show here
    /// even when every link checks out.
    pub fn check_head(&mut self, expected: &ChainHead) {
        match self.hashes.iter().find(|(seq, _)| *seq == expected.seq) {
            None => self.problems.push(format!(
                "the recorded head {expected} is gone: the chain ends at {} (rows removed from its end?)",
                self.head
                    .as_ref()
                    .map_or_else(|| "no row".to_owned(), |h| format!("position {}", h.seq))
            )),
            Some((_, hash)) if *hash != expected.hash => self.problems.push(format!(
                "chain position {} has hash {hash}, not the recorded {} (rewritten from there?)",
                expected.seq, expected.hash
            )),
            Some(_) => {}
        }
    }
}

impl Store {
    /// Services whose name or description contains `search` (all when
    /// empty), by name, with counts, last change and agents' revisions.
    pub async fn service_summaries(&self, search: &str) -> Result<Vec<ServiceSummary>, StoreError> {
        let rows = sqlx::query!(
            r#"
            SELECT s.name, s.description, s.mode, s.revision,
                   coalesce(o.approved, 0) AS "approved!", coalesce(o.pending, 0) AS "pending!",
                   greatest(s.updated_at, o.last_request, o.last_decision) AS "last_change!",
                   a.min_revision AS agents_min_revision, coalesce(a.agents, 0) AS "agents!"
              FROM services s
              LEFT JOIN LATERAL (
                    SELECT count(*) FILTER (WHERE status = 'approved') AS approved,
                           count(*) FILTER (WHERE status = 'pending') AS pending,
                           max(requested_at) AS last_request, max(decided_at) AS last_decision
                      FROM origins WHERE service_id = s.id) o ON true
              LEFT JOIN LATERAL (
                    SELECT min(x.applied_revision) AS min_revision, count(*) AS agents
                      FROM agent_services x JOIN agents g ON g.id = x.agent_id
                     WHERE x.service = s.name AND g.connected
                       AND g.last_seen > now() - make_interval(secs => $2)) a ON true
             WHERE $1 = '' OR s.name ILIKE '%' || $1 || '%' OR s.description ILIKE '%' || $1 || '%'
             ORDER BY s.name
            "#,
            search,
            super::agents::AGENT_STALE_AFTER.as_secs_f64()
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ServiceSummary {
                name: r.name,
                description: r.description,
                mode: r.mode,
                approved: r.approved,
                pending: r.pending,
                last_change: r.last_change,
                revision: r.revision,
                agents_min_revision: r.agents_min_revision,
                agents: r.agents,
            })
            .collect())
    }

    /// Every pending request across services, oldest first.
    pub async fn pending_origins(&self) -> Result<Vec<Origin>, StoreError> {
        let rows = sqlx::query_as!(
            Origin,
            r#"
            SELECT o.id, s.name AS service, o.pattern, o.status AS "status: OriginStatus", o.requested_by, COALESCE(o.requested_by_person, o.requested_by) AS "requested_by_person!", o.reason,
                   o.requested_at, o.decided_by, o.decided_at, o.note, o.expires_at,
                   o.revocation_requested_by, o.revocation_reason, o.revocation_requested_at, COALESCE(o.revocation_requested_by_person, o.revocation_requested_by) AS revocation_requested_by_person
              FROM origins o JOIN services s ON s.id = o.service_id
             WHERE o.status = 'pending'
             ORDER BY o.requested_at, o.id
            "#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Audit rows matching `filter`, newest first, `limit` rows after
    /// skipping `offset`.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query_as!(
            AuditEntry,
            r#"
            SELECT id, at, actor, action, service, target, before, after
              FROM change_audit
             WHERE ($1::text IS NULL OR service = $1)
               AND ($2::text IS NULL OR actor ILIKE '%' || $2 || '%')
               AND ($3::text IS NULL OR action = $3)
               AND ($4::timestamptz IS NULL OR at >= $4)
               AND ($5::timestamptz IS NULL OR at < $5)
             ORDER BY id DESC
             LIMIT $6 OFFSET $7
            "#,
            filter.service,
            filter.actor,
            filter.action,
            filter.since,
            filter.until,
            limit,
            offset
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// The distinct actions in the audit log, for the filter's choices.
    pub async fn audit_actions(&self) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query!(r#"SELECT DISTINCT action AS "action!" FROM change_audit ORDER BY 1"#)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| r.action).collect())
    }

    /// The audit hash chain's length: its newest row's position (0 for an
    /// empty log). One index lookup; what `/metrics` exports, so that a
    /// shrinking chain (rows removed from its end, which the chain itself
    /// cannot show) is seen by a system outside the database.
    pub async fn audit_chain_length(&self) -> Result<i64, StoreError> {
        let length: Option<i64> = sqlx::query_scalar("SELECT max(chain_seq) FROM change_audit")
            .fetch_one(&self.pool)
            .await?;
        Ok(length.unwrap_or(0))
    }

    /// Rows deleted from the audit log as Postgres counts them
    /// (`pg_stat_user_tables.n_tup_del` of `change_audit`: cumulative since
    /// the statistics were last reset, reported within seconds). The table
    /// is append-only, so any increase is tampering; unlike
    /// [`Store::audit_chain_length`] it also shows rows deleted and
    /// re-appended between two reads.
    pub async fn audit_rows_deleted(&self) -> Result<i64, StoreError> {
        let deleted: Option<i64> = sqlx::query_scalar(
            "SELECT n_tup_del FROM pg_stat_user_tables WHERE relid = 'change_audit'::regclass",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(deleted.unwrap_or(0))
    }

    /// Walks the audit hash chain: every row's hash must match its content
    /// and the previous row's hash, with no gap in the sequence.
    pub async fn verify_audit_chain(&self) -> Result<ChainReport, StoreError> {
        let rows = sqlx::query!(
            r#"
            SELECT id, chain_seq, prev_hash, hash,
                   change_audit_row_hash(prev_hash, id, at, actor, action, service, target, before, after) AS "expected!"
              FROM change_audit ORDER BY chain_seq NULLS FIRST, id
            "#
        )
        .fetch_all(&self.pool)
        .await?;
        let mut problems = Vec::new();
        let mut prev_hash = String::new();
        let mut expected_seq = 1_i64;
        let mut hashes = Vec::with_capacity(rows.len());
        for r in &rows {
            if let (Some(seq), Some(hash)) = (r.chain_seq, &r.hash) {
                hashes.push((seq, hash.clone()));
            }
            match r.chain_seq {
                None => problems.push(format!("row {} has no place in the chain", r.id)),
                Some(seq) => {
                    if seq != expected_seq {
                        problems.push(format!(
                            "row {}: chain position {seq}, expected {expected_seq} (rows missing?)",
                            r.id
                        ));
                    }
                    expected_seq = seq + 1;
                }
            }
            if r.prev_hash.as_deref() != Some(prev_hash.as_str()) {
                problems.push(format!("row {}: does not link to the row before it", r.id));
            }
            if r.hash.as_deref() != Some(r.expected.as_str()) {
                problems.push(format!(
                    "row {}: content does not match its hash (altered)",
                    r.id
                ));
            }
            prev_hash = r.hash.clone().unwrap_or_default();
        }
        let head = rows.last().and_then(|r| {
            Some(ChainHead {
                seq: r.chain_seq?,
                hash: r.hash.clone()?,
            })
        });
        Ok(ChainReport {
            rows: rows.len() as i64,
            problems,
            head,
            hashes,
        })
    }
}
