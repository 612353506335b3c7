//! From a database URL to configured pools.
//!
//! SQLite files get two pools: `db` (reads, and the few writes outside the group-commit
//! writer, which wait on the 5 s busy timeout) and a one-connection pool the writer owns, so a
//! batch never waits behind readers for a connection. Every SQLite connection runs WAL with
//! `synchronous=FULL`: a commit is on disk when it returns. An in-memory SQLite database lives
//! in one connection, so it gets one pool of one connection that is never recycled.
//! PostgreSQL gets one pool that the writer borrows from.

use std::{str::FromStr, time::Duration};

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, SqlxSqliteConnector,
    sqlx::{
        ConnectOptions as _,
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    },
};

use crate::{Backend, StoreError, StoreOptions, writer::Direct};

const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
const STALE_AFTER: Duration = Duration::from_secs(30);

/// The pools a store runs on.
pub(crate) struct Pools {
    pub(crate) db: DatabaseConnection,
    pub(crate) writer: DatabaseConnection,
    /// The writer's own `rusqlite` connection for its fast path (SQLite files).
    pub(crate) direct: Option<Direct>,
    pub(crate) backend: Backend,
}

/// What a URL names.
#[derive(Debug, PartialEq)]
enum Target {
    Postgres(String),
    /// A `sqlite:` URL (with its query parameters).
    SqliteUrl(String),
    /// A bare file path.
    SqliteFile(String),
    /// `sqlite::memory:` or `mode=memory`.
    SqliteMemory(String),
}

impl Target {
    fn parse(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else if url.starts_with("sqlite:") {
            if url.contains(":memory:") || url.contains("mode=memory") {
                Ok(Self::SqliteMemory(url.to_owned()))
            } else {
                Ok(Self::SqliteUrl(url.to_owned()))
            }
        } else if url.contains("://") || url.is_empty() {
            Err(StoreError::Unsupported {
                url: without_password(url),
            })
        } else {
            Ok(Self::SqliteFile(url.to_owned()))
        }
    }
}

/// The file of a SQLite database URL or path (`None` for PostgreSQL, memory or a bad URL).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    match Target::parse(url).ok()? {
        Target::SqliteFile(path) => Some(path.into()),
        Target::SqliteUrl(url) => {
            let rest = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))?;
            let path = rest.split('?').next().unwrap_or(rest);
            (!path.is_empty()).then(|| path.into())
        }
        Target::Postgres(_) | Target::SqliteMemory(_) => None,
    }
}

pub(crate) async fn connect(url: &str, options: &StoreOptions) -> Result<Pools, StoreError> {
    let max_connections = options.max_connections.max(1);
    match Target::parse(url)? {
        Target::Postgres(url) => {
            probe_postgres(&url).await?;
            let mut connect = ConnectOptions::new(url);
            connect
                // One more for the change relay's listener, which holds its connection.
                .max_connections(max_connections + 1)
                .min_connections(0)
                .connect_timeout(CONNECT_TIMEOUT)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // A ping only for connections idle long enough to have gone stale, not a
                // round trip before every statement.
                .test_before_acquire_if_idle_for(STALE_AFTER)
                .sqlx_logging(false);
            let db = Database::connect(connect)
                .await
                .map_err(StoreError::OpenDatabase)?;
            Ok(Pools {
                writer: db.clone(),
                db,
                direct: None,
                backend: Backend::Postgres,
            })
        }
        Target::SqliteUrl(url) => {
            let options = SqliteConnectOptions::from_str(&url).map_err(sqlx_open_error)?;
            // Created when missing, unless the URL chose a mode: `mode=rwc` creates,
            // `mode=rw` and `mode=ro` do not (sqlx already read the mode into `options`).
            match sqlite_mode(&url) {
                None => {
                    sqlite_file_pools(options.create_if_missing(true), true, max_connections).await
                }
                Some(mode) => sqlite_file_pools(options, mode == "rwc", max_connections).await,
            }
        }
        Target::SqliteFile(path) => {
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true);
            sqlite_file_pools(options, true, max_connections).await
        }
        Target::SqliteMemory(url) => {
            let options = SqliteConnectOptions::from_str(&url).map_err(sqlx_open_error)?;
            sqlite_memory_pool(options).await
        }
    }
}

