//! What one request addresses and asks, read from its URI alone: the collection (or one object or
//! subresource in it) from the path, and the decoded query string. A path that is neither
//! `/api/<version>/…` nor `/apis/<group>/<version>/…` addresses nothing.

use url::form_urlencoded;

/// What one request addresses, parsed from its path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Collection {
    /// `api/v1` or `apis/<group>/<version>`.
    api: String,
    resource: String,
    /// `None` for cluster-scoped resources and for lists across all namespaces.
    pub(super) namespace: Option<String>,
}

impl Collection {
    pub(super) fn path(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("/{}/namespaces/{namespace}/{}", self.api, self.resource),
            None => format!("/{}/{}", self.api, self.resource),
        }
    }

    /// Whether a watch on `self` sees events of `other` (a namespace or all of them).
    pub(super) fn contains(&self, other: &Collection) -> bool {
        self.api == other.api
            && self.resource == other.resource
            && (self.namespace.is_none() || self.namespace == other.namespace)
    }
}

pub(super) enum Target {
    Collection(Collection),
    /// One object, or its subresource (`status`).
    Object(Collection),
}

impl Target {
    pub(super) fn parse(path: &str) -> Option<Target> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return None;
        }
        let (api, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => (format!("api/{version}"), rest),
            ["apis", group, version, rest @ ..] => (format!("apis/{group}/{version}"), rest),
            _ => return None,
        };
        let (namespace, resource, rest) = match rest {
            ["namespaces", namespace, resource, rest @ ..] => (Some(*namespace), *resource, rest),
            [resource, rest @ ..] => (None, *resource, rest),
            [] => return None,
        };
        let collection = Collection {
            api,
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
        };
        match rest {
            [] => Some(Target::Collection(collection)),
            [_name] | [_name, _] => Some(Target::Object(collection)),
            _ => None,
        }
    }

    pub(super) fn collection(&self) -> &Collection {
        match self {
            Target::Collection(collection) | Target::Object(collection) => collection,
        }
    }
}

/// The decoded query string.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(query: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        Query(pairs.into_owned().collect())
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub(super) fn without(&self, keys: &[&str]) -> String {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (key, value) in self
            .0
            .iter()
            .filter(|(key, _)| !keys.contains(&key.as_str()))
        {
            serializer.append_pair(key, value);
        }
        serializer.finish()
    }
}
