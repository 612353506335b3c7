// GraphQL over HTTP (POST /graphql) and subscriptions over one WebSocket per sign-in
// (/graphql/ws, the graphql-transport-ws protocol). The token travels in the Authorization
// header and in connection_init; it is never put in a URL.

/** A GraphQL error: `code` is `extensions.code`, `details` its `extensions.errors`. */
export class GraphqlError extends Error {
  constructor(message, code, details) {
    super(message);
    this.code = code || "UNKNOWN";
    this.details = details || [];
  }
}

export class Api {
  constructor(token) {
    this.token = token;
    this.socket = null;
    this.nextId = 1;
    this.subscriptions = new Map();
    this.acknowledged = false;
    this.retry = 0;
    this.closed = false;
    this.onStatus = () => {};
  }

  /** Runs a query or mutation; resolves to `data`, rejects with a GraphqlError. */
  async request(query, variables = {}) {
    let response;
    try {
      response = await fetch("/graphql", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Authorization: `Bearer ${this.token}`,
        },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      throw new GraphqlError(`the server cannot be reached (${error.message})`, "NETWORK");
    }
    let body;
    try {
      body = await response.json();
    } catch {
      throw new GraphqlError(`the server answered ${response.status}`, "HTTP_" + response.status);
    }
    if (body.errors && body.errors.length) {
      const first = body.errors[0];
      const extensions = first.extensions || {};
      throw new GraphqlError(first.message, extensions.code || body.code, extensions.errors);
    }
    if (!response.ok) {
      throw new GraphqlError(body.message || `the server answered ${response.status}`, body.code);
    }
    return body.data;
  }

  /**
   * Subscribes; `onNext(data)` runs for each result, `onError(error)` when the server ends it
   * with an error. Returns a function that unsubscribes. A dropped connection is reopened
   * (with back-off) and every open subscription sent again.
   */
  subscribe(query, variables, onNext, onError = () => {}) {
    const id = String(this.nextId++);
    this.subscriptions.set(id, { query, variables, onNext, onError });
    this.connect();
    if (this.acknowledged) this.send({ id, type: "subscribe", payload: { query, variables } });
    return () => {
      if (!this.subscriptions.delete(id)) return;
      if (this.acknowledged) this.send({ id, type: "complete" });
    };
  }

  /** Closes the WebSocket for good (sign-out). */
  close() {
    this.closed = true;
    this.subscriptions.clear();
    if (this.socket) this.socket.close(1000, "signed out");
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  connect() {
    if (this.socket || this.closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/graphql/ws`, "graphql-transport-ws");
    this.socket = socket;
    this.onStatus("connecting");
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({
        type: "connection_init",
        payload: { Authorization: `Bearer ${this.token}` },
      }));
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "connection_ack") {
        this.acknowledged = true;
        this.retry = 0;
        this.onStatus("live");
        for (const [id, sub] of this.subscriptions) {
          this.send({ id, type: "subscribe", payload: { query: sub.query, variables: sub.variables } });
        }
      } else if (frame.type === "ping") {
        this.send({ type: "pong" });
      } else if (frame.type === "next") {
        const sub = this.subscriptions.get(frame.id);
        if (!sub) return;
        const payload = frame.payload || {};
        if (payload.errors && payload.errors.length) {
          const first = payload.errors[0];
          sub.onError(new GraphqlError(first.message, (first.extensions || {}).code));
        } else {
          sub.onNext(payload.data);
        }
      } else if (frame.type === "error") {
        const sub = this.subscriptions.get(frame.id);
        this.subscriptions.delete(frame.id);
        const first = (frame.payload || [])[0] || {};
        if (sub) sub.onError(new GraphqlError(first.message || "subscription refused", (first.extensions || {}).code));
      } else if (frame.type === "complete") {
        this.subscriptions.delete(frame.id);
      }
    });
    socket.addEventListener("close", (event) => {
      this.socket = null;
      this.acknowledged = false;
      if (this.closed) return;
      // 4401/4403: the credentials were refused or revoked; trying again cannot help.
      if (event.code === 4401 || event.code === 4403 || event.code === 4400) {
        this.onStatus("refused");
        return;
      }
      this.onStatus("reconnecting");
      if (this.subscriptions.size === 0) return;
      const delay = Math.min(30000, 500 * 2 ** this.retry++);
      setTimeout(() => this.connect(), delay);
    });
  }
}
