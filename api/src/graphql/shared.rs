//! Subscriptions over WebSockets that ask the same thing with the same rights run once, and
//! every subscriber reads that one execution's responses.
//!
//! A thousand portal pages watching one touchpoint would otherwise resolve each change a
//! thousand times. A subscription is keyed by everything its answers depend on: the query
//! text, variables and operation name, and the caller's rights (owner, and role per
//! organization). Subscribers of one key share an execution, which resolves each change once;
//! each subscriber gets its own copy of every response from the moment it joined.
//!
//! What stays per subscriber: its subscription slot (per connection and per token, taken when
//! it joins, given back when it leaves), its end (a `complete` or a closed socket ends only
//! its own stream), and its position in the execution's window of kept responses (a
//! subscriber that falls behind the window is told `SUBSCRIPTION_LAGGED`, as an unshared one
//! is; what the window holds is bounded: see [`kept`]). The execution runs with the rights of the
//! key, which are every subscriber's rights; it stops when its last subscriber leaves, or at
//! shutdown. An execution that answers an error (a refused subscription, a lag of its own) is
//! no longer joined: a later subscriber starts an execution, and its checks, of its own.
//!
//! Only a document holding a single subscription operation with one root field is shared;
//! queries and mutations sent over a socket, and anything else, run as they would alone.

mod gauges;
mod kept;

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use async_graphql::{
    Data, Executor, PathSegment, Pos, Request, Response,
    parser::{
        parse_query,
        types::{DocumentOperations, OperationType, Selection},
    },
};
use futures::{
    StreamExt,
    stream::{self, BoxStream},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    HookplaneSchema,
    slots::{ConnectionSlots, SubscriptionSlot},
    subscription,
};
use crate::auth::{Principal, Role};
use gauges::GaugeHeld;
pub use gauges::Gauges;
use kept::Kept;

/// The executor WebSockets run their operations on.
#[derive(Clone)]
pub struct SharingExecutor {
    inner: Arc<Shared>,
}

struct Shared {
    schema: HookplaneSchema,
    /// The joinable executions, by key, with their ids. Nothing is upgraded while this lock
    /// is held: a handle dropped under it would stop its execution and take the lock again.
    executions: Mutex<HashMap<Key, (u64, Weak<Execution>)>>,
    next_id: AtomicU64,
    /// Bytes of responses every execution keeps, together ([`kept`]).
    kept_in_all: Arc<AtomicUsize>,
    gauges: Gauges,
}

/// What a shared subscription's answers depend on.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    query: String,
    variables: String,
    operation_name: Option<String>,
    owner: bool,
    roles: Vec<(Uuid, Role)>,
}

impl Key {
    fn new(request: &Request, principal: &Principal) -> Option<Self> {
        let mut roles = principal.roles.clone();
        roles.sort_unstable();
        Some(Self {
            query: request.query.clone(),
            variables: serde_json::to_string(&request.variables).ok()?,
            operation_name: request.operation_name.clone(),
            owner: principal.owner,
            roles,
        })
    }
}

/// The subscription's one root field, where a subscriber's own errors point.
struct RootField {
    response_key: String,
    pos: Pos,
}

impl RootField {
    /// The root field of `request`, if it is a single subscription operation with one.
    fn of(request: &Request) -> Option<Self> {
        if !request.extensions.is_empty() {
            return None;
        }
        let document = parse_query(&request.query).ok()?;
        let DocumentOperations::Single(operation) = &document.operations else {
            return None;
        };
        if operation.node.ty != OperationType::Subscription {
            return None;
        }
        let [selection] = operation.node.selection_set.node.items.as_slice() else {
            return None;
        };
        let Selection::Field(field) = &selection.node else {
            return None;
        };
        Some(Self {
            response_key: field.node.response_key().node.to_string(),
            pos: field.pos,
        })
    }