fn sqlite_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
        .disable_statement_logging()
}

/// The `mode` query parameter of a `sqlite:` URL, if any.
fn sqlite_mode(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix("mode="))
}

/// A reader connection's page cache: `-KiB`, as `PRAGMA cache_size` takes it (SQLite's
/// default is 2000 KiB).
const READER_CACHE_SIZE: &str = "-512";

/// SQLite readers at most: reads of one file gain nothing from more, and each holds memory.
const MAX_SQLITE_READERS: u32 = 4;

/// How long a reader connection beyond the first stays open unused.
const READER_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn sqlite_file_pools(
    options: SqliteConnectOptions,
    create: bool,
    max_connections: u32,
) -> Result<Pools, StoreError> {
    let path = options.get_filename().to_path_buf();
    if create
        && let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        tokio::fs::create_dir_all(parent).await.map_err(|error| {
            StoreError::OpenDatabase(sea_orm::DbErr::Custom(format!(
                "could not create the directory {}: {error}",
                parent.display()
            )))
        })?;
    }
    let options = sqlite_options(options);
    // The writer's pool first: its connection creates the file and switches it to WAL.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await
        .map_err(|error| StoreError::Unreachable {
            target: format!("the SQLite database {}", path.display()),
            cause: sqlx_cause(&error),
            hint: if create {
                "check that its directory is writable".to_owned()
            } else {
                "the URL's mode does not create the file: create it, or use mode=rwc".to_owned()
            },
        })?;
    // Opened after the pool's connection made the file and switched it to WAL. Without it
    // (a read-only file, say) the writer runs everything through sqlx: slower, as safe.
    let direct = match Direct::open(&path, SQLITE_BUSY_TIMEOUT) {
        Ok(direct) => Some(direct),
        Err(error) => {
            tracing::warn!(file = %path.display(), error = %error, "the writer's own SQLite connection could not be opened; writes go through the pool");
            None
        }
    };
    // Readers keep a small page cache each (the kernel's page cache holds the file anyway):
    // a burst of reads on every pooled connection must not leave each with 2 MiB of pages. A
    // connection opened for a burst closes after a minute idle.
    let db = SqlitePoolOptions::new()
        .max_connections(max_connections.min(MAX_SQLITE_READERS))
        .test_before_acquire(false)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(READER_IDLE_TIMEOUT)
        .connect_with(options.pragma("cache_size", READER_CACHE_SIZE))
        .await
        .map_err(sqlx_open_error)?;
    Ok(Pools {
        db: SqlxSqliteConnector::from_sqlx_sqlite_pool(db),
        writer: SqlxSqliteConnector::from_sqlx_sqlite_pool(writer),
        direct,
        backend: Backend::Sqlite,
    })
}

async fn sqlite_memory_pool(options: SqliteConnectOptions) -> Result<Pools, StoreError> {
    // The database lives as long as its connection: keep exactly one, forever.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .test_before_acquire(false)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(sqlite_options(options))
        .await
        .map_err(sqlx_open_error)?;
    let db = SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
    Ok(Pools {
        writer: db.clone(),
        db,
        direct: None,
        backend: Backend::Sqlite,
    })
}

