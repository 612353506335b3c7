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
//! its own stream), and its lag (a subscriber too slow for the execution's buffer is told
//! `SUBSCRIPTION_LAGGED`, as an unshared one is). The execution runs with the rights of the
//! key, which are every subscriber's rights; it stops when its last subscriber leaves, or at
//! shutdown. An execution that answers an error (a refused subscription, a lag of its own) is
//! no longer joined: a later subscriber starts an execution, and its checks, of its own.
//!
//! Only a document holding a single subscription operation with one root field is shared;
//! queries and mutations sent over a socket, and anything else, run as they would alone.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
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
use prometheus::IntGauge;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    ApiError, HookplaneSchema,
    slots::{ConnectionSlots, SubscriptionSlot},
};
use crate::auth::{Principal, Role};

/// Responses an execution keeps for subscribers that have not read them yet; one further
/// behind is told it lagged.
const BUFFERED_RESPONSES: usize = 4096;

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
    gauges: Gauges,
}

/// `hookplane_shared_subscribers` and `hookplane_shared_subscription_executions`.
#[derive(Clone)]
pub struct Gauges {
    /// Subscriptions reading a shared execution.
    pub open: IntGauge,
    /// Shared executions running.
    pub executions: IntGauge,
}

impl Gauges {
    /// Creates both gauges and registers them in `registry` (a registration error is
    /// logged: the gauges still count, unexported).
    pub fn registered(registry: &prometheus::Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("a valid metric definition");
            if let Err(error) = registry.register(Box::new(gauge.clone())) {
                tracing::warn!(%error, name, "registering a subscription metric");
            }
            gauge
        };
        Self {
            open: gauge(
                "shared_subscribers",
                "WebSocket subscriptions reading a shared execution",
            ),
            executions: gauge(
                "shared_subscription_executions",
                "Subscription executions shared by WebSocket subscribers that ask the same thing with the same rights",
            ),
        }
    }
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

    /// What an unshared subscription answers when it falls behind the change feed.
    fn lagged(&self, missed: u64) -> Response {
        let error: async_graphql::Error = ApiError::invalid(
            "SUBSCRIPTION_LAGGED",
            format!("{missed} changes were missed; query the bucket to catch up"),
        )
        .into();
        let mut error = error.into_server_error(self.pos);
        error.path = vec![PathSegment::Field(self.response_key.clone())];
        Response::from_errors(vec![error])
    }
}

/// One running execution; dropping the last handle stops it.
struct Execution {
    id: u64,
    key: Key,
    responses: broadcast::WeakSender<Arc<Response>>,
    stop: CancellationToken,
    shared: Weak<Shared>,
}

impl Drop for Execution {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(shared) = self.shared.upgrade() {
            shared.forget(&self.key, self.id);
        }
    }
}

/// One subscriber's hold on an execution.
struct Subscriber {
    responses: broadcast::Receiver<Arc<Response>>,
    root: RootField,
    _execution: Arc<Execution>,
    _slot: SubscriptionSlot,
    _open: GaugeHeld,
}

/// One unit of a gauge, given back on drop.
struct GaugeHeld(IntGauge);

impl GaugeHeld {
    fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeHeld {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl SharingExecutor {
    pub fn new(schema: HookplaneSchema, gauges: Gauges) -> Self {
        Self {
            inner: Arc::new(Shared {
                schema,
                executions: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
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
        let (execution, responses) = self.inner.join(key, request, &principal);
        let subscriber = Subscriber {
            responses,
            root,
            _execution: execution,
            _slot: slot,
            _open: GaugeHeld::new(&self.inner.gauges.open),
        };
        stream::unfold(subscriber, |mut subscriber| async move {
            let response = match subscriber.responses.recv().await {
                Ok(response) => copy(&response),
                Err(RecvError::Lagged(missed)) => subscriber.root.lagged(missed),
                Err(RecvError::Closed) => return None,
            };
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
    /// Joins the running execution of `key`, or starts one with `request`.
    fn join(
        self: &Arc<Self>,
        key: Key,
        request: Request,
        principal: &Principal,
    ) -> (Arc<Execution>, broadcast::Receiver<Arc<Response>>) {
        let running = self
            .executions()
            .get(&key)
            .map(|(_, execution)| Weak::clone(execution));
        if let Some(execution) = running.as_ref().and_then(Weak::upgrade)
            && let Some(responses) = execution.responses.upgrade()
        {
            let receiver = responses.subscribe();
            return (execution, receiver);
        }
        let (responses, receiver) = broadcast::channel(BUFFERED_RESPONSES);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stop = CancellationToken::new();
        let execution = Arc::new(Execution {
            id,
            key: key.clone(),
            responses: responses.downgrade(),
            stop: stop.clone(),
            shared: Arc::downgrade(self),
        });
        self.executions()
            .insert(key.clone(), (id, Arc::downgrade(&execution)));

        // The execution runs with the key's rights and without a connection's slots: each
        // subscriber holds its own slot.
        let mut session = Data::default();
        session.insert(principal.clone());
        let stream = Executor::execute_stream(&self.schema, request, Some(Arc::new(session)));
        let span = tracing::info_span!("shared_subscription", execution = id);
        tokio::spawn(
            run(
                stream,
                responses,
                stop,
                Arc::downgrade(self),
                key,
                id,
                GaugeHeld::new(&self.gauges.executions),
            )
            .instrument(span),
        );
        (execution, receiver)
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

/// Runs one execution until it ends or is stopped, sending each response to its subscribers.
async fn run(
    mut stream: BoxStream<'static, Response>,
    responses: broadcast::Sender<Arc<Response>>,
    stop: CancellationToken,
    shared: Weak<Shared>,
    key: Key,
    id: u64,
    _running: GaugeHeld,
) {
    loop {
        let response = tokio::select! {
            () = stop.cancelled() => break,
            next = stream.next() => match next {
                Some(response) => response,
                None => break,
            },
        };
        if response.is_err()
            && let Some(shared) = shared.upgrade()
        {
            shared.forget(&key, id);
        }
        // An error only means every subscriber has just left; the stop follows.
        let _ = responses.send(Arc::new(response));
    }
    if let Some(shared) = shared.upgrade() {
        shared.forget(&key, id);
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
