//! Operations of `OutboxRepo`.
//!
//! Positions are the backends' own (`(xact, seq)` on PostgreSQL, counters
//! in the fake), so they never appear in an outcome as numbers: an event
//! prints without its position (a read's order shows the delivery order),
//! and a cursor prints as the name of the event it stands at
//! ([`Env::cursor_text`]). An operation that sends an event's position
//! takes the one this backend's reads showed for that event.

use super::env::{Env, Outcome, FAR};
use super::generate::Gen;
use super::model::{acting_tenant, made, rows, Model, Row};
use super::ops::{Kind, ModuleOp, Ref, Who};
use async_trait::async_trait;
use futures_util::StreamExt;
use insightpulse_core::outbox::{Event, EventCursor};
use insightpulse_core::{ConsumerName, Context, EventType, Repos, Result};
use std::fmt;
use std::time::Duration;

/// Where a read starts, or what a cursor is set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// After the consumer's committed cursor (`after: None`; for a commit
    /// or a subscription, the start).
    Committed,
    /// [`EventCursor::START`].
    Start,
    /// The position of this event (the start if this backend never read
    /// it: both do the same as long as they agree on what was read).
    Event(Ref),
    /// Past every position.
    Far,
    /// A negative part (`Validation`).
    Negative,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Committed => f.write_str("committed"),
            Self::Start => f.write_str("start"),
            Self::Event(e) => write!(f, "@{e}"),
            Self::Far => f.write_str("far"),
            Self::Negative => f.write_str("-1-0"),
        }
    }
}

/// One call of `OutboxRepo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum OutboxOp {
    PublishEvent {
        event: Ref,
        event_type: u8,
        payload: u8,
    },
    ReadEvents {
        consumer: u8,
        after: At,
        limit: u8,
    },
    CommitCursor {
        consumer: u8,
        cursor: At,
    },
    ConsumerCursor {
        consumer: u8,
    },
    /// Takes up to `take` events of the stream, never more than a read
    /// from the same point shows (so no call waits for an event that will
    /// not come).
    SubscribeEvents {
        from: At,
        take: u8,
    },
    /// `before` is the time of the step `back` steps before this one (0:
    /// this one) moved by `nudge` microseconds: a cutoff exactly at, just
    /// before or just after that step's events.
    PurgeEvents {
        back: u8,
        nudge: i8,
    },
}

/// Event types; the last is invalid.
const EVENT_TYPES: &[&str] = &[
    "project.created",
    "invoice.paid",
    "member.joined",
    "Bad Type",
];
/// Consumers; the last is invalid.
const CONSUMERS: &[&str] = &["webhooks", "alerts.evaluator", "Bad Consumer"];
/// Read limits; the last two are out of bounds.
const LIMITS: &[u32] = &[1, 2, 100, 1_000, 0, 1_001];

/// Payloads: 3 holds keys `jsonb` reorders, 4 floats JSON may write as
/// integers, 5 a NUL character and 6 is over 256 KiB (both invalid).
fn payload(i: u8) -> serde_json::Value {
    use serde_json::json;
    match i {
        0 => json!({"project_id": "p1"}),
        1 => json!({}),
        2 => json!(null),
        3 => json!({"z": 1, "a": [true, "é"], "m": {"b": 2, "a": 1}}),
        4 => json!({"ratio": 1e16, "n": 1.0, "neg": -0.0}),
        5 => json!({"note": "nul\u{0}byte"}),
        _ => json!({"blob": "x".repeat(256 * 1024)}),
    }
}

fn payload_text(i: u8) -> String {
    let p = payload(i).to_string();
    if p.len() > 60 {
        format!("<{} bytes>", p.len())
    } else {
        p
    }
}

fn consumer(i: u8) -> Result<ConsumerName> {
    ConsumerName::parse(CONSUMERS[i as usize % CONSUMERS.len()])
}

impl fmt::Display for OutboxOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use OutboxOp::*;
        let name = |c: &u8| CONSUMERS[*c as usize % CONSUMERS.len()];
        match self {
            PublishEvent {
                event,
                event_type,
                payload: p,
            } => write!(
                f,
                "publish_event {event} type={} payload={}",
                EVENT_TYPES[*event_type as usize % EVENT_TYPES.len()],
                payload_text(*p)
            ),
            ReadEvents {
                consumer,
                after,
                limit,
            } => write!(
                f,
                "read_events consumer={} after={after} limit={}",
                name(consumer),
                LIMITS[*limit as usize % LIMITS.len()]
            ),
            CommitCursor { consumer, cursor } => {
                write!(f, "commit_cursor consumer={} {cursor}", name(consumer))
            }
            ConsumerCursor { consumer } => write!(f, "consumer_cursor {}", name(consumer)),
            SubscribeEvents { from, take } => {
                write!(f, "subscribe_events from={from}, take up to {take}")
            }
            PurgeEvents { back, nudge } => {
                write!(f, "purge_events before=time-of-step-{back}{nudge:+}us")
            }
        }
    }
}

