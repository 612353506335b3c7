// A third-party GraphQL client: the `graphql-ws` package over the `ws` WebSocket, as a
// portal frontend or an integration script would use it. It authenticates with a token in
// `connection_init`, subscribes to a touchpoint's resync bucket, and prints one JSON line per
// thing that happens (connected, next, error, complete, closed) for the test to read.
//
// Usage: node subscribe.mjs <ws-url> <token> <touchpoint-id>

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, touchpointId] = process.argv.slice(2);
const print = (value) => console.log(JSON.stringify(value));

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  lazy: false,
  retryAttempts: 0,
  on: {
    connected: () => print({ connected: true }),
    closed: (event) => {
      print({ closed: event.code, reason: event.reason });
      process.exit(0);
    },
  },
});

client.subscribe(
  {
    query: `subscription($id: ID!) {
      resyncBucket(touchpointId: $id) { kind status entry { id } }
    }`,
    variables: { id: touchpointId },
  },
  {
    next: (value) => print({ next: value }),
    error: (error) => print({ error: String(error?.message ?? error?.reason ?? error) }),
    complete: () => print({ complete: true }),
  },
);
