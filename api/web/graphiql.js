// GraphiQL against this server. It uses the token the portal signed in with (this tab's
// session storage), or whatever `Authorization` header is typed in its Headers editor.
(function () {
  "use strict";
  var token = sessionStorage.getItem("hookplane.token");
  var scheme = location.protocol === "https:" ? "wss:" : "ws:";
  var authorization = token ? "Bearer " + token : null;
  var wsClient = window.graphqlWs.createClient({
    url: scheme + "//" + location.host + "/graphql/ws",
    lazy: true,
    connectionParams: function () {
      return authorization ? { Authorization: authorization } : {};
    },
  });
  var fetcher = window.GraphiQL.createFetcher({
    url: "/graphql",
    wsClient: wsClient,
    headers: authorization ? { Authorization: authorization } : {},
  });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(window.GraphiQL, {
    fetcher: fetcher,
    defaultEditorToolsVisibility: true,
    defaultHeaders: token ? "" : '{\n  "Authorization": "Bearer <your API token>"\n}',
    defaultQuery: "# Signed in from the portal: the token in this tab is used.\n" +
      "# Without it, set the Authorization header below.\n" +
      "{\n  viewer\n  organizations { slug role }\n}\n",
  }));
})();