const METHODS: &[&str] = &[
    "publish_event",
    "read_events",
    "commit_cursor",
    "consumer_cursor",
    "subscribe_events",
    "purge_events",
];

const WEIGHTS: &[u32] = &[7, 8, 6, 2, 2, 2];

/// A cursor to start from or commit: mostly an event of `t`.
fn at(g: &mut Gen, t: Ref, committed: bool) -> At {
    match g.below(40) {
        0..=17 if committed => At::Committed,
        0..=33 => At::Event(g.row_in(Kind::Event, &rows(&g.model.events), t)),
        34..=36 => At::Start,
        // Rare: a cursor committed past everything stays there.
        37 => At::Far,
        _ => At::Negative,
    }
}

/// Who reads: mostly a caller of `t`, sometimes the system across every
/// tenant.
fn reader(g: &mut Gen, t: Ref) -> Who {
    if g.chance(0.15) {
        Who::System(None)
    } else {
        g.actor(t)
    }
}

/// Learns the position of the event `at` names if this backend's reads
/// have not shown it yet: the system reads every tenant's events (a read
/// changes nothing).
async fn learn(env: &mut Env, repos: &Repos, at: At) {
    let At::Event(e) = at else { return };
    if env.position(e).is_some() || !env.is_bound(e) {
        return;
    }
    let ctx = Context::system("differential test: positions");
    let name = ConsumerName::parse("differential").expect("valid consumer");
    let mut after = EventCursor::START;
    while env.position(e).is_none() {
        match repos
            .outbox
            .read_events(&ctx, &name, Some(after), 1_000)
            .await
        {
            Ok(events) if !events.is_empty() => {
                after = events[events.len() - 1].position;
                for ev in events {
                    env.keep_position(ev.id, ev.position);
                }
            }
            _ => break,
        }
    }
}

/// The position `at` sends on this backend (`None`: the committed cursor).
async fn position(env: &mut Env, repos: &Repos, at: At) -> Option<EventCursor> {
    learn(env, repos, at).await;
    match at {
        At::Committed => None,
        At::Start => Some(EventCursor::START),
        At::Event(e) => Some(env.position(e).unwrap_or(EventCursor::START)),
        At::Far => Some(FAR),
        At::Negative => Some(EventCursor::new(-1, 0)),
    }
}

/// Events as both backends can agree on them: each with its name, tenant,
/// type, payload and time, in the order read (the delivery order). Keeps
/// every position seen.
fn events_text(env: &mut Env, events: &[Event]) -> String {
    let items: Vec<String> = events
        .iter()
        .map(|e| {
            env.keep_position(e.id, e.position);
            env.norm(&(
                e.id,
                e.tenant_id,
                e.event_type.as_str(),
                &e.payload,
                e.published_at,
            ))
        })
        .collect();
    format!("[{}]", items.join(", "))
}

