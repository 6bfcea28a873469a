//! The transactional outbox (platform, shared by every module): domain
//! events written in the same unit of work as the change they describe,
//! and read by consumers — webhooks, alerts, workflow triggers, a host's
//! own code — in delivery order, at least once, through a cursor each.
//!
//! Rules guarded here:
//! - An event commits or rolls back with its change: a backend's modules
//!   publish inside their own transaction (PostgreSQL: `publish_in`), so a
//!   rolled-back change publishes nothing.
//! - Input is checked before I/O: an [`EventType`](crate::EventType) label,
//!   a [`ConsumerName`](crate::ConsumerName), a storable JSON payload of at
//!   most [`MAX_PAYLOAD_BYTES`], a read limit of 1–[`MAX_READ_LIMIT`].
//! - **No event is ever skipped.** A sequence number is taken at insert,
//!   not at commit, so "events after seq 11" read while the transaction
//!   holding seq 10 is still open would lose event 10 for good. An event
//!   is therefore ordered by its *transaction* first ([`EventCursor`]:
//!   `(xact, seq)`) and only delivered once every transaction that could
//!   still put an event before it has ended (see
//!   `insightpulse-postgres/src/outbox.rs` for why that holds).
//! - Reading is tenant-scoped under the same rules as every other read
//!   (`event.read`; RLS on PostgreSQL); only the system reads across
//!   tenants.
//!
//! ```ignore
//! // A consumer loop (at least once: commit after processing).
//! let consumer = ConsumerName::parse("webhooks")?;
//! loop {
//!     let batch = repos.outbox.read_events(&ctx, &consumer, None, 500).await?;
//!     let Some(last) = batch.last().map(|e| e.position) else { break };
//!     for event in &batch { deliver(event).await?; }
//!     repos.outbox.commit_cursor(&ctx, &consumer, last).await?;
//! }
//! ```

mod model;
mod repo;

pub use model::*;
#[cfg(feature = "mocks")]
pub use repo::MockOutboxRepo;
pub use repo::{follow, EventStream, OutboxRepo, POLL_FALLBACK, STREAM_BATCH};