    /// What a subscriber that fell behind answers: the error an unshared subscription gives
    /// when it falls behind the change feed, at this root field.
    fn lagged(&self, missed: u64) -> Response {
        let error: async_graphql::Error = subscription::lagged(missed).into();
        let mut error = error.into_server_error(self.pos);
        error.path = vec![PathSegment::Field(self.response_key.clone())];
        Response::from_errors(vec![error])
    }
}

/// One running execution; dropping the last handle stops it.
struct Execution {
    id: u64,
    key: Key,
    /// Its latest responses, which its subscribers read. Here rather than in its task, so that
    /// they outlive the task for as long as a subscriber may still read them (the last ones of
    /// an execution that ended, such as a refusal).
    kept: Mutex<Kept>,
    /// Changes when it keeps a response; closed when its task has ended.
    answered: watch::Receiver<()>,
    stop: CancellationToken,
    shared: Weak<Shared>,
}

impl Execution {
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// No later subscriber joins this execution.
    fn unlist(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.forget(&self.key, self.id);
        }
    }
}

impl Drop for Execution {
    fn drop(&mut self) {
        self.stop.cancel();
        self.unlist();
    }
}

/// One subscriber's hold on an execution: a position in its kept responses.
struct Subscriber {
    execution: Arc<Execution>,
    answered: watch::Receiver<()>,
    /// The number of the next response it reads.
    at: u64,
    /// The execution's task has ended: what is kept is all there will be.
    ended: bool,
    root: RootField,
    /// A response to send after reporting what was missed before it.
    pending: Option<Arc<Response>>,
    _slot: SubscriptionSlot,
    _open: GaugeHeld,
}

impl Subscriber {
    /// Its next response: a copy of the execution's, or a lag report.
    async fn next(&mut self) -> Option<Response> {
        if let Some(pending) = self.pending.take() {
            return Some(copy(&pending));
        }
        loop {
            // Seen before reading: a response kept after the read wakes the wait below.
            self.answered.mark_unchanged();
            let read = self.execution.kept().read(self.at);
            self.at += read.missed + u64::from(read.response.is_some());
            match (read.missed, read.response) {
                (0, Some(response)) => return Some(copy(&response)),
                (0, None) => {}
                (missed, response) => {
                    self.pending = response;
                    return Some(self.root.lagged(missed));
                }
            }
            if self.ended {
                return None;
            }
            if self.answered.changed().await.is_err() {
                self.ended = true;
            }
        }
    }
}

impl SharingExecutor {
    pub fn new(schema: HookplaneSchema, gauges: Gauges) -> Self {
        Self {
            inner: Arc::new(Shared {
                schema,
                executions: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                kept_in_all: Arc::default(),
                gauges,
            }),
        }
    }

    /// What joining a shared execution needs, when `request` is one to share and the
    /// subscriber has a slot left (without one, running alone refuses it as before).
    fn admit(&self, request: &Request, session: &Data) -> Option<Admitted> {
        let principal = session_value::<Principal>(session)?;
        let connection = session_value::<Arc<ConnectionSlots>>(session)?;
        let root = RootField::of(request)?;
        let key = Key::new(request, principal)?;
        let slot = connection.take().ok()?;
        Some(Admitted {
            root,
            key,
            slot,
            principal: principal.clone(),
        })
    }

    /// The subscriber's stream of the execution it joins (or starts with `request`).
    fn subscribe(&self, request: Request, admitted: Admitted) -> BoxStream<'static, Response> {
        let Admitted {
            root,
            key,
            slot,
            principal,
        } = admitted;
        let (execution, at) = self.inner.join(key, request, &principal);
        let subscriber = Subscriber {
            answered: execution.answered.clone(),
            execution,
            at,
            ended: false,
            root,
            pending: None,
            _slot: slot,
            _open: GaugeHeld::new(&self.inner.gauges.open),
        };
        stream::unfold(subscriber, |mut subscriber| async move {
            let response = subscriber.next().await?;
            Some((response, subscriber))
        })
        .boxed()
    }
}