#[async_trait]
impl ModuleOp for OutboxOp {
    fn method(&self) -> &'static str {
        use OutboxOp::*;
        let i = match self {
            PublishEvent { .. } => 0,
            ReadEvents { .. } => 1,
            CommitCursor { .. } => 2,
            ConsumerCursor { .. } => 3,
            SubscribeEvents { .. } => 4,
            PurgeEvents { .. } => 5,
        };
        METHODS[i]
    }

    fn is_read(&self) -> bool {
        use OutboxOp::*;
        matches!(
            self,
            ReadEvents { .. } | ConsumerCursor { .. } | SubscribeEvents { .. }
        )
    }

    fn methods() -> &'static [&'static str] {
        METHODS
    }

    fn generate(g: &mut Gen) -> Option<(Who, Self)> {
        use OutboxOp::*;
        let t = g.tenant();
        let method = g.next_method(METHODS, WEIGHTS, |g, m| match m {
            "publish_event" => None,
            _ if g.live_in(&rows(&g.model.events), t) == 0 => Some("publish_event"),
            _ => None,
        })?;
        let consumer = if g.chance(0.04) { 2 } else { g.small(2) };
        let (who, op) = match method {
            "publish_event" => {
                let event = g.fresh(Kind::Event, g.model.events.len());
                g.model.events.push(Row {
                    tenant: t.idx,
                    alive: false,
                });
                let op = PublishEvent {
                    event,
                    event_type: if g.chance(0.04) { 3 } else { g.small(3) },
                    payload: match g.below(40) {
                        0 => 5,
                        1 => 6,
                        2..=5 => 3 + g.small(2),
                        _ => g.small(3),
                    },
                };
                (g.actor(t), op)
            }
            "read_events" => {
                let limit = if g.chance(0.05) {
                    4 + g.small(2)
                } else {
                    g.small(4)
                };
                let op = ReadEvents {
                    consumer,
                    after: at(g, t, true),
                    limit,
                };
                (reader(g, t), op)
            }
            "commit_cursor" => {
                let cursor = at(g, t, false);
                (reader(g, t), CommitCursor { consumer, cursor })
            }
            "consumer_cursor" => (reader(g, t), ConsumerCursor { consumer }),
            "subscribe_events" => {
                // Mostly from the start, so that there is something to replay.
                let from = if g.chance(0.5) {
                    At::Start
                } else {
                    at(g, t, false)
                };
                let op = SubscribeEvents {
                    from,
                    take: 1 + g.small(4),
                };
                (reader(g, t), op)
            }
            _ => {
                let who = match g.below(10) {
                    0..=6 => Who::System(None),
                    7 | 8 => Who::System(Some(t)),
                    _ => g.actor(t),
                };
                let back = match g.below(2) {
                    0 => 0,
                    _ => g.small(g.index().min(12) as u8 + 1),
                };
                let op = PurgeEvents {
                    back,
                    nudge: g.pick(&[-1, 0, 0, 1]),
                };
                (who, op)
            }
        };
        Some((who, op))
    }

    fn observe(&self, by: &Who, m: &mut Model, ok: bool) {
        if let (Self::PublishEvent { event, .. }, true) = (self, ok) {
            let t = acting_tenant(by, m);
            made(&mut m.events, *event, t);
        }
    }

    async fn apply(&self, ctx: &Context, env: &mut Env, repos: &Repos) -> Outcome {
        use OutboxOp::*;
        let outbox = &repos.outbox;
        match self {
            PublishEvent {
                event,
                event_type,
                payload: p,
            } => {
                let r =
                    match EventType::parse(EVENT_TYPES[*event_type as usize % EVENT_TYPES.len()]) {
                        Ok(ty) => outbox.publish_event(ctx, &ty, &payload(*p)).await,
                        Err(e) => Err(e),
                    };
                if let Ok(id) = &r {
                    env.bind(*event, *id);
                }
                env.outcome(r)
            }
            ReadEvents {
                consumer: c,
                after,
                limit,
            } => {
                let after = position(env, repos, *after).await;
                let r = match consumer(*c) {
                    Ok(name) => {
                        outbox
                            .read_events(ctx, &name, after, LIMITS[*limit as usize % LIMITS.len()])
                            .await
                    }
                    Err(e) => Err(e),
                };
                let r = r.map(|events| events_text(env, &events));
                env.outcome_text(r)
            }
            CommitCursor {
                consumer: c,
                cursor,
            } => {
                let cursor = position(env, repos, *cursor)
                    .await
                    .unwrap_or(EventCursor::START);
                let r = match consumer(*c) {
                    Ok(name) => outbox.commit_cursor(ctx, &name, cursor).await,
                    Err(e) => Err(e),
                };
                let r = r.map(|c| env.cursor_text(c));
                env.outcome_text(r)
            }
            ConsumerCursor { consumer: c } => {
                let r = match consumer(*c) {
                    Ok(name) => outbox.consumer_cursor(ctx, &name).await,
                    Err(e) => Err(e),
                };
                let r = r.map(|c| match c {
                    Some(c) => format!("Some({})", env.cursor_text(c)),
                    None => "None".to_owned(),
                });
                env.outcome_text(r)
            }
            SubscribeEvents { from, take } => {
                let from = position(env, repos, *from)
                    .await
                    .unwrap_or(EventCursor::START);
                // What a read from the same point shows now: the stream
                // replays exactly that first.
                let name = ConsumerName::parse("differential").expect("valid consumer");
                let ready = outbox
                    .read_events(ctx, &name, Some(from), u32::from(*take))
                    .await
                    .map_or(0, |e| e.len());
                let mut stream = match outbox.subscribe_events(ctx, from).await {
                    Ok(s) => s,
                    Err(e) => return env.outcome::<()>(Err(e)),
                };
                let mut got = Vec::new();
                let mut end = String::new();
                while got.len() < ready {
                    match tokio::time::timeout(Duration::from_secs(3), stream.next()).await {
                        Ok(Some(Ok(e))) => got.push(e),
                        Ok(Some(Err(e))) => {
                            end = format!(" then {}", env.outcome::<()>(Err(e)));
                            break;
                        }
                        Ok(None) => {
                            end = " then the stream ended".to_owned();
                            break;
                        }
                        Err(_) => {
                            end = " then nothing for 3s".to_owned();
                            break;
                        }
                    }
                }
                Outcome::Ok(format!("{}{end}", events_text(env, &got)))
            }
            PurgeEvents { back, nudge } => {
                let r = outbox.purge_events(ctx, env.step_time(*back, *nudge)).await;
                env.outcome(r)
            }
        }
    }
}