/// Connect once, quickly, so an unreachable or missing database is one clear line (host,
/// port, database, cause and what to do) rather than a pool timeout later.
async fn probe_postgres(url: &str) -> Result<(), StoreError> {
    use sea_orm::sqlx::{Connection as _, postgres::PgConnectOptions};

    let options = PgConnectOptions::from_str(url).map_err(|error| StoreError::Unreachable {
        target: format!("PostgreSQL at {}", without_password(url)),
        cause: sqlx_cause(&error),
        hint: "check the URL: postgres://user:password@host:port/database".to_owned(),
    })?;
    let database = options
        .get_database()
        .unwrap_or("(the user's name)")
        .to_owned();
    let target = format!(
        "PostgreSQL at {}:{}, database {database:?}, user {:?}",
        options.get_host(),
        options.get_port(),
        options.get_username()
    );
    let unreachable = |cause: String, hint: String| StoreError::Unreachable {
        target: target.clone(),
        cause,
        hint,
    };
    let attempt = tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await;
    let error = match attempt {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            return Ok(());
        }
        Ok(Err(error)) => error,
        Err(_) => {
            return Err(unreachable(
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                "check the host and port, and any firewall between".to_owned(),
            ));
        }
    };
    let code = error
        .as_database_error()
        .and_then(|db| db.code())
        .map(|code| code.into_owned());
    let hint = match code.as_deref() {
        Some("3D000") => format!(
            "create it: createdb -h {} -p {} -U {} {database}",
            options.get_host(),
            options.get_port(),
            options.get_username()
        ),
        Some("28P01" | "28000") => "check the user and password in the URL".to_owned(),
        _ if matches!(error, sea_orm::sqlx::Error::Io(_)) => {
            "is PostgreSQL running and listening there? Check the host and port".to_owned()
        }
        _ => "check the URL and the server's log".to_owned(),
    };
    Err(unreachable(sqlx_cause(&error), hint))
}

/// What went wrong, in one line, without sqlx's wrapping.
fn sqlx_cause(error: &sea_orm::sqlx::Error) -> String {
    match error {
        sea_orm::sqlx::Error::Database(db) => db.message().to_owned(),
        sea_orm::sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

fn sqlx_open_error(error: sea_orm::sqlx::Error) -> StoreError {
    StoreError::OpenDatabase(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(
        std::sync::Arc::new(error),
    )))
}

/// The URL with any password replaced, for error messages.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Cannot fail: the URL has a password, so it has a host and credentials.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => url.split('@').next_back().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    async fn pragma(db: &DatabaseConnection, name: &str) -> String {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("PRAGMA {name}"),
            ))
            .await
            .expect("pragma")
            .expect("a row");
        row.try_get_by_index::<i64>(0)
            .map(|value| value.to_string())
            .or_else(|_| row.try_get_by_index::<String>(0))
            .expect("a value")
    }

    #[tokio::test]
    async fn sqlite_is_durable_and_waits_for_locks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join("hp.db");
        let pools = connect(&path.display().to_string(), &StoreOptions::default())
            .await
            .expect("open");
        for db in [&pools.db, &pools.writer] {
            assert_eq!(pragma(db, "journal_mode").await, "wal");
            assert_eq!(pragma(db, "synchronous").await, "2", "FULL");
            assert_eq!(pragma(db, "busy_timeout").await, "5000");
            assert_eq!(pragma(db, "foreign_keys").await, "1");
        }
        assert!(path.exists(), "parent directories and the file are created");
    }

    #[test]
    fn parses_targets() {
        assert_eq!(
            Target::parse("postgres://u@h/db").ok(),
            Some(Target::Postgres("postgres://u@h/db".into()))
        );
        assert_eq!(
            Target::parse("sqlite://data/hp.db").ok(),
            Some(Target::SqliteUrl("sqlite://data/hp.db".into()))
        );
        assert_eq!(
            Target::parse("data/hp.db").ok(),
            Some(Target::SqliteFile("data/hp.db".into()))
        );
        assert!(matches!(
            Target::parse("mysql://u:pw@h/db"),
            Err(StoreError::Unsupported { url }) if !url.contains("pw")
        ));
        assert!(matches!(
            Target::parse("sqlite::memory:"),
            Ok(Target::SqliteMemory(_))
        ));
        assert!(Target::parse("").is_err());
    }
}