/// A subscriber let into sharing: its slot is taken.
struct Admitted {
    root: RootField,
    key: Key,
    slot: SubscriptionSlot,
    principal: Principal,
}

impl Shared {
    /// Joins the running execution of `key`, or starts one with `request`; with the number
    /// of the first response the subscriber reads.
    fn join(
        self: &Arc<Self>,
        key: Key,
        request: Request,
        principal: &Principal,
    ) -> (Arc<Execution>, u64) {
        let running = self
            .executions()
            .get(&key)
            .map(|(_, execution)| Weak::clone(execution));
        if let Some(execution) = running.as_ref().and_then(Weak::upgrade)
            && execution.answered.has_changed().is_ok()
        {
            let at = execution.kept().next();
            return (execution, at);
        }
        let (answered, answers) = watch::channel(());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stop = CancellationToken::new();
        let execution = Arc::new(Execution {
            id,
            key: key.clone(),
            answered: answers,
            kept: Mutex::new(Kept::new(Arc::clone(&self.kept_in_all))),
            stop: stop.clone(),
            shared: Arc::downgrade(self),
        });
        self.executions()
            .insert(key, (id, Arc::downgrade(&execution)));

        // The execution runs with the key's rights and without a connection's slots: each
        // subscriber holds its own slot.
        let mut session = Data::default();
        session.insert(principal.clone());
        let stream = Executor::execute_stream(&self.schema, request, Some(Arc::new(session)));
        let span = tracing::info_span!("shared_subscription", execution = id);
        let running = Running {
            stream,
            answered,
            execution: Arc::downgrade(&execution),
            stop,
            _running: GaugeHeld::new(&self.gauges.executions),
        };
        tokio::spawn(running.run().instrument(span));
        (execution, 0)
    }

    fn executions(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (u64, Weak<Execution>)>> {
        self.executions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes execution `id` of `key` off the list of joinable ones.
    fn forget(&self, key: &Key, id: u64) {
        let mut executions = self.executions();
        if executions
            .get(key)
            .is_some_and(|(current, _)| *current == id)
        {
            executions.remove(key);
        }
    }
}

/// One execution's task: each response goes to its subscribers until the execution ends or
/// is stopped.
struct Running {
    stream: BoxStream<'static, Response>,
    /// Dropped when the task ends, which tells subscribers that nothing more comes.
    answered: watch::Sender<()>,
    execution: Weak<Execution>,
    stop: CancellationToken,
    _running: GaugeHeld,
}

impl Running {
    async fn run(mut self) {
        loop {
            let response = tokio::select! {
                () = self.stop.cancelled() => break,
                next = self.stream.next() => match next {
                    Some(response) => response,
                    None => break,
                },
            };
            let Some(execution) = self.execution.upgrade() else {
                // Every subscriber has left (and the execution is unlisted).
                break;
            };
            if response.is_err() {
                execution.unlist();
            }
            execution.kept().keep(response);
            drop(execution);
            self.answered.send_replace(());
        }
        if let Some(execution) = self.execution.upgrade() {
            execution.unlist();
        }
    }
}

/// A subscriber's own copy of a shared response (what a WebSocket sends of it).
fn copy(response: &Response) -> Response {
    let mut copy = Response::new(response.data.clone());
    copy.extensions.clone_from(&response.extensions);
    copy.errors.clone_from(&response.errors);
    copy
}

/// A value the connection's `connection_init` put in its session data.
fn session_value<T: Any>(session: &Data) -> Option<&T> {
    session
        .get(&TypeId::of::<T>())
        .and_then(|value| value.downcast_ref::<T>())
}

impl Executor for SharingExecutor {
    async fn execute(&self, request: Request) -> Response {
        Executor::execute(&self.inner.schema, request).await
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        if let Some(admitted) = session_data
            .as_deref()
            .and_then(|session| self.admit(&request, session))
        {
            return self.subscribe(request, admitted);
        }
        Executor::execute_stream(&self.inner.schema, request, session_data)
    }
}
